"""The daemon's metrics before prometheus_client is loaded (adapters/metric_set.py): what is
counted then is recorded and replayed at the load, so the exposition is the one metrics loaded
from the start would give; and until the load, prometheus_client is not imported."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from polroutd.adapters.metrics import Metrics
from tests.support import REPO


def exercise(m: Metrics) -> None:
    """What a daemon does to its metrics in its first reconciles and uplink probes."""
    m.reconciles.labels(result="ok").inc()
    m.reconcile_duration.labels(mode="full").observe(0.004)
    m.reconcile_duration.labels("incremental").observe(0.0002)
    m.in_sync.set(1)
    m.last_success.set(1_700_000_000.5)
    m.netlink_events.labels(type="address").inc(3)
    m.netlink_overruns.inc()
    m.drift.labels(kind="rule", change="missing").inc(2)
    m.owned_rules.set(4)
    m.owned_rules.inc(2)
    m.gateway_present.labels("eth0", "ipv4").set(1)
    m.gateway_present.labels(interface="eth1", family="ipv4").set(1)
    m.gateway_present.remove("eth1", "ipv4")
    m.uplinks.up.labels("wan1", "ipv4").set(1)
    m.uplinks.transitions.labels("wan1", "ipv4", "down", "probe").inc()
    m.uplinks.probe_duration.labels("wan1").observe(0.003)
    m.uplinks.forget("wan2", "ipv6")  # never seen: nothing to forget, no error


def exposition(m: Metrics) -> str:
    # The *_created samples carry the time each series was created, which differs.
    return re.sub(r"(?m)^.*_created.*\n", "", m.exposition().decode())


def test_what_is_counted_before_the_load_is_exposed_as_if_loaded_from_the_start() -> None:
    eager, deferred = Metrics(), Metrics.deferred()
    exercise(eager)
    exercise(deferred)
    assert not deferred.loaded
    deferred.load()
    assert deferred.loaded
    assert exposition(deferred) == exposition(eager)
    # Once loaded, calls go to prometheus_client itself.
    eager.reconciles.labels(result="error").inc()
    deferred.reconciles.labels(result="error").inc()
    eager.netlink_overruns.inc()
    deferred.netlink_overruns.inc()
    assert exposition(deferred) == exposition(eager)
    assert 'polroutd_reconciles_total{result="error"} 1.0' in exposition(deferred)


def test_the_first_exposition_loads_the_library() -> None:
    m = Metrics.deferred()
    m.reconciles.labels(result="ok").inc()
    assert 'polroutd_reconciles_total{result="ok"} 1.0' in m.exposition().decode()
    assert m.loaded


def test_not_recording_keeps_only_the_series_that_exist_from_the_start() -> None:
    m = Metrics.deferred(recording=False)
    exercise(m)
    assert exposition(m) == exposition(Metrics())


def test_wrong_labels_fail_where_they_are_given_as_with_the_library() -> None:
    for m in (Metrics(), Metrics.deferred()):
        with pytest.raises(ValueError):
            m.reconciles.labels(outcome="ok")
        with pytest.raises(ValueError):
            m.drift.labels("rule")
        with pytest.raises(ValueError):
            m.reconciles.inc()  # it has labels
        with pytest.raises(ValueError):
            m.gateway_present.remove("eth9")


def test_deferred_metrics_do_not_import_prometheus_client() -> None:
    probe = (
        "import sys\n"
        "from polroutd.adapters.metrics import Metrics\n"
        "m = Metrics.deferred()\n"
        "m.reconciles.labels(result='ok').inc()\n"
        "m.reconcile_duration.labels(mode='full').observe(0.004)\n"
        "m.gateway_present.labels('eth0', 'ipv4').set(1)\n"
        "m.uplinks.forget('eth0', 'ipv4')\n"
        "print('prometheus_client' in sys.modules)\n"
        "m.load()\n"
        "print('prometheus_client' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=60, cwd=REPO)
    assert proc.stdout.split() == ["False", "True"]
