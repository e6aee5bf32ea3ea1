"""Gateway discovery from DHCP lease files (polroutd.inputs.leases)."""

from __future__ import annotations

import calendar
import errno
import glob
import os
import re
import socket
import struct
import time
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polroutd.core.settings import DEFAULT_LEASE_PATHS
from polroutd.inputs.leases import (
    Lease,
    LeaseFiles,
    _glob,
    _lease_files,
    _Memo,
    find_lease,
    lease_findings,
    lease_gateways,
    parse_dhclient_leases,
    parse_dhcpcd_lease,
    parse_networkd_lease,
    select_lease,
)

FIXTURES = Path(__file__).parent / "fixtures" / "leases"
NM = FIXTURES / "NetworkManager"
NM_INTERNAL_MODERN = NM / "internal-9a3c5e22-4a0f-4d8b-8c1e-1f2b3c4d5e6f-eth1.lease"
NM_INTERNAL_LEGACY = NM / "internal-2c8d4f6a-7b1e-4c3d-9e5f-0a1b2c3d4e5f-eth2.lease"
NM_DHCLIENT = NM / "dhclient-5fb06bd0-0bb0-7ffb-45f1-d6edd65f3e03-eth0.lease"


def utc(text: str) -> float:
    return float(calendar.timegm(datetime.fromisoformat(text).timetuple()))


# --- a dhcpcd lease: the DHCPACK exactly as dhcpcd stores it ----------------------------------

BOOTP_HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")  # RFC 2131 §2, 236 bytes
MAGIC = bytes((99, 130, 83, 99))


def option(code: int, value: bytes) -> bytes:
    return bytes((code, len(value))) + value


def addresses(*texts: str) -> bytes:
    return b"".join(socket.inet_aton(text) for text in texts)


def dhcp_message(
    *options: bytes,
    yiaddr: str = "10.225.176.38",
    ciaddr: str = "0.0.0.0",
    sname: bytes = b"",
    file: bytes = b"",
) -> bytes:
    header = BOOTP_HEADER.pack(
        2, 1, 6, 0,  # BOOTREPLY, Ethernet, hardware address length, hops
        0x3903F326,  # xid
        0, 0,  # secs, flags
        socket.inet_aton(ciaddr),
        socket.inet_aton(yiaddr),
        socket.inet_aton("10.225.176.2"),  # siaddr
        bytes(4),  # giaddr
        bytes.fromhex("005056a1b2c3"),  # chaddr, zero-padded to 16 by struct
        sname,
        file,
    )
    assert len(header) == 236
    message = header + MAGIC + b"".join(options) + b"\xff"
    return message.ljust(300, b"\0")  # dhcpcd keeps the padding it received


def ack(
    *options: bytes,
    lease_time: int | None = 7200,
    yiaddr: str = "10.225.176.38",
    ciaddr: str = "0.0.0.0",
    file: bytes = b"",
) -> bytes:
    timing = [option(51, struct.pack("!I", lease_time))] if lease_time is not None else []
    return dhcp_message(
        option(53, b"\x05"), *timing, *options, yiaddr=yiaddr, ciaddr=ciaddr, file=file
    )


# --- systemd-networkd / NetworkManager internal ----------------------------------------------


def test_networkd_lease_as_systemd_252_writes_it() -> None:
    text = (FIXTURES / "networkd" / "3").read_text()
    lease = parse_networkd_lease(text, "ens224", "/run/systemd/netif/leases/3", mtime=1000.0)
    assert lease == Lease(
        interface="ens224",
        address="10.225.176.38",
        routers=("10.225.176.1",),
        expires=1000.0 + 7200,  # LIFETIME counts from when networkd wrote the file
        path="/run/systemd/netif/leases/3",
        client="networkd",
    )
    assert lease.gateway == "10.225.176.1"


def test_networkd_lease_without_mtime_has_unknown_expiry() -> None:
    text = (FIXTURES / "networkd" / "3").read_text()
    lease = parse_networkd_lease(text, "ens224", "3")
    assert lease is not None and lease.expires is None


def test_networkd_multiple_routers_and_infinite_lifetime() -> None:
    text = "ADDRESS=192.0.2.5\nROUTER=192.0.2.1 192.0.2.254\nLIFETIME=4294967295\n"
    lease = parse_networkd_lease(text, "eth0", "7", mtime=1000.0)
    assert lease is not None
    assert lease.routers == ("192.0.2.1", "192.0.2.254")
    assert lease.gateway == "192.0.2.1"
    assert lease.expires is None


