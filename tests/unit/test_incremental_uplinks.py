"""The incremental path with uplinks on and while adopting another protocol's objects: what
it decides is what a full decision decides (the uplink table depends on every uplink's piece
and on the observed health, so such changes are left to a full decision)."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polroutd.core.kernelview import apply_events, apply_results, divergence
from polroutd.core.limits import AF_INET, AF_INET6
from polroutd.core.model import Address, KernelState, Link, Plan
from polroutd.core.settings import Config, DaemonSettings, InterfaceSpec, UplinkSpec
from polroutd.engine import Engine
from tests.support.fakes import FakeKernel

PROTO = 218
UPLINK_TABLE = 500
WAN = {"wan1": (2, "10.1.0", "2001:db8:1::"), "wan2": (3, "10.2.0", "2001:db8:2::")}
CONFIG = Config(daemon=DaemonSettings(
    rt_tables_file="", protocol=PROTO, uplinks="failover", uplink_table=UPLINK_TABLE),
    interfaces=(
        *(InterfaceSpec(name=name, gateway=f"{v4}.1", gateway6=f"{six}1",
                        uplink=UplinkSpec(metric=100 * n))
          for n, (name, (_, v4, six)) in enumerate(WAN.items(), 1)),
        InterfaceSpec(name="lan0"),
    ),
)


def _start() -> KernelState:
    links = [Link(1, "lo", True, True, loopback=True), Link(9, "lan0", True, True)]
    addresses = [Address(9, AF_INET, "192.168.9.1", 24)]
    for name, (index, v4, six) in WAN.items():
        links.append(Link(index, name, up=True, carrier=True))
        addresses += [Address(index, AF_INET, f"{v4}.2", 24),
                      Address(index, AF_INET6, f"{six}2", 64)]
    return KernelState(links=tuple(links), addresses=tuple(addresses))


def _same_plan(a: Plan, b: Plan) -> bool:
    return Counter(a.operations) == Counter(b.operations) and (
        Counter(c.foreign for c in a.conflicts) == Counter(c.foreign for c in b.conflicts))


change = st.one_of(
    st.tuples(st.just("health"), st.sampled_from(sorted(WAN)), st.booleans()),
    st.tuples(st.just("link"), st.sampled_from([*WAN, "lan0"]), st.booleans()),
    st.tuples(st.just("addr"), st.sampled_from([*WAN, "lan0"]), st.booleans()),
    st.tuples(st.just("route-"), st.integers(0, 30), st.booleans()),
    st.tuples(st.just("rule-"), st.integers(0, 30), st.booleans()),
)


def _do(kernel: FakeKernel, engine: Engine, what: str, which: str | int, flag: bool) -> None:
    state = kernel.state
    if what == "health":
        health = dict(engine.uplink_health or {})
        health[(str(which), AF_INET)] = flag
        engine.uplink_health = health
    elif what == "link":
        link = next(link for link in state.links if link.name == which)
        kernel.set_link(link._replace(up=flag, carrier=flag))
    elif what == "addr":
        index = next(link.ifindex for link in state.links if link.name == which)
        extra = Address(index, AF_INET, f"10.{index}.7.7", 24)
        if flag:
            kernel.add_address(extra)
        elif extra in state.addresses:
            kernel.remove_address(extra)
    elif what == "route-":
        ours = [r for r in state.routes if r.protocol == PROTO]
        if ours:
            kernel.remove_route(ours[int(which) % len(ours)])
    else:
        ours = [r for r in state.rules if r.protocol == PROTO]
        if ours:
            kernel.remove_rule(ours[int(which) % len(ours)])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(change, min_size=1, max_size=3), min_size=1, max_size=6))
def test_with_uplinks_the_incremental_decision_is_the_full_one(
    batches: list[list[tuple[str, str | int, bool]]],
) -> None:
    kernel = FakeKernel(_start())
    engine = Engine(CONFIG, kernel)
    decision = engine.read_and_decide()
    assert any(r.table == UPLINK_TABLE for r in decision.desired.routes)
    view = apply_results(decision.state, engine.apply(decision))
    for batch in batches:
        kernel.events.clear()
        for what, which, flag in batch:
            _do(kernel, engine, what, which, flag)
        applied = apply_events(view, kernel.events)
        assert applied is not None
        view, touched = applied
        full_engine = Engine(CONFIG, FakeKernel(kernel.state),
                             applied_tables=engine.applied_tables,
                             applied_unused=engine.applied_unused)
        full_engine.uplink_health = engine.uplink_health
        full = full_engine.read_and_decide()
        incremental = engine.decide_touched(view, touched) or engine.decide(view)
        assert _same_plan(incremental.plan, full.plan), (incremental.plan, full.plan)
        assert Counter(incremental.desired.rules) == Counter(full.desired.rules)
        assert Counter(incremental.desired.routes) == Counter(full.desired.routes)
        assert incremental.desired.uplinks == full.desired.uplinks
        results = engine.apply(incremental)
        assert all(r.ok for r in results)
        view = apply_results(incremental.state, results)
        assert divergence(view, kernel.state) == []


def _settled() -> tuple[FakeKernel, Engine, KernelState]:
    kernel = FakeKernel(_start())
    engine = Engine(CONFIG, kernel)
    decision = engine.read_and_decide()
    view = apply_results(decision.state, engine.apply(decision))
    kernel.events.clear()
    return kernel, engine, view


def test_an_uplink_route_deleted_by_hand_is_put_back() -> None:
    kernel, engine, view = _settled()
    gone = next(r for r in kernel.state.routes if r.table == UPLINK_TABLE)
    kernel.remove_route(gone)
    applied = apply_events(view, kernel.events)
    assert applied is not None
    decision = engine.decide_touched(*applied) or engine.decide(applied[0])
    assert gone in {op.route for op in decision.plan.operations  # type: ignore[union-attr]
                    if op.kind == "route"}


def test_a_change_of_uplink_health_is_decided_in_full() -> None:
    kernel, engine, view = _settled()
    engine.uplink_health = {("wan1", AF_INET): False, ("wan1", AF_INET6): True}  # IPv4 fails
    applied = apply_events(view, kernel.events)
    assert applied is not None
    assert engine.decide_touched(*applied) is None
    decision = engine.decide(applied[0])
    assert decision.plan.operations  # wan2 takes over IPv4


def test_an_address_on_a_non_uplink_stays_incremental() -> None:
    kernel, engine, view = _settled()
    kernel.add_address(Address(9, AF_INET, "192.168.9.77", 24))
    applied = apply_events(view, kernel.events)
    assert applied is not None
    decided = engine.decide_touched(*applied)
    assert decided is not None
    assert [op.rule.src for op in decided.plan.operations] == [  # type: ignore[union-attr]
        "192.168.9.77"]


def test_while_adopting_only_full_decisions() -> None:
    kernel = FakeKernel(_start())
    engine = Engine(CONFIG, kernel, adopt=frozenset({PROTO + 1}))
    decision = engine.read_and_decide()
    view = apply_results(decision.state, engine.apply(decision))
    kernel.events.clear()
    kernel.add_address(Address(9, AF_INET, "192.168.9.77", 24))
    applied = apply_events(view, kernel.events)
    assert applied is not None
    assert engine.decide_touched(*applied) is None
    engine.adopted()
    assert engine.decide_touched(*applied) is not None

