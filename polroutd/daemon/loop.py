"""``polroutd run``: netlink events and timers drive reconciles; HTTP, metrics and systemd report.

All I/O comes in through ``Deps`` so the loop runs unchanged against a fake kernel and clock.
What is counted and logged about each reconcile is in tally.py, the reload in reload.py, the
supervision of the long-lived tasks in tasks.py.

The first reconcile needs no event loop: ``Daemon.start`` makes it before asyncio is even
imported (``run`` makes it when ``start`` was not called), so that a restart repairs the kernel
sooner; the loop reads the events queued meanwhile.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from polroutd.adapters.logs import get_logger
from polroutd.adapters.metrics import Metrics
from polroutd.core.decision import Decision
from polroutd.core.errors import ConfigError, KernelError, Overrun, is_starved
from polroutd.core.kernelview import (
    NOTHING_TOUCHED,
    Event,
    Touched,
    apply_events,
    apply_results,
    divergence,
)
from polroutd.core.model import DesiredState, KernelState, OpResult
from polroutd.core.record import field, record
from polroutd.core.schedule import Schedule
from polroutd.core.settings import Config
from polroutd.core.stateview import FullRead, LastReconcile, state_document
from polroutd.daemon.ahead import AHEAD_QUIET, AHEAD_TRIES, Ahead
from polroutd.daemon.deps import Deps, EventSource
from polroutd.daemon.flag import Flag
from polroutd.daemon.reload import reloaded_engine, retime
from polroutd.daemon.tally import Tally
from polroutd.engine import Engine
from polroutd.netlink.kernel import collector_paused

if TYPE_CHECKING:
    import asyncio

    from polroutd.daemon.tasks import Supervisor
    from polroutd.daemon.uplinks import UplinkMonitor

# Reconciles failing for lack of descriptors (or memory) this long: the daemon cannot do its job
# and says so (/healthz 503, no more WATCHDOG=1), so that systemd restarts it.
STARVED_GRACE = 30.0
# A wake-up for a lease's expiry comes this much after it: the lease is expired by then, though
# the wall clock (the lease's) and the monotonic clock (the schedule's) may differ by a little.
LEASE_EXPIRY_MARGIN = 0.02
SETTLE_READS = 3  # re-reads when events race a read; then the next reconcile takes over
# Reconciles that read everything again rather than trust the view kept from events.
FULL_READ_REASONS = frozenset({"startup", "resync", "reload", "retry"})
# Reconciles about something no event names (a lease's end, an uplink's health): every
# interface is decided again, from the view.
DECIDE_ALL_REASONS = frozenset({"lease-expiry", "uplink"})
EXIT_OK, EXIT_FAILED = 0, 1
SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)

log = get_logger("polroutd.daemon")


@record(frozen=False)
class Status:
    """What the last reconciles found; read by /state, /readyz and systemd's STATUS=."""

    decision: Decision | None = None
    results: list[OpResult] = field(default_factory=list)
    last: LastReconcile | None = None
    converged_once: bool = False
    in_sync: bool = False  # the last reconcile succeeded
    # The desired state of the last successful reconcile: drift is measured against it.
    last_good: DesiredState | None = None
    config_error: str | None = None
    full_read: FullRead | None = None
    # Since when (daemon clock) reconciles have failed for lack of descriptors or memory.
    starved_since: float | None = None

    def line(self) -> str:
        """systemd's STATUS= text."""
        decision = self.decision
        interfaces = len(decision.desired.interfaces) if decision else 0
        rules = len(decision.desired.rules) if decision else 0
        sync = "in sync" if self.in_sync else "NOT in sync"
        last = self.last
        done = f"last reconcile {last.result} ({last.reason})" if last else "starting"
        return f"{interfaces} interfaces, {rules} rules, {sync}; {done}"


class NoUplinks:
    """What the daemon sees of uplinks while its configuration has none (``daemon.uplinks =
    "off"``): no health, nothing probed (daemon/uplinks.py is not even loaded)."""

    observations = 0
    icmp_error: str | None = None

    def view(self) -> dict[tuple[str, int], bool]:
        return {}

    def document(self) -> list[dict[str, Any]]:
        return []

    def update(self, decision: Decision, config: Config) -> None:
        pass

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