def test_networkd_classless_routes_replace_the_router_option() -> None:
    """RFC 3442: with option 121 present the client ignores option 3, and so must we."""
    base = "ADDRESS=192.0.2.5\nROUTER=192.0.2.1\n"
    with_default = base + "CLASSLESS_ROUTES=10.0.0.0/8,192.0.2.9 0.0.0.0/0,192.0.2.254\n"
    without_default = base + "CLASSLESS_ROUTES=10.0.0.0/8,192.0.2.9\n"
    lease = parse_networkd_lease(with_default, "eth0", "7")
    assert lease is not None and lease.routers == ("192.0.2.254",)
    lease = parse_networkd_lease(without_default, "eth0", "7")
    assert lease is not None and lease.routers == ()
    lease = parse_networkd_lease(base + "STATIC_ROUTES=10.0.0.0/8,192.0.2.9\n", "eth0", "7")
    assert lease is not None and lease.routers == ("192.0.2.1",)  # option 33 does not count


def test_networkmanager_internal_lease_legacy_systemd_client() -> None:
    lease = parse_networkd_lease(
        NM_INTERNAL_LEGACY.read_text(), "eth2", str(NM_INTERNAL_LEGACY), mtime=5000.0
    )
    assert lease is not None
    assert (lease.client, lease.address, lease.gateway) == (
        "networkmanager", "172.16.40.23", "172.16.40.1",
    )
    assert lease.expires == 5000.0 + 86400


def test_networkmanager_internal_lease_of_nettools_client_has_no_gateway() -> None:
    """NetworkManager >= 1.22 (nettools) saves only the address: no gateway to be had."""
    lease = parse_networkd_lease(NM_INTERNAL_MODERN.read_text(), "eth1", str(NM_INTERNAL_MODERN))
    assert lease is not None
    assert (lease.client, lease.address) == ("networkmanager", "192.168.122.58")
    assert lease.gateway is None
    assert select_lease([lease], now=0.0) is None


def test_networkd_rejects_text_that_is_no_lease() -> None:
    assert parse_networkd_lease("", "eth0", "1") is None
    assert parse_networkd_lease("OPER_STATE=routable\nDNS=1.1.1.1\n", "eth0", "1") is None
    lease = parse_networkd_lease("ADDRESS=not-an-address\nROUTER=300.1.1.1 x\n", "eth0", "1")
    assert lease is not None and (lease.address, lease.routers) == (None, ())


# --- dhclient ----------------------------------------------------------------------------------


def test_dhclient_last_block_of_each_interface_wins() -> None:
    leases = parse_dhclient_leases((FIXTURES / "dhclient.leases").read_text(), "dhclient.leases")
    by_interface = {lease.interface: lease for lease in leases}
    assert sorted(by_interface) == ["ens192", "ens224"]
    ens224 = by_interface["ens224"]
    assert ens224.expires == utc("2026-11-24 10:00:00")  # the second renewal, not the first lease
    assert (ens224.address, ens224.routers, ens224.client) == (
        "10.225.176.38", ("10.225.176.1",), "dhclient",
    )
    ens192 = by_interface["ens192"]
    assert ens192.routers == ("10.225.160.1", "10.225.160.2")
    assert ens192.gateway == "10.225.160.1"
    assert ens192.expires == utc("2026-11-25 06:00:05")


def test_dhclient_last_block_wins_even_with_an_earlier_expiry() -> None:
    text = """
    lease { interface "eth0"; fixed-address 192.0.2.5; option routers 192.0.2.1;
            expire 3 2026/11/25 06:00:00; }
    lease { interface "eth0"; fixed-address 198.51.100.7; option routers 198.51.100.1;
            expire 2 2026/11/24 07:00:00; }
    """
    (lease,) = parse_dhclient_leases(text, "x")
    assert (lease.address, lease.gateway) == ("198.51.100.7", "198.51.100.1")


def test_dhclient_epoch_time_format_and_comments() -> None:
    path = FIXTURES / "dhclient--eth1.lease"
    (lease,) = parse_dhclient_leases(path.read_text(), str(path))
    assert lease.interface == "eth1"
    assert lease.expires == 1795521600.0
    assert lease.gateway == "192.0.2.1"


def test_dhclient_never_expiring_lease() -> None:
    text = 'lease { interface "eth0"; option routers 192.0.2.1; expire never; }'
    (lease,) = parse_dhclient_leases(text, "x")
    assert lease.expires is None


