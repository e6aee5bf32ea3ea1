"""The uplink metrics (docs/uplinks.md; names and labels are a contract), in the daemon's
registry beside the others."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_PROBE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class UplinkMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.up = Gauge(
            "polroutd_uplink_up", "1 while the uplink is healthy, per family.",
            ["interface", "family"], registry=r,
        )
        self.active = Gauge(
            "polroutd_uplink_active",
            "1 where the uplink carries connections that chose no source address now.",
            ["interface", "family"], registry=r,
        )
        self.transitions = Counter(
            "polroutd_uplink_transitions",
            "Uplink health transitions, by direction and cause (link, neighbour, probe).",
            ["interface", "family", "to", "cause"], registry=r,
        )
        self.probe_duration = Histogram(
            "polroutd_probe_duration_seconds", "Round-trip time of successful uplink probes.",
            ["interface"], buckets=_PROBE_BUCKETS, registry=r,
        )
        self.probe_failures = Counter(
            "polroutd_probe_failures", "Uplink probes that failed, by reason.",
            ["interface", "reason"], registry=r,
        )

    def forget(self, interface: str, family: str) -> None:
        """An uplink that is gone leaves no stale series behind."""
        for gauge in (self.up, self.active):
            with contextlib.suppress(KeyError):
                gauge.remove(interface, family)
