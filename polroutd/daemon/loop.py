"""``polroutd run``: netlink events and timers drive reconciles; HTTP, metrics and systemd report.

All I/O comes in through ``Deps`` so the loop runs unchanged against a fake kernel and clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from polroutd.adapters.logs import get_logger
from polroutd.adapters.metrics import Metrics
from polroutd.core.decision import Decision
from polroutd.core.describe import operation_text
from polroutd.core.errors import ConfigError, KernelError, Overrun
from polroutd.core.limits import AF_INET, AF_INET6, FAMILIES
from polroutd.core.model import DesiredState, KernelState, Operation, OpResult, RuleOp, family_name
from polroutd.core.plan import Classified, classify
from polroutd.core.schedule import Schedule
from polroutd.core.settings import Config
from polroutd.core.stateview import LastReconcile, state_document
from polroutd.daemon.uplinks import UplinkEvents, UplinkMonitor
from polroutd.engine import Engine, Kernel, LeaseReader
from polroutd.netlink import codec as rtnl

# Races of hot-unplug and link-down: the next event-driven reconcile settles them.
EXPECTED_ERRNOS = frozenset({errno.ENODEV, errno.ENETDOWN})
LOG_EACH_UP_TO = 32  # operations logged one line each; more are logged one line per cause
SETTLE_READS = 3  # re-reads when events race a read; then the next reconcile takes over

log = get_logger("polroutd.daemon")


class EventSource(Protocol):
    def fileno(self) -> int: ...

    def drain(self) -> list[rtnl.Message]: ...

    def close(self) -> None: ...


class Notifier(Protocol):
    def ready(self) -> None: ...

    def reloading(self) -> None: ...

    def stopping(self) -> None: ...

    def status(self, text: str) -> None: ...

    def watchdog(self) -> None: ...

    def watchdog_interval(self) -> float | None: ...


@dataclass
class Deps:
    """The daemon's outside world."""

    kernel: Kernel
    events_factory: Callable[[], EventSource]
    notifier: Notifier
    load_config: Callable[[], Config]
    lease_reader: LeaseReader | None = None
    clock: Callable[[], float] = time.monotonic
    wallclock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)  # jitters the resync
    on_started: Callable[[Daemon], Any] | None = None  # e.g. start the HTTP server
    uplink_events_factory: Callable[[], UplinkEvents] | None = None  # None: no link/neigh events


@dataclass
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
    counters: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            (
                "reconciles_ok",
                "reconciles_error",
                "drift",
                "repairs",
                "changes",
                "operation_errors",
                "netlink_events",
                "netlink_overruns",
                "config_reloads_ok",
                "config_reloads_error",
            ),
            0,
        )
    )