def test_dhclient_unreadable_expiry_in_the_current_block_means_no_lease() -> None:
    """An older block would be stale: better no gateway than a wrong one."""
    good = 'lease { interface "eth0"; option routers 192.0.2.1; expire 2 2026/11/24 07:00:00; }'
    for bad_tail in (
        'lease { interface "eth0"; option routers 192.0.2.9; }',
        'lease { interface "eth0"; option routers 192.0.2.9; expire 2 2026/13/40 07:00:00; }',
        'lease { interface "eth0"; option routers 192.0.2.9; expire epoch 99x; }',
    ):
        assert parse_dhclient_leases(good + bad_tail, "x") == []


def test_dhclient_ignores_dhcpv6_and_incomplete_blocks() -> None:
    assert parse_dhclient_leases((FIXTURES / "dhclient6.leases").read_text(), "x") == []
    truncated = 'lease {\n  interface "eth0";\n  option routers 192.0.2.1;\n  expire 2 2026/1'
    assert parse_dhclient_leases(truncated, "x") == []


def test_dhclient_quoted_semicolons_and_braces_do_not_confuse_the_reader() -> None:
    text = """
    lease {
      interface "eth0";
      option domain-name "odd; name } {";
      option routers 192.0.2.1, 192.0.2.2;  # a comment with lease { inside
      expire 2 2026/11/24 07:00:00;
    }
    """
    (lease,) = parse_dhclient_leases(text, "x")
    assert lease.routers == ("192.0.2.1", "192.0.2.2")


@pytest.mark.parametrize(
    "value",
    [
        "24,10,1,1,192,0,2,9,0,192,0,2,254",  # Debian's "array of unsigned integer 8"
        "18:a:1:1:c0:0:2:9:0:c0:0:2:fe",  # undeclared option printed as hex
    ],
)
def test_dhclient_classless_routes_replace_the_router_option(value: str) -> None:
    name = "unknown-121" if ":" in value else "rfc3442-classless-static-routes"
    text = f"""lease {{ interface "eth0"; option routers 192.0.2.1;
        option {name} {value}; expire 2 2026/11/24 07:00:00; }}"""
    (lease,) = parse_dhclient_leases(text, "x")
    assert lease.routers == ("192.0.2.254",)


def test_networkmanager_dhclient_backend() -> None:
    (lease,) = parse_dhclient_leases(NM_DHCLIENT.read_text(), str(NM_DHCLIENT))
    assert (lease.client, lease.interface, lease.gateway) == (
        "networkmanager", "eth0", "192.168.122.1",
    )
    assert lease.expires == utc("2026-11-24 06:58:08")


# --- dhcpcd ------------------------------------------------------------------------------------


def test_dhcpcd_lease() -> None:
    data = ack(
        option(1, addresses("255.255.255.0")),
        option(3, addresses("10.225.176.1", "10.225.176.3")),
        option(54, addresses("10.225.176.2")),
    )
    lease = parse_dhcpcd_lease(data, "ens224", "/var/lib/dhcpcd/ens224.lease", mtime=1000.0)
    assert lease == Lease(
        interface="ens224",
        address="10.225.176.38",
        routers=("10.225.176.1", "10.225.176.3"),
        expires=1000.0 + 7200,
        path="/var/lib/dhcpcd/ens224.lease",
        client="dhcpcd",
    )


def test_dhcpcd_infinite_and_missing_lease_time() -> None:
    infinite = ack(option(3, addresses("192.0.2.1")), lease_time=0xFFFFFFFF)
    bootp = dhcp_message(option(3, addresses("192.0.2.1")))  # BOOTP: no type, no lease time
    for data in (infinite, bootp):
        lease = parse_dhcpcd_lease(data, "eth0", "x", mtime=1000.0)
        assert lease is not None and lease.expires is None and lease.gateway == "192.0.2.1"


def test_dhcpcd_ignores_messages_that_are_no_ack() -> None:
    nak = dhcp_message(option(53, b"\x06"), option(3, addresses("192.0.2.1")))
    assert parse_dhcpcd_lease(nak, "eth0", "x", mtime=0.0) is None


def test_dhcpcd_inform_uses_ciaddr() -> None:
    data = ack(option(3, addresses("192.0.2.1")), yiaddr="0.0.0.0", ciaddr="192.0.2.5")
    lease = parse_dhcpcd_lease(data, "eth0", "x", mtime=0.0)
    assert lease is not None and lease.address == "192.0.2.5"


