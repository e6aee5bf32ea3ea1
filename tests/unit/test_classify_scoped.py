"""``classify`` looks only at the tables its operations are in (an event's reconcile on a large
host plans a few operations): its verdicts are those of the whole-state definition
(docs/behaviour.md §2.4), written out here as the oracle, over a succession of desired states
(the groups by table are derived from one state to the next)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polroutd.core.model import DesiredState, KernelState, Plan, RouteOp, RuleOp
from polroutd.core.plan import _DRIFT, Classified, classify, make_plan
from polroutd.engine import Engine
from tests.support.fakes import FakeKernel
from tests.unit.test_incremental import CONFIG, PROTO, _do, _start, change


def _oracle(plan: Plan, previous: DesiredState, current: DesiredState,
            went_down: frozenset[int]) -> list[Classified]:
    old_rules = {r.identity() for r in previous.rules}
    now_rules = {r.identity() for r in current.rules}
    old_routes = {r.key: r for r in previous.routes}
    now_routes = {r.key: r for r in current.routes}
    old_if = {i.index: (i.up, i.addresses) for i in previous.interfaces}
    now_if = {i.index: (i.up, i.addresses) for i in current.interfaces}
    moved = {i for i in old_if.keys() | now_if.keys() if old_if.get(i) != now_if.get(i)}
    by_table = {i.table_id: i.index for i in (*previous.interfaces, *current.interfaces)}
    out = []
    for op in plan.operations:
        if isinstance(op, RuleOp):
            ident = op.rule.identity()
            unchanged = (ident in old_rules) == (ident in now_rules)
            interface = by_table.get(op.rule.table)
        else:
            unchanged = old_routes.get(op.route.key) == now_routes.get(op.route.key)
            interface = op.route.oif
        if not unchanged or interface in moved:
            out.append(Classified(op, "change", None))
        elif op.op == "add" and isinstance(op, RouteOp) and op.route.oif in went_down:
            out.append(Classified(op, "restoration", None))
        else:
            out.append(Classified(op, "drift", _DRIFT[op.op]))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(change, min_size=1, max_size=4), min_size=2, max_size=6),
       st.sets(st.integers(10, 13)))
def test_classify_of_a_few_operations_agrees_with_the_whole_state_definition(
    batches: list[list[tuple[str, int, int]]], went_down: set[int],
) -> None:
    kernel = FakeKernel(_start())
    engine = Engine(CONFIG, kernel)
    first = engine.decide(kernel.state)
    engine.apply(first)
    kernel.apply(first.plan.operations)
    previous = first.desired
    for batch in batches:
        before = kernel.state
        for what, i, n in batch:
            _do(kernel, what, i, n)
        current = engine.decide(kernel.state).desired
        # Plans of every size: against the kernel now, before the changes, and against nothing.
        for actual in (kernel.state, before, KernelState()):
            plan = make_plan(current, actual, PROTO)
            assert classify(plan, previous, current, went_down=frozenset(went_down)) == \
                _oracle(plan, previous, current, frozenset(went_down))
        previous = current
