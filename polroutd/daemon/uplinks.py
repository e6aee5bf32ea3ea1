"""The uplink monitor: turns link events, neighbour events and probe results into health.

It observes and counts; deciding is pure (core/health.py for the state machine, core/uplinks.py
for the routes). A transition calls ``on_change``, which makes the daemon reconcile with the
new health view. Probes run as tasks on the event loop and never wait for, or delay, a
reconcile (docs/uplinks.md).

The daemon's first reconcile runs before the event loop (daemon/loop.py): what it finds is
recorded, and probing starts with ``start``, on the loop. The probes' module (and asyncio) is
loaded then, and only when there is an uplink.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from polroutd.adapters.logs import get_logger
from polroutd.adapters.uplink_metrics import UplinkMetrics
from polroutd.core.decision import Decision
from polroutd.core.desired import managed_links
from polroutd.core.errors import KernelError, Overrun
from polroutd.core.health import (
    Health,
    LinkSeen,
    NeighbourSeen,
    Observation,
    ProbeResult,
    initial,
    observe,
)
from polroutd.core.kernelview import links_by_index
from polroutd.core.limits import AF_INET, AF_INET6
from polroutd.core.model import Link, Neighbour, family_name
from polroutd.core.record import record
from polroutd.core.settings import Config, UplinkSpec
from polroutd.inputs.carrier import CarrierFiles

if TYPE_CHECKING:
    import asyncio

    from polroutd.inputs.probes import IcmpProbes

log = get_logger("polroutd.uplinks")

Key = tuple[str, int]  # (interface, family)
NUD_REACHABLE = 0x02
# Carrier is also read from sysfs this often: link events can lag up to a second behind
# (inputs/carrier.py), and carrier loss is meant to move traffic within 100 ms (median).
CARRIER_POLL = 0.1
TIMER_SLACK = 0.001  # what is due within this is done in the same wake-up


class UplinkEvents(Protocol):
    def fileno(self) -> int: ...

    def drain(self) -> list[Link | Neighbour]: ...

    def close(self) -> None: ...


@record
class Uplink:
    """What one uplink and family is probed with, as the last reconcile found it."""

    interface: str
    ifindex: int
    family: int
    source: str | None  # the interface's first address of the family
    gateway: str | None
    spec: UplinkSpec


class UplinkMonitor:
    def __init__(
        self,
        *,
        metrics: UplinkMetrics,
        clock: Callable[[], float],
        wallclock: Callable[[], float],
        on_change: Callable[[], None],
        events_factory: Callable[[], UplinkEvents] | None,
    ) -> None:
        self._metrics = metrics
        self._clock = clock
        self._wallclock = wallclock
        self._on_change = on_change
        self._events_factory = events_factory
        self._events: UplinkEvents | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # set by ``start``
        self._uplinks: dict[Key, Uplink] = {}
        self._health: dict[Key, Health] = {}
        # One timer reads the carriers and starts every probe round when it is due: a
        # wake-up serves all uplinks, so probing costs little more than the probes themselves.
        # A plain timer handle, not a task sleeping in a loop: one event-loop pass per wake-up.
        self._timer: asyncio.Handle | None = None
        self._due: dict[Key, float] = {}  # when each uplink's next probe round starts
        self._next_poll = 0.0  # when the carriers are read next
        self._carriers = CarrierFiles()
        self._tcp_rounds: set[asyncio.Task[None]] = set()
        # The ping sockets, reused by every round (made on the first ICMP round).
        self._icmp: IcmpProbes | None = None
        self._active: set[Key] = set()
        self.icmp_error: str | None = None
        self._icmp_checked = False
        self.observations = 0  # moves with every observation: /state shows their results

    # --- what the daemon asks ---------------------------------------------------------------

    def view(self) -> dict[Key, bool]:
        """Health as the pure core takes it."""
        return {key: health.up for key, health in self._health.items()}

    def document(self) -> list[dict[str, Any]]:
        """``/state``'s ``uplinks``: one entry per uplink and family."""
        out = []
        for key, uplink in sorted(self._uplinks.items()):
            health = self._health[key]
            offset = self._wallclock() - self._clock()
            out.append({
                "interface": uplink.interface,
                "family": family_name(uplink.family),
                "up": health.up,
                "active": key in self._active,
                "cause": health.cause,
                "since": round(health.since + offset, 3),
                "transitions": health.transitions,
                "gateway": uplink.gateway,
                "source": uplink.source,
                "metric": uplink.spec.metric,
                "weight": uplink.spec.weight,
                "probe": _probe_text(uplink.spec),
                "recent_probes": [
                    {"at": round(r.at + offset, 3), "ok": r.ok,
                     "rtt_seconds": None if r.duration is None else round(r.duration, 6),
                     "reason": r.reason}
                    for r in health.recent
                ],
            })
        return out

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """On the running loop: events read and probes started for the uplinks known so far
        (``update`` before this only records them; events wait in their socket)."""
        import asyncio

        self._loop = asyncio.get_running_loop()
        if self._events is not None:
            self._loop.add_reader(self._events.fileno(), self._on_events)
        if self._uplinks and self._timer is None:
            self._start_timer()

    def _start_timer(self) -> None:
        assert self._loop is not None
        self._next_poll = self._clock()
        self._timer = self._loop.call_soon(self._tick)

    def close(self) -> None:
        self._stop_timer()
        self._carriers.close()
        if self._icmp is not None:
            self._icmp.close()
            self._icmp = None
        self._close_events()
        self._loop = None

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in self._tcp_rounds:
            task.cancel()

    def _open_events(self) -> None:
        if self._events is None and self._events_factory is not None:
            self._events = self._events_factory()
            if self._loop is not None:
                self._loop.add_reader(self._events.fileno(), self._on_events)

    def _close_events(self) -> None:
        if self._events is not None:
            if self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(self._events.fileno())
            self._events.close()
            self._events = None

    def update(self, decision: Decision, config: Config) -> None:
        """After each reconcile: learn which uplinks exist now, start and stop their probes,
        and publish which carry traffic."""
        found = _uplinks(decision, config)
        if found and self._events is None:
            self._open_events()
        elif not found:
            self._close_events()
            self._stop_timer()
        if found and self._timer is None and self._loop is not None:
            self._start_timer()
        if not self._icmp_checked and any(u.spec.probe.kind == "icmp" for u in found.values()):
            from polroutd.inputs.probes import icmp_unavailable

            self._icmp_checked = True
            self.icmp_error = icmp_unavailable()
            if self.icmp_error:
                log.error("icmp_probes_unavailable", error=self.icmp_error,
                          action="ICMP uplinks judged by link and neighbour events only")
        links = links_by_index(decision.state.links)  # kept while the links are unchanged
        now = self._clock()
        for key in self._uplinks.keys() - found.keys():
            self._forget(key)
        if self._icmp is not None:
            self._icmp.retain({u.source for u in found.values() if u.source is not None})
        self._carriers.retain({(u.interface, u.ifindex) for u in found.values()})
        for key, uplink in found.items():
            self._uplinks[key] = uplink
            if key not in self._health:
                link = links.get(uplink.ifindex)
                self._health[key] = initial(now, bool(link and link.up and link.carrier))
                self._publish(key)
            self._due.setdefault(key, now)
        active = {(c.interface, c.family) for c in decision.desired.uplinks if c.active}
        for key in found:
            self._metrics.active.labels(key[0], family_name(key[1])).set(key in active)
        self._active = active

    def _forget(self, key: Key) -> None:
        self._due.pop(key, None)
        self._uplinks.pop(key, None)
        self._health.pop(key, None)
        self._metrics.forget(key[0], family_name(key[1]))

    # --- observations -------------------------------------------------------------------------

    def _observe(self, key: Key, seen: Observation) -> None:
        uplink, health = self._uplinks.get(key), self._health.get(key)
        if uplink is None or health is None:
            return  # forgotten meanwhile (a probe that was under way)
        self.observations += 1
        health, transition = observe(health, seen, down_after=uplink.spec.down,
                                     up_after=uplink.spec.up, spacing=uplink.spec.interval / 2)
        self._health[key] = health
        if isinstance(seen, ProbeResult) and seen.reason != "passive":
            if seen.ok and seen.duration is not None:
                self._metrics.probe_duration.labels(uplink.interface).observe(seen.duration)
            elif not seen.ok:
                self._metrics.probe_failures.labels(uplink.interface, seen.reason or "error").inc()
        if transition is None:
            return
        to = "up" if transition.up else "down"
        self._metrics.transitions.labels(
            uplink.interface, family_name(key[1]), to, transition.cause
        ).inc()
        self._publish(key)
        log.warning(f"uplink_{to}", interface=uplink.interface, family=family_name(key[1]),
                    cause=transition.cause, gateway=uplink.gateway,
                    failures=health.failures, successes=health.successes)
        self._on_change()

    def _publish(self, key: Key) -> None:
        self._metrics.up.labels(key[0], family_name(key[1])).set(self._health[key].up)

    def _on_events(self) -> None:
        assert self._events is not None
        try:
            items = self._events.drain()
        except (Overrun, KernelError) as exc:
            log.warning("uplink_events_lost", error=str(exc), action="reopening; next reconcile "
                        "re-reads the links")
            self._close_events()
            self._open_events()
            return
        now = self._clock()
        for item in items:
            for key, uplink in list(self._uplinks.items()):
                if isinstance(item, Link):
                    if item.ifindex != uplink.ifindex:
                        continue
                    ok = item.up and item.carrier
                    if ok != self._health[key].link_ok:
                        self._observe(key, LinkSeen(now, ok))
                elif (item.ifindex, item.family, item.address) == (
                    uplink.ifindex, uplink.family, uplink.gateway
                ):
                    if item.failed:
                        self._observe(key, NeighbourSeen(now, True))
                    elif item.state & NUD_REACHABLE:
                        self._observe(key, NeighbourSeen(now, False))

    def _tick(self) -> None:
        """Reads the carriers every CARRIER_POLL and starts each uplink's probe round when it
        is due, then sets the timer for the next of either. Rounds never wait for each other
        (an answer or a timeout arrives as a callback later), so detection stays within
        ``interval * down + timeout``."""
        self._timer = None
        now = self._clock()
        try:
            if now >= self._next_poll - TIMER_SLACK:
                self._poll_carriers(now)
                self._next_poll = max(self._next_poll + CARRIER_POLL, now)
            for key, uplink in list(self._uplinks.items()):
                due = self._due.get(key)
                if due is not None and now >= due - TIMER_SLACK:
                    following = due + uplink.spec.interval
                    self._due[key] = following if following > now else now + uplink.spec.interval
                    self._start_round(key, uplink)
        finally:
            if self._timer is None and self._uplinks and self._loop is not None:
                # (not stopped or restarted meanwhile)
                wake = min([self._next_poll, *self._due.values()])
                self._timer = self._loop.call_later(
                    max(0.0, wake - self._clock()), self._tick)

    def _poll_carriers(self, now: float) -> None:
        """Only uplinks that carry traffic now are read: theirs is the loss that must move
        connections at once; a standby uplink's loss can wait for its link event."""
        read: dict[str, bool | None] = {}
        for key, uplink in list(self._uplinks.items()):
            health = self._health.get(key)
            if health is None or (key not in self._active and health.link_ok):
                continue
            if uplink.interface not in read:
                read[uplink.interface] = self._carriers.read(uplink.interface, uplink.ifindex)
            seen = read[uplink.interface]
            if seen is not None and seen != health.link_ok:
                self._observe(key, LinkSeen(now, seen))

    def _start_round(self, key: Key, uplink: Uplink) -> None:
        spec = uplink.spec
        probe = spec.probe
        health = self._health.get(key)
        if health is None:
            return
        passive = probe.kind == "none" or (probe.kind == "icmp" and self.icmp_error)
        if passive or uplink.source is None:
            # No active probe: the link and the neighbour table are all there is to go by.
            ok = health.link_ok and not health.neighbour_failed
            self._observe(key, ProbeResult(self._clock(), ok, None, "passive"))
            return
        if probe.kind == "tcp":
            assert probe.host is not None and probe.port is not None
            if _family_of(probe.host) == key[1] and self._loop is not None:
                task = self._loop.create_task(self._tcp_round(key, uplink))
                self._tcp_rounds.add(task)
                task.add_done_callback(self._tcp_rounds.discard)
            return
        targets = [t for t in probe.targets if _family_of(t) == key[1]] or (
            [uplink.gateway] if uplink.gateway else [])
        if not targets:
            return
        if self._icmp is None:
            from polroutd.inputs.probes import IcmpProbes

            self._icmp = IcmpProbes(self._clock)
        collect = _Round(len(targets), lambda result: self._observe(key, result))
        for n, target in enumerate(targets):
            try:
                self._icmp.probe(uplink.source, target, uplink.ifindex, spec.timeout,
                                 functools.partial(collect.add, n))
            except OSError as exc:
                log.warning("probe_socket_failed", interface=uplink.interface,
                            source=uplink.source, error=exc.strerror,
                            action="counted as a failed probe; retried next round")
                collect.add(n, ProbeResult(self._clock(), False, None, "no-socket"))

    async def _tcp_round(self, key: Key, uplink: Uplink) -> None:
        from polroutd.inputs.probes import tcp_probe

        probe = uplink.spec.probe
        assert uplink.source is not None and probe.host is not None and probe.port is not None
        self._observe(key, await tcp_probe(uplink.source, probe.host, probe.port, uplink.ifindex,
                                           uplink.spec.timeout, self._clock))


