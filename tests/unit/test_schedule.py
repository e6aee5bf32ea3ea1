"""Coalescing, resync and backoff timing with a fake clock."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from polroutd.core.schedule import BACKOFF_MAX, Schedule


def schedule() -> Schedule:
    s = Schedule(debounce=0.02, max_delay=0.25, resync_interval=60, rng=random.Random(1))
    s.finished(0.0, True)
    return s


def test_a_lone_event_after_quiet_is_handled_at_once() -> None:
    s = schedule()
    s.mark_dirty(10.0)
    assert s.due(10.0) == (10.0, "event")


def test_events_right_after_a_reconcile_wait_for_quiet() -> None:
    s = schedule()
    s.finished(10.0, True)
    s.mark_dirty(10.005)
    assert s.due(10.005)[0] == 10.025
    s.mark_dirty(10.015)
    assert s.due(10.015)[0] == 10.035


def test_a_storm_never_delays_longer_than_max_delay() -> None:
    s = schedule()
    s.finished(10.0, True)
    t = 10.001
    s.mark_dirty(t)
    while t < 11.0:  # an event every millisecond for a second
        t += 0.001
        s.mark_dirty(t)
        assert s.due(t)[0] <= 10.001 + 0.25


@given(st.lists(st.floats(0.0001, 0.05), min_size=1, max_size=3000))
def test_reconciles_during_a_storm_are_bounded(gaps: list[float]) -> None:
    s = schedule()
    now, reconciles = 100.0, 0
    for gap in gaps:
        now += gap
        s.mark_dirty(now)
        at, _ = s.due(now)
        if at <= now:
            s.started(now)
            s.finished(now + 0.002, True)
            reconciles += 1
    duration = now - 100.0
    # at most one leading-edge reconcile per quiet gap, and one per max_delay within bursts
    quiet_gaps = sum(1 for g in gaps if g >= 0.02)
    assert reconciles <= quiet_gaps + duration / 0.25 + 2


def test_resync_is_jittered_around_the_interval() -> None:
    s = schedule()
    s.finished(100.0, True)
    at, reason = s.due(100.0)
    assert reason == "resync" and 100 + 54 <= at <= 100 + 66


def test_failures_back_off_exponentially_and_reset_on_success() -> None:
    s = schedule()
    delays = []
    for i in range(12):
        s.finished(float(i), False)
        assert s.retry_at is not None
        delays.append(s.retry_at - i)
    assert delays[1] > delays[0] and max(delays) <= BACKOFF_MAX * 1.2
    s.finished(50.0, True)
    assert s.retry_at is None and s.failures == 0
    assert s.due(50.0)[1] == "resync"
