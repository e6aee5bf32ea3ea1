"""Interface names that would be misread as table names (issue 11, defect 6): numbers and
reserved words never become table names, and distinct byte names stay distinct."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polroutd.core.limits import RESERVED_TABLE_NAMES
from polroutd.core.tables import (
    assign_tables,
    interface_table_name,
    parse_name_file,
    render_recorded,
)
from polroutd.inputs.rt_tables import read_registry
from polroutd.netlink.codec import IFLA_IFNAME, decode_link

BARE = read_registry(())


def assign(names: list[str]) -> dict[str, tuple[int, str | None]]:
    result = assign_tables(
        [(name, None) for name in names], registry=BARE, recorded={},
        table_range=(30000, 30999), in_use=frozenset(), source="test",
    )
    return {name: (ref.id, ref.name) for name, ref in result.by_interface.items()}


@pytest.mark.parametrize("name", ["254", "0x10", "010", "1", "+5", "-1", "main", "local",
                                  "default", "unspec", "all", "cache", "#x"])
def test_names_ip_would_misread_get_a_prefix(name: str) -> None:
    table = interface_table_name(name)
    assert table == f"if:{name}"
    number, recorded_name = assign([name])[name]
    assert recorded_name == table and number == 30000
    # What iproute2 reads back from our file: the name, not a number or a kernel table.
    assert parse_name_file(render_recorded({table: number})) == {table: number}


@pytest.mark.parametrize("name", ["eth0", "ens192", "wlan-1", "br.100", "x254"])
def test_ordinary_names_are_kept(name: str) -> None:
    assert interface_table_name(name) == name


def test_an_interface_named_254_does_not_hide_main() -> None:
    tables = assign(["254", "eth0"])
    assert tables["254"][1] == "if:254" and tables["254"][0] != 254
    text = render_recorded({name: number for number, name in tables.values() if name})
    assert f"\n{tables['254'][0]} if:254\n" in text and " 254\n" not in text


def link_message(index: int, name: bytes) -> bytes:
    attr = struct.pack("=HH", 4 + len(name) + 1, IFLA_IFNAME) + name + b"\0"
    attr += b"\0" * (-len(attr) % 4)
    return struct.pack("=BxHiII", 0, 1, index, 1, 0) + attr


def test_non_utf8_names_stay_distinct_and_get_distinct_tables() -> None:
    first = decode_link(link_message(5, b"eth\xff"))
    second = decode_link(link_message(6, b"eth\xfe"))
    assert first is not None and second is not None
    assert first.name != second.name
    tables = assign([first.name, second.name])
    assert tables[first.name][0] != tables[second.name][0]
    text = render_recorded({name: number for number, name in tables.values() if name})
    text.encode("utf-8")  # the rt_tables.d file is still text
    assert len(parse_name_file(text)) == 2


_KERNEL_NAME_BYTES = st.binary(min_size=1, max_size=15).filter(
    lambda b: not any(c in b for c in b"/:\0 \t\n\r\x0b\x0c") and b not in (b".", b".."))


@given(st.lists(_KERNEL_NAME_BYTES, min_size=2, max_size=6, unique=True))
def test_distinct_kernel_names_get_distinct_tables(raw_names: list[bytes]) -> None:
    links = [decode_link(link_message(n, raw)) for n, raw in enumerate(raw_names, 2)]
    names = [link.name for link in links if link is not None]
    assert len(set(names)) == len(raw_names)
    tables = assign(names)
    assert len({number for number, _ in tables.values()}) == len(names)
    for _number, table_name in tables.values():
        assert table_name is not None
        assert table_name not in RESERVED_TABLE_NAMES and not table_name[0].isdigit()
        table_name.encode("utf-8")

    recorded = {name: number for number, name in tables.values() if name}
    assert parse_name_file(render_recorded(recorded)) == recorded


def test_unicode_spaces_in_a_name_do_not_split_the_line() -> None:
    name = "a\u00a0b\u2028"
    table = interface_table_name(name)
    assert table == "if::" + name.encode().hex()
    assert parse_name_file(render_recorded({table: 30000})) == {table: 30000}
