"""The desired state's numbers stated one by one: priority, table, metric, scope, source and
gateway (written to kill the mutants that survived the other tests, see docs/testing.md)."""

from __future__ import annotations

import ipaddress
from fnmatch import fnmatchcase

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polroutd.core import desired as desired_module
from polroutd.core.desired import (
    Inputs,
    choose_gateway,
    desired_state,
    main_table_defaults,
    managed_links,
    table_requests,
)
from polroutd.core.limits import (
    AF_INET,
    AF_INET6,
    IFA_F_NOPREFIXROUTE,
    IFA_F_SECONDARY,
    RT_SCOPE_LINK,
    RT_SCOPE_UNIVERSE,
    RT_TABLE_MAIN,
    RTN_BLACKHOLE,
    RTN_PROHIBIT,
    RTN_UNREACHABLE,
)
from polroutd.core.model import (
    Address,
    DesiredState,
    Gateway,
    KernelState,
    LeaseFindings,
    LeaseOffer,
    Link,
    Route,
)
from polroutd.core.settings import (
    DEFAULT_EXCLUDE,
    Config,
    DaemonSettings,
    InterfaceSpec,
    RouteSpec,
    UplinkSpec,
)
from polroutd.core.tables import TableRef
from tests.support.article import lease_of

PROTO = 218
ETH = Link(2, "eth0", up=True, carrier=True)
PPP = Link(3, "ppp0", up=True, carrier=True)
TABLES = {"eth0": TableRef(101, "eth0"), "ppp0": TableRef(102, "ppp0")}


def decide(
    addresses: tuple[Address, ...],
    *specs: InterfaceSpec,
    routes: tuple[Route, ...] = (),
    links: tuple[Link, ...] = (ETH,),
    leases: dict[str, str] | None = None,
    daemon: DaemonSettings | None = None,
) -> DesiredState:
    config = Config(daemon=daemon or DaemonSettings(), interfaces=specs)
    inputs = Inputs(config, PROTO, TABLES, {"transit": 7, "eth0": 101},
                    {name: lease_of(router) for name, router in (leases or {}).items()})
    return desired_state(KernelState(links, addresses, routes), inputs)


V4 = Address(2, AF_INET, "192.0.2.10", 24)
V6 = Address(2, AF_INET6, "2001:db8:1::10", 64)


# --- rules ----------------------------------------------------------------------------------


def test_an_interfaces_priority_is_its_rules_priority() -> None:
    state = decide((V4, V6), InterfaceSpec(name="eth0", priority=1234))
    assert {(r.src, r.priority, r.table) for r in state.rules} == {
        ("192.0.2.10", 1234, 101), ("2001:db8:1::10", 1234, 101),
    }
    assert state.interfaces[0].priority == 1234


def test_without_an_interface_priority_the_daemons_is_used() -> None:
    state = decide((V4,), InterfaceSpec(name="eth0"), daemon=DaemonSettings(rule_priority=777))
    assert [(r.src, r.src_len, r.priority, r.table, r.protocol) for r in state.rules] == [
        ("192.0.2.10", 32, 777, 101, PROTO)
    ]


def test_a_configured_table_is_requested_for_its_interface() -> None:
    managed = [(ETH, InterfaceSpec(name="eth*", table="uplink")), (PPP, None),
               (Link(4, "eth1", True, True), InterfaceSpec(name="eth1", table=42))]
    assert table_requests(managed) == [("eth0", "uplink"), ("ppp0", None), ("eth1", 42)]


def test_excluded_interfaces_are_not_managed_without_interface_entries() -> None:
    state = KernelState(links=(ETH, PPP), addresses=(V4, Address(3, AF_INET, "198.51.100.2", 32)))
    config = Config(daemon=DaemonSettings(exclude=("ppp*",)))
    assert [link.name for link, _ in managed_links(state, config)] == ["eth0"]
    config = Config(daemon=DaemonSettings(exclude=()))
    assert [link.name for link, _ in managed_links(state, config)] == ["eth0", "ppp0"]


