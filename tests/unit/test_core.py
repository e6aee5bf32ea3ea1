"""The pure core: desired state and plan, by example and by property (no kernel needed)."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polroutd.core.desired import Inputs, TableRef, desired_state
from polroutd.core.limits import AF_INET, AF_INET6, IFA_F_SECONDARY, RT_TABLE_MAIN
from polroutd.core.model import (
    Address,
    KernelState,
    Route,
    RouteOp,
    Rule,
    RuleOp,
)
from polroutd.core.plan import classify, make_plan
from polroutd.core.record import replace
from polroutd.core.settings import Config, DaemonSettings, InterfaceSpec
from tests.support.article import PROTO, SPEC_EXAMPLE, article_state, inputs
from tests.support.fakes import FakeKernel
from tests.support.strategies import kernels


def test_article_example_gives_the_articles_tables_and_rules() -> None:
    desired = desired_state(article_state(), inputs())
    rules = {(r.src, r.table, r.priority) for r in desired.rules}
    assert rules == {
        ("10.225.160.38", 1, 30000),
        ("10.225.176.38", 2, 30000),
        ("2001:db8:176::38", 2, 30000),
    }
    by_table = {(r.table, r.dst, r.dst_len, r.gateway, r.oif) for r in desired.routes}
    assert (1, "0.0.0.0", 0, "10.225.160.1", 2) in by_table  # default via 10.225.160.1 table mgt
    assert (1, "10.225.160.0", 24, None, 2) in by_table  # connected copy
    assert (2, "10.225.176.0", 24, None, 3) in by_table
    assert (2, "2001:db8:176::", 64, None, 3) in by_table
    assert (2, "::", 0, "fe80::1", 3) in by_table  # IPv6 default via link-local router
    assert (RT_TABLE_MAIN, "10.225.144.0", 24, "10.225.176.1", 3) in by_table  # the article's
    # strict mode: docker0's subnet stays reachable from every source address
    assert (1, "172.17.0.0", 16, None, 4) in by_table and (2, "172.17.0.0", 16, None, 4) in by_table
    # ens224 has no IPv4 default in main and no lease: no default, and the reason is recorded
    data = next(i for i in desired.interfaces if i.name == "ens224")
    assert data.gateway4.address is None and data.gateway4.reason
    assert data.gateway6.address == "fe80::1" and data.gateway6.source == "main-table"
    assert all(r.protocol == PROTO for r in (*desired.rules, *desired.routes))


def test_gateway_sources_in_order() -> None:
    state = article_state()
    lease = desired_state(state, inputs(leases={"ens224": "10.225.176.1"}))
    data = next(i for i in lease.interfaces if i.name == "ens224")
    assert (data.gateway4.address, data.gateway4.source) == ("10.225.176.1", "dhcp-lease")
    configured = replace(
        SPEC_EXAMPLE,
        interfaces=(
            InterfaceSpec(name="ens192", table="mgt", gateway="10.225.160.254", gateway6="none"),
        ),
    )
    mgmt = desired_state(state, inputs(configured)).interfaces[0]
    assert (mgmt.gateway4.address, mgmt.gateway4.source) == ("10.225.160.254", "config")
    assert mgmt.gateway6.address is None and "disabled" in (mgmt.gateway6.reason or "")


def test_main_first_adds_one_suppress_rule_per_family_just_ahead() -> None:
    config = replace(SPEC_EXAMPLE, daemon=DaemonSettings(mode="main-first"))
    desired = desired_state(article_state(), inputs(config))
    suppress = [r for r in desired.rules if r.suppress_prefixlen == 0]
    assert {(r.family, r.priority, r.table) for r in suppress} == {
        (AF_INET, 29999, RT_TABLE_MAIN),
        (AF_INET6, 29999, RT_TABLE_MAIN),
    }
    assert not any(r.table == 1 and r.dst == "172.17.0.0" for r in desired.routes)


def test_down_interface_keeps_rules_but_not_routes() -> None:
    state = article_state()
    state = replace(
        state,
        links=tuple(k._replace(up=False) if k.name == "ens224" else k for k in state.links),
    )
    desired = desired_state(state, inputs())
    assert any(r.src == "10.225.176.38" for r in desired.rules)
    assert not any(r.oif == 3 for r in desired.routes)


def test_without_interface_entries_manages_interfaces_with_global_addresses() -> None:
    config = Config()
    tables = {"ens192": TableRef(1, "ens192"), "ens224": TableRef(2, "ens224")}
    desired = desired_state(article_state(), Inputs(config, PROTO, tables, {}, {}))
    assert [i.name for i in desired.interfaces] == ["ens192", "ens224"]  # docker0 excluded


def test_secondary_addresses_get_rules_and_share_the_prefix_route() -> None:
    state = article_state()
    state = replace(
        state,
        addresses=(
            *state.addresses,
            Address(3, AF_INET, "10.225.176.39", 24, flags=IFA_F_SECONDARY),
        ),
    )
    desired = desired_state(state, inputs())
    assert {r.src for r in desired.rules if r.table == 2} >= {"10.225.176.38", "10.225.176.39"}
    prefix_routes = [r for r in desired.routes if r.table == 2 and r.dst == "10.225.176.0"]
    assert len(prefix_routes) == 1 and prefix_routes[0].prefsrc == "10.225.176.38"


# --- properties over random kernels ------------------------------------------------------------


@st.composite
def configs(draw: st.DrawFn) -> Config:
    mode = draw(st.sampled_from(["strict", "main-first"]))
    return Config(
        daemon=DaemonSettings(mode=mode),
        interfaces=(InterfaceSpec(name="eth*"),) if draw(st.booleans()) else (),
    )


def auto_inputs(state: KernelState, config: Config) -> Inputs:
    tables = {
        link.name: TableRef(i + 1, link.name)
        for i, link in enumerate(
            sorted((k for k in state.links if k.name.startswith("eth")), key=lambda k: k.name)
        )
    }
    return Inputs(config, PROTO, tables, {}, {})


def foreign(state: KernelState) -> tuple[Counter[Rule], Counter[Route]]:
    return (
        Counter(r for r in state.rules if r.protocol != PROTO),
        Counter(r for r in state.routes if r.protocol != PROTO),
    )


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(kernels(), configs())
def test_applying_the_plan_converges_and_leaves_foreign_objects_alone(
    state: KernelState, config: Config
) -> None:
    inp = auto_inputs(state, config)
    desired = desired_state(state, inp)
    plan = make_plan(desired, state, PROTO)
    kernel = FakeKernel(state)
    results = kernel.apply(plan.operations)
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    after = kernel.state
    assert foreign(after) == foreign(state)
    assert make_plan(desired_state(after, inp), after, PROTO).empty
    owned_rules = Counter(r.identity() for r in after.rules if r.protocol == PROTO)
    assert all(count == 1 for count in owned_rules.values())  # never a duplicate
    assert all(
        not (isinstance(op, RouteOp) and op.route.protocol != PROTO) for op in plan.operations
    )


@settings(max_examples=100)
@given(kernels(), configs(), st.randoms(use_true_random=False))
def test_dump_order_does_not_matter(state: KernelState, config: Config, rnd: random.Random) -> None:
    def shuffled(items: tuple) -> tuple:  # type: ignore[type-arg]
        out = list(items)
        rnd.shuffle(out)
        return tuple(out)

    other = KernelState(
        shuffled(state.links),
        shuffled(state.addresses),
        shuffled(state.routes),
        shuffled(state.rules),
    )
    inp = auto_inputs(state, config)
    assert desired_state(state, inp) == desired_state(other, inp)
    assert (
        make_plan(desired_state(state, inp), state, PROTO).operations
        == make_plan(desired_state(other, inp), other, PROTO).operations
    )


@settings(max_examples=100)
@given(kernels(), configs())
def test_plan_of_desired_against_itself_is_empty(state: KernelState, config: Config) -> None:
    desired = desired_state(state, auto_inputs(state, config))
    exact = replace(
        state,
        rules=tuple(r for r in state.rules if r.protocol != PROTO) + desired.rules,
        routes=tuple(
            r for r in state.routes if r.protocol != PROTO and r.key not in desired.route_keys()
        )
        + desired.routes,
    )
    assert make_plan(desired, exact, PROTO).empty


def test_duplicates_of_owned_rules_are_deleted_down_to_one() -> None:
    state = article_state()
    desired = desired_state(state, inputs())
    rule = desired.rules[0]
    doubled = replace(state, rules=(rule, rule, rule), routes=state.routes + desired.routes)
    ops = make_plan(desired, doubled, PROTO).operations
    assert [op for op in ops if isinstance(op, RuleOp) and op.rule == rule] == [
        RuleOp("delete", rule),
        RuleOp("delete", rule),
    ]


def test_foreign_route_in_the_way_is_a_conflict_not_an_operation() -> None:
    state = article_state()
    desired = desired_state(state, inputs())
    target = next(r for r in desired.routes if r.table == 1 and r.is_default)
    squatter = target._replace(protocol=4, gateway="10.225.160.99")
    plan = make_plan(desired, replace(state, routes=(*state.routes, squatter)), PROTO)
    assert not any(isinstance(op, RouteOp) and op.route.key == target.key for op in plan.operations)
    assert any(c.foreign == squatter for c in plan.conflicts)


def test_classify_drift_versus_change() -> None:
    state = article_state()
    desired = desired_state(state, inputs())
    kernel = FakeKernel(state)
    kernel.apply(make_plan(desired, state, PROTO).operations)
    tampered = kernel.state
    victim = desired.rules[0]
    tampered = replace(tampered, rules=tuple(r for r in tampered.rules if r != victim))
    plan = make_plan(desired, tampered, PROTO)
    [item] = classify(plan, desired, desired)
    assert (item.cause, item.drift, item.operation) == ("drift", "missing", RuleOp("add", victim))
    # a renewal: the desired state itself moved, so the same kind of operation is a change
    renewed_state = replace(
        state,
        addresses=tuple(
            a._replace(address="10.225.176.77") if a.address == "10.225.176.38" else a
            for a in state.addresses
        ),
    )
    renewed = desired_state(renewed_state, inputs())
    plan = make_plan(renewed, replace(kernel.state, addresses=renewed_state.addresses), PROTO)
    assert plan.operations and all(c.cause == "change" for c in classify(plan, desired, renewed))


def test_a_rules_identity_is_every_field_but_its_protocol() -> None:
    rule = Rule(AF_INET, 30000, 100, PROTO, src="10.0.0.1", src_len=32)
    different = {
        "family": 10, "priority": 1, "table": 7, "src": "10.0.0.2", "src_len": 24,
        "dst": "10.9.0.0", "dst_len": 16, "action": 2, "suppress_prefixlen": 0,
        "iifname": "eth0", "oifname": "eth1", "fwmark": 3, "tos": 4, "flags": 2,
        "extra": ((99, b"x"),),
    }
    assert set(different) | {"protocol"} == set(Rule._fields)
    assert rule._replace(protocol=3).identity() == rule.identity()
    for field, value in different.items():
        assert rule._replace(**{field: value}).identity() != rule.identity(), field


def test_addresses_by_interface_keeps_exactly_the_global_addresses() -> None:
    """Every scope and combination of the address flags: an interface's addresses are the
    ones Address.is_global calls global (usable sources of universe scope), primaries first."""
    from itertools import product

    from polroutd.core.desired import addresses_by_interface
    from polroutd.core.model import Address

    bits = [0x01, 0x04, 0x08, 0x20, 0x40, 0x80]  # secondary .. permanent
    addresses = [
        Address(ifindex=1 + scope % 3, family=AF_INET, address=f"10.{scope}.{flags}.1",
                prefixlen=24, scope=scope, flags=flags)
        for scope in (0, 200, 253, 254)
        for flags in (sum(b for b, on in zip(bits, ons, strict=True) if on)
                      for ons in product((False, True), repeat=len(bits)))
    ]
    found = addresses_by_interface(KernelState(addresses=tuple(addresses)))
    assert sorted(a for group in found.values() for a in group) == sorted(
        a for a in addresses if a.is_global)
    for index, group in found.items():
        assert all(a.ifindex == index for a in group)
        assert [a.secondary for a in group] == sorted(a.secondary for a in group)