class _Round:
    """One probe round's results, one per target, reported together once every target has
    answered or timed out: the first success, else the last target's failure."""

    __slots__ = ("_report", "_results", "_waiting")

    def __init__(self, targets: int, report: Callable[[ProbeResult], None]) -> None:
        self._results: list[ProbeResult | None] = [None] * targets
        self._waiting = targets
        self._report = report

    def add(self, index: int, result: ProbeResult) -> None:
        if self._results[index] is not None:
            return
        self._results[index] = result
        self._waiting -= 1
        if self._waiting == 0:
            results = [r for r in self._results if r is not None]
            self._report(next((r for r in results if r.ok), results[-1]))


def _family_of(address: str) -> int:
    return AF_INET6 if ":" in address else AF_INET


def _probe_text(spec: UplinkSpec) -> str:
    if spec.probe.kind == "tcp":
        return f"tcp:{spec.probe.host}:{spec.probe.port}"
    return spec.probe.kind


def _uplinks(decision: Decision, config: Config) -> dict[Key, Uplink]:
    """The uplinks and families the last decision knows, with what probing needs."""
    if config.daemon.uplinks == "off":
        return {}
    specs = {link.name: spec.uplink for link, spec in managed_links(decision.state, config)
             if spec is not None and spec.uplink is not None}
    found: dict[Key, Uplink] = {}
    for iface in decision.desired.interfaces:
        spec = specs.get(iface.name)
        if spec is None:
            continue
        for family, gateway in ((AF_INET, iface.gateway4), (AF_INET6, iface.gateway6)):
            sources = [a.split("/")[0] for a in iface.addresses
                       if (":" in a) == (family == AF_INET6)]
            if not sources or not gateway.present:
                continue
            found[(iface.name, family)] = Uplink(
                iface.name, iface.index, family, sources[0], gateway.address, spec)
    return found