def test_dhcpcd_options_in_overloaded_file_field_and_split_options() -> None:
    """RFC 2131 option overload (52) and RFC 3396 long options split in parts."""
    data = ack(
        option(52, b"\x01"),
        option(3, addresses("192.0.2.1")),
        option(3, addresses("192.0.2.2")),
        file=option(3, addresses("192.0.2.3")) + b"\xff",
    )
    lease = parse_dhcpcd_lease(data, "eth0", "x", mtime=0.0)
    assert lease is not None and lease.routers == ("192.0.2.1", "192.0.2.2", "192.0.2.3")


def test_dhcpcd_classless_routes_replace_the_router_option() -> None:
    routes = bytes([24, 10, 1, 1, 192, 0, 2, 9, 0, 192, 0, 2, 254])
    data = ack(option(3, addresses("192.0.2.1")), option(121, routes))
    lease = parse_dhcpcd_lease(data, "eth0", "x", mtime=0.0)
    assert lease is not None and lease.routers == ("192.0.2.254",)
    malformed = ack(option(3, addresses("192.0.2.1")), option(121, routes[:-1]))
    lease = parse_dhcpcd_lease(malformed, "eth0", "x", mtime=0.0)
    assert lease is not None and lease.routers == ("192.0.2.1",)  # clients drop a bad 121


def test_dhcpcd_rejects_data_that_is_no_dhcp_message() -> None:
    assert parse_dhcpcd_lease(b"", "eth0", "x", mtime=0.0) is None
    assert parse_dhcpcd_lease(bytes(300), "eth0", "x", mtime=0.0) is None
    assert parse_dhcpcd_lease(ack()[:239], "eth0", "x", mtime=0.0) is None


@given(
    routers=st.lists(st.ip_addresses(v=4), min_size=1, max_size=6, unique=True),
    lease_time=st.integers(0, 0xFFFFFFFE),
    mtime=st.floats(0, 2e9),
)
def test_dhcpcd_round_trip(routers: list[object], lease_time: int, mtime: float) -> None:
    texts = [str(router) for router in routers]
    lease = parse_dhcpcd_lease(
        ack(option(3, addresses(*texts)), lease_time=lease_time), "eth0", "x", mtime
    )
    assert lease is not None
    assert lease.routers == tuple(text for text in texts if text != "0.0.0.0")
    assert lease.expires == mtime + lease_time


# --- garbage never raises ----------------------------------------------------------------------


@given(st.text())
def test_text_parsers_never_raise(text: str) -> None:
    parse_networkd_lease(text, "eth0", "x", mtime=0.0)
    parse_dhclient_leases(text, "x")


@given(st.lists(st.sampled_from(
    ["lease", "{", "}", ";", '"eth0"', "interface", "option", "routers", "expire", "epoch",
     "never", "2", "2026/11/24", "07:00:00", "192.0.2.1", ",", "#", "\n", '"', "\\",
     "rfc3442-classless-static-routes", "0,192,0,2,1", "99999999999999999999999", "lease6"]
), max_size=60))
def test_dhclient_parser_never_raises_on_near_miss_syntax(tokens: list[str]) -> None:
    for lease in parse_dhclient_leases(" ".join(tokens), "x"):
        assert isinstance(lease, Lease)


@given(st.binary(max_size=600))
def test_dhcpcd_parser_never_raises(data: bytes) -> None:
    parse_dhcpcd_lease(data, "eth0", "x", mtime=0.0)


@given(st.binary(max_size=300))
def test_dhcpcd_parser_never_raises_on_any_options(options: bytes) -> None:
    parse_dhcpcd_lease(bytes(236) + MAGIC + options, "eth0", "x", mtime=0.0)


# --- last block wins, as a property ------------------------------------------------------------


@given(st.lists(
    st.tuples(st.sampled_from(["eth0", "eth1", "ens224"]), st.ip_addresses(v=4),
              st.integers(1_700_000_000, 1_900_000_000)),
    min_size=1, max_size=12,
))
def test_dhclient_current_lease_is_the_last_block(blocks: list[tuple[str, object, int]]) -> None:
    text = "".join(
        f'lease {{\n  interface "{name}";\n  option routers {router};\n'
        f"  expire epoch {expire};\n}}\n"
        for name, router, expire in blocks
    )
    last = {name: (str(router), expire) for name, router, expire in blocks}
    leases = parse_dhclient_leases(text, "x")
    assert {lease.interface for lease in leases} == set(last)
    for lease in leases:
        router, expire = last[lease.interface]
        assert lease.routers == (() if router == "0.0.0.0" else (router,))
        assert lease.expires == expire


# --- select_lease ------------------------------------------------------------------------------


def lease(router: str | None = "192.0.2.1", expires: float | None = None, path: str = "x") -> Lease:
    routers = (router,) if router else ()
    return Lease("eth0", "192.0.2.5", routers, expires, path, "dhclient")