NO_UPLINKS = NoUplinks()


# Events between two reconciles beyond which the next one reads the kernel in full instead of
# applying them to the view: applying thousands costs more than one dump. Deletions cost most
# (the kernel's silent flushes are modelled, the objects searched for: ~20-35 us each against
# ~5 us for an addition, measured at 1,024 and 4,096 rules), hence their own, lower bound:
# bench's storm (5,000 address events, half of them deletions) is read in full, as before,
# while a burst of 1,024 new addresses (~2,100 events with their routes) keeps its view.
INCREMENTAL_EVENT_LIMIT = 4096
INCREMENTAL_DELETION_LIMIT = 512
# Events read and waiting beyond which they are applied to the view at once, as the loop reads
# them (during a burst), rather than at the next quiet or reconcile: in batches, each event
# costs about half what it does applied alone.
APPLY_AS_READ = 64


class Daemon:
    def __init__(self, config: Config, deps: Deps, metrics: Metrics | None = None) -> None:
        self.config = config
        self.deps = deps
        self.tally = Tally(metrics)
        self.engine = Engine(config, deps.kernel, lease_reader=deps.lease_reader,
                             lease_warning=deps.lease_warning, clock=deps.wallclock)
        self._tables_file_error: str | None = None
        self.status = Status()
        self.schedule = Schedule(
            debounce=config.daemon.debounce,
            max_delay=config.daemon.max_delay,
            resync_interval=config.daemon.resync_interval,
            rng=deps.rng,
        )
        self._events: EventSource | None = None
        # The running loop, once ``run`` has it: until then events wait in their socket.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False  # the first reconcile made (``start``)
        # What the first reconcile raised (a bug: failures are results), if it raised: the
        # reconcile task re-raises it, so that it stops the daemon as it would later.
        self._start_error: Exception | None = None
        self._wake = Flag()
        # The moment the reconcile loop sleeps until (None: it is not sleeping): events that
        # leave its next step as late wake it no sooner (``_wakes_earlier``).
        self._sleeping_until: float | None = None
        self._stop = Flag()
        self._reload_requested = False
        self.starved_grace = STARVED_GRACE
        self._state_version = 0  # moves whenever /state may have changed
        # Links that events said went down since the last reconcile accounted for them: the
        # routes the kernel flushed with them are restored, not repaired as drift.
        self._went_down: set[int] = set()
        self._supervisor: Supervisor | None = None  # made by ``run``, on the loop
        # Set once the first reconcile has run, well or not: what can wait (the HTTP server,
        # the metrics library) is started then (daemon/service.py).
        self.first_reconcile = Flag()
        # The kernel as last read, with every event since applied (core/kernelview.py); None
        # when only a full read can be trusted (at start, after an overrun, a failed read or
        # operation, a reload, too many events). ``_pending``: the events not yet applied to
        # it; ``_touched``: what those applied since the view was last decided from touched;
        # ``_received``, ``_deletions``: how many events (deletions) came since then.
        self._view: KernelState | None = None
        self._pending: list[Event] = []
        self._touched = NOTHING_TOUCHED
        self._received = self._deletions = 0
        # The decision made ahead from the view while a reconcile waits for quiet, not yet
        # applied (only the reconcile applies, and reports, it); how many since the last.
        self._ahead: Ahead | None = None
        self._ahead_tries = 0
        # Whether the last decision from the view was a full one (interfaces joined, say):
        # that read the names files again, as a full reconcile does.
        self._decided_in_full = False
        # --- uplinks (daemon/uplinks.py): health observed apart, fed to the core ---
        self._uplinks: UplinkMonitor | None = None

    @property
    def uplinks(self) -> UplinkMonitor | NoUplinks:
        """The uplink monitor, made (and its module loaded) once the configuration has uplinks
        (at start, or from a reload on); before, there is nothing to observe."""
        if self._uplinks is None and self.config.daemon.uplinks != "off":
            from polroutd.daemon.uplinks import UplinkMonitor

            self._uplinks = UplinkMonitor(
                metrics=self.tally.metrics.uplinks, clock=self.deps.clock,
                wallclock=self.deps.wallclock, on_change=self._uplink_changed,
                events_factory=self.deps.uplink_events_factory,
            )
            if self._loop is not None:
                self._uplinks.start()
        return NO_UPLINKS if self._uplinks is None else self._uplinks

    def _uplink_changed(self) -> None:
        self.schedule.mark_dirty(self.deps.clock(), "uplink")
        self._wake.set()

    # --- control ------------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def request_reload(self) -> None:
        self._reload_requested = True
        self._wake.set()

    # --- the StateProvider the HTTP API reads ----------------------------------------------------

    def health(self) -> tuple[bool, str]:
        if self._events is None:
            return False, "netlink event socket is closed"
        dead = self._supervisor.dead() if self._supervisor is not None else []
        if dead:
            return False, f"task stopped: {', '.join(dead)}"
        since = self.status.starved_since
        if since is not None and self.deps.clock() - since >= self.starved_grace:
            return False, (f"out of file descriptors or memory: reconciles have failed for "
                           f"{self.deps.clock() - since:.0f} s")
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        s = self.status
        if not s.converged_once:
            return False, "the first reconcile has not converged yet"
        if not s.in_sync and s.decision is not None and s.decision.plan.conflicts:
            count = len(s.decision.plan.conflicts)
            return False, f"{count} foreign object(s) in polroutd's way; see /state conflicts"
        if not s.in_sync:
            return False, "the last reconcile failed; see /state last_reconcile.errors"
        return True, "ready"

    def state(self) -> dict[str, Any]:
        document = self._state_document()
        document["uplinks"] = self.uplinks.document()
        document["uplinks_error"] = self.uplinks.icmp_error
        return document

    def _state_document(self) -> dict[str, Any]:
        s = self.status
        return state_document(
            decision=s.decision,
            results=s.results,
            last=s.last,
            counters=self.tally.counters,
            config_file=self.config.source,
            mode=self.config.daemon.mode,
            protocol=self.engine.protocol,
            config_error=s.config_error,
            ready=self.readiness()[0],
            in_sync=s.in_sync,
            full_read=s.full_read,
        )

    def state_version(self) -> int:
        """/state is served from one serialisation per version: reconciles, reloads and
        overruns move it (event counts show up with the reconcile they cause), and so does every
        uplink observation (probe results are part of the document)."""
        return self._state_version + self.uplinks.observations

    def metrics(self) -> bytes:
        return self.tally.metrics.exposition()

    # --- running --------------------------------------------------------------------------------

    def start(self) -> None:
        """The first reconcile, with no event loop (``run`` follows): the event socket is
        opened first, so that every change from then on waits in it for the loop; SIGTERM,
        SIGINT and SIGHUP are caught meanwhile and acted on once the loop runs, as they would
        be by the loop itself."""
        for sig, handler in self._signal_handlers():

            def caught(_number: int, _frame: object, act: Callable[[], None] = handler) -> None:
                act()

            with contextlib.suppress(ValueError):  # not the main thread: the loop's will do
                signal.signal(sig, caught)
        self._first_reconcile()

    def _signal_handlers(self) -> tuple[tuple[signal.Signals, Callable[[], None]], ...]:
        return ((signal.SIGHUP, self.request_reload), (signal.SIGTERM, self.request_stop),
                (signal.SIGINT, self.request_stop))

    def _first_reconcile(self) -> None:
        self._started = True
        self._open_events()
        self.schedule.mark_dirty(self.deps.clock(), "startup")
        self.deps.notifier.status("starting: first reconcile")
        self.schedule.started(self.deps.clock())
        try:
            success = self.reconcile("startup")
        except Exception as exc:
            self._start_error = exc
            return
        self.schedule.finished(self.deps.clock(), success)

    async def run(self, services: Mapping[str, Coroutine[Any, Any, None]] | None = None) -> int:
        """Until stopped (0, or 1 when the cleanup failed) or a supervised task failed (1).
        Makes the first reconcile first, unless ``start`` did.

        ``services`` are more long-lived tasks to supervise with the daemon's own (the HTTP
        server, started by the caller so that it answers before READY=1)."""
        import asyncio  # here: ``start`` and the first reconcile run before it is imported

        from polroutd.daemon.tasks import Supervisor

        loop = self._loop = asyncio.get_running_loop()
        self._supervisor = Supervisor(self._stop)
        for sig, handler in self._signal_handlers():
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, handler)
        try:
            if not self._started:
                self._first_reconcile()
            if self._events is not None:  # what arrived during the first reconcile is read now
                loop.add_reader(self._events.fileno(), self._on_events)
            self.uplinks.start()
            for name, coro in (services or {}).items():
                self._supervisor.start(name, coro)
            self._supervisor.start("reconcile", self._reconcile_loop())
            interval = self.deps.notifier.watchdog_interval()
            if interval:
                self._supervisor.start("watchdog", self._watchdog_loop(interval))
            failed = await self._supervisor.wait()
            return EXIT_FAILED if failed else await self._shutdown()
        finally:
            await self._supervisor.cancel_all()
            for sig in SIGNALS:
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            self.uplinks.close()
            self._close_events()
            self._loop = None

    async def _shutdown(self) -> int:
        self.deps.notifier.stopping()
        if not self.config.daemon.cleanup_on_exit:
            log.info("stopping", kernel_state="left in place")
            return EXIT_OK
        try:
            results = self.engine.flush()
        except KernelError as exc:
            log.error("cleanup_failed", error=str(exc))
            return EXIT_FAILED
        failed = [r for r in results if not r.ok]
        log.info(
            "stopping",
            kernel_state="removed",
            removed=len(results) - len(failed),
            failed=len(failed),
        )
        return EXIT_FAILED if failed else EXIT_OK

    def _open_events(self) -> None:
        self._events = self.deps.events_factory()
        if self._loop is not None:
            self._loop.add_reader(self._events.fileno(), self._on_events)

    def _close_events(self) -> None:
        if self._events is not None:
            if self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(self._events.fileno())
            self._events.close()
            self._events = None

    def _on_events(self) -> None:
        if not self._consume_events():
            return
        now = self.deps.clock()
        self.schedule.mark_dirty(now, "event")
        if self._wakes_earlier(now):
            self._wake.set()
            if self.schedule.due(now)[0] <= now:
                return  # a reconcile is due at once: it applies them, without this delay
        if len(self._pending) >= APPLY_AS_READ:
            # Applied to the view while a burst still runs, not all after its last event.
            with collector_paused():
                self._apply_pending()

    def _wakes_earlier(self, now: float) -> bool:
        """Whether the reconcile loop must wake for the events just read: it is not waiting,
        or they make its next step (a reconcile, a decision ahead) due before the moment it
        waits for. In a burst each event only puts both off: waking the loop for each (a
        turn of the loop and a new timer each time) cost the daemon more than reading it."""
        until = self._sleeping_until
        if until is None:
            return True
        at, reason = self.schedule.due(now)
        ahead = self._ahead_at(reason)
        return (at if ahead is None else min(at, ahead)) < until

    def _consume_events(self) -> bool:
        """Counts the queued events; True when there were any (or the socket overran)."""
        assert self._events is not None
        try:
            events = self._events.drain()
        except Overrun:
            self.tally.overrun()
            self._drop_view()  # events were lost: only a full read tells what changed
            self._state_version += 1
            self._close_events()
            self._open_events()
            return True
        self.tally.events(events)
        if self._view is not None:
            self._pending.extend(events)
            self._received += len(events)
            self._deletions += sum(e.change == "del" for e in events)
            if (self._received > INCREMENTAL_EVENT_LIMIT
                    or self._deletions > INCREMENTAL_DELETION_LIMIT):
                # A storm: one full read costs less than applying each event to the view
                # (and comparing the two), so the view is dropped and rebuilt from the read.
                self._drop_view()
        self._went_down.update(e.ifindex for e in events if e.went_down and e.ifindex is not None)
        return bool(events)

    def _apply_pending(self) -> None:
        """Applies the pending events to the view (once APPLY_AS_READ of them wait, and before
        any decision). Events are hints all the same: one that says too little drops the view
        (a full read follows)."""
        events, self._pending = self._pending, []
        if self._view is None or not events:
            return
        applied = apply_events(self._view, events)
        if applied is None:
            self._drop_view()
            return
        self._view, touched = applied
        self._touched = self._touched.then(touched)

    def _drop_view(self) -> None:
        self._view, self._pending = None, []
        self._touched, self._received, self._deletions = NOTHING_TOUCHED, 0, 0
        self._withdraw_ahead()

    def _withdraw_ahead(self) -> None:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.withdraw()

    def _events_pending(self) -> bool:
        return self._events is not None and self._consume_events()

    def _read_settled(self) -> tuple[KernelState, bool]:
        """A kernel read that no change raced: links, addresses, routes and rules are dumped
        one after another, so a change between two dumps (an address deleted after the address
        dump, its routes flushed before the route dump) would look like drift. Events that
        arrived during the read are consumed by reading again.

        The view kept from events, brought up to date first, is compared with the read: every
        difference is counted (polroutd_cache_divergence_total) and the read replaces it. With
        the read, whether it found the view exactly right (then the decisions made from the
        view since the last full one hold for it too)."""
        if self._events is not None:
            self._consume_events()
        self._apply_pending()
        view = self._view
        self._drop_view()
        state = self.deps.kernel.read_state()
        raced = False
        for _ in range(SETTLE_READS):
            if not self._events_pending():
                break
            raced = True
            state = self.deps.kernel.read_state()
        found = None if view is None or raced else tuple(divergence(view, state))
        self.tally.divergence(found or ())
        self.status.full_read = FullRead(self.deps.wallclock(), found)
        return state, found == ()

    async def _reconcile_loop(self) -> None:
        import asyncio

        if self._start_error is not None:
            raise self._start_error
        while not self._stop.is_set():
            if self._reload_requested:
                self._reload_requested = False
                self._reload()
            now = self.deps.clock()
            at, reason = self.schedule.due(now)
            if at > now:
                ahead = self._ahead_at(reason)
                if ahead is not None and ahead <= now:
                    self._decide_ahead(reason)
                    continue
                self._wake.clear()
                until = at if ahead is None else min(at, ahead)
                self._sleeping_until = until
                try:
                    await self._wake.wait_at_most(until - now)
                finally:
                    self._sleeping_until = None
                continue
            self.schedule.started(now)
            success = self.reconcile(reason)
            self.schedule.finished(self.deps.clock(), success)
            await asyncio.sleep(0)  # let events and HTTP in between reconciles

    async def _watchdog_loop(self, interval: float) -> None:
        import asyncio

        while True:
            if self.health()[0]:
                self.deps.notifier.watchdog()
            await asyncio.sleep(interval)

    def _reload(self) -> None:
        self.deps.notifier.reloading()
        try:
            engine = reloaded_engine(self.engine, self.deps)
        except Exception as exc:  # whatever a reload meets, the daemon keeps the old config
            self.status.config_error = str(exc) if isinstance(exc, ConfigError) else (
                f"reload failed: {type(exc).__name__}: {exc}")
            self.tally.reload(ok=False)
            log.error("reload_failed", error=str(exc), action="keeping the previous configuration")
        else:
            if engine.protocol != self.engine.protocol:
                # Everything changes owner: nothing of the next reconcile is drift.
                self.status.last_good = None
            self.config, self.engine = engine.config, engine
            self._drop_view()  # a new configuration is decided from a full read
            self.status.config_error = None
            retime(self.schedule, engine.config.daemon)
            self.tally.reload(ok=True)
            self.schedule.mark_dirty(self.deps.clock(), "reload")
            log.info("reloaded", config=engine.config.source)
        self._state_version += 1
        if self.status.converged_once:  # before that, READY=1 waits for convergence
            self.deps.notifier.ready()

    # --- deciding ahead, while the debounce waits ------------------------------------------------

    def _ahead_at(self, reason: str) -> float | None:
        """When to apply the pending events and decide ahead for the reconcile due for
        ``reason`` (after AHEAD_QUIET of quiet), or None: nothing to do ahead (no view, a full
        read is due, nothing pending and decided already for this view, or tried enough)."""
        s = self.schedule
        if (s.dirty_since is None or reason in FULL_READ_REASONS or self._view is None
                or self._events is None):
            return None
        if not self._pending and (self._ahead_tries >= AHEAD_TRIES or (
                self._ahead is not None and self._ahead.view is self._view)):
            return None
        return s.last_event + AHEAD_QUIET

    def _decide_ahead(self, reason: str) -> None:
        """The pending events applied to the view, and the decision the reconcile due for
        ``reason`` will make if nothing changes until then made now: nothing is applied to the
        kernel, reported or counted. What the engine builds on is kept to withdraw it
        (``Ahead.withdraw``)."""
        if self._events_pending():  # events not read yet (the loop was busy): no quiet
            self.schedule.mark_dirty(self.deps.clock(), "event")
            return
        self._withdraw_ahead()
        with collector_paused():
            self._apply_pending()
        view = self._view
        if view is None or self._ahead_tries >= AHEAD_TRIES:
            return
        self._ahead_tries += 1
        engine = self.engine
        engine.uplink_health = self.uplinks.view()
        checkpoint = engine.checkpoint()
        decide_all = reason in DECIDE_ALL_REASONS
        try:
            with collector_paused():
                decision = self._decide_view(view, self._touched, decide_all)
        except (KernelError, OSError, ConfigError):
            engine.rollback(checkpoint)  # the reconcile meets it again, and reports it
            return
        self._ahead = Ahead(view, decide_all, engine.uplink_health, engine, checkpoint, decision,
                            self._decided_in_full)

    # --- one reconcile --------------------------------------------------------------------------

    def _decide_from_events(self, reason: str) -> Decision | None:
        """The decision from the view kept from events, for the interfaces they touched (or
        for all, when that cannot tell or ``reason`` is not about events); None when a full
        read is needed. The decision made ahead, when it holds."""
        self._apply_pending()
        state, touched = self._view, self._touched
        ahead, self._ahead = self._ahead, None
        decide_all = reason in DECIDE_ALL_REASONS
        if ahead is not None and not ahead.holds(self.engine, state, decide_all):
            ahead.withdraw()
            ahead = None
        if state is None:
            return None
        self._touched, self._received, self._deletions = NOTHING_TOUCHED, 0, 0
        if ahead is not None:
            self._decided_in_full = ahead.in_full
            return ahead.decision
        return self._decide_view(state, touched, decide_all)

    def _decide_view(self, state: KernelState, touched: Touched, decide_all: bool) -> Decision:
        """The decision for the view: only for the touched interfaces when that can tell
        (``_decided_in_full`` says which it was)."""
        decision = None if decide_all else self.engine.decide_touched(state, touched)
        self._decided_in_full = decision is None
        return decision or self.engine.decide(state)

    def reconcile(self, reason: str) -> bool:
        # No collection in the middle of an event's path: the young objects then include the
        # view's new lists (thousands of references each, walked by every collection), and a
        # collection rarely frees anything here. It runs after, off the path to the kernel.
        with collector_paused():
            return self._reconcile(reason)

    def _reconcile(self, reason: str) -> bool:
        started = self.deps.clock()
        mode = "full"
        self.engine.uplink_health = self.uplinks.view()  # uplinks: health is a core input
        self._ahead_tries = 0
        try:
            decision = None
            if reason not in FULL_READ_REASONS and self._events is not None:
                self._consume_events()  # without an event socket, nothing keeps a view
                decision = self._decide_from_events(reason)
                mode = "incremental" if decision is not None else "full"
            self._withdraw_ahead()  # not used: the decision is made from a read
            if decision is None:
                state, verified = self._read_settled()
                if verified and reason == "resync":
                    # The periodic read found the view right: what was decided from it stands,
                    # and only what no event announces (lease files, recorded tables, names)
                    # is looked at again, as after an event that touched nothing.
                    decision = self.engine.decide_touched(state, NOTHING_TOUCHED)
                if decision is None:
                    decision = self.engine.decide(state)
            went_down = frozenset(self._went_down)  # every event up to the decision included
        except (KernelError, OSError, ConfigError) as exc:
            # Never plan from a partial picture: nothing is applied, the read is retried. (A
            # ConfigError here is one only the kernel reveals, e.g. table_range exhausted by
            # hot-plugged interfaces: reported and retried, not fatal.)
            self._drop_view()
            return self._finish(started, reason, None, [], read_error=str(exc), mode=mode,
                                starved=is_starved(exc))
        self._wake_at_lease_expiry(decision)
        previous = self.status.last_good
        try:
            results = self.engine.apply(decision)
        except (KernelError, OSError) as exc:
            self._drop_view()
            return self._finish(started, reason, decision, [], read_error=str(exc), mode=mode,
                                starved=is_starved(exc))
        # READY=1 as soon as the kernel is as desired; the accounting, the logs and the view
        # follow (nothing reads the view before the next reconcile: after a cold start at
        # 1,024 rules, bringing it up to date costs several milliseconds).
        success = self._finish(started, reason, decision, results, mode=mode)
        # The view follows what was applied; after a failure only a full read is trusted.
        if all(r.ok for r in results):
            self._view = apply_results(decision.state, results)
        else:
            self._drop_view()
        if success:
            self.engine.adopted()
        self.tally.operations(decision, previous, results, went_down)
        self._went_down -= went_down
        self._report_tables_file()
        if mode == "incremental" and not self._decided_in_full and self.engine.names_changed():
            # Looked at after the apply, not before: the names files' stats would delay every
            # event. A change no event announces is decided in full right after. (A full
            # decision read them, as a full reconcile does: what changed them since is the
            # records file it wrote, seen by the next full decision.)
            self.schedule.mark_dirty(self.deps.clock(), "names")
            self._wake.set()
        return success

    def _wake_at_lease_expiry(self, decision: Decision) -> None:
        """A default route from a DHCP lease leaves when the lease expires, not at the next
        resync: the schedule wakes then."""
        expires = self.engine.earliest_lease_expiry(decision)
        if expires is not None:
            left = max(0.0, expires - self.deps.wallclock())
            self.schedule.wake(self.deps.clock() + left + LEASE_EXPIRY_MARGIN, "lease-expiry")

    def _report_tables_file(self) -> None:
        error = self.engine.tables_file_error
        if error != self._tables_file_error and error is not None:
            log.warning("rt_tables_file_not_written", error=error,
                        action="applied anyway; ip shows table numbers, not names")
        self._tables_file_error = error

    def _finish(
        self,
        started: float,
        reason: str,
        decision: Decision | None,
        results: list[OpResult],
        read_error: str | None = None,
        mode: str = "full",
        starved: bool = False,
    ) -> bool:
        failures = tuple(r for r in results if not r.ok)
        success = read_error is None and not failures
        duration = self.deps.clock() - started
        finished_at = self.deps.wallclock()
        s = self.status
        self._state_version += 1
        if not starved:
            s.starved_since = None
        elif s.starved_since is None:
            s.starved_since = started
        s.last = LastReconcile(
            at=finished_at,
            duration=duration,
            result="ok" if success else "error",
            reason=reason,
            operations=len(results),
            failures=failures,
            read_error=read_error,
            mode=mode,
        )
        # A foreign object where polroutd wants its own (e.g. a VRF later created on one of its
        # table numbers) leaves the kernel not as desired, though nothing failed.
        conflicts = decision.plan.conflicts if decision is not None else ()
        self.tally.reconcile(success=success, in_sync=success and not conflicts,
                             duration=duration, finished_at=finished_at, mode=mode)
        if read_error is not None:
            log.warning(
                "reconcile_failed",
                reason=reason,
                error=read_error,
                action="nothing applied; retrying with backoff",
            )
        if decision is not None:
            s.decision, s.results = decision, results
        s.in_sync = success and not conflicts
        if success and decision is not None:
            s.last_good = decision.desired
        first_convergence = success and not s.converged_once
        if first_convergence:
            # READY=1 before the gauges are set: at 1,024 rules they cost milliseconds, and
            # nothing reads them before this reconcile returns to the loop.
            s.converged_once = True
            self.deps.notifier.ready()
        if decision is not None:
            self.tally.gauges(decision, results, self.engine.protocol)
            self.uplinks.update(decision, self.config)  # uplinks: start/stop probes
        if first_convergence:
            log.info("ready", interfaces=len(decision.desired.interfaces) if decision else 0)
        self.deps.notifier.status(s.line())
        self.first_reconcile.set()
        return success
