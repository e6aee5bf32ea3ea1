"""The uplink metrics (docs/uplinks.md; names and labels are a contract), in the daemon's
registry beside the others (declared in its metric set: loaded with them)."""

from __future__ import annotations

import contextlib

from polroutd.adapters.metric_set import MetricSet

_PROBE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class UplinkMetrics:
    def __init__(self, metrics: MetricSet) -> None:
        m = metrics
        self.up = m.gauge(
            "polroutd_uplink_up", "1 while the uplink is healthy, per family.",
            ["interface", "family"],
        )
        self.active = m.gauge(
            "polroutd_uplink_active",
            "1 where the uplink carries connections that chose no source address now.",
            ["interface", "family"],
        )
        self.transitions = m.counter(
            "polroutd_uplink_transitions",
            "Uplink health transitions, by direction and cause (link, neighbour, probe).",
            ["interface", "family", "to", "cause"],
        )
        self.probe_duration = m.histogram(
            "polroutd_probe_duration_seconds", "Round-trip time of successful uplink probes.",
            ["interface"], buckets=_PROBE_BUCKETS,
        )
        self.probe_failures = m.counter(
            "polroutd_probe_failures", "Uplink probes that failed, by reason.",
            ["interface", "reason"],
        )

    def forget(self, interface: str, family: str) -> None:
        """An uplink that is gone leaves no stale series behind."""
        for gauge in (self.up, self.active):
            with contextlib.suppress(KeyError):
                gauge.remove(interface, family)