def test_select_lease_ignores_expired_and_routerless_leases() -> None:
    assert select_lease([], now=100.0) is None
    assert select_lease([lease(expires=100.0), lease(expires=50.0)], now=100.0) is None
    assert select_lease([lease(router=None, expires=500.0)], now=100.0) is None
    valid = lease(expires=101.0)
    assert select_lease([lease(expires=99.0), valid], now=100.0) is valid


def test_select_lease_prefers_the_later_expiry_then_the_first_given() -> None:
    early, late, infinite = lease(expires=200.0), lease(expires=300.0), lease(expires=None)
    assert select_lease([early, late], now=100.0) is late
    assert select_lease([early, infinite, late], now=100.0) is infinite
    first, second = lease(expires=300.0, path="a"), lease(expires=300.0, path="b")
    assert select_lease([first, second], now=100.0) is first


@given(
    st.lists(st.tuples(st.booleans(), st.one_of(st.none(), st.floats(0, 1000))), max_size=8),
    st.floats(0, 1000),
)
def test_select_lease_property(specs: list[tuple[bool, float | None]], now: float) -> None:
    leases = [lease(router="192.0.2.1" if has_router else None, expires=expires)
              for has_router, expires in specs]
    chosen = select_lease(leases, now)
    usable = [item for item in leases if item.routers and item.valid_at(now)]
    if not usable:
        assert chosen is None
        return
    assert chosen is not None and chosen in usable
    if chosen.expires is not None:
        assert all(item.expires is not None and item.expires <= chosen.expires for item in usable)


# --- find_lease / lease_gateways on a file tree laid out like the real one ---------------------


NOW = utc("2026-11-24 08:30:00")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A tmp tree with the DHCP clients' directories; DEFAULT_LEASE_PATHS point into it."""
    def put(relative: str, content: bytes, mtime: float | None = None) -> None:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        if mtime is not None:
            os.utime(path, (mtime, mtime))

    put("run/systemd/netif/leases/3", (FIXTURES / "networkd" / "3").read_bytes(), NOW - 600)
    put("run/systemd/netif/leases/4", b"ADDRESS=10.9.9.9\nROUTER=10.9.9.1\n", NOW - 600)
    put("var/lib/dhcp/dhclient.leases", (FIXTURES / "dhclient.leases").read_bytes())
    put("var/lib/dhcp/dhclient6.leases", (FIXTURES / "dhclient6.leases").read_bytes())
    put(f"var/lib/NetworkManager/{NM_DHCLIENT.name}", NM_DHCLIENT.read_bytes())
    put(f"var/lib/NetworkManager/{NM_INTERNAL_MODERN.name}", NM_INTERNAL_MODERN.read_bytes())
    put(f"var/lib/NetworkManager/{NM_INTERNAL_LEGACY.name}", NM_INTERNAL_LEGACY.read_bytes(),
        NOW - 600)
    put("var/lib/dhcpcd/eth5.lease", ack(option(3, addresses("203.0.113.1"))), NOW - 600)
    put("var/lib/dhcpcd/eth6.lease", ack(option(3, addresses("203.0.113.65"))), NOW - 7201)
    put("var/lib/dhcpcd/eth7.lease", ack(option(3, addresses("203.0.113.129"))), NOW - 600)
    return tmp_path


def patterns(root: Path) -> list[str]:
    return [f"{root}{pattern}" for pattern in DEFAULT_LEASE_PATHS]


def test_find_lease_networkd_by_ifindex(root: Path) -> None:
    lease = find_lease("ens256", 3, patterns(root), NOW)
    assert lease is not None
    assert (lease.client, lease.gateway, lease.path) == (
        "networkd", "10.225.176.1", f"{root}/run/systemd/netif/leases/3",
    )
    assert lease.expires == pytest.approx(NOW - 600 + 7200)
    other = find_lease("ens256", 4, patterns(root), NOW)
    assert other is not None and other.gateway == "10.9.9.1"


def test_find_lease_dhclient_by_the_interface_blocks_name(root: Path) -> None:
    lease = find_lease("ens224", 99, patterns(root), NOW)
    assert lease is not None
    assert (lease.client, lease.gateway) == ("dhclient", "10.225.176.1")
    assert lease.expires == utc("2026-11-24 10:00:00")
    ens192 = find_lease("ens192", 98, patterns(root), NOW)
    assert ens192 is not None and ens192.gateway == "10.225.160.1"
    assert find_lease("ens224", 99, patterns(root), utc("2026-11-24 10:00:01")) is None