@pytest.mark.parametrize(("name", "excluded"), [
    ("lo", True), ("lo0", False), ("docker0", True), ("docker", True), ("dock", False),
    ("br-1a2b", True), ("br0", False), ("veth9", True), ("eth0", False), ("tailscale0", True),
])
def test_the_default_exclude_patterns_need_no_regular_expressions(
    name: str, excluded: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A plain name or a plain prefix and "*" is matched without fnmatch (whose regular
    # expressions cost a cold start 1.5 ms to compile), and as fnmatch would.
    def no_fnmatch(name: str, pattern: str) -> bool:
        raise AssertionError(f"fnmatch asked for {pattern!r}")

    monkeypatch.setattr(desired_module, "fnmatchcase", no_fnmatch)
    assert desired_module._excluded_uncached(name, DEFAULT_EXCLUDE) is excluded


@pytest.mark.parametrize(
    "pattern", ["e?h0", "[ab]c", "*0", "e*h*", "eth0*", "e", "", "*", "e**", "e?*", "e[t]*"])
@pytest.mark.parametrize("name", ["eth0", "ac", "bc", "e", "", "eth00", "x0"])
def test_every_exclude_pattern_matches_as_fnmatch_does(pattern: str, name: str) -> None:
    assert desired_module._excluded_uncached(name, (pattern,)) is fnmatchcase(name, pattern)
    names, prefixes, others = desired_module._pattern_kinds_uncached((pattern,))
    assert len(names) + len(prefixes) + len(others) == 1  # one kind each


# --- connected routes -----------------------------------------------------------------------


def connected(state: DesiredState) -> set[tuple[object, ...]]:
    return {
        (r.family, r.dst, r.dst_len, r.table, r.metric, r.scope, r.oif, r.prefsrc, r.gateway)
        for r in state.routes
    }


def test_every_prefix_gets_its_connected_route_after_a_secondary_or_a_host_address() -> None:
    addresses = (
        Address(2, AF_INET, "192.0.2.10", 24),
        Address(2, AF_INET, "192.0.2.11", 24, flags=IFA_F_SECONDARY),  # shares the prefix
        Address(2, AF_INET, "10.0.0.1", 32),  # a host address: no prefix route
        Address(2, AF_INET, "198.51.100.7", 25),
        # noprefixroute: another program installs the prefix route; it is on-link all the same
        Address(2, AF_INET, "203.0.113.5", 24, flags=IFA_F_NOPREFIXROUTE),
        Address(2, AF_INET6, "2001:db8:1::10", 64),
    )
    state = decide(addresses, InterfaceSpec(name="eth0", gateway="none", gateway6="none"))
    assert connected(state) == {
        (AF_INET, "192.0.2.0", 24, 101, 0, RT_SCOPE_LINK, 2, "192.0.2.10", None),
        (AF_INET, "198.51.100.0", 25, 101, 0, RT_SCOPE_LINK, 2, "198.51.100.7", None),
        (AF_INET, "203.0.113.0", 24, 101, 0, RT_SCOPE_LINK, 2, "203.0.113.5", None),
        (AF_INET6, "2001:db8:1::", 64, 101, 1024, RT_SCOPE_UNIVERSE, 2, "2001:db8:1::10", None),
    }
    assert all(r.protocol == PROTO for r in state.routes)


def test_a_prefix_takes_its_lowest_preferred_address_as_source_whatever_other_flags_say() -> None:
    # Flags other than secondary and deprecated (here: noprefixroute, 0x200, and the kernel's
    # permanent, 0x80) do not order the addresses: the lowest address is the source.
    addresses = (
        Address(2, AF_INET6, "2001:db8:1::2", 64),
        Address(2, AF_INET6, "2001:db8:1::1", 64, flags=IFA_F_NOPREFIXROUTE | 0x80),
    )
    state = decide(addresses, InterfaceSpec(name="eth0", gateway="none", gateway6="none"))
    assert [r.prefsrc for r in state.routes] == ["2001:db8:1::1"]
    assert state.interfaces[0].addresses == ("2001:db8:1::1/64", "2001:db8:1::2/64")


# --- default routes and the gateway ---------------------------------------------------------


def main_default(family: int, oif: int, gateway: str | None, metric: int, proto: int = 16) -> Route:
    any_address = "0.0.0.0" if family == AF_INET else "::"
    return Route(family, RT_TABLE_MAIN, any_address, 0, proto, metric=metric, oif=oif,
                 gateway=gateway)


def defaults(state: DesiredState) -> set[tuple[object, ...]]:
    return {(r.family, r.table, r.metric, r.scope, r.oif, r.gateway)
            for r in state.routes if r.dst_len == 0}


def test_the_main_tables_lowest_metric_default_is_the_gateway() -> None:
    routes = (
        main_default(AF_INET, 2, "192.0.2.1", 600),
        main_default(AF_INET, 2, "192.0.2.254", 100),
        main_default(AF_INET, 2, "192.0.2.2", 300),
        main_default(AF_INET6, 2, "fe80::2", 2048),
        main_default(AF_INET6, 2, "fe80::1", 1024),
    )
    state = decide((V4, V6), routes=routes)
    assert defaults(state) == {
        (AF_INET, 101, 0, RT_SCOPE_UNIVERSE, 2, "192.0.2.254"),
        (AF_INET6, 101, 1024, RT_SCOPE_UNIVERSE, 2, "fe80::1"),
    }
    eth = state.interfaces[0]
    assert (eth.gateway4.address, eth.gateway4.source) == ("192.0.2.254", "main-table")


def test_polroutds_own_defaults_in_main_are_not_a_gateway_source() -> None:
    routes = (main_default(AF_INET, 2, "192.0.2.99", 0, proto=PROTO),)
    state = decide((V4,), routes=routes, leases={"eth0": "192.0.2.7"})
    assert defaults(state) == {(AF_INET, 101, 0, RT_SCOPE_UNIVERSE, 2, "192.0.2.7")}


def test_a_point_to_point_device_default_gives_a_device_default_route() -> None:
    ppp_address = Address(3, AF_INET, "198.51.100.2", 32)
    ppp6 = Address(3, AF_INET6, "2001:db8:9::2", 128)
    routes = (main_default(AF_INET, 3, None, 0), main_default(AF_INET6, 3, None, 1024))
    state = decide((ppp_address, ppp6), routes=routes, links=(PPP,))
    assert defaults(state) == {
        (AF_INET, 102, 0, RT_SCOPE_LINK, 3, None),
        (AF_INET6, 102, 1024, RT_SCOPE_UNIVERSE, 3, None),
    }
    gateway = state.interfaces[0].gateway4
    assert gateway.device_route and gateway.present and gateway.source == "main-table"


def test_a_device_default_is_chosen_when_it_has_the_lowest_metric() -> None:
    routes = (main_default(AF_INET, 2, "192.0.2.1", 50), main_default(AF_INET, 2, None, 10))
    gateway = choose_gateway(
        ETH, AF_INET, "auto", Inputs(Config(), PROTO, TABLES, {}, {}),
        main_table_defaults(KernelState((ETH,), (V4,), routes), PROTO),
    )
    assert gateway.device_route and gateway.address is None


def test_a_lease_gives_only_an_ipv4_gateway() -> None:
    state = decide((V4, V6), leases={"eth0": "192.0.2.1"})
    assert defaults(state) == {(AF_INET, 101, 0, RT_SCOPE_UNIVERSE, 2, "192.0.2.1")}
    eth = state.interfaces[0]
    assert eth.gateway4.source == "dhcp-lease" and eth.gateway6.address is None
    assert eth.gateway6.reason is not None and "lease" not in eth.gateway6.reason


def test_a_configured_gateway_wins_and_none_disables() -> None:
    routes = (main_default(AF_INET, 2, "192.0.2.1", 0),)
    spec = InterfaceSpec(name="eth0", gateway="192.0.2.200", gateway6="none")
    state = decide((V4, V6), spec, routes=routes, leases={"eth0": "192.0.2.3"})
    assert defaults(state) == {(AF_INET, 101, 0, RT_SCOPE_UNIVERSE, 2, "192.0.2.200")}
    assert state.interfaces[0].gateway6.wanted is False


def test_no_default_route_for_a_family_without_an_address() -> None:
    routes = (main_default(AF_INET6, 2, "fe80::1", 1024),)
    assert defaults(decide((V4,), routes=routes)) == set()


# --- extra routes ---------------------------------------------------------------------------


def extras(*specs: RouteSpec, addresses: tuple[Address, ...] = (V4, V6)) -> set[tuple[object, ...]]:
    state = decide(addresses, InterfaceSpec(name="eth0", gateway="none", gateway6="none",
                                            routes=specs))
    return {
        (r.family, r.table, r.dst, r.dst_len, r.metric, r.scope, r.gateway, r.oif)
        for r in state.routes if r.dst not in ("192.0.2.0", "2001:db8:1::")
    }


def test_an_extra_route_goes_to_the_interfaces_table_unless_told_otherwise() -> None:
    assert extras(
        RouteSpec(to="10.1.0.0/16", via="192.0.2.1"),
        RouteSpec(to="10.2.0.0/16", via="192.0.2.1", table="main"),
        RouteSpec(to="10.3.0.0/16", via="192.0.2.1", table=55),
        RouteSpec(to="10.4.0.0/16", via="192.0.2.1", table="transit"),
    ) == {
        (AF_INET, 101, "10.1.0.0", 16, 0, RT_SCOPE_UNIVERSE, "192.0.2.1", 2),
        (AF_INET, RT_TABLE_MAIN, "10.2.0.0", 16, 0, RT_SCOPE_UNIVERSE, "192.0.2.1", 2),
        (AF_INET, 55, "10.3.0.0", 16, 0, RT_SCOPE_UNIVERSE, "192.0.2.1", 2),
        (AF_INET, 7, "10.4.0.0", 16, 0, RT_SCOPE_UNIVERSE, "192.0.2.1", 2),
    }


def test_an_extra_routes_metric_and_on_link_scope() -> None:
    assert extras(
        RouteSpec(to="10.5.0.0/16", metric=300),
        RouteSpec(to="2001:db8:5::/48", metric=300),
        RouteSpec(to="2001:db8:6::/48", via="2001:db8:1::1"),
        RouteSpec(to="2001:db8:7::/48", via="fe80::1"),
    ) == {
        (AF_INET, 101, "10.5.0.0", 16, 300, RT_SCOPE_LINK, None, 2),
        (AF_INET6, 101, "2001:db8:5::", 48, 300, RT_SCOPE_UNIVERSE, None, 2),
        (AF_INET6, 101, "2001:db8:6::", 48, 1024, RT_SCOPE_UNIVERSE, "2001:db8:1::1", 2),
        (AF_INET6, 101, "2001:db8:7::", 48, 1024, RT_SCOPE_UNIVERSE, "fe80::1", 2),
    }


def test_an_ipv6_gateway_needs_an_ipv6_address_unless_link_local() -> None:
    assert extras(
        RouteSpec(to="2001:db8:6::/48", via="2001:db8:1::1"),
        RouteSpec(to="2001:db8:7::/48", via="fe80::1"),
        RouteSpec(to="2001:db8:8::/48", via="febf::1"),  # still fe80::/10
        RouteSpec(to="2001:db8:9::/48", via="fec0::1"),  # site-local: not link-local
        addresses=(V4,),
    ) == {
        (AF_INET6, 101, "2001:db8:7::", 48, 1024, RT_SCOPE_UNIVERSE, "fe80::1", 2),
        (AF_INET6, 101, "2001:db8:8::", 48, 1024, RT_SCOPE_UNIVERSE, "febf::1", 2),
    }


# --- the cached helpers, against ipaddress as the oracle -------------------------------------

prefixes = st.one_of(
    st.tuples(st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
              st.integers(0, 32)),
    st.tuples(st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n))),
              st.integers(0, 128)),
)


