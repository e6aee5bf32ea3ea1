"""Every Prometheus metric polroutd exports (docs/behaviour.md §3.3: names and labels are a
contract).

``Metrics()`` loads prometheus_client at once; ``Metrics.deferred()`` (the daemon's) records what
is counted until :meth:`Metrics.load`, which the daemon calls after its first reconcile
(adapters/metric_set.py): nothing counted before is lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from polroutd import __version__
from polroutd.adapters.metric_set import CounterMetric, MetricSet
from polroutd.adapters.uplink_metrics import UplinkMetrics

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["CounterMetric", "Metrics"]

_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """One set of metrics in its own registry (so tests can run several daemons side by side)."""

    def __init__(self, *, load: bool = True, recording: bool = True) -> None:
        """``load=False``: prometheus_client is loaded by :meth:`load` (or the first
        exposition); until then what is counted is recorded, unless ``recording`` is False
        (for a daemon whose metrics nothing exposes: nothing is kept)."""
        r = self._set = MetricSet()
        self.reconciles = r.counter("polroutd_reconciles", "Reconciles run, by result.", ["result"])
        self.reconcile_duration = r.histogram(
            "polroutd_reconcile_duration_seconds",
            "Time from reading the kernel to the last acknowledgement of a reconcile, by mode: "
            "incremental (events applied to the last read) or full (everything read again).",
            ["mode"],
            buckets=_DURATION_BUCKETS,
        )
        self.cache_divergence = r.counter(
            "polroutd_cache_divergence",
            "Full reads that found the event-maintained view of the kernel wrong, by object kind "
            "(repaired by planning from the full read).",
            ["kind"],
        )
        self.drift = r.counter(
            "polroutd_drift_detected",
            "Differences between the kernel and an unchanged desired "
            "state (someone else changed polroutd's objects).",
            ["kind", "change"],
        )
        self.repairs = r.counter("polroutd_repairs", "Operations that corrected drift.",
                                 ["kind", "op"])
        self.changes = r.counter(
            "polroutd_changes",
            "Operations caused by a new desired state (address, link or configuration changes).",
            ["kind", "op"],
        )
        self.restorations = r.counter(
            "polroutd_restorations",
            "Routes put back that the kernel itself removed because their link went down (not "
            "drift: a flapping link raises no drift alert).",
            ["kind"],
        )
        self.operation_errors = r.counter(
            "polroutd_operation_errors",
            "Operations the kernel refused, by errno name.",
            ["kind", "op", "errno"],
        )
        self.netlink_events = r.counter(
            "polroutd_netlink_events",
            "Netlink events received, by object type.",
            ["type"],
        )
        self.netlink_overruns = r.counter(
            "polroutd_netlink_overruns",
            "Event socket overruns (ENOBUFS), each followed by a full resync.",
        )
        self.managed_interfaces = r.gauge("polroutd_managed_interfaces",
                                          "Interfaces polroutd manages now.")
        self.owned_rules = r.gauge("polroutd_owned_rules",
                                   "Rules with polroutd's protocol in the kernel.")
        self.owned_routes = r.gauge("polroutd_owned_routes",
                                    "Routes with polroutd's protocol in the kernel.")
        self.in_sync = r.gauge("polroutd_in_sync",
                               "1 when the last reconcile left the kernel as desired.")
        self.last_success = r.gauge(
            "polroutd_last_success_timestamp_seconds",
            "Unix time of the last successful reconcile.",
        )
        self.gateway_present = r.gauge(
            "polroutd_interface_gateway_present",
            "1 when a gateway is known for the interface's table, per family.",
            ["interface", "family"],
        )
        self.conflicts = r.gauge(
            "polroutd_conflicts",
            "Foreign objects standing where polroutd wants its own (a foreign route in one of "
            "polroutd's tables, a foreign rule with polroutd's selector and priority).",
            ["kind"],
        )
        self.config_reloads = r.counter(
            "polroutd_config_reloads",
            "Configuration reloads (SIGHUP), by result.",
            ["result"],
        )
        self.build_info = r.gauge("polroutd_build_info", "polroutd's version.", ["version"])
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
        r.recording = recording  # the series above are there whenever the metrics are loaded
        if load:
            self.load()

    @classmethod
    def deferred(cls, *, recording: bool = True) -> Metrics:
        return cls(load=False, recording=recording)

    @property
    def loaded(self) -> bool:
        return self._set.loaded

    @property
    def registry(self) -> CollectorRegistry:
        """prometheus_client's registry of these metrics (loaded first, if need be)."""
        return self._set.registry

    def load(self) -> None:
        """Imports prometheus_client and replays into it what was counted so far."""
        self._set.load()

    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