def test_find_lease_networkmanager_files_by_ifname(root: Path) -> None:
    eth0 = find_lease("eth0", 20, patterns(root), utc("2026-11-24 06:30:00"))
    assert eth0 is not None and (eth0.client, eth0.gateway) == ("networkmanager", "192.168.122.1")
    assert find_lease("eth0", 20, patterns(root), NOW) is None  # expired at 06:58:08
    assert find_lease("eth1", 21, patterns(root), NOW) is None  # nettools: address only
    eth2 = find_lease("eth2", 22, patterns(root), NOW)
    assert eth2 is not None and eth2.gateway == "172.16.40.1"


def test_find_lease_dhcpcd_by_ifname_with_expiry_from_mtime(root: Path) -> None:
    eth5 = find_lease("eth5", 30, patterns(root), NOW)
    assert eth5 is not None and (eth5.client, eth5.gateway) == ("dhcpcd", "203.0.113.1")
    assert eth5.expires == pytest.approx(NOW - 600 + 7200)
    assert find_lease("eth6", 31, patterns(root), NOW) is None  # written 7201 s ago: expired


def test_find_lease_never_uses_another_interfaces_lease(root: Path) -> None:
    assert find_lease("eth9", 77, patterns(root), NOW) is None
    # eth7's dhcpcd file matches a pattern only through its own name.
    assert find_lease("eth7", 77, patterns(root), NOW) is not None
    # Glob characters in an interface name are literal, not wildcards matching eth5/eth6/eth7.
    assert find_lease("eth[5-7]", 77, patterns(root), NOW) is None
    assert find_lease("eth*", 77, patterns(root), NOW) is None


def test_find_lease_generic_file_only_trusts_named_blocks(tmp_path: Path) -> None:
    """A file not named after the interface tells nothing about it unless a block names it."""
    (tmp_path / "all.leases").write_text(
        'lease { option routers 192.0.2.1; expire never; }\n'
    )
    (tmp_path / "eth0.leases").write_text(
        'lease { option routers 192.0.2.2; expire never; }\n'
    )
    (tmp_path / "networkd-style").write_text("ADDRESS=192.0.2.5\nROUTER=192.0.2.3\n")
    generic = [f"{tmp_path}/all.leases", f"{tmp_path}/networkd-style"]
    assert find_lease("eth0", 2, generic, NOW) is None
    lease = find_lease("eth0", 2, [f"{tmp_path}/{{ifname}}.leases"], NOW)
    assert lease is not None and (lease.interface, lease.gateway) == ("eth0", "192.0.2.2")


def test_find_lease_prefers_the_longest_lasting_lease_across_clients(tmp_path: Path) -> None:
    (tmp_path / "dhclient.leases").write_text(
        f'lease {{ interface "eth0"; option routers 192.0.2.1; expire epoch {NOW + 3600:.0f}; }}'
    )
    dhcpcd = tmp_path / "eth0.lease"
    found = [f"{tmp_path}/dhclient*.leases", f"{tmp_path}/{{ifname}}.lease"]

    dhcpcd.write_bytes(ack(option(3, addresses("192.0.2.7")), lease_time=60))
    os.utime(dhcpcd, (NOW, NOW))
    lease = find_lease("eth0", 2, found, NOW)
    assert lease is not None and (lease.client, lease.gateway) == ("dhclient", "192.0.2.1")

    dhcpcd.write_bytes(ack(option(3, addresses("192.0.2.7")), lease_time=7200))
    os.utime(dhcpcd, (NOW, NOW))
    lease = find_lease("eth0", 2, found, NOW)
    assert lease is not None and (lease.client, lease.gateway) == ("dhcpcd", "192.0.2.7")
    lease = find_lease("eth0", 2, found, NOW + 7200)
    assert lease is None  # both expired


def test_find_lease_skips_what_cannot_be_read(tmp_path: Path) -> None:
    (tmp_path / "eth0.lease").mkdir()  # a directory that matches
    os.mkfifo(tmp_path / "eth1.lease")  # would block a plain open()
    (tmp_path / "eth2.lease").symlink_to(tmp_path / "missing")  # dangling
    (tmp_path / "eth3.lease").write_bytes(b"\xff\xfe garbage \x00" * 50)
    found = [f"{tmp_path}/{{ifname}}.lease", f"{tmp_path}/nothing/*"]
    for name in ("eth0", "eth1", "eth2", "eth3"):
        assert find_lease(name, 2, found, NOW) is None


