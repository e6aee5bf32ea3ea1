"""Issue 11, defect 7: routes the kernel flushed because their link went down are put back as
restorations, never counted as drift or repairs (a flapping link must not fire drift alerts)."""

from __future__ import annotations

import struct

from polroutd.core.model import KernelState, RouteOp
from polroutd.core.plan import classify, make_plan
from polroutd.core.record import replace
from polroutd.netlink import codec as rtnl
from polroutd.netlink.kernel import Event, decode_event
from tests.support.article import PROTO, article_decision, lease_of
from tests.support.fakes import FakeKernel
from tests.support.harness import Harness

DATA = 3  # ens224's index in the article's state


def _flushed(state: KernelState, ifindex: int) -> KernelState:
    """``state`` after the kernel's own flush on link down: polroutd's routes via it gone."""
    return replace(state, routes=tuple(
        r for r in state.routes if not (r.protocol == PROTO and r.oif == ifindex)))


def _converged() -> tuple[KernelState, FakeKernel]:
    decision = article_decision()
    kernel = FakeKernel(decision.state)
    kernel.apply(decision.plan.operations)
    return kernel.state, kernel


def test_routes_put_back_after_their_link_went_down_are_restorations() -> None:
    desired = article_decision().desired
    state, _ = _converged()
    plan = make_plan(desired, _flushed(state, DATA), PROTO)
    assert plan.operations and all(isinstance(op, RouteOp) for op in plan.operations)
    restored = classify(plan, desired, desired, went_down=frozenset({DATA}))
    assert {(c.cause, c.drift) for c in restored} == {("restoration", None)}
    # Without a link event saying so, the same missing routes are drift.
    assert {c.cause for c in classify(plan, desired, desired)} == {"drift"}
    # Another interface going down explains nothing about ens224's routes.
    assert {c.cause for c in classify(plan, desired, desired, went_down=frozenset({2}))} == {
        "drift"}


def test_a_rule_removed_while_its_link_flapped_is_still_drift() -> None:
    desired = article_decision().desired
    state, _ = _converged()
    victim = next(r for r in desired.rules if r.table == 30001)
    tampered = replace(_flushed(state, DATA), rules=tuple(r for r in state.rules if r != victim))
    causes = {c.operation.kind: c.cause for c in classify(
        make_plan(desired, tampered, PROTO), desired, desired, went_down=frozenset({DATA}))}
    assert causes == {"rule": "drift", "route": "restoration"}


def _link_message(ifindex: int, flags: int) -> bytes:
    return struct.pack("=BxHiII", 0, 1, ifindex, flags, 0xFFFFFFFF)


def test_link_events_carry_the_link_and_whether_it_is_up() -> None:
    up = decode_event(rtnl.RTM_NEWLINK, 0, _link_message(7, rtnl.IFF_UP | rtnl.IFF_LOWER_UP))
    down = decode_event(rtnl.RTM_NEWLINK, 0, _link_message(7, 0))
    gone = decode_event(rtnl.RTM_DELLINK, 0, _link_message(7, rtnl.IFF_UP))
    assert up is not None and (up.kind, up.ifindex, up.up) == ("link", 7, True)
    assert down is not None and (down.ifindex, down.up) == (7, False) and down.went_down
    assert gone is not None and gone.went_down  # a deleted link's routes went with it
    assert not up.went_down
    route = decode_event(rtnl.RTM_NEWROUTE, 0, b"")
    assert route == Event("route") and not route.went_down
    assert decode_event(rtnl.RTM_NEWLINK, 0, b"\0") == Event("link")  # truncated: no claim made


async def test_a_flap_inside_one_coalescing_window_counts_restorations_not_drift() -> None:
    decision = article_decision()
    kernel = FakeKernel(decision.state)
    h = Harness(kernel, lease_reader=lambda _: {"ens224": lease_of("10.225.176.1")})
    await h.start()
    owned = [r for r in kernel.state.routes if r.protocol == PROTO and r.oif == DATA]
    assert owned
    for cycle in range(1, 4):
        done = h.counter("reconciles_ok")
        kernel.state = _flushed(kernel.state, DATA)  # down and up again before a reconcile
        h.events.push_event(Event("link", ifindex=DATA, up=False))
        h.events.push_event(Event("link", ifindex=DATA, up=True))
        await h.until(lambda done=done: h.counter("reconciles_ok") > done  # type: ignore[misc]
                      and h.daemon.status.in_sync)
        assert h.counter("restorations") == cycle * len(owned)
        assert (h.counter("drift"), h.counter("repairs")) == (0, 0)
    metric = h.daemon.tally.metrics.restorations.labels(kind="route")._value.get()
    assert metric == 3 * len(owned)
    assert h.daemon.state()["counters"]["restorations"] == 3 * len(owned)
    # The same loss with no link event in between is someone else's hand: drift.
    done = h.counter("reconciles_ok")
    kernel.state = _flushed(kernel.state, DATA)
    h.events.push()
    await h.until(lambda: h.counter("reconciles_ok") > done and h.daemon.status.in_sync)
    assert h.counter("drift") == len(owned) and h.counter("restorations") == 3 * len(owned)
    assert await h.stop() == 0
