"""Oracle properties of the desired state: what every managed interface must get, stated from
the configuration and the kernel read alone (not by running polroutd twice), and checked in
the fake kernel after the plan is applied. The other properties compare polroutd with itself,
so they cannot see a wrong metric, scope, table or priority (see docs/testing.md)."""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polroutd.core.desired import Inputs, desired_state
from polroutd.core.limits import (
    AF_INET,
    IFA_F_NOPREFIXROUTE,
    RT_SCOPE_HOST,
    RT_SCOPE_LINK,
    RT_SCOPE_UNIVERSE,
    RT_TABLE_MAIN,
)
from polroutd.core.model import Address, KernelState, Link, Route, Rule
from polroutd.core.plan import make_plan
from polroutd.core.settings import Config, DaemonSettings, InterfaceSpec
from polroutd.core.tables import TableRef
from tests.support.article import PROTO
from tests.support.fakes import FakeKernel
from tests.support.strategies import kernels


@st.composite
def configs(draw: st.DrawFn) -> Config:
    daemon = DaemonSettings(mode=draw(st.sampled_from(["strict", "main-first"])),
                            rule_priority=draw(st.integers(1000, 32000)))
    if not draw(st.booleans()):
        return Config(daemon=daemon)
    return Config(daemon=daemon, interfaces=(
        InterfaceSpec(name="eth0", priority=draw(st.none() | st.integers(1, 32000))),
        InterfaceSpec(name="eth*", priority=draw(st.none() | st.integers(1, 32000))),
    ))


def tables_of(state: KernelState) -> dict[str, TableRef]:
    eth = sorted(link.name for link in state.links if link.name.startswith("eth"))
    return {name: TableRef(500 + 3 * i, name) for i, name in enumerate(eth)}


def managed(state: KernelState, config: Config) -> dict[Link, int]:
    """Managed interfaces with their rules' priority, by the configuration's documented rules:
    listed interfaces by their first matching entry, else every non-loopback interface with a
    global address whose name no exclude pattern matches (here: only the eth* ones)."""
    if config.interfaces:
        out = {}
        for link in state.links:
            if link.name == "eth0":
                out[link] = config.interfaces[0].priority or config.daemon.rule_priority
            elif link.name.startswith("eth"):
                out[link] = config.interfaces[1].priority or config.daemon.rule_priority
        return out
    with_global = {a.ifindex for a in state.addresses if a.scope == RT_SCOPE_UNIVERSE}
    return {link: config.daemon.rule_priority for link in state.links
            if link.name.startswith("eth") and link.ifindex in with_global}


def global_addresses(state: KernelState, link: Link) -> list[Address]:
    return [a for a in state.addresses if a.ifindex == link.ifindex and a.scope == 0]


def converge(state: KernelState, config: Config) -> tuple[KernelState, Inputs]:
    inputs = Inputs(config, PROTO, tables_of(state), {}, {})
    kernel = FakeKernel(state)
    results = kernel.apply(make_plan(desired_state(state, inputs), state, PROTO).operations)
    assert all(r.ok for r in results)
    return kernel.state, inputs


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(kernels(), configs())
def test_every_global_address_has_exactly_one_rule_to_its_interfaces_table(
    state: KernelState, config: Config
) -> None:
    after, inputs = converge(state, config)
    ours = [r for r in after.rules if r.protocol == PROTO and r.src is not None]
    expected = []
    for link, priority in managed(state, config).items():
        table = inputs.tables[link.name].id
        for a in {(a.family, a.address) for a in global_addresses(state, link)}:
            expected.append(Rule(a[0], priority, table, PROTO, src=a[1],
                                 src_len=32 if a[0] == AF_INET else 128))
    assert sorted(ours) == sorted(expected)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(kernels(), configs())
def test_every_connected_prefix_is_in_its_interfaces_table_with_the_address_as_source(
    state: KernelState, config: Config
) -> None:
    after, inputs = converge(state, config)
    ours = {r.key: r for r in after.routes if r.protocol == PROTO}
    for link in managed(state, config):
        if not link.up:
            assert not any(r.oif == link.ifindex for r in ours.values())
            continue
        table = inputs.tables[link.name].id
        by_prefix: dict[ipaddress.IPv4Network | ipaddress.IPv6Network, list[Address]] = {}
        for a in global_addresses(state, link):
            net = ipaddress.ip_interface(f"{a.address}/{a.prefixlen}").network
            if net.prefixlen < net.max_prefixlen and not a.flags & IFA_F_NOPREFIXROUTE:
                by_prefix.setdefault(net, []).append(a)
        for net, addresses in by_prefix.items():
            v4 = net.version == 4
            source = min(addresses, key=lambda a: (a.secondary, ipaddress.ip_address(a.address)))
            found = [r for r in ours.values() if r.table == table and r.dst_len == net.prefixlen
                     and r.dst == str(net.network_address)]
            assert found == [Route(
                family=AF_INET if v4 else 10, table=table, dst=str(net.network_address),
                dst_len=net.prefixlen, protocol=PROTO, metric=0 if v4 else 1024,
                scope=RT_SCOPE_LINK if v4 else RT_SCOPE_UNIVERSE, oif=link.ifindex,
                prefsrc=source.address,
            )]
        assert not any(r.scope == RT_SCOPE_HOST for r in ours.values())


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(kernels(), configs())
def test_the_main_tables_default_is_copied_into_the_interfaces_table(
    state: KernelState, config: Config
) -> None:
    after, inputs = converge(state, config)
    for link in managed(state, config):
        table = inputs.tables[link.name].id
        defaults = [r for r in state.routes if r.table == RT_TABLE_MAIN and r.dst_len == 0
                    and r.oif == link.ifindex and r.protocol != PROTO]
        has_v4 = any(a.family == AF_INET for a in global_addresses(state, link))
        copied = [r for r in after.routes
                  if r.protocol == PROTO and r.table == table and r.dst_len == 0]
        if not (defaults and has_v4 and link.up):
            assert copied == []
            continue
        [default] = defaults  # kernels() gives each interface at most one
        assert copied == [Route(AF_INET, table, "0.0.0.0", 0, PROTO, metric=0,
                                oif=link.ifindex, gateway=default.gateway)]
