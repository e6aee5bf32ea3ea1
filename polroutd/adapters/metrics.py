"""Every Prometheus metric polroutd exports (docs/behaviour.md §3.3: names and labels are a
contract)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from polroutd import __version__
from polroutd.adapters.uplink_metrics import UplinkMetrics

CounterMetric = Counter  # what the daemon counts with (it imports no prometheus_client itself)

_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """One set of metrics in its own registry (so tests can run several daemons side by side)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry(auto_describe=True)
        self.reconciles = Counter(
            "polroutd_reconciles", "Reconciles run, by result.", ["result"], registry=r
        )
        self.reconcile_duration = Histogram(
            "polroutd_reconcile_duration_seconds",
            "Time from reading the kernel to the last acknowledgement of a reconcile, by mode: "
            "incremental (events applied to the last read) or full (everything read again).",
            ["mode"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.cache_divergence = Counter(
            "polroutd_cache_divergence",
            "Full reads that found the event-maintained view of the kernel wrong, by object kind "
            "(repaired by planning from the full read).",
            ["kind"],
            registry=r,
        )
        self.drift = Counter(
            "polroutd_drift_detected",
            "Differences between the kernel and an unchanged desired "
            "state (someone else changed polroutd's objects).",
            ["kind", "change"],
            registry=r,
        )
        self.repairs = Counter(
            "polroutd_repairs", "Operations that corrected drift.", ["kind", "op"], registry=r
        )
        self.changes = Counter(
            "polroutd_changes",
            "Operations caused by a new desired state (address, link or configuration changes).",
            ["kind", "op"],
            registry=r,
        )
        self.restorations = Counter(
            "polroutd_restorations",
            "Routes put back that the kernel itself removed because their link went down (not "
            "drift: a flapping link raises no drift alert).",
            ["kind"],
            registry=r,
        )
        self.operation_errors = Counter(
            "polroutd_operation_errors",
            "Operations the kernel refused, by errno name.",
            ["kind", "op", "errno"],
            registry=r,
        )
        self.netlink_events = Counter(
            "polroutd_netlink_events",
            "Netlink events received, by object type.",
            ["type"],
            registry=r,
        )
        self.netlink_overruns = Counter(
            "polroutd_netlink_overruns",
            "Event socket overruns (ENOBUFS), each followed by a full resync.",
            registry=r,
        )
        self.managed_interfaces = Gauge(
            "polroutd_managed_interfaces", "Interfaces polroutd manages now.", registry=r
        )
        self.owned_rules = Gauge(
            "polroutd_owned_rules", "Rules with polroutd's protocol in the kernel.", registry=r
        )
        self.owned_routes = Gauge(
            "polroutd_owned_routes", "Routes with polroutd's protocol in the kernel.", registry=r
        )
        self.in_sync = Gauge(
            "polroutd_in_sync", "1 when the last reconcile left the kernel as desired.", registry=r
        )
        self.last_success = Gauge(
            "polroutd_last_success_timestamp_seconds",
            "Unix time of the last successful reconcile.",
            registry=r,
        )
        self.gateway_present = Gauge(
            "polroutd_interface_gateway_present",
            "1 when a gateway is known for the interface's table, per family.",
            ["interface", "family"],
            registry=r,
        )
        self.conflicts = Gauge(
            "polroutd_conflicts",
            "Foreign objects standing where polroutd wants its own (a foreign route in one of "
            "polroutd's tables, a foreign rule with polroutd's selector and priority).",
            ["kind"],
            registry=r,
        )
        self.config_reloads = Counter(
            "polroutd_config_reloads",
            "Configuration reloads (SIGHUP), by result.",
            ["result"],
            registry=r,
        )
        self.build_info = Gauge(
            "polroutd_build_info", "polroutd's version.", ["version"], registry=r
        )
        self.build_info.labels(version=__version__).set(1)
        self.uplinks = UplinkMetrics(r)
        # Every series the spec names exists from the start at 0, so Prometheus' increase()
        # sees the first drift after a restart (a series born at 1 has no visible increase).
        for result in ("ok", "error"):
            self.reconciles.labels(result=result)
            self.config_reloads.labels(result=result)
        for kind in ("rule", "route"):
            self.conflicts.labels(kind=kind).set(0)
            self.restorations.labels(kind=kind)
            for change in ("missing", "unexpected", "changed"):
                self.drift.labels(kind=kind, change=change)
            for op in ("add", "delete", "replace"):
                self.repairs.labels(kind=kind, op=op)
                self.changes.labels(kind=kind, op=op)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