def test_find_lease_with_ifindex_and_ifname_in_one_pattern(tmp_path: Path) -> None:
    (tmp_path / "5-eth0").write_text("ADDRESS=192.0.2.5\nROUTER=192.0.2.1\n")
    lease = find_lease("eth0", 5, [f"{tmp_path}/{{ifindex}}-{{ifname}}"], NOW)
    assert lease is not None and lease.gateway == "192.0.2.1"
    assert find_lease("eth0", 6, [f"{tmp_path}/{{ifindex}}-{{ifname}}"], NOW) is None


def test_lease_gateways(root: Path) -> None:
    found = lease_gateways(
        {"ens224": 3, "ens192": 2, "eth1": 21, "eth5": 30, "eth9": 99}, patterns(root), NOW
    )
    assert {name: lease.gateway for name, lease in found.items()} == {
        "ens224": "10.225.176.1",
        "ens192": "10.225.160.1",
        "eth5": "203.0.113.1",
    }


# --- the lease search's glob: glob.glob's answers, from one directory listing ------------------

NAME = st.text(alphabet="ab.-[]*?x0", min_size=1, max_size=6).filter(lambda n: n not in (".", ".."))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    files=st.sets(NAME, max_size=8),
    dangling=st.sets(NAME, max_size=2),
    patterns=st.lists(
        st.one_of(
            st.text(alphabet="ab.-[]*?x0!", min_size=1, max_size=6),
            st.sampled_from(["*", ".*", "*a*", "?", "??", "[.a]*", "[!a]*", "a", ".", ".."]),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_lease_glob_agrees_with_glob_glob(
    tmp_path_factory: pytest.TempPathFactory,
    files: set[str],
    dangling: set[str],
    patterns: list[str],
) -> None:
    directory = tmp_path_factory.mktemp("leases")
    for name in files:
        (directory / name).write_text("x")
    for name in dangling - files:
        (directory / name).symlink_to(directory / "missing-target")
    missing = directory / "no-such-dir"
    for pattern in patterns:
        for where in (directory, missing):
            full = f"{where}/{pattern}"
            memo = _Memo()
            assert memo.glob(full) == sorted(glob.glob(full)), full
            assert _glob(full) == sorted(glob.glob(full)), full


# --- which files a search looks at: as glob.glob finds them, whatever the directories hold -----


def reference_lease_files(interface: str, ifindex: int, patterns: list[str]) -> dict[str, bool]:
    """Every pattern filled in for the interface and expanded by glob.glob, in pattern order:
    path -> whether a pattern with a placeholder found it."""
    found: dict[str, bool] = {}
    fill = {"{ifname}": glob.escape(interface), "{ifindex}": str(ifindex)}
    for pattern in patterns:
        parts = re.split(r"(\{ifname\}|\{ifindex\})", pattern)
        expanded = "".join(fill.get(part, part) for part in parts)
        named = len(parts) > 1
        for path in sorted(glob.glob(expanded)):
            found[path] = found.get(path, False) or named
    return found


TEMPLATE_PARTS = st.sampled_from(
    ["{ifname}", "{ifindex}", "*", "?", "[ab]", ".", "a", "-", "x.lease", "{ifname}.lease"]
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    interface=st.text(alphabet="ab.*?[]/{}x", min_size=0, max_size=5),
    ifindex=st.integers(min_value=-3, max_value=12),
    files=st.sets(st.text(alphabet="ab.-x1[]*", min_size=1, max_size=7).filter(
        lambda n: n not in (".", "..")), max_size=6),
    bases=st.lists(st.lists(TEMPLATE_PARTS, min_size=1, max_size=3).map("".join),
                   min_size=1, max_size=4),
    where=st.lists(st.sampled_from(["full", "empty", "absent", "file", "{ifname}"]),
                   min_size=1, max_size=4),
)
def test_lease_files_agree_with_glob_glob(
    tmp_path_factory: pytest.TempPathFactory,
    interface: str,
    ifindex: int,
    files: set[str],
    bases: list[str],
    where: list[str],
) -> None:
    """Patterns filled in per interface in directories that are full, empty, absent or a
    file (the search skips the last three's patterns without filling them in): the same
    files as glob.glob finds, each search, with and without the engine's LeaseFiles."""
    root = tmp_path_factory.mktemp("lease-dirs")
    full, empty = root / "full", root / "empty"
    full.mkdir()
    empty.mkdir()
    (root / "file").write_text("x")
    for name in files:
        (full / name).write_text("x")
    places = (where * 4)[:len(bases)]
    patterns = [f"{root}/{place}/{base}" for place, base in zip(places, bases, strict=True)]
    expected = reference_lease_files(interface, ifindex, patterns)
    kept = LeaseFiles(lambda: time.time() + 10)  # everything settled: listings are kept
    for _ in range(2):
        assert _lease_files(interface, ifindex, patterns, _Memo()) == expected
        assert _lease_files(interface, ifindex, patterns, _Memo(kept)) == expected


def test_lease_files_follow_the_directories_between_searches(tmp_path: Path) -> None:
    """A file that appears in an empty directory, or one that is absent, after a search is
    found by the next search; a file removed is gone from it (also while the directory's
    listing is kept from one search to the next)."""
    clock = [time.time() + 10]
    files = LeaseFiles(lambda: clock[0])
    networkd, dhclient = tmp_path / "netif", tmp_path / "dhclient"
    networkd.mkdir()
    patterns = [f"{networkd}/{{ifindex}}", f"{dhclient}/*-{{ifname}}.lease",
                f"{dhclient}/{{ifname}}.lease"]

    def search() -> dict[str, bool]:
        return _lease_files("eth0", 7, patterns, _Memo(files))

    assert search() == {}
    (networkd / "7").write_text("ADDRESS=192.0.2.5\nROUTER=192.0.2.1\n")
    (networkd / "8").write_text("ADDRESS=192.0.2.6\nROUTER=192.0.2.1\n")
    clock[0] += 10
    assert search() == {f"{networkd}/7": True}
    dhclient.mkdir()
    (dhclient / "1-eth0.lease").write_text("")
    (dhclient / "eth0.lease").write_text("")
    clock[0] += 10
    assert search() == {f"{networkd}/7": True, f"{dhclient}/1-eth0.lease": True,
                        f"{dhclient}/eth0.lease": True}
    assert search() == {f"{networkd}/7": True, f"{dhclient}/1-eth0.lease": True,
                        f"{dhclient}/eth0.lease": True}
    (networkd / "7").unlink()
    (dhclient / "1-eth0.lease").unlink()
    clock[0] += 10
    assert search() == {f"{dhclient}/eth0.lease": True}
    (dhclient / "eth0.lease").unlink()
    dhclient.rmdir()
    assert search() == {}


def test_lease_findings_see_a_lease_written_after_a_search(root: Path) -> None:
    """The engine's LeaseFiles keeps what it listed and matched: a lease that appears later
    (its client started after polroutd) is found by the next search, one removed is gone."""
    files = LeaseFiles(lambda: time.time() + 10)
    found = lease_findings({"wlan9": 57}, patterns(root), NOW, files)
    assert "wlan9" not in found
    lease = root / "run/systemd/netif/leases/57"
    lease.write_text("ADDRESS=10.225.176.38\nROUTER=10.225.176.1\n")
    found = lease_findings({"wlan9": 57}, patterns(root), NOW, files)
    assert [offer.routers for offer in found["wlan9"].offers] == [("10.225.176.1",)]
    lease.unlink()
    assert "wlan9" not in lease_findings({"wlan9": 57}, patterns(root), NOW, files)


def test_lease_files_in_a_directory_that_cannot_be_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory that can be searched but not listed: a file named after the interface is
    found in it (as glob.glob finds it, by its path), a wildcard finds nothing."""
    locked = tmp_path / "locked"
    locked.mkdir()
    for name in ("eth0.lease", "1-eth0.lease", "eth*.lease"):
        (locked / name).write_text("")
    listdir = os.listdir

    def refusing(path: str) -> list[str]:
        if os.fspath(path) == str(locked):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return listdir(path)

    monkeypatch.setattr(os, "listdir", refusing)
    patterns = [f"{locked}/{{ifname}}.lease", f"{locked}/*-{{ifname}}.lease"]
    for files in (None, LeaseFiles(lambda: time.time() + 10)):
        assert _lease_files("eth0", 2, patterns, _Memo(files)) == {f"{locked}/eth0.lease": True}
        assert _lease_files("eth*", 3, patterns, _Memo(files)) == {}


def test_lease_files_of_a_name_with_a_slash(tmp_path: Path) -> None:
    """No kernel gives an interface a name with "/", but the search treats it as glob.glob
    does: the filled-in pattern may lead out of its directory."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "a.lease").write_text("")
    patterns = [f"{tmp_path}/empty/{{ifname}}.lease"]
    expected = reference_lease_files("../full/a", 1, patterns)
    assert expected == {f"{tmp_path}/empty/../full/a.lease": True}
    for files in (None, LeaseFiles(lambda: time.time() + 10)):
        assert _lease_files("../full/a", 1, patterns, _Memo(files)) == expected
