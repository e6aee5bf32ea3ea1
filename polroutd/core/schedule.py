"""When to reconcile: event coalescing, anti-entropy resync, retry backoff and wake-ups at known
moments (a DHCP lease's expiry). Pure (time is passed in), so the daemon loop's timing can be
tested with a fake clock."""

from __future__ import annotations

from typing import Protocol

from polroutd.core.record import record

BACKOFF_FIRST = 0.1
BACKOFF_MAX = 30.0


class Jitter(Protocol):
    """A source of uniform random numbers (``random.Random`` is one)."""

    def uniform(self, a: float, b: float) -> float: ...


@record(frozen=False)
class Schedule:
    """Decides the next reconcile time.

    An event after a quiet spell is handled at once (the leading edge: one address change
    converges in milliseconds). Events that follow within ``debounce`` are coalesced until
    ``debounce`` of quiet, but never for longer than ``max_delay`` after the first of them, so a
    storm gives a bounded number of reconciles with bounded latency.
    """

    debounce: float
    max_delay: float
    resync_interval: float
    rng: Jitter  # the resync jitter's source (given: this module stays deterministic)
    dirty_since: float | None = None
    last_event: float = float("-inf")
    last_reconcile_end: float = float("-inf")
    next_resync: float = float("inf")  # set by each finished reconcile; the first one is asked for
    retry_at: float | None = None
    failures: int = 0
    pending_reason: str = "event"
    # A moment the last reconcile knows its result goes stale (a lease it used expires).
    wake_at: float | None = None
    wake_reason: str = "lease-expiry"

    def mark_dirty(self, now: float, reason: str = "event") -> None:
        if self.dirty_since is None:
            self.dirty_since = now
            self.pending_reason = reason
        self.last_event = now

    def due(self, now: float) -> tuple[float, str]:
        """(when the next reconcile should start, why)."""
        candidates: list[tuple[float, str]] = [(self.next_resync, "resync")]
        if self.retry_at is not None:
            candidates.append((self.retry_at, "retry"))
        if self.wake_at is not None:
            candidates.append((self.wake_at, self.wake_reason))
        if self.dirty_since is not None:
            if self.dirty_since - self.last_reconcile_end >= self.debounce:
                at = self.dirty_since  # leading edge: the first hint after a quiet spell
            else:
                at = min(self.last_event + self.debounce, self.dirty_since + self.max_delay)
            candidates.append((at, self.pending_reason))
        return min(candidates)

    def started(self, now: float) -> None:
        """A reconcile starts now: every hint so far is covered by the read it is about to do.
        A wake-up too: the reconcile asks for the next one (``wake``) if it still needs one, so
        a reconcile that fails does not wake again at once."""
        self.dirty_since = None
        self.retry_at = None
        self.wake_at = None
        self.pending_reason = "event"

    def wake(self, at: float, reason: str = "lease-expiry") -> None:
        """Reconcile at ``at`` (on this schedule's clock) at the latest; the earliest wins."""
        if self.wake_at is None or at < self.wake_at:
            self.wake_at, self.wake_reason = at, reason

    def finished(self, now: float, success: bool) -> None:
        self.last_reconcile_end = now
        self.next_resync = now + self.resync_interval * self.rng.uniform(0.9, 1.1)
        if success:
            self.failures = 0
            self.retry_at = None
        else:
            self.failures += 1
            delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (self.failures - 1))
            self.retry_at = now + delay * self.rng.uniform(0.8, 1.2)
