"""The schedule's numbers, pinned: leading edge, coalescing bounds, resync and retry times with
a jitter that returns what the test says (written to kill the mutants that survived the other
tests, see docs/testing.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from polroutd.core.schedule import BACKOFF_FIRST, BACKOFF_MAX, Schedule


@dataclass
class Jitter:
    """Returns the lower bound, the upper bound or the middle of what it is asked for."""

    pick: str = "middle"
    asked: list[tuple[float, float]] = field(default_factory=list)

    def uniform(self, a: float, b: float) -> float:
        self.asked.append((a, b))
        return {"low": a, "high": b, "middle": (a + b) / 2}[self.pick]


def schedule(jitter: Jitter | None = None) -> Schedule:
    # Powers of two, so every sum below is exact.
    return Schedule(debounce=0.5, max_delay=2.0, resync_interval=64.0, rng=jitter or Jitter())


def test_a_fresh_schedule_waits_for_nothing_but_the_first_request() -> None:
    s = schedule()
    assert s.due(0.0) == (float("inf"), "resync")
    s.mark_dirty(3.0, "startup")
    assert s.due(3.0) == (3.0, "startup")


def test_the_first_hint_a_debounce_after_the_last_reconcile_is_the_leading_edge() -> None:
    s = schedule()
    s.finished(10.0, True)
    s.mark_dirty(10.5)  # exactly one debounce of quiet
    assert s.due(10.5) == (10.5, "event")


def test_hints_within_the_debounce_wait_for_a_debounce_of_quiet() -> None:
    s = schedule()
    s.finished(10.0, True)
    s.mark_dirty(10.25)
    assert s.due(10.25) == (10.75, "event")
    s.mark_dirty(10.5, "ignored: the first reason stands")
    assert s.due(10.5) == (11.0, "event")


def test_coalescing_never_waits_longer_than_max_delay_after_the_first_hint() -> None:
    s = schedule()
    s.finished(10.0, True)
    for t in (10.25, 10.75, 11.25, 11.75, 12.125):
        s.mark_dirty(t)
    assert s.due(12.125) == (12.25, "event")  # 10.25 + max_delay, before 12.125 + debounce


def test_starting_covers_every_hint_and_the_retry() -> None:
    s = schedule()
    s.finished(1.0, False)
    s.mark_dirty(2.0, "reload")
    s.started(2.0)
    assert (s.dirty_since, s.retry_at, s.pending_reason) == (None, None, "event")
    s.mark_dirty(50.0)
    assert s.due(50.0) == (50.0, "event")


def test_resync_is_one_interval_after_the_end_of_a_reconcile_times_the_jitter() -> None:
    for pick, factor in (("low", 0.9), ("middle", 1.0), ("high", 1.1)):
        jitter = Jitter(pick)
        s = schedule(jitter)
        s.finished(100.0, True)
        assert jitter.asked == [(0.9, 1.1)]
        assert s.due(100.0) == (100.0 + 64.0 * factor, "resync")


def test_the_first_retry_comes_after_backoff_first_times_the_jitter() -> None:
    for pick, factor in (("low", 0.8), ("middle", 1.0), ("high", 1.2)):
        jitter = Jitter(pick)
        s = schedule(jitter)
        s.finished(10.0, False)
        assert jitter.asked[-1] == (0.8, 1.2)
        assert s.retry_at == 10.0 + BACKOFF_FIRST * factor
        assert s.due(10.0) == (10.0 + BACKOFF_FIRST * factor, "retry")
    assert BACKOFF_FIRST == 0.1


def test_retries_double_up_to_the_cap_and_success_resets_them() -> None:
    s = schedule()
    delays = []
    for i in range(12):
        s.finished(float(i), False)
        assert s.retry_at is not None and s.failures == i + 1
        delays.append(s.retry_at - i)
    expected = [min(BACKOFF_MAX, 0.1 * 2**n) for n in range(12)]
    assert [round(d, 9) for d in delays] == [round(e, 9) for e in expected]
    assert BACKOFF_MAX == 30.0
    s.finished(20.0, True)
    assert (s.retry_at, s.failures) == (None, 0)
    s.finished(21.0, False)
    assert round(s.retry_at - 21.0, 9) == 0.1  # type: ignore[operator]


def test_the_earliest_of_retry_hint_and_resync_is_due() -> None:
    s = schedule()
    s.finished(10.0, False)  # retry at 10.1; resync at 74
    s.mark_dirty(10.0)  # within the debounce: due at 10.5
    assert s.due(10.0) == (10.1, "retry")
    s.started(10.1)
    s.finished(10.25, False)  # second failure: retry at 10.45
    s.mark_dirty(11.0)  # after a quiet debounce: due at once
    at, reason = s.due(11.0)
    assert (round(at, 9), reason) == (10.45, "retry")
    s.started(11.0)
    s.finished(11.0, True)
    s.mark_dirty(12.0)
    assert s.due(12.0) == (12.0, "event")


def test_a_wake_up_is_due_at_its_time_with_its_reason() -> None:
    s = schedule()
    s.finished(0.0, True)  # next resync at 64
    s.wake(8.0)
    assert s.due(1.0) == (8.0, "lease-expiry")
    s.wake(4.0, "earlier")
    assert s.due(1.0) == (4.0, "earlier")  # the earliest wins, with its reason


def test_a_later_or_equal_wake_up_keeps_the_earlier_one() -> None:
    s = schedule()
    s.finished(0.0, True)
    s.wake(4.0, "first")
    s.wake(16.0, "later")
    assert s.due(1.0) == (4.0, "first")
    s.wake(4.0, "same time")
    assert s.due(1.0) == (4.0, "first")


def test_a_reconcile_that_starts_covers_the_wake_up() -> None:
    s = schedule()
    s.finished(0.0, True)
    s.wake(4.0)
    s.started(4.0)
    s.finished(4.0, True)  # next resync at 68
    assert s.due(5.0) == (68.0, "resync")
    s.wake(70.0, "after the resync")
    assert s.due(5.0) == (68.0, "resync")