class Daemon:
    def __init__(self, config: Config, deps: Deps, metrics: Metrics | None = None) -> None:
        self.config = config
        self.deps = deps
        self.prom = metrics or Metrics()
        self.engine = Engine(config, deps.kernel, lease_reader=deps.lease_reader)
        # Operations that failed last time: retrying one is not new drift.
        self._failed_last: set[Operation] = set()
        self._tables_file_error: str | None = None
        self.status = Status()
        self.schedule = Schedule(
            debounce=config.daemon.debounce,
            max_delay=config.daemon.max_delay,
            resync_interval=config.daemon.resync_interval,
            rng=deps.rng,
        )
        self._events: EventSource | None = None
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._reload_requested = False
        self._tasks: list[asyncio.Task[None]] = []
        self._gateway_labels: set[tuple[str, str]] = set()
        # --- uplinks (daemon/uplinks.py): health observed apart, fed to the core ---
        self.uplinks = UplinkMonitor(
            metrics=self.prom.uplinks, clock=deps.clock, wallclock=deps.wallclock,
            on_change=self._uplink_changed, events_factory=deps.uplink_events_factory,
        )

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
        dead = [t.get_name() for t in self._tasks if t.done()]
        if dead:
            return False, f"task stopped: {', '.join(dead)}"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        s = self.status
        if not s.converged_once:
            return False, "the first reconcile has not converged yet"
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
            counters=s.counters,
            config_file=self.config.source,
            mode=self.config.daemon.mode,
            protocol=self.engine.protocol,
            config_error=s.config_error,
            ready=self.readiness()[0],
            in_sync=s.in_sync,
        )

    def metrics(self) -> bytes:
        return self.prom.exposition()

    # --- running --------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self._open_events()
        self.schedule.mark_dirty(self.deps.clock(), "startup")
        for sig, handler in (
            (signal.SIGHUP, self.request_reload),
            (signal.SIGTERM, self.request_stop),
            (signal.SIGINT, self.request_stop),
        ):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, handler)
        if self.deps.on_started is not None:  # HTTP answers before READY=1 can be sent
            started = self.deps.on_started(self)
            if asyncio.iscoroutine(started):
                await started
        self.deps.notifier.status("starting: first reconcile")
        self._tasks = [asyncio.create_task(self._reconcile_loop(), name="reconcile")]
        interval = self.deps.notifier.watchdog_interval()
        if interval:
            self._tasks.append(asyncio.create_task(self._watchdog_loop(interval), name="watchdog"))
        stopper = asyncio.create_task(self._stop.wait(), name="stop")
        try:
            done, _ = await asyncio.wait(
                [*self._tasks, stopper], return_when=asyncio.FIRST_COMPLETED
            )
            failed = [
                t
                for t in done
                if t is not stopper and not t.cancelled() and t.exception() is not None
            ]
            for task in failed:
                exc = task.exception()
                log.error("task_failed", task=task.get_name(), error=repr(exc))
            return 1 if failed else await self._shutdown()
        finally:
            for task in (*self._tasks, stopper):
                task.cancel()
            await asyncio.gather(*self._tasks, stopper, return_exceptions=True)
            for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            self.uplinks.close()
            self._close_events()

    async def _shutdown(self) -> int:
        self.deps.notifier.stopping()
        if not self.config.daemon.cleanup_on_exit:
            log.info("stopping", kernel_state="left in place")
            return 0
        try:
            state = self.deps.kernel.read_state()
            plan = self.engine.flush_plan(state)
            results = self.deps.kernel.apply(plan.operations) if plan.operations else []
        except KernelError as exc:
            log.error("cleanup_failed", error=str(exc))
            return 1
        failed = [r for r in results if not r.ok]
        log.info(
            "stopping",
            kernel_state="removed",
            removed=len(results) - len(failed),
            failed=len(failed),
        )
        return 1 if failed else 0

    def _open_events(self) -> None:
        self._events = self.deps.events_factory()
        asyncio.get_running_loop().add_reader(self._events.fileno(), self._on_events)

    def _close_events(self) -> None:
        if self._events is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._events.fileno())
            self._events.close()
            self._events = None

    def _on_events(self) -> None:
        if self._consume_events():
            self.schedule.mark_dirty(self.deps.clock(), "event")
            self._wake.set()

    def _consume_events(self) -> bool:
        """Counts the queued events; True when there were any (or the socket overran)."""
        assert self._events is not None
        try:
            messages = self._events.drain()
        except Overrun:
            self.prom.netlink_overruns.inc()
            self.status.counters["netlink_overruns"] += 1
            log.warning("netlink_overrun", action="reopening the event socket, full resync")
            self._close_events()
            self._open_events()
            return True
        counts: dict[str, int] = {}
        for msg in messages:
            kind = rtnl.EVENT_TYPES[msg.type]
            counts[kind] = counts.get(kind, 0) + 1
        for kind, count in counts.items():
            self.prom.netlink_events.labels(type=kind).inc(count)
        self.status.counters["netlink_events"] += len(messages)
        return bool(messages)

    def _events_pending(self) -> bool:
        return self._events is not None and self._consume_events()

    def _read_settled(self) -> KernelState:
        """A kernel read that no change raced: links, addresses, routes and rules are dumped
        one after another, so a change between two dumps (an address deleted after the address
        dump, its routes flushed before the route dump) would look like drift. Events that
        arrived during the read are consumed by reading again."""
        state = self.deps.kernel.read_state()
        for _ in range(SETTLE_READS):
            if not self._events_pending():
                break
            state = self.deps.kernel.read_state()
        return state

    async def _reconcile_loop(self) -> None:
        while not self._stop.is_set():
            if self._reload_requested:
                self._reload_requested = False
                self._reload()
            now = self.deps.clock()
            at, reason = self.schedule.due(now)
            if at > now:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), at - now)
                continue
            self.schedule.started(now)
            success = self.reconcile(reason)
            self.schedule.finished(self.deps.clock(), success)
            await asyncio.sleep(0)  # let events and HTTP in between reconciles

    async def _watchdog_loop(self, interval: float) -> None:
        while True:
            if self.health()[0]:
                self.deps.notifier.watchdog()
            await asyncio.sleep(interval)

    def _reload(self) -> None:
        self.deps.notifier.reloading()
        try:
            config = self.deps.load_config()
            engine = Engine(config, self.deps.kernel, lease_reader=self.deps.lease_reader,
                            applied_tables=self.engine.applied_tables)
        except ConfigError as exc:
            self.status.config_error = str(exc)
            self.prom.config_reloads.labels(result="error").inc()
            self.status.counters["config_reloads_error"] += 1
            log.error("reload_failed", error=str(exc), action="keeping the previous configuration")
        else:
            for key in ("http_listen", "log_format", "log_level"):
                if getattr(config.daemon, key) != getattr(self.config.daemon, key):
                    log.warning(f"reload_{key}_ignored", reason="takes effect on restart")
            self.config, self.engine = config, engine
            self.status.config_error = None
            self.schedule.debounce = config.daemon.debounce
            self.schedule.max_delay = config.daemon.max_delay
            self.schedule.resync_interval = config.daemon.resync_interval
            self.prom.config_reloads.labels(result="ok").inc()
            self.status.counters["config_reloads_ok"] += 1
            self.schedule.mark_dirty(self.deps.clock(), "reload")
            log.info("reloaded", config=config.source)
        if self.status.converged_once:  # before that, READY=1 waits for convergence
            self.deps.notifier.ready()

    # --- one reconcile --------------------------------------------------------------------------

    def reconcile(self, reason: str) -> bool:
        started = self.deps.clock()
        self.engine.uplink_health = self.uplinks.view()  # uplinks: health is a core input
        try:
            decision = self.engine.decide(self._read_settled())
        except (KernelError, OSError, ConfigError) as exc:
            # Never plan from a partial picture: nothing is applied, the read is retried. (A
            # ConfigError here is one only the kernel reveals, e.g. table_range exhausted by
            # hot-plugged interfaces: reported and retried, not fatal.)
            return self._finish(started, reason, None, [], read_error=str(exc))
        previous = self.status.last_good
        try:
            results = self.engine.apply(decision)
        except (KernelError, OSError) as exc:
            return self._finish(started, reason, decision, [], read_error=str(exc))
        # READY=1 as soon as the kernel is as desired; the accounting and the logs follow.
        success = self._finish(started, reason, decision, results)
        causes = classify(decision.plan, previous, decision.desired)
        applied, failed = self._account(causes, results)
        self._log_operations(decision, applied, failed)
        self._report_tables_file()
        return success

    def _report_tables_file(self) -> None:
        error = self.engine.tables_file_error
        if error != self._tables_file_error and error is not None:
            log.warning("rt_tables_file_not_written", error=error,
                        action="applied anyway; ip shows table numbers, not names")
        self._tables_file_error = error

    def _account(
        self, causes: list[Classified], results: list[OpResult]
    ) -> tuple[list[Classified], list[tuple[Classified, OpResult]]]:
        """Counts drift, repairs, changes and errors; returns what was applied and what failed."""
        outcome = {id(r.operation): r for r in results}
        tally: Counter[tuple[str, str, str]] = Counter()
        applied: list[Classified] = []
        failed: list[tuple[Classified, OpResult]] = []
        for item in causes:
            op = item.operation
            result = outcome.get(id(op))
            if item.cause == "drift" and op not in self._failed_last:  # a retry is not new drift
                tally["drift", op.kind, item.drift or ""] += 1
            if result is None:
                continue
            if result.ok:
                tally["repairs" if item.cause == "drift" else "changes", op.kind, op.op] += 1
                applied.append(item)
            else:
                tally["operation_errors", op.kind, op.op] += 1
                self.prom.operation_errors.labels(
                    kind=op.kind, op=op.op, errno=result.error_name
                ).inc()
                failed.append((item, result))
        self._failed_last = {item.operation for item, _ in failed}
        for (name, kind, what), count in tally.items():
            self.status.counters[name] += count
            if name == "drift":
                self.prom.drift.labels(kind=kind, change=what).inc(count)
            elif name != "operation_errors":
                metric = self.prom.repairs if name == "repairs" else self.prom.changes
                metric.labels(kind=kind, op=what).inc(count)
        return applied, failed

    def _log_operations(
        self,
        decision: Decision,
        applied: list[Classified],
        failed: list[tuple[Classified, OpResult]],
    ) -> None:
        """Each operation once, at info, with its cause; a large reconcile (a cold start) as one
        line per cause, since a line per operation costs more than applying it."""
        names = decision.names
        if len(applied) <= LOG_EACH_UP_TO:
            for item in applied:
                log.info(
                    "applied",
                    op=operation_text(item.operation, names),
                    cause=item.cause,
                    drift=item.drift,
                )
        else:
            for cause in ("change", "drift"):
                ops = [operation_text(i.operation, names) for i in applied if i.cause == cause]
                if ops:
                    log.info("applied", cause=cause, count=len(ops), ops=ops)
        for item, result in failed:
            expected = result.errno in EXPECTED_ERRNOS
            (log.info if expected else log.warning)(
                "operation_failed",
                op=operation_text(item.operation, names),
                cause=item.cause,
                errno=result.error_name,
                message=result.message,
                expected=expected,
                action="retrying with backoff",
            )
        for conflict in decision.plan.conflicts:
            log.debug("conflict", kind=conflict.kind, message=conflict.message)

    def _finish(
        self,
        started: float,
        reason: str,
        decision: Decision | None,
        results: list[OpResult],
        read_error: str | None = None,
    ) -> bool:
        failures = tuple(r for r in results if not r.ok)
        success = read_error is None and not failures
        duration = self.deps.clock() - started
        s = self.status
        s.last = LastReconcile(
            at=self.deps.wallclock(),
            duration=duration,
            result="ok" if success else "error",
            reason=reason,
            operations=len(results),
            failures=failures,
            read_error=read_error,
        )
        result_label = "ok" if success else "error"
        self.prom.reconciles.labels(result=result_label).inc()
        s.counters[f"reconciles_{result_label}"] += 1
        self.prom.reconcile_duration.observe(duration)
        if read_error is not None:
            log.warning(
                "reconcile_failed",
                reason=reason,
                error=read_error,
                action="nothing applied; retrying with backoff",
            )
        if decision is not None:
            s.decision, s.results = decision, results
            self._update_gauges(decision, results)
            self.uplinks.update(decision, self.config)  # uplinks: start/stop probes
        s.in_sync = success
        if success and decision is not None:
            s.last_good = decision.desired
        self.prom.in_sync.set(1 if success else 0)
        if success:
            self.prom.last_success.set(self.deps.wallclock())
            if not s.converged_once:
                s.converged_once = True
                self.deps.notifier.ready()
                log.info("ready", interfaces=len(decision.desired.interfaces) if decision else 0)
        self.deps.notifier.status(self.status_line())
        return success

    def _update_gauges(self, decision: Decision, results: list[OpResult]) -> None:
        protocol = self.engine.protocol
        rules = sum(r.protocol == protocol for r in decision.state.rules)
        routes = sum(r.protocol == protocol for r in decision.state.routes)
        for r in results:
            if r.ok and r.operation.op != "replace":
                step = 1 if r.operation.op == "add" else -1
                if isinstance(r.operation, RuleOp):
                    rules += step
                else:
                    routes += step
        self.prom.owned_rules.set(rules)
        self.prom.owned_routes.set(routes)
        self.prom.managed_interfaces.set(len(decision.desired.interfaces))
        labels: set[tuple[str, str]] = set()
        for iface in decision.desired.interfaces:
            families = {AF_INET6 if ":" in a else AF_INET for a in iface.addresses}
            for family, gateway in zip(FAMILIES, (iface.gateway4, iface.gateway6), strict=True):
                if family not in families or not gateway.wanted:
                    continue  # no gateway is expected: not a gap to alert on
                label = (iface.name, family_name(family))
                labels.add(label)
                self.prom.gateway_present.labels(*label).set(1 if gateway.present else 0)
        for gone in self._gateway_labels - labels:
            with contextlib.suppress(KeyError):
                self.prom.gateway_present.remove(*gone)
        self._gateway_labels = labels

    def status_line(self) -> str:
        s = self.status
        decision = s.decision
        interfaces = len(decision.desired.interfaces) if decision else 0
        rules = len(decision.desired.rules) if decision else 0
        sync = "in sync" if s.in_sync else "NOT in sync"
        last = f"last reconcile {s.last.result} ({s.last.reason})" if s.last else "starting"
        return f"{interfaces} interfaces, {rules} rules, {sync}; {last}"
