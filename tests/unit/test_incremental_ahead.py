"""Events applied to the view in the pieces they arrive in, and decisions made ahead of the
reconcile and then withdrawn (the daemon's wait for quiet, daemon/loop.py): the view is a fresh
read, and the decision finally made plans what a full decision plans, for random sequences of
changes to an in-memory kernel, lease renewals that no event announces included."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polroutd.core.kernelview import NOTHING_TOUCHED, apply_events, apply_results, divergence
from polroutd.core.model import KernelState, LeaseFindings
from polroutd.core.record import replace
from polroutd.engine import Engine
from tests.support.article import lease_of
from tests.support.fakes import FakeKernel
from tests.unit.test_incremental import CONFIG, _do, _same_plan, _start, change

ETH1 = 11


def _start_with_lease() -> KernelState:
    """The test_incremental host, eth1 without a default route: its gateway is its lease's."""
    state = _start()
    return replace(state, routes=tuple(r for r in state.routes
                                       if not (r.oif == ETH1 and r.dst_len == 0)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(change, min_size=1, max_size=10),
    st.lists(st.integers(0, 10), max_size=4),  # where the events are cut into reads
    st.integers(0, 4),  # after which piece a decision is made ahead
    st.booleans(),  # the lease renewed between the decision made ahead and the reconcile
)
def test_pieces_and_a_withdrawn_decision_plan_what_a_full_decision_plans(
    changes: list[tuple[str, int, int]], cuts: list[int], ahead_after: int, renewed: bool,
) -> None:
    kernel = FakeKernel(_start_with_lease())
    leases: dict[str, LeaseFindings] = {"eth1": lease_of("10.0.1.1")}
    engine = Engine(CONFIG, kernel, lease_reader=lambda _: dict(leases))
    decision = engine.read_and_decide()
    view = apply_results(decision.state, engine.apply(decision))
    kernel.events.clear()
    for what, i, n in changes:
        _do(kernel, what, i, n)
    events = list(kernel.events)
    before = view
    bounds = [0, *sorted(min(c, len(events)) for c in cuts), len(events)]
    pieces = [events[a:b] for a, b in pairwise(bounds)]
    touched = NOTHING_TOUCHED
    for at, piece in enumerate(pieces):
        applied = apply_events(view, piece)
        assert applied is not None
        view, more = applied
        touched = touched.then(more)
        if at == min(ahead_after, len(pieces) - 1) and at < len(pieces) - 1:
            checkpoint = engine.checkpoint()
            if renewed:
                leases["eth1"] = lease_of("10.0.1.254")
            engine.decide_touched(view, touched) or engine.decide(view)  # not applied
            engine.rollback(checkpoint)  # more events came
    assert divergence(view, kernel.state) == []
    whole = apply_events(before, events)
    assert whole is not None and whole[1] == touched  # the pieces touched what the whole did
    full = Engine(CONFIG, FakeKernel(kernel.state), applied_tables=engine.applied_tables,
                  applied_unused=engine.applied_unused,
                  lease_reader=lambda _: dict(leases)).read_and_decide()
    final = engine.decide_touched(view, touched) or engine.decide(view)
    assert _same_plan(final.plan, full.plan), (final.plan, full.plan)
    assert final.desired == full.desired
    results = engine.apply(final)
    assert all(r.ok for r in results)
    assert divergence(apply_results(final.state, results), kernel.state) == []


def test_a_withdrawn_decision_leaves_a_lease_renewal_to_the_next() -> None:
    """A renewal that only the lease file tells, seen by a decision made ahead and withdrawn,
    is still seen by the decision that follows (it is not taken as already decided)."""
    kernel = FakeKernel(_start_with_lease())
    leases: dict[str, LeaseFindings] = {"eth1": lease_of("10.0.1.1")}
    engine = Engine(CONFIG, kernel, lease_reader=lambda _: dict(leases))
    decision = engine.read_and_decide()
    view = apply_results(decision.state, engine.apply(decision))
    checkpoint = engine.checkpoint()
    leases["eth1"] = lease_of("10.0.1.254")
    ahead = engine.decide_touched(view, NOTHING_TOUCHED)
    assert ahead is not None and any(
        getattr(op, "route", None) is not None and op.route.gateway == "10.0.1.254"  # type: ignore[union-attr]
        for op in ahead.plan.operations)
    engine.rollback(checkpoint)
    final = engine.decide_touched(view, NOTHING_TOUCHED)
    assert final is not None
    assert [op for op in final.plan.operations] == [op for op in ahead.plan.operations]
