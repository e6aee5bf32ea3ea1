"""An uplink's health: a pure state machine driven by timestamped observations.

The daemon observes (link events, neighbour events, probe results) and feeds each observation
here; this module decides whether the uplink is up, and why it changed. No clock, no I/O: the
time of an observation is part of it.

* The link going down (admin down or no carrier) and the gateway's neighbour entry turning
  FAILED take the uplink down at once: those events are certain.
* ``down`` probe failures in a row take it down; ``up`` successes in a row, with the link up,
  bring it back. Any failure or link loss restarts the count of successes, so a flapping link
  stays down instead of following every flap (hysteresis).
* With ``probe = "none"`` the daemon still reports a passive check every interval (the link is
  up and the neighbour not failed), so the same counts give the same hysteresis.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from polroutd.core.record import record, replace

Cause = Literal["startup", "link", "neighbour", "probe"]
RECENT = 10  # probe results kept for /state


class ProbeResult(NamedTuple):
    at: float
    ok: bool
    duration: float | None  # seconds to the answer; None on failure
    reason: str | None = None  # why it failed: "timeout", "refused", "unreachable", ...
    sent: float | None = None  # when the probe left; None: a passive check, made at ``at``

    @property
    def started(self) -> float:
        return self.at if self.sent is None else self.sent


class LinkSeen(NamedTuple):
    at: float
    ok: bool  # up with carrier


class NeighbourSeen(NamedTuple):
    at: float
    failed: bool  # the gateway's entry is FAILED (else: reachable, stale, ... or being probed)


Observation = ProbeResult | LinkSeen | NeighbourSeen


@record
class Health:
    up: bool
    cause: Cause  # of the last transition (or of the initial state)
    since: float
    link_ok: bool = True
    neighbour_failed: bool = False
    failures: int = 0  # consecutive
    successes: int = 0  # consecutive, since the last failure or link loss
    # Only probes sent at or after this count as successes: requests queued while the link was
    # down (the neighbour layer holds them until ARP resolves) are answered all at once when it
    # comes back, and must not make up probe_up in an instant.
    counting_since: float = float("-inf")
    last_counted: float = float("-inf")  # when the last success that counted was answered
    recent: tuple[ProbeResult, ...] = ()
    transitions: int = 0


class Transition(NamedTuple):
    at: float
    up: bool
    cause: Cause


def initial(at: float, link_ok: bool) -> Health:
    """A new uplink is trusted when its link is up (a restart of the daemon must not take
    every uplink down until probes answer); probes take it down if the path is dead."""
    return Health(up=link_ok, cause="startup", since=at, link_ok=link_ok)


def observe(
    health: Health, seen: Observation, *, down_after: int, up_after: int, spacing: float = 0.0
) -> tuple[Health, Transition | None]:
    """The health after one observation, and the transition it caused, if any.

    ``spacing``: successes answered closer together than this count once (the daemon passes
    half the probe interval), so probe_up successes always span (probe_up - 1) intervals,
    even when a neighbour resolving at last releases several queued requests at once."""
    if isinstance(seen, LinkSeen):
        # Down or up, the count of successes starts over from this moment.
        health = replace(health, link_ok=seen.ok, successes=0,
                         counting_since=max(health.counting_since, seen.at))
        if not seen.ok:
            return _go(health, False, "link", seen.at)
        return health, None
    if isinstance(seen, NeighbourSeen):
        if seen.failed:
            return _go(replace(health, neighbour_failed=True, successes=0,
                               counting_since=max(health.counting_since, seen.at)),
                       False, "neighbour", seen.at)
        return replace(health, neighbour_failed=False), None
    recent = (*health.recent[-(RECENT - 1):], seen)
    if not seen.ok:
        health = replace(health, failures=health.failures + 1, successes=0, recent=recent,
                         counting_since=max(health.counting_since, seen.started))
        if health.failures >= down_after:
            return _go(health, False, "probe", seen.at)
        return health, None
    # An answer proves the gateway reachable, whatever the neighbour table said before.
    # Successes count only while the link is up, and only for probes sent since the last
    # reset: a flapping link, or a burst of answers to requests queued while it was down,
    # starts over.
    counts = (health.link_ok and seen.started >= health.counting_since
              and (health.successes == 0 or seen.at - health.last_counted >= spacing))
    health = replace(health, failures=0, recent=recent, neighbour_failed=False,
                     successes=health.successes + 1 if counts else health.successes,
                     last_counted=seen.at if counts else health.last_counted)
    if health.link_ok and health.successes >= up_after:
        return _go(health, True, "probe", seen.at)
    return health, None


def _go(health: Health, up: bool, cause: Cause, at: float) -> tuple[Health, Transition | None]:
    if health.up == up:
        return health, None
    changed = replace(health, up=up, cause=cause, since=at, transitions=health.transitions + 1)
    return changed, Transition(at, up, cause)
