"""Table and protocol names: iproute2's files, protocol resolution, table allocation, our record."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polroutd.config.parse import parse_config
from polroutd.core.errors import ConfigError
from polroutd.core.settings import Config
from polroutd.core.tables import (
    DEFAULT_PROTOCOL_NUMBER,
    RECORDED_HEADER,
    NameRegistry,
    TableAssignment,
    TableRef,
    assign_tables,
    check_route_tables,
    parse_name_file,
    render_recorded,
    resolve_protocol,
)
from polroutd.inputs.rt_tables import (
    config_dirs_for,
    read_recorded,
    read_registry,
    write_if_changed,
)

BARE = read_registry(())  # built-ins only


def assign(
    requests: list[tuple[str, str | int | None]],
    *,
    registry: NameRegistry = BARE,
    recorded: dict[str, int] | None = None,
    table_range: tuple[int, int] = (30000, 30999),
    in_use: frozenset[int] = frozenset(),
) -> TableAssignment:
    return assign_tables(
        requests, registry=registry, recorded=recorded or {}, table_range=table_range,
        in_use=in_use, source="test.toml",
    )


def numbers(assignment: TableAssignment) -> dict[str, int]:
    return {interface: ref.id for interface, ref in assignment.by_interface.items()}


# --- the file format ----------------------------------------------------------------------------


def test_parse_name_file_reads_iproute2s_format() -> None:
    text = (
        "#\n"
        "# reserved values\n"
        "255\tlocal\n"
        "  254   main  \n"
        "\n"
        "0x10 hex\n"
        "0X11 upper_hex_is_not_read_by_iproute2\n"
        "100 data # the data network\n"
        "101 spare extra words\n"
        "102 #not-a-name\n"
        "mgt 100\n"
        "200\n"
        "-1 negative\n"
        "0xzz bad_hex\n"
        "1.5 float\n"
        "300 data\n"  # the first definition wins
    )
    assert parse_name_file(text) == {
        "local": 255, "main": 254, "hex": 16, "data": 100, "spare": 101,
    }


def test_parse_name_file_of_nothing() -> None:
    assert parse_name_file("") == {}
    assert parse_name_file("# only a comment\n\n") == {}


def test_recorded_tables_round_trip(tmp_path: Path) -> None:
    recorded = {"eth1": 30001, "data": 30000, "b": 30005}
    text = render_recorded(recorded)

    assert text == RECORDED_HEADER + "30000 data\n30001 eth1\n30005 b\n"
    assert parse_name_file(text) == recorded
    path = tmp_path / "polroutd.conf"
    path.write_text(text)
    assert read_recorded(path) == recorded
    assert read_recorded(tmp_path / "missing.conf") == {}
    assert render_recorded({}) == RECORDED_HEADER


# --- the registry ---------------------------------------------------------------------------


def make_dir(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_read_registry_reads_files_and_drop_ins_earlier_directory_first(tmp_path: Path) -> None:
    etc = make_dir(tmp_path / "etc", {
        "rt_tables": "100 data\n",
        "rt_tables.d/b.conf": "102 bee\n101 shared\n",
        "rt_tables.d/a.conf": "101 ay\n",
        "rt_tables.d/ignored.txt": "103 ignored\n",
        "rt_protos.d/polroutd.conf": "218 polroutd\n",
        "rt_protos": "17 dhcp\n",
    })
    usr = make_dir(tmp_path / "usr", {
        "rt_tables": "200 data\n201 usr_only\n100 main\n",
        "rt_protos": "66 guest\n",
    })

    registry = read_registry((etc, usr))

    assert registry.tables["data"] == 100  # /etc wins
    assert registry.tables["ay"] == 101
    assert registry.tables["bee"] == 102
    assert registry.tables["shared"] == 101
    assert registry.tables["usr_only"] == 201
    assert "ignored" not in registry.tables
    assert registry.tables["main"] == 254  # the kernel's names cannot be redefined
    assert registry.tables["local"] == 255
    assert registry.tables["default"] == 253
    assert registry.tables["unspec"] == 0
    assert registry.protocols["polroutd"] == 218
    assert registry.protocols["dhcp"] == 17  # a file wins over the built-in list
    assert registry.protocols["guest"] == 66
    assert registry.protocols["static"] == 4
    assert registry.protocols["bird"] == 12


def test_read_registry_without_files_has_the_built_ins(tmp_path: Path) -> None:
    registry = read_registry((tmp_path / "nothing",))
    assert registry.tables == {"unspec": 0, "default": 253, "main": 254, "local": 255}
    assert registry.protocols["kernel"] == 2
    assert registry.protocols["ra"] == 9
    assert registry.protocols["bgp"] == 186
    assert registry.table_name(254) == "main"
    assert registry.table_name(12345) is None


def test_read_registry_skips_unreadable_files(tmp_path: Path) -> None:
    etc = make_dir(tmp_path, {"rt_tables.d/good.conf": "7 seven\n"})
    (etc / "rt_tables").mkdir()  # a directory where a file should be
    assert read_registry((etc,)).tables["seven"] == 7


def test_config_dirs_for() -> None:
    assert config_dirs_for("/x/iproute2/rt_tables.d/polroutd.conf") == (
        Path("/x/iproute2"), Path("/usr/share/iproute2"),
    )
    assert config_dirs_for("/usr/share/iproute2/rt_tables.d/polroutd.conf") == (
        Path("/usr/share/iproute2"),
    )
    assert config_dirs_for("") == (Path("/etc/iproute2"), Path("/usr/share/iproute2"))
    assert config_dirs_for("/var/lib/polroutd/tables") == (
        Path("/etc/iproute2"), Path("/usr/share/iproute2"),
    )


# --- protocols --------------------------------------------------------------------------------


def test_resolve_protocol() -> None:
    registry = NameRegistry(tables={}, protocols={"bird": 12, "mine": 99, "odd": 3, "big": 300})

    assert resolve_protocol(77, registry, "x") == 77
    assert resolve_protocol("mine", registry, "x") == 99
    assert resolve_protocol("polroutd", registry, "x") == DEFAULT_PROTOCOL_NUMBER == 218
    registered = NameRegistry(tables={}, protocols={"polroutd": 201})
    assert resolve_protocol("polroutd", registered, "x") == 201


@pytest.mark.parametrize("name", ["unknown", "odd", "big"])
def test_resolve_protocol_refuses_what_it_cannot_use(name: str) -> None:
    registry = NameRegistry(tables={}, protocols={"odd": 3, "big": 300})
    with pytest.raises(ConfigError) as caught:
        resolve_protocol(name, registry, "/etc/polroutd/polroutd.toml")
    assert caught.value.key == "daemon.protocol"
    assert str(caught.value).startswith("/etc/polroutd/polroutd.toml: daemon.protocol: ")
    if name == "unknown":
        assert "rt_protos.d" in caught.value.problem


# --- table allocation -----------------------------------------------------------------------


def test_tables_are_named_after_interfaces_and_allocated_in_sorted_order() -> None:
    result = assign([("eth2", None), ("eth0", None), ("eth1", None)])

    assert result.by_interface == {
        "eth0": TableRef(30000, "eth0"), "eth1": TableRef(30001, "eth1"),
        "eth2": TableRef(30002, "eth2"),
    }
    assert result.recorded == {"eth0": 30000, "eth1": 30001, "eth2": 30002}


def test_allocation_does_not_depend_on_request_order() -> None:
    requests: list[tuple[str, str | int | None]] = [("b", None), ("a", "data"), ("c", None)]
    assert assign(requests) == assign(list(reversed(requests)))


def test_recorded_numbers_survive_restarts_and_absences(tmp_path: Path) -> None:
    path = tmp_path / "rt_tables.d" / "polroutd.conf"
    first = assign([("eth0", None), ("eth1", None)])
    write_if_changed(path, render_recorded(first.recorded))

    # eth0 is gone for a while; a new interface must not take its number.
    second = assign([("eth1", None), ("eth2", None)], recorded=read_recorded(path))
    write_if_changed(path, render_recorded(second.recorded))
    assert numbers(second) == {"eth1": 30001, "eth2": 30002}
    assert second.recorded == {"eth0": 30000, "eth1": 30001, "eth2": 30002}

    third = assign([("eth0", None), ("eth2", None)], recorded=read_recorded(path))
    assert numbers(third) == {"eth0": 30000, "eth2": 30002}
    assert write_if_changed(path, render_recorded(third.recorded)) is False


def test_allocation_avoids_registered_recorded_and_foreign_numbers() -> None:
    registry = NameRegistry(tables={**BARE.tables, "other": 30000}, protocols={})
    result = assign(
        [("eth0", None), ("eth1", None)],
        registry=registry, recorded={"old": 30001}, in_use=frozenset({30002, 30004}),
    )
    assert numbers(result) == {"eth0": 30003, "eth1": 30005}
    assert result.recorded == {"old": 30001, "eth0": 30003, "eth1": 30005}


def test_registered_names_and_explicit_numbers() -> None:
    registry = NameRegistry(tables={**BARE.tables, "data": 200, "mgt": 100}, protocols={})
    result = assign(
        [("ens192", "mgt"), ("ens224", "data"), ("eth9", 30000), ("eth8", "150"), ("x", None)],
        registry=registry,
    )
    assert result.by_interface == {
        "ens192": TableRef(100, "mgt"),
        "ens224": TableRef(200, "data"),
        "eth9": TableRef(30000, None),
        "eth8": TableRef(150, None),
        "x": TableRef(30001, "x"),  # 30000 is taken explicitly
    }
    assert result.recorded == {"x": 30001}  # registered names are not ours to record


def test_an_explicit_number_takes_its_registered_name() -> None:
    registry = NameRegistry(tables={**BARE.tables, "mgt": 100}, protocols={})
    assert assign([("eth0", 100)], registry=registry).by_interface["eth0"] == TableRef(100, "mgt")


def test_our_own_file_in_the_registry_is_still_ours() -> None:
    # config_dirs_for() makes read_registry() read our own file too.
    recorded = {"data": 30000}
    registry = NameRegistry(tables={**BARE.tables, **recorded}, protocols={})
    result = assign([("eth0", "data"), ("eth1", 30000)], registry=registry, recorded=recorded)
    assert numbers(result) == {"eth0": 30001, "eth1": 30000}
    assert result.recorded == {"data": 30001}


def test_a_recorded_number_taken_explicitly_is_reallocated() -> None:
    result = assign([("eth0", None), ("eth1", 30000)], recorded={"eth0": 30000, "gone": 30005})
    assert numbers(result) == {"eth0": 30001, "eth1": 30000}
    assert result.recorded == {"eth0": 30001, "gone": 30005}


def test_a_hand_edited_record_with_a_number_twice_keeps_one() -> None:
    result = assign([("a", None), ("b", None)], recorded={"a": 30000, "b": 30000, "c": 254})
    assert numbers(result) == {"a": 30000, "b": 30001}
    assert result.recorded == {"a": 30000, "b": 30001}


def test_same_explicit_table_may_be_shared_but_nothing_else() -> None:
    shared = assign([("eth0", 100), ("eth1", 100)])
    assert numbers(shared) == {"eth0": 100, "eth1": 100}

    registry = NameRegistry(tables={**BARE.tables, "data": 100}, protocols={})
    with pytest.raises(ConfigError, match="would share table 100") as caught:
        assign([("eth0", 100), ("eth1", "data")], registry=registry)
    assert caught.value.key == "interface.table"
    # "eth1" is the table named after interface eth1 and also the one interface x asks for.
    with pytest.raises(ConfigError, match="would share table 30000"):
        assign([("eth1", None), ("x", "eth1")])
    # Two names the system gives one number.
    aliases = NameRegistry(tables={**BARE.tables, "eth1": 7, "eth2": 7}, protocols={})
    with pytest.raises(ConfigError, match="would share table 7"):
        assign([("eth1", None), ("eth2", None)], registry=aliases)


def test_an_interface_named_like_a_kernel_table_gets_a_prefixed_table() -> None:
    # Was refused, so every reconcile failed; see tests/test_hostile_names.py.
    assert assign([("main", None)]).by_interface["main"].name == "if:main"


def test_exhausted_range_leaves_only_the_interfaces_without_a_number() -> None:
    assert numbers(assign([("a", None), ("b", None)], table_range=(5, 6))) == {"a": 5, "b": 6}
    crowded = assign([("a", None), ("b", None), ("c", None)], table_range=(5, 6))
    assert numbers(crowded) == {"a": 5, "b": 6}
    assert "no free table number left in 5..6 for table 'c'" in crowded.unassigned["c"]
    full = assign([("a", None)], table_range=(5, 6), in_use=frozenset({5, 6}))
    assert numbers(full) == {} and set(full.unassigned) == {"a"}


def test_allocation_never_hands_out_a_reserved_number() -> None:
    assert numbers(assign([("a", None), ("b", None)], table_range=(252, 256))) == {
        "a": 252, "b": 256,
    }


_INTERFACES = st.lists(st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True), unique=True,
                       max_size=12).filter(lambda names: not set(names) & {"main", "local",
                                                                          "default", "unspec"})


@settings(max_examples=200, deadline=None)
@given(
    interfaces=_INTERFACES,
    low=st.one_of(st.integers(1, 300), st.integers(1, 2**32 - 64)),  # 0, 253-255 inside
    in_use=st.sets(st.integers(0, 40), max_size=10),
    recorded_extra=st.dictionaries(st.from_regex(r"old[0-9]", fullmatch=True),
                                   st.integers(0, 40), max_size=3),
)
def test_any_interfaces_get_distinct_stable_tables_in_range(
    interfaces: list[str], low: int, in_use: set[int], recorded_extra: dict[str, int]
) -> None:
    # 12 interfaces, 10 foreign, 3 recorded and 4 reserved numbers: 30 always suffice.
    table_range = (low, low + 29)
    foreign = frozenset(low + n for n in in_use)
    old = {name: low + n for name, n in recorded_extra.items()}
    requests: list[tuple[str, str | int | None]] = [(name, None) for name in interfaces]

    first = assign(requests, recorded=old, table_range=table_range, in_use=foreign)

    got = numbers(first)
    assert len(set(got.values())) == len(interfaces)
    assert all(low <= n <= low + 29 for n in got.values())
    assert not set(got.values()) & {0, 253, 254, 255}
    assert not set(got.values()) & foreign
    assert {first.by_interface[i].name for i in interfaces} == set(interfaces)
    # Restarted with what was recorded (and with new foreign routes): nothing moves.
    recorded = parse_name_file(render_recorded(first.recorded))
    again = assign(requests[::-1], recorded=recorded, table_range=table_range,
                   in_use=frozenset(got.values()))
    assert again == first


# --- extra routes' table names ------------------------------------------------------------


def test_route_tables_must_be_known() -> None:
    def config(table: str) -> Config:
        return parse_config({"interface": [
            {"name": "ens192", "table": "mgt"},
            {"name": "ens224"},
            {"name": "wl*"},
            {"name": "eth0", "routes": [{"to": "10.0.0.0/8", "table": table}]},
        ]}, "c.toml")

    registry = NameRegistry(tables={**BARE.tables, "vpn": 50}, protocols={})
    for table in ("mgt", "ens224", "vpn", "old", "wlan0", "main", "eth0"):
        check_route_tables(config(table), registry, {"old": 30000})
    with pytest.raises(ConfigError) as caught:
        check_route_tables(config("nosuch"), registry, {})
    assert caught.value.key == "interface[4].routes[1].table"
    assert str(caught.value).startswith("c.toml: interface[4].routes[1].table: ")


# --- writing ------------------------------------------------------------------------------


def test_write_if_changed_creates_writes_once_and_leaves_no_temporaries(tmp_path: Path) -> None:
    path = tmp_path / "iproute2" / "rt_tables.d" / "polroutd.conf"

    assert write_if_changed(path, "one\n") is True
    assert path.read_text() == "one\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    inode = path.stat().st_ino
    assert write_if_changed(path, "one\n") is False
    assert path.stat().st_ino == inode  # untouched
    assert write_if_changed(path, "two\n") is True
    assert path.read_text() == "two\n"
    assert path.stat().st_ino != inode  # replaced, never written in place
    assert os.listdir(path.parent) == ["polroutd.conf"]


def test_write_if_changed_keeps_the_old_file_when_the_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "polroutd.conf"
    path.write_text("old\n")

    def failing_replace(source: str, target: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        write_if_changed(path, "new\n")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["polroutd.conf"]


def test_write_if_changed_never_takes_over_a_file_in_its_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "polroutd.conf"
    names = iter([b"\x01" * 6, b"\x01" * 6, b"\x02" * 6])
    monkeypatch.setattr(os, "urandom", lambda size: next(names))
    in_the_way = tmp_path / f".polroutd.conf.{'01' * 6}.tmp"
    in_the_way.write_text("someone else's\n")

    assert write_if_changed(path, "mine\n") is True
    assert path.read_text() == "mine\n"
    assert in_the_way.read_text() == "someone else's\n"
    assert sorted(os.listdir(tmp_path)) == sorted([path.name, in_the_way.name])
