"""What the daemon counts, counted once: /state's counters, the Prometheus series and the
operation log lines all come from here.

Every count goes through ``Tally._count``, which moves the /state counter and its Prometheus
series together; gauges are set from the last decision.
"""

from __future__ import annotations

import contextlib
import errno
from collections import Counter
from collections.abc import Sequence

from polroutd.adapters.logs import get_logger
from polroutd.adapters.metrics import CounterMetric, Metrics
from polroutd.core.decision import Decision
from polroutd.core.describe import conflict_text, operation_text
from polroutd.core.kernelview import Event, grouped
from polroutd.core.limits import FAMILIES
from polroutd.core.model import (
    DesiredState,
    ManagedInterface,
    Operation,
    OpResult,
    Route,
    RouteOp,
    Rule,
    RuleOp,
    family_name,
)
from polroutd.core.plan import Classified, classify

# Races of hot-unplug and link-down: the next event-driven reconcile settles them.
EXPECTED_ERRNOS = frozenset({errno.ENODEV, errno.ENETDOWN})
LOG_EACH_UP_TO = 32  # operations logged one line each; more are logged one line per cause

COUNTERS = (
    "reconciles_ok",
    "reconciles_error",
    "drift",
    "repairs",
    "changes",
    "restorations",
    "operation_errors",
    "netlink_events",
    "netlink_overruns",
    "config_reloads_ok",
    "config_reloads_error",
    "cache_divergence",
)

log = get_logger("polroutd.daemon")

Applied = list[Classified]
Failed = list[tuple[Classified, OpResult]]