@given(prefixes)
def test_network_address_is_ipaddress_network_address(prefix: tuple[str, int]) -> None:
    address, length = prefix
    expected = ipaddress.ip_network(f"{address}/{length}", strict=False).network_address
    assert desired_module._network_address(address, length) == str(expected)


def test_network_address_at_the_edges_of_the_mask() -> None:
    network = desired_module._network_address
    assert network("192.0.2.255", 31) == "192.0.2.254"
    assert network("192.0.2.255", 25) == "192.0.2.128"
    assert network("192.0.2.255", 32) == "192.0.2.255"
    assert network("192.0.2.255", 0) == "0.0.0.0"
    assert network("2001:db8::ffff", 127) == "2001:db8::fffe"
    assert network("::ffff:192.0.2.1", 96) == "::ffff:0:0"  # as ipaddress writes it


@given(st.one_of(st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
                 st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)))
def test_ip_key_is_version_and_value(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    assert desired_module._ip_key(str(ip)) == (ip.version, int(ip))


def test_ip_key_of_a_scoped_address_and_link_local() -> None:
    assert desired_module._ip_key("fe80::1%eth0") == (6, int(ipaddress.IPv6Address("fe80::1")))
    assert [desired_module._link_local(a) for a in ("fe80::1", "febf::1", "fec0::1", "10.0.0.1")
            ] == [True, True, False, False]


# --- what is managed, what is copied, and in which order -------------------------------------

LO = Link(1, "lo", up=True, carrier=True, loopback=True)
DOCKER = Link(4, "docker0", up=True, carrier=False)


def test_the_loopback_is_never_managed_even_with_a_global_address() -> None:
    anycast = Address(1, AF_INET, "203.0.113.1", 32)
    state = KernelState(links=(LO, ETH), addresses=(anycast, V4))
    assert [link.name for link, _ in managed_links(state, Config())] == ["eth0"]


def test_the_first_matching_interface_entry_applies() -> None:
    state = decide((V4,), InterfaceSpec(name="eth0", priority=10),
                   InterfaceSpec(name="eth*", priority=20))
    assert {r.priority for r in state.rules} == {10}


def test_only_a_unicast_default_through_the_interface_is_a_gateway_source() -> None:
    blackhole = main_default(AF_INET, 2, None, 0)._replace(type=6)
    multipath = main_default(AF_INET, 2, None, 0)._replace(oif=None, metric=5)
    elsewhere = main_default(AF_INET, 3, "192.0.2.1", 0)
    state = decide((V4,), routes=(blackhole, multipath, elsewhere), links=(ETH, PPP))
    assert defaults(state) == set()
    assert state.interfaces[0].gateway4.reason


def test_equal_metric_defaults_give_the_same_gateway_whatever_the_dump_order() -> None:
    first = main_default(AF_INET, 2, "192.0.2.9", 100)
    second = main_default(AF_INET, 2, "192.0.2.10", 100)
    one = decide((V4,), routes=(first, second))
    other = decide((V4,), routes=(second, first))
    assert defaults(one) == defaults(other) and len(defaults(one)) == 1


def test_strict_mode_copies_only_unicast_routes_of_local_unmanaged_devices() -> None:
    docker = Route(AF_INET, RT_TABLE_MAIN, "172.17.0.0", 16, 2, scope=RT_SCOPE_LINK, oif=4,
                   prefsrc="172.17.0.1", extra=((99, b"x"),))
    not_copied = (
        Route(AF_INET, RT_TABLE_MAIN, "192.0.2.128", 25, 2, scope=RT_SCOPE_LINK, oif=1),  # lo
        Route(AF_INET, RT_TABLE_MAIN, "0.0.0.0", 0, 3, oif=4, gateway="172.17.0.2"),
        Route(AF_INET, RT_TABLE_MAIN, "172.18.0.0", 16, 3, oif=4, type=6),  # blackhole
        Route(AF_INET, RT_TABLE_MAIN, "172.19.0.0", 16, PROTO, oif=4),  # our own
        Route(AF_INET, 77, "172.20.0.0", 16, 3, oif=4),  # not main
        Route(AF_INET, RT_TABLE_MAIN, "198.51.100.0", 24, 3, oif=2),  # a managed interface
    )
    links = (LO, ETH, DOCKER)
    state = decide((V4,), routes=(docker, *not_copied), links=links)
    copies = {r for r in state.routes if r.table == 101 and r.oif != 2}
    assert copies == {docker._replace(table=101, protocol=PROTO, extra=())}
    main_first = decide((V4,), routes=(docker,), links=links,
                        daemon=DaemonSettings(mode="main-first"))
    assert not any(r.oif == 4 for r in main_first.routes)


def test_a_gateway_needs_an_address_of_its_family_on_the_interface() -> None:
    assert extras(RouteSpec(to="10.1.0.0/16", via="192.0.2.1"),
                  RouteSpec(to="10.2.0.0/16"), addresses=(V6,)) == {
        (AF_INET, 101, "10.2.0.0", 16, 0, RT_SCOPE_LINK, None, 2),
    }


def test_the_managed_interface_record() -> None:
    secondary = Address(2, AF_INET, "192.0.2.11", 24, flags=IFA_F_SECONDARY)
    link_local = Address(2, AF_INET6, "fe80::1", 64, scope=RT_SCOPE_LINK)
    state = decide((secondary, V6, V4, link_local), InterfaceSpec(name="eth0", table="uplink"),
                   links=(ETH._replace(carrier=False),))
    [eth] = state.interfaces
    assert (eth.name, eth.index, eth.up, eth.carrier, eth.table_id, eth.table_name) == (
        "eth0", 2, True, False, 101, "eth0")
    assert eth.addresses == ("192.0.2.10/24", "192.0.2.11/24", "2001:db8:1::10/64")
    assert state.tables == frozenset({101})


def test_rules_and_routes_come_in_priority_family_and_numeric_order() -> None:
    addresses = (Address(2, AF_INET6, "2001:db8:1::10", 64), Address(2, AF_INET, "9.9.9.9", 24),
                 Address(2, AF_INET, "10.0.0.1", 8))
    state = decide(addresses, InterfaceSpec(name="eth0", gateway="none", gateway6="none"),
                   daemon=DaemonSettings(mode="main-first"))
    assert [(r.priority, r.src) for r in state.rules] == [
        (29999, None), (29999, None), (30000, "9.9.9.9"), (30000, "10.0.0.1"),
        (30000, "2001:db8:1::10"),
    ]
    assert [r.family for r in state.rules[:2]] == [AF_INET, AF_INET6]
    assert [r.dst for r in state.routes] == ["9.9.9.0", "10.0.0.0", "2001:db8:1::"]


def test_the_primary_is_the_prefix_source_even_when_a_secondary_sorts_first_as_text() -> None:
    primary = Address(2, AF_INET, "192.0.2.20", 24)
    secondary = Address(2, AF_INET, "192.0.2.100", 24, flags=IFA_F_SECONDARY)
    state = decide((secondary, primary), InterfaceSpec(name="eth0", gateway="none"))
    assert [r.prefsrc for r in state.routes] == ["192.0.2.20"]
    assert state.interfaces[0].addresses == ("192.0.2.20/24", "192.0.2.100/24")


def test_the_lowest_metric_wins_whoever_added_the_route() -> None:
    routes = (main_default(AF_INET, 2, "192.0.2.1", 600, proto=3),
              main_default(AF_INET, 2, "192.0.2.254", 100, proto=16))
    assert defaults(decide((V4,), routes=routes)) == {
        (AF_INET, 101, 0, RT_SCOPE_UNIVERSE, 2, "192.0.2.254")}


def test_why_there_is_no_gateway_is_said_in_words() -> None:
    eth = decide((V4, V6)).interfaces[0]
    assert eth.gateway4.reason == (
        "no ipv4 default route via eth0 in the main table"
        " and no readable DHCP lease names a router")
    assert eth.gateway6.reason == "no ipv6 default route via eth0 in the main table"
    disabled = decide((V4,), InterfaceSpec(name="eth0", gateway="none")).interfaces[0]
    assert disabled.gateway4.reason == 'disabled in the configuration (gateway = "none")'


def test_interfaces_are_listed_by_name() -> None:
    wan = Link(1, "ppp0", up=True, carrier=True)  # a lower index than eth0
    state = decide((V4, Address(1, AF_INET, "198.51.100.2", 24)), links=(wan, ETH),
                   daemon=DaemonSettings(exclude=()))
    assert [i.name for i in state.interfaces] == ["eth0", "ppp0"]


def test_strict_mode_copies_a_route_via_a_gateway_only_where_the_kernel_would_take_it() -> None:
    # A gateway is reached through a device holding a global address of its family, or it is
    # link-local; docker0 here has a global IPv4 address and only a link-local IPv6 one.
    docker_addresses = (Address(4, AF_INET, "172.17.0.1", 16),
                        Address(4, AF_INET6, "fe80::1", 64, scope=RT_SCOPE_LINK))
    via_v4 = Route(AF_INET, RT_TABLE_MAIN, "10.10.0.0", 16, 3, oif=4, gateway="172.17.0.2")
    via_link_local = Route(AF_INET6, RT_TABLE_MAIN, "2001:db8:78::", 64, 3, oif=4,
                           gateway="fe80::2")
    via_v6 = Route(AF_INET6, RT_TABLE_MAIN, "2001:db8:77::", 64, 3, oif=4,
                   gateway="2001:db8:99::1")
    state = decide((V4, V6, *docker_addresses), routes=(via_v4, via_link_local, via_v6),
                   links=(ETH, DOCKER))
    copies = {(r.dst, r.gateway) for r in state.routes if r.table == 101 and r.oif == 4}
    assert copies == {("10.10.0.0", "172.17.0.2"), ("2001:db8:78::", "fe80::2")}


# --- interfaces left alone ------------------------------------------------------------------


def test_interfaces_polroutd_must_leave_alone_are_skipped_with_the_reason() -> None:
    vrf = Link(10, "vrf-blue", True, True, kind="vrf")
    links = (LO, vrf, Link(11, "eth1", True, True, master=10),
             Link(12, "br0", True, True, kind="bridge"), Link(13, "eth2", True, True, master=12),
             Link(14, "eth3", True, True, master=99))
    config = Config(interfaces=tuple(InterfaceSpec(name=link.name) for link in links))
    managed, skipped = desired_module.select_links(KernelState(links=links), config)
    assert [link.name for link, _ in managed] == ["br0"]
    assert {s.name: (s.index, s.reason) for s in skipped} == {
        "lo": (1, "a loopback interface: its addresses are local, not a way out"),
        "vrf-blue": (10, "a VRF device: the VRF's own table routes for its ports"),
        "eth1": (11, "enslaved to VRF vrf-blue: its addresses are local only inside the VRF, so "
                     "a source rule outside it cannot work; policy routing inside a VRF is out "
                     "of scope"),
        "eth2": (13, "a port of bridge br0: traffic leaves through br0, which polroutd may "
                     "manage"),
        "eth3": (14, "a port of master ifindex 99: traffic leaves through ifindex 99, which "
                     "polroutd may manage"),
    }


# --- isolated tables and typed routes -------------------------------------------------------


def typed(state: DesiredState) -> set[tuple[object, ...]]:
    return {(r.family, r.table, r.dst, r.dst_len, r.type, r.metric, r.scope, r.oif, r.gateway,
             r.protocol) for r in state.routes if r.type != 1}


def test_an_isolated_table_ends_with_unreachable_default_per_family() -> None:
    state = decide((V4, V6), InterfaceSpec(name="eth0", gateway="unreachable",
                                           gateway6="unreachable"), links=(LO, ETH))
    # the kernel keeps an IPv6 route without a next hop on the loopback, at metric 1024
    assert typed(state) == {
        (AF_INET, 101, "0.0.0.0", 0, RTN_UNREACHABLE, 0, RT_SCOPE_UNIVERSE, None, None, PROTO),
        (AF_INET6, 101, "::", 0, RTN_UNREACHABLE, 1024, RT_SCOPE_UNIVERSE, 1, None, PROTO),
    }


def test_typed_extra_routes_have_no_next_hop() -> None:
    spec = InterfaceSpec(name="eth0", gateway="none", gateway6="none", routes=(
        RouteSpec(to="10.9.0.0/16", type="blackhole"),
        RouteSpec(to="2001:db8:9::/48", type="prohibit", metric=5)))
    assert typed(decide((V4, V6), spec, links=(LO, ETH))) == {
        (AF_INET, 101, "10.9.0.0", 16, RTN_BLACKHOLE, 0, RT_SCOPE_UNIVERSE, None, None, PROTO),
        (AF_INET6, 101, "2001:db8:9::", 48, RTN_PROHIBIT, 5, RT_SCOPE_UNIVERSE, 1, None, PROTO),
    }


# --- routers of DHCP leases -----------------------------------------------------------------

NO_DEFAULT = "no ipv4 default route via eth0 in the main table; "


def lease_gateway(addresses: tuple[Address, ...], *offers: LeaseOffer) -> Gateway:
    config = Config(interfaces=(InterfaceSpec(name="eth0"),))
    inputs = Inputs(config, PROTO, TABLES, {}, {"eth0": LeaseFindings(offers)})
    return desired_state(KernelState((ETH,), addresses), inputs).interfaces[0].gateway4


def refusal(router: str, addresses: tuple[Address, ...] = (V4,)) -> str | None:
    gateway = lease_gateway(addresses, LeaseOffer((router,), None, "l"))
    assert gateway.address is None
    return gateway.reason


def test_a_lease_router_the_kernel_would_refuse_is_no_gateway_and_says_why() -> None:
    def said(router: str, why: str) -> str:
        return f"{NO_DEFAULT}DHCP lease l: router {router} {why}"

    for router, kind in (("127.0.0.1", "a loopback"), ("224.0.0.1", "a multicast"),
                         ("169.254.0.1", "a link-local"), ("0.0.0.0", "the unspecified"),
                         ("255.255.255.255", "a broadcast or reserved")):
        assert refusal(router) == said(router, f"is {kind} address, not a unicast router")
    assert refusal("192.0.2.10") == said("192.0.2.10", "is the interface's own address")
    assert refusal("192.0.2.0") == said("192.0.2.0", "is the network address of 192.0.2.0/24")
    assert refusal("192.0.2.255") == said("192.0.2.255",
                                          "is the broadcast address of 192.0.2.0/24")
    host = Address(2, AF_INET, "10.0.0.7", 32)
    assert refusal("10.0.0.1", (host, V4)) == said(
        "10.0.0.1", "is not on the interface's IPv4 prefixes (10.0.0.7/32, 192.0.2.10/24): "
                    "off-link")
    assert refusal("10.0.0.1", (V6,)) == said(
        "10.0.0.1", "is not on the interface's IPv4 prefixes (none): off-link")


def test_on_a_31_both_addresses_are_hosts() -> None:
    point = Address(2, AF_INET, "198.51.100.1", 31)
    assert lease_gateway((point,), LeaseOffer(("198.51.100.0",), None, "l")).address == (
        "198.51.100.0")


def test_a_router_on_a_later_prefix_is_fit() -> None:
    # the interface's addresses in order: a /32 (no prefix to be on), a /24, then a /30
    host = Address(2, AF_INET, "10.0.0.7", 32)
    other = Address(2, AF_INET, "198.51.100.5", 30, flags=IFA_F_SECONDARY)
    gateway = lease_gateway((host, V4, other), LeaseOffer(("198.51.100.6",), None, "l", 99.0))
    assert (gateway.address, gateway.source, gateway.lease_expires) == (
        "198.51.100.6", "dhcp-lease", 99.0)
    assert lease_gateway((host, V4), LeaseOffer(("192.0.2.1",), None, "l")).address == (
        "192.0.2.1")


def test_the_first_fit_router_of_a_lease_is_the_gateway() -> None:
    gateway = lease_gateway((V4,), LeaseOffer(("10.0.0.1", "192.0.2.1", "192.0.2.2"), None, "l"))
    assert gateway.address == "192.0.2.1" and gateway.reason is None


def test_every_refused_router_of_every_lease_is_named() -> None:
    stale = LeaseOffer(("10.0.0.1", "127.0.0.1"), "10.0.0.5", "old.lease")
    own = LeaseOffer(("192.0.2.10",), "192.0.2.10", "new.lease")
    gateway = lease_gateway((V4,), stale, own)
    assert gateway.reason == (
        NO_DEFAULT + "DHCP lease new.lease: router 192.0.2.10 is the interface's own address; "
        "DHCP lease old.lease (for 10.0.0.5, which eth0 does not have: stale?): "
        "router 10.0.0.1 is not on the interface's IPv4 prefixes (192.0.2.10/24): off-link, "
        "router 127.0.0.1 is a loopback address, not a unicast router")


def test_a_stale_lease_serves_after_the_interfaces_own() -> None:
    stale = LeaseOffer(("192.0.2.1",), "192.0.2.99", "old.lease", 5.0)
    own = LeaseOffer(("192.0.2.254",), "192.0.2.10", "new.lease", 7.0)
    assert lease_gateway((V4,), stale, own).address == "192.0.2.254"
    assert lease_gateway((V4,), stale).address == "192.0.2.1"


# --- the loopback, skipped interfaces, uplinks, tables shared -------------------------------


def test_with_the_loopback_down_only_routes_on_it_are_left_out() -> None:
    # The kernel keeps an IPv6 route without a next hop on lo, and takes none on a down device.
    docker = Route(AF_INET, RT_TABLE_MAIN, "172.17.0.0", 16, 2, scope=RT_SCOPE_LINK, oif=4)
    spec = InterfaceSpec(name="eth0", gateway="unreachable", gateway6="unreachable")
    for lo_up in (True, False):
        state = decide((V4, V6), spec, routes=(docker,),
                       links=(LO._replace(up=lo_up), ETH, DOCKER))
        kept = {(r.family, r.type, r.oif) for r in state.routes if r.oif != 2}
        assert kept == {(AF_INET, RTN_UNREACHABLE, None), (AF_INET, 1, 4)} | (
            {(AF_INET6, RTN_UNREACHABLE, 1)} if lo_up else set())


def test_an_interface_without_a_table_is_skipped_with_why() -> None:
    config = Config(interfaces=(InterfaceSpec(name="eth*"),))
    links = (ETH, Link(5, "eth5", True, True), Link(6, "eth6", True, True))
    inputs = Inputs(config, PROTO, {"eth0": TableRef(101, "eth0")}, {}, {},
                    table_errors={"eth6": "table_range 100-101 is full"})
    state = desired_state(KernelState(links, (V4,)), inputs)
    assert [i.name for i in state.interfaces] == ["eth0"]
    assert [(s.name, s.index, s.reason) for s in state.skipped] == [
        ("eth5", 5, "no table"), ("eth6", 6, "table_range 100-101 is full")]


def test_an_uplink_entry_makes_the_interface_an_uplink_unless_uplinks_are_off() -> None:
    specs = (InterfaceSpec(name="eth0", uplink=UplinkSpec()), InterfaceSpec(name="ppp0"))
    mains = (main_default(AF_INET, 2, "192.0.2.1", 0), main_default(AF_INET6, 2, "fe80::1", 1024),
             main_default(AF_INET, 3, "198.51.100.1", 0))
    state = KernelState((ETH, PPP), (V4, V6, Address(3, AF_INET, "198.51.100.2", 24)), mains)
    for mode, uplinks in (("failover", {("eth0", AF_INET), ("eth0", AF_INET6)}), ("off", set())):
        config = Config(daemon=DaemonSettings(uplinks=mode), interfaces=specs)  # type: ignore[arg-type]
        inputs = Inputs(config, PROTO, TABLES, {}, {}, uplink_table=TableRef(500, "uplinks"))
        desired = desired_state(state, inputs)
        assert {(c.interface, c.family) for c in desired.uplinks} == uplinks
        assert {r.gateway for r in desired.routes if r.table == 500} == (
            {"192.0.2.1", "fe80::1"} if uplinks else set())
        assert desired.tables == ({101, 102, 500} if uplinks else {101, 102})
        # after every interface's rules, the uplinks' in priority, then family order
        order = [(r.priority, r.family) for r in desired.rules[3:]]
        assert order == (sorted(order) if uplinks else []) and len(order) == len(uplinks) * 2


def test_a_route_two_interfaces_want_in_one_table_is_wanted_once() -> None:
    both = RouteSpec(to="10.50.0.0/16", metric=7)
    config = Config(interfaces=(InterfaceSpec(name="eth0", routes=(both,)),
                                InterfaceSpec(name="ppp0", routes=(both,))))
    shared = TableRef(101, "shared")
    inputs = Inputs(config, PROTO, {"eth0": shared, "ppp0": shared}, {}, {})
    state = desired_state(KernelState(
        (ETH, PPP), (V4, Address(3, AF_INET, "198.51.100.2", 24))), inputs)
    assert [(r.table, r.oif) for r in state.routes if r.dst == "10.50.0.0"] == [(101, 2)]


def test_a_route_two_interfaces_want_in_main_is_wanted_once() -> None:
    both = RouteSpec(to="10.50.0.0/16", table="main", metric=7)
    state = decide((V4, Address(3, AF_INET, "198.51.100.2", 24)),
                   InterfaceSpec(name="eth0", routes=(both,)),
                   InterfaceSpec(name="ppp0", routes=(both,)), links=(ETH, PPP))
    assert [(r.table, r.oif) for r in state.routes if r.dst == "10.50.0.0"] == [
        (RT_TABLE_MAIN, 2)]  # the first interface by name


def test_a_gateway_of_a_family_without_an_address_is_known_but_not_installed() -> None:
    state = decide((V6,), InterfaceSpec(name="eth0", gateway="192.0.2.1"),
                   routes=(main_default(AF_INET6, 2, "fe80::1", 1024),))
    eth = state.interfaces[0]
    assert (eth.gateway4.address, eth.gateway4.not_installed) == (
        "192.0.2.1", "no global ipv4 address on eth0: no rule uses the table, so no default "
                     "route is installed there")
    # the IPv6 default still comes after the IPv4 family that had none
    assert defaults(state) == {(AF_INET6, 101, 1024, RT_SCOPE_UNIVERSE, 2, "fe80::1")}
    assert eth.gateway6.not_installed is None


def test_the_uplinks_follow_their_health_and_carry_polroutds_protocol() -> None:
    spec = InterfaceSpec(name="eth0", uplink=UplinkSpec())
    mains = (main_default(AF_INET, 2, "192.0.2.1", 0), main_default(AF_INET6, 2, "fe80::1", 1024))
    config = Config(daemon=DaemonSettings(uplinks="failover"), interfaces=(spec,))
    inputs = Inputs(config, PROTO, TABLES, {}, {}, uplink_table=TableRef(500, "uplinks"),
                    uplink_health={("eth0", AF_INET): False})
    desired = desired_state(KernelState((ETH,), (V4, V6), mains), inputs)
    assert {(c.family, c.active) for c in desired.uplinks} == {(AF_INET, False),
                                                               (AF_INET6, True)}
    assert {r.gateway for r in desired.routes if r.table == 500} == {"fe80::1"}
    assert {r.protocol for r in desired.rules} == {r.protocol for r in desired.routes} == {PROTO}


def test_why_a_gateway_is_disabled_or_isolated_names_the_key() -> None:
    disabled = decide((V4, V6), InterfaceSpec(name="eth0", gateway="none", gateway6="none"))
    assert [(g.reason, g.wanted) for g in (disabled.interfaces[0].gateway4,
                                           disabled.interfaces[0].gateway6)] == [
        ('disabled in the configuration (gateway = "none")', False),
        ('disabled in the configuration (gateway6 = "none")', False)]
    isolated = decide((V4, V6), InterfaceSpec(name="eth0", gateway="unreachable",
                                              gateway6="unreachable"))
    assert [(g.reason, g.wanted, g.unreachable) for g in (isolated.interfaces[0].gateway4,
                                                          isolated.interfaces[0].gateway6)] == [
        ('isolated in the configuration (gateway = "unreachable"): the table ends with '
         "unreachable default", False, True),
        ('isolated in the configuration (gateway6 = "unreachable"): the table ends with '
         "unreachable default", False, True)]


def test_the_defaults_passed_over_are_named_with_why() -> None:
    why = "; one default per interface and family, the lowest metric (then address) wins"
    others = (main_default(AF_INET, 2, "192.0.2.2", 200), main_default(AF_INET, 2, None, 300),
              main_default(AF_INET, 2, "192.0.2.3", 400))
    eth = decide((V4,), routes=(main_default(AF_INET, 2, "192.0.2.1", 100), *others)).interfaces[0]
    assert (eth.gateway4.address, eth.gateway4.passed_over) == ("192.0.2.1", (
        ("192.0.2.2", "metric 200" + why), ("dev eth0", "metric 300" + why),
        ("192.0.2.3", "metric 400" + why)))
    device = decide((V4,), routes=(main_default(AF_INET, 2, None, 50), *others)).interfaces[0]
    assert device.gateway4.device_route and [a for a, _ in device.gateway4.passed_over] == [
        "192.0.2.2", "dev eth0", "192.0.2.3"]


def test_managed_interfaces_come_by_name_and_ports_are_skipped_without_a_vrf() -> None:
    links = (Link(1, "ppp0", True, True), Link(2, "eth9", True, True, master=3),
             Link(3, "br0", True, True, kind="bridge"), Link(4, "eth0", True, True))
    config = Config(interfaces=(InterfaceSpec(name="*"),))
    managed, skipped = desired_module.select_links(KernelState(links=links), config)
    assert [link.name for link, _ in managed] == ["br0", "eth0", "ppp0"]
    assert [s.name for s in skipped] == ["eth9"]


def test_a_vrf_device_alone_is_skipped() -> None:
    vrf = Link(10, "vrf-blue", True, True, kind="vrf")
    managed, skipped = desired_module.select_links(
        KernelState(links=(vrf,)), Config(interfaces=(InterfaceSpec(name="vrf-blue"),)))
    assert managed == [] and [s.name for s in skipped] == ["vrf-blue"]


def test_by_default_ports_are_listed_as_skipped_and_the_loopback_is_left_out_silently() -> None:
    links = (LO, Link(3, "br0", True, True, kind="bridge"), Link(9, "eth9", True, True, master=3))
    addresses = (Address(1, AF_INET, "203.0.113.1", 32), Address(3, AF_INET, "192.0.2.1", 24),
                 Address(9, AF_INET, "198.51.100.9", 24))
    managed, skipped = desired_module.select_links(
        KernelState(links, addresses), Config(daemon=DaemonSettings(exclude=())))
    assert [link.name for link, _ in managed] == ["br0"]
    assert [s.name for s in skipped] == ["eth9"]


def test_failover_keeps_one_default_per_uplink_and_balance_one_multipath_route() -> None:
    specs = (InterfaceSpec(name="eth0", uplink=UplinkSpec(metric=100)),
             InterfaceSpec(name="ppp0", uplink=UplinkSpec(metric=200)))
    state = KernelState((ETH, PPP), (V4, Address(3, AF_INET, "198.51.100.2", 24)),
                        (main_default(AF_INET, 2, "192.0.2.1", 0),
                         main_default(AF_INET, 3, "198.51.100.1", 0)))
    for mode, paths in (("failover", [1, 1]), ("balance", [2])):
        config = Config(daemon=DaemonSettings(uplinks=mode), interfaces=specs)  # type: ignore[arg-type]
        inputs = Inputs(config, PROTO, TABLES, {}, {}, uplink_table=TableRef(500, "uplinks"))
        routes = [r for r in desired_state(state, inputs).routes if r.table == 500]
        assert [len(r.nexthops) or 1 for r in routes] == paths


def test_a_host_address_has_no_connected_route_and_a_peer_makes_its_prefix_on_link() -> None:
    # As the kernel does: "ip addr add 10.8.0.1 peer 10.8.5.2/32" routes 10.8.5.2 via the
    # device from 10.8.0.1; a /32 (/128) address alone gives no prefix route.
    addresses = [
        Address(3, AF_INET, "10.9.0.1", 32), Address(3, AF_INET6, "2001:db8:9::1", 128),
        Address(3, AF_INET, "10.8.0.1", 32, peer="10.8.5.2"),
        Address(3, AF_INET6, "2001:db8:8::1", 128, peer="2001:db8:7::2"),
        Address(3, AF_INET, "172.16.4.1", 24, peer="192.168.44.2"),
    ]
    routes = desired_module._connected_routes(addresses, 100, 3, PROTO)
    assert {(r.family, r.dst, r.dst_len, r.prefsrc, r.table, r.oif) for r in routes} == {
        (AF_INET, "10.8.5.2", 32, "10.8.0.1", 100, 3),
        (AF_INET6, "2001:db8:7::2", 128, "2001:db8:8::1", 100, 3),
        (AF_INET, "192.168.44.0", 24, "172.16.4.1", 100, 3),
    }


def test_an_address_with_a_peer_is_listed_as_ip_addr_writes_it() -> None:
    peered = Address(2, AF_INET, "10.8.0.1", 32, peer="10.8.5.2")
    state = decide((V4, peered), InterfaceSpec(name="eth0", gateway="none"))
    assert state.interfaces[0].addresses == ("10.8.0.1 peer 10.8.5.2/32", "192.0.2.10/24")
