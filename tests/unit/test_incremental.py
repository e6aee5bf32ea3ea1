"""The view kept from events equals a fresh read, and deciding from it plans what a full
decision plans (issue 13), for random sequences of changes to an in-memory kernel."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polroutd.core.kernelview import apply_events, apply_results, divergence, grouped
from polroutd.core.limits import AF_INET, RT_TABLE_MAIN
from polroutd.core.model import Address, KernelState, Link, Plan, Route, Rule
from polroutd.core.settings import Config, DaemonSettings
from polroutd.engine import Engine
from tests.support.fakes import FakeKernel

PROTO = 218
LINKS = [Link(10 + i, f"eth{i}", up=True, carrier=True) for i in range(4)]
CONFIG = Config(daemon=DaemonSettings(rt_tables_file="", protocol=PROTO))


def _start() -> KernelState:
    addresses = [Address(10 + i, AF_INET, f"10.0.{i}.{10 + j}", 24) for i in range(3)
                 for j in range(2)]
    routes = [Route(AF_INET, RT_TABLE_MAIN, "0.0.0.0", 0, 4, metric=100 + i, oif=10 + i,
                    gateway=f"10.0.{i}.1") for i in range(3)]
    routes += [Route(AF_INET, RT_TABLE_MAIN, f"10.0.{i}.0", 24, 2, scope=253, oif=10 + i,
                     prefsrc=f"10.0.{i}.10") for i in range(3)]
    return KernelState(tuple(LINKS), tuple(addresses), tuple(routes), ())


change = st.one_of(
    st.tuples(st.just("addr+"), st.integers(0, 2), st.integers(10, 14)),
    st.tuples(st.just("addr-"), st.integers(0, 2), st.integers(10, 14)),
    st.tuples(st.just("down"), st.integers(0, 2), st.just(0)),
    st.tuples(st.just("up"), st.integers(0, 2), st.just(0)),
    st.tuples(st.just("rule-"), st.integers(0, 20), st.just(0)),
    st.tuples(st.just("route-"), st.integers(0, 20), st.just(0)),
    st.tuples(st.just("foreign-rule"), st.integers(0, 2), st.integers(100, 200)),
    st.tuples(st.just("foreign-route"), st.integers(0, 3), st.integers(1, 200)),
)


def _do(kernel: FakeKernel, what: str, i: int, n: int) -> None:
    state = kernel.state
    if what == "addr+":
        kernel.add_address(Address(10 + i, AF_INET, f"10.0.{i}.{n}", 24))
    elif what == "addr-":
        for a in state.addresses:
            if a.ifindex == 10 + i and a.address == f"10.0.{i}.{n}":
                kernel.remove_address(a)
    elif what in ("down", "up"):
        kernel.set_link(state.link_by_index()[10 + i]._replace(up=what == "up"))
    elif what == "rule-":
        ours = [r for r in state.rules if r.protocol == PROTO]
        if ours:
            kernel.remove_rule(ours[i % len(ours)])
    elif what == "route-":
        ours = [r for r in state.routes if r.protocol == PROTO]
        if ours:
            kernel.remove_route(ours[i % len(ours)])
    elif what == "foreign-rule":
        kernel.add_rule(Rule(AF_INET, 1000 + n, RT_TABLE_MAIN, 4, src=f"10.9.{i}.{n}",
                             src_len=32))
    else:
        kernel.add_route(Route(AF_INET, RT_TABLE_MAIN, f"10.77.{n}.0", 24, 4,
                               oif=LINKS[i].ifindex, gateway=None, scope=253))


def _same_plan(a: Plan, b: Plan) -> bool:
    return Counter(a.operations) == Counter(b.operations) and (
        Counter(c.foreign for c in a.conflicts) == Counter(c.foreign for c in b.conflicts))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(change, min_size=1, max_size=4), min_size=1, max_size=6))
def test_the_view_after_events_is_a_fresh_read_and_plans_the_same(
    batches: list[list[tuple[str, int, int]]],
) -> None:
    kernel = FakeKernel(_start())
    engine = Engine(CONFIG, kernel)
    decision = engine.read_and_decide()
    view = apply_results(decision.state, engine.apply(decision))
    for batch in batches:
        kernel.events.clear()
        for what, i, n in batch:
            _do(kernel, what, i, n)
        applied = apply_events(view, kernel.events)
        assert applied is not None
        view, touched = applied
        assert divergence(view, kernel.state) == []
        _groups_are_fresh(view)
        # The full decision by an engine that remembers the same table numbers.
        full = Engine(CONFIG, FakeKernel(kernel.state), applied_tables=engine.applied_tables,
                      applied_unused=engine.applied_unused).read_and_decide()
        incremental = engine.decide_touched(view, touched) or engine.decide(view)
        assert _same_plan(incremental.plan, full.plan), (incremental.plan, full.plan)
        # the same desired state, in the same order (only the decided interfaces' slices of
        # it were derived again)
        assert incremental.desired == full.desired
        results = engine.apply(incremental)
        assert all(r.ok for r in results)
        view = apply_results(incremental.state, results)
        assert divergence(view, kernel.state) == []
        _groups_are_fresh(view)


def _groups_are_fresh(view: KernelState) -> None:
    """The view's groups (derived from the last tuple's with the edits the view recorded)
    are what grouping the tuple afresh gives."""
    for items, fields in ((view.addresses, ("ifindex", "address")),
                          (view.routes, ("oif", "table", "protocol", "prefsrc", "dst")),
                          (view.rules, ("table", "protocol"))):
        for field in fields:
            fresh: dict[object, Counter[object]] = {}
            for item in items:
                fresh.setdefault(getattr(item, field), Counter())[item] += 1
            assert {k: Counter(v) for k, v in grouped(items, field).items()} == fresh, field


def test_an_event_that_only_names_its_kind_asks_for_a_full_read() -> None:
    from polroutd.core.kernelview import Event

    assert apply_events(_start(), [Event("address")]) is None


def test_an_address_event_is_decided_for_its_interface_only() -> None:
    kernel = FakeKernel(_start())
    engine = Engine(CONFIG, kernel)
    decision = engine.read_and_decide()
    view = apply_results(decision.state, engine.apply(decision))
    kernel.events.clear()
    kernel.add_address(Address(11, AF_INET, "10.0.1.99", 24))
    applied = apply_events(view, kernel.events)
    assert applied is not None
    decided = engine.decide_touched(*applied)
    assert decided is not None
    assert [op.rule.src for op in decided.plan.operations] == ["10.0.1.99"]  # type: ignore[union-attr]