class Tally:
    """The daemon's counters (for /state) and metrics (for /metrics), kept in step."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics or Metrics()
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        # Operations that failed last time: retrying one is not new drift.
        self._failed_last: set[Operation] = set()
        self._gateway_values: dict[tuple[str, str], int] = {}  # as last set
        # Interface index -> its entry, and its table's routes held and desired (the groups'
        # lists, replaced whenever they change), when its gateway gauges were last set.
        self._gateway_basis: dict[int, tuple[ManagedInterface, list[Route] | None,
                                             list[Route] | None]] = {}
        self._conflicts_seen: set[Rule | Route] = set()  # the foreign objects warned about
        self._skipped_seen: set[tuple[str, str]] = set()  # (interface, reason) logged

    def _count(self, counter: str, metric: CounterMetric, amount: int = 1, **labels: str) -> None:
        self.counters[counter] += amount
        (metric.labels(**labels) if labels else metric).inc(amount)

    # --- events and reloads -------------------------------------------------------------------

    def events(self, events: Sequence[Event]) -> None:
        for kind, count in Counter(event.kind for event in events).items():
            self._count("netlink_events", self.metrics.netlink_events, count, type=kind)

    def overrun(self) -> None:
        self._count("netlink_overruns", self.metrics.netlink_overruns)
        log.warning("netlink_overrun", action="reopening the event socket, full resync")

    def divergence(self, kinds: Sequence[str]) -> None:
        """A full read found the view kept from events wrong in these kinds of object."""
        for kind in kinds:
            self._count("cache_divergence", self.metrics.cache_divergence, kind=kind)
        if kinds:
            log.warning("cache_divergence", kinds=list(kinds),
                        action="planned from the full read; the view is replaced by it")

    def reload(self, *, ok: bool) -> None:
        result = "ok" if ok else "error"
        self._count(f"config_reloads_{result}", self.metrics.config_reloads, result=result)

    # --- reconciles ---------------------------------------------------------------------------

    def reconcile(
        self, *, success: bool, in_sync: bool, duration: float, finished_at: float,
        mode: str = "full",
    ) -> None:
        result = "ok" if success else "error"
        self._count(f"reconciles_{result}", self.metrics.reconciles, result=result)
        self.metrics.reconcile_duration.labels(mode=mode).observe(duration)
        self.metrics.in_sync.set(1 if in_sync else 0)
        if success:
            self.metrics.last_success.set(finished_at)

    def operations(
        self,
        decision: Decision,
        previous: DesiredState | None,
        results: list[OpResult],
        went_down: frozenset[int] = frozenset(),
    ) -> None:
        """Counts drift (against ``previous``, the last desired state that was reached),
        repairs, restorations (of routes flushed with a link in ``went_down``), changes and
        errors, and logs each operation with its cause."""
        causes = classify(decision.plan, previous, decision.desired, went_down=went_down)
        applied, failed = self._account(causes, results)
        _log_operations(decision, applied, failed)

    def _account(self, causes: list[Classified], results: list[OpResult]) -> tuple[Applied, Failed]:
        outcome = {id(r.operation): r for r in results}
        # Grouped first: a cold start applies a thousand operations of a few label sets.
        groups: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        applied: Applied = []
        failed: Failed = []
        for item in causes:
            op = item.operation
            result = outcome.get(id(op))
            if item.cause == "drift" and op not in self._failed_last:  # a retry is not new drift
                groups["drift", (("kind", op.kind), ("change", item.drift or ""))] += 1
            if result is None:
                continue
            if result.ok:
                if item.cause == "restoration":
                    groups["restorations", (("kind", op.kind),)] += 1
                else:
                    counter = "repairs" if item.cause == "drift" else "changes"
                    groups[counter, (("kind", op.kind), ("op", op.op))] += 1
                applied.append(item)
            else:
                errno_label = ("errno", result.error_name)
                groups["operation_errors", (("kind", op.kind), ("op", op.op), errno_label)] += 1
                failed.append((item, result))
        self._failed_last = {item.operation for item, _ in failed}
        metric = {
            "drift": self.metrics.drift,
            "repairs": self.metrics.repairs,
            "changes": self.metrics.changes,
            "restorations": self.metrics.restorations,
            "operation_errors": self.metrics.operation_errors,
        }
        for (counter, labels), count in groups.items():
            self._count(counter, metric[counter], count, **dict(labels))
        return applied, failed

    # --- gauges -------------------------------------------------------------------------------

    def gauges(self, decision: Decision, results: list[OpResult], protocol: int) -> None:
        """What polroutd owns and manages after ``results`` were applied to ``decision``.

        An event's reconcile on a host of thousands of rules must not pass over all of them:
        the owned objects are counted from the view's groups by protocol (derived from the last
        view's, see ``grouped``), the default routes held are looked up in their tables, and a
        gauge is set only when its value changed."""
        m = self.metrics
        rules = len(grouped(decision.state.rules, "protocol").get(protocol, ()))
        routes = len(grouped(decision.state.routes, "protocol").get(protocol, ()))
        for r in results:
            if r.ok and r.operation.op != "replace":
                step = 1 if r.operation.op == "add" else -1
                if isinstance(r.operation, RuleOp):
                    rules += step
                else:
                    routes += step
        m.owned_rules.set(rules)
        m.owned_routes.set(routes)
        m.managed_interfaces.set(len(decision.desired.interfaces))
        for kind in ("rule", "route"):
            m.conflicts.labels(kind=kind).set(sum(c.kind == kind for c in decision.plan.conflicts))
        self._report_once(decision)
        if not self._follow_gateways(decision, results):
            self._set_gateways(decision, results)

    def _set_gateways(self, decision: Decision, results: list[OpResult]) -> None:
        """``polroutd_interface_gateway_present`` for every managed interface and family."""
        m = self.metrics
        # 1 only when the table holds its default route, not when one was merely chosen: the
        # kernel may refuse it (a gateway not on-link), and then the table has none.
        defaults = _defaults_held(decision, results)
        values: dict[tuple[str, str], int] = {}
        for iface in decision.desired.interfaces:
            # 0 or 1 for every managed interface and family, never left out: a series that
            # vanishes cannot be alerted on (an isolated network silences its alert instead).
            for family, gateway in zip(FAMILIES, (iface.gateway4, iface.gateway6), strict=True):
                label = (iface.name, family_name(family))
                has_default = gateway.present and (iface.table_id, family) in defaults
                values[label] = 1 if has_default else 0
        for label, value in values.items():
            if self._gateway_values.get(label) != value:
                m.gateway_present.labels(*label).set(value)
        for gone in self._gateway_values.keys() - values.keys():
            with contextlib.suppress(KeyError):
                m.gateway_present.remove(*gone)
        self._gateway_values = values
        self._gateway_basis = {}
        in_table = grouped(decision.state.routes, "table")
        wanted = grouped(decision.desired.routes, "table", "current")
        for iface in decision.desired.interfaces:
            table = iface.table_id
            self._gateway_basis[iface.index] = (iface, in_table.get(table), wanted.get(table))

    def _follow_gateways(self, decision: Decision, results: list[OpResult]) -> bool:
        """Sets again only the gateway gauges of interfaces whose entry, or whose table's
        routes (held, or desired), are other objects than when last set: an event's
        reconcile changes a few, not the hundreds there may be. False when the interfaces
        themselves changed (one came, went or was renamed): then all are set."""
        basis = self._gateway_basis
        interfaces = decision.desired.interfaces
        if len(interfaces) != len(basis):
            return False
        in_table = grouped(decision.state.routes, "table")
        # the slot plan.classify groups the decision's desired state in: grouped once for both
        wanted = grouped(decision.desired.routes, "table", "current")
        added = {op.route.table for r in results if r.ok and isinstance(op := r.operation, RouteOp)
                 and op.op != "delete" and op.route.dst_len == 0}
        redo = []
        for iface in interfaces:
            table = iface.table_id
            held, want = in_table.get(table), wanted.get(table)
            last = basis.get(iface.index)
            if last is None or last[0].name != iface.name:
                return False
            if last[0] is not iface or last[1] is not held or last[2] is not want or (
                    table in added):
                redo.append((iface, held, want))
        for iface, held, want in redo:
            present = {(r.table, r.family) for r in want or () if r.dst_len == 0
                       and r in (held or ())}
            present |= {(op.route.table, op.route.family) for r in results
                        if r.ok and isinstance(op := r.operation, RouteOp)
                        and op.op != "delete" and op.route.dst_len == 0}
            for family, gateway in zip(FAMILIES, (iface.gateway4, iface.gateway6), strict=True):
                label = (iface.name, family_name(family))
                value = 1 if gateway.present and (iface.table_id, family) in present else 0
                if self._gateway_values.get(label) != value:
                    self.metrics.gateway_present.labels(*label).set(value)
                    self._gateway_values[label] = value
            basis[iface.index] = (iface, held, want)
        return True

    def _report_once(self, decision: Decision) -> None:
        """A foreign object in polroutd's way and an interface left unmanaged are each logged
        when they appear, not on every reconcile."""
        seen: set[Rule | Route] = set()
        for conflict in decision.plan.conflicts:
            seen.add(conflict.foreign)
            if conflict.foreign not in self._conflicts_seen:
                log.warning("conflict", kind=conflict.kind,
                            text=conflict_text(conflict, decision.names),
                            action="left alone (not polroutd's); not in sync until it goes")
        self._conflicts_seen = seen
        skipped = {(i.name, i.reason) for i in decision.desired.skipped}
        for name, reason in sorted(skipped - self._skipped_seen):
            log.info("interface_skipped", interface=name, reason=reason)
        self._skipped_seen = skipped


def _defaults_held(decision: Decision, results: list[OpResult]) -> set[tuple[int, int]]:
    """(table, family) of the desired default routes the kernel holds after ``results``: those
    the decision's state has, and those an operation put there (``present_after``, for the
    default routes only)."""
    held: set[tuple[int, int]] = set()
    in_table = grouped(decision.state.routes, "table")
    for route in decision.desired.routes:
        if route.dst_len == 0 and route in in_table.get(route.table, ()):
            held.add((route.table, route.family))
    for result in results:
        op = result.operation
        if result.ok and isinstance(op, RouteOp) and op.op != "delete" and op.route.dst_len == 0:
            held.add((op.route.table, op.route.family))
    return held


def _log_operations(decision: Decision, applied: Applied, failed: Failed) -> None:
    """Each operation once, at info, with its cause; a large reconcile (a cold start) as one
    line per cause, since a line per operation costs more than applying it."""
    names = decision.names
    if len(applied) <= LOG_EACH_UP_TO:
        for item in applied:
            log.info(
                "applied", op=operation_text(item.operation, names), cause=item.cause,
                drift=item.drift,
            )
    else:
        for cause in ("change", "drift", "restoration"):
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
