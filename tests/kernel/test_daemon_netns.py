"""``polroutd run`` on the real kernel, in the lab: events, drift, signals, HTTP, systemd notify."""

from __future__ import annotations

import json
import re
import signal
import statistics
import subprocess
import time
from pathlib import Path

import jsonschema
from prometheus_client.parser import text_string_to_metric_families

from polroutd.lab.daemon import LabDaemon
from polroutd.lab.lab import ADDR, Lab
from tests.support import REPO
from tests.support.lab_tools import (
    DAEMON_SETTINGS,
    HTTP_PORT,
    PROTO,
    foreign,
    owned,
    polroutd,
    recorded_tables,
    routes,
    rules,
    start_daemon,
    tables,
    write_config,
)

SCHEMA = json.loads((REPO / "polroutd" / "state.schema.json").read_text())



def flushed_entries(ip_stats_output: str) -> int:
    """Routes deleted by ``ip -s route flush``, summed over its rounds."""
    return sum(int(n) for n in re.findall(r"Round \d+, deleting (\d+) entries", ip_stats_output))


def owned_sources(lab: Lab) -> set[str]:
    return {r.get("src", "") for r in owned(rules(lab, lab.server))}


def test_ready_after_rules_exist_then_status_and_watchdog(daemon: LabDaemon, lab: Lab) -> None:
    ready_at = next(t for t, m in daemon.notify.messages if m == "READY=1")
    assert owned_sources(lab) >= {ADDR.server_mgmt4, ADDR.server_data4}
    status_before_ready = [
        m
        for t, m in daemon.notify.messages
        if t < ready_at and m.startswith("STATUS=") and "in sync" in m and "NOT" not in m
    ]
    assert not status_before_ready
    assert daemon.http("/readyz")[0] == 200
    assert daemon.http("/healthz")[0] == 200
    daemon.wait_for(lambda: len(daemon.notify.seen("WATCHDOG=1")) >= 3, what="watchdog pings")
    assert any("in sync" in m for m in daemon.notify.seen("STATUS="))
    lab.probes.start_tcp_server(lab.server)
    assert lab.probes.tcp_connect(lab.client, ADDR.server_data4)


def test_events_alone_repair_drift_and_count_it(
    daemon: LabDaemon, lab: Lab, tmp_path: Path
) -> None:
    before = daemon.counters()
    numbers = recorded_tables(tmp_path)
    # 1. someone deletes an owned rule
    lab.run(lab.server, "ip", "rule", "del", "from", ADDR.server_data4, "priority", "30000")
    daemon.wait_for(lambda: ADDR.server_data4 in owned_sources(lab), what="rule repaired")
    # 2. someone flushes an owned table (2 IPv4 routes there: connected + default)
    mgt = str(numbers["mgt"])
    count = len([r for r in tables(lab, lab.server)[mgt] if r["family"] == "-4"])
    flush = lab.run(lab.server, "ip", "-s", "-4", "route", "flush", "table", mgt).stdout
    # `ip route flush` repeats its dump-and-delete rounds until one finds nothing, so when the
    # daemon repairs between rounds the routes are deleted (and repaired) more than once.
    deleted = flushed_entries(flush)
    assert deleted >= count
    daemon.wait_for(
        lambda: (
            len([r for r in tables(lab, lab.server).get(mgt, []) if r["family"] == "-4"]) == count
        ),
        what="table refilled",
    )
    # 3. someone replaces an owned route with another gateway (keeping polroutd's protocol)
    data = str(numbers["data"])
    lab.run(
        lab.server,
        "ip",
        "route",
        "replace",
        "default",
        "via",
        "10.225.176.99",
        "dev",
        "ens224",
        "table",
        data,
        "proto",
        str(PROTO),
    )
    daemon.wait_for(
        lambda: any(
            r["dst"] == "default" and r.get("gateway") == "10.225.176.1"
            for r in tables(lab, lab.server)[data]
        ),
        what="route restored",
    )
    daemon.wait_for(
        lambda: daemon.counters()["repairs"] - before["repairs"] == 1 + deleted + 1,
        what="repair count",
    )
    after = daemon.counters()
    assert after["drift"] - before["drift"] == 1 + deleted + 1
    assert after["changes"] == before["changes"]
    assert after["reconciles_ok"] > before["reconciles_ok"]
    metrics = {
        s.name: s
        for f in text_string_to_metric_families(daemon.http("/metrics")[1])
        for s in f.samples
        if s.labels.get("kind") == "rule" or not s.labels
    }
    assert any(name == "polroutd_repairs_total" for name in metrics)


def test_address_renewals_are_changes_and_latency_is_printed(
    daemon: LabDaemon, lab: Lab
) -> None:
    before = daemon.counters()
    latencies = []
    current = ADDR.server_data4
    for i in range(10):
        new = f"10.225.176.{100 + i}"
        lab.run(lab.server, "ip", "addr", "del", f"{current}/24", "dev", "ens224")
        start = time.monotonic()
        lab.run(lab.server, "ip", "addr", "add", f"{new}/24", "dev", "ens224")
        daemon.wait_for(lambda n=new: n in owned_sources(lab), what=f"rule for {new}")
        latencies.append(time.monotonic() - start)
        current = new
    assert owned_sources(lab) & {f"10.225.176.{100 + i}" for i in range(10)} == {current}
    after = daemon.counters()
    assert after["drift"] == before["drift"]
    assert after["changes"] - before["changes"] >= 20  # each renewal: a rule out, a rule in
    print(
        f"\nevent-to-rule latency incl. `ip` and polling: median "
        f"{statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )


def test_link_down_up_routes_return_without_resync(
    daemon: LabDaemon, lab: Lab, tmp_path: Path
) -> None:
    mgt = str(recorded_tables(tmp_path)["mgt"])
    lab.run(lab.server, "ip", "link", "set", "ens192", "down")
    daemon.wait_for(
        lambda: not [r for r in tables(lab, lab.server).get(mgt, []) if r["family"] == "-4"],
        what="routes gone with the link",
    )
    assert ADDR.server_mgmt4 in owned_sources(lab)  # rules stay
    lab.run(lab.server, "ip", "link", "set", "ens192", "up")
    daemon.wait_for(
        lambda: (
            {r["dst"] for r in tables(lab, lab.server).get(mgt, []) if r["family"] == "-4"}
            >= {"10.225.160.0/24"}
        ),
        what="connected route back",
    )


def test_netlink_overrun_is_counted_and_state_converges(lab: Lab, tmp_path: Path) -> None:
    config = write_config(tmp_path, daemon_extra=DAEMON_SETTINGS)
    d = start_daemon(lab, config, tmp_path, extra_env={"POLROUTD_EVENT_RCVBUF": "4096"})
    try:
        d.wait_ready()
        d.signal(signal.SIGSTOP)  # events pile up while the daemon cannot read
        batch = "\n".join(f"addr add 10.225.176.{i}/24 dev ens224" for i in range(100, 250))
        subprocess.run(["ip", "-n", lab.server, "-batch", "-"], input=batch, text=True, check=True)
        d.signal(signal.SIGCONT)
        d.wait_for(lambda: d.counters()["netlink_overruns"] >= 1, what="overrun counted")
        d.wait_for(lambda: len(owned_sources(lab)) >= 150 + 2, what="all rules present")
        d.wait_for(lambda: d.state()["in_sync"], what="in sync")
    finally:
        d.stop()


def test_sighup_reload_broken_then_valid(daemon: LabDaemon, lab: Lab) -> None:
    good = daemon.config.read_text()
    daemon.config.write_text(good + "\n[daemon.bogus]\n")
    daemon.signal(signal.SIGHUP)
    daemon.wait_for(lambda: daemon.state()["config_error"] is not None, what="config_error")
    assert daemon.counters()["config_reloads_error"] == 1
    assert daemon.http("/readyz")[0] == 200  # still running with the old configuration
    changed = good.replace("[daemon]", '[daemon]\nmode = "main-first"')
    daemon.config.write_text(changed)
    daemon.signal(signal.SIGHUP)
    daemon.wait_for(lambda: daemon.state()["config_error"] is None, what="error cleared")
    daemon.wait_for(
        lambda: any(r.get("suppress_prefixlen") == 0 for r in owned(rules(lab, lab.server))),
        what="main-first rule",
    )
    assert daemon.counters()["config_reloads_ok"] == 1
    assert len(daemon.notify.seen("RELOADING=1")) == 2
    assert len(daemon.notify.seen("READY=1")) >= 3


def test_sigterm_leaves_state_and_cleanup_on_exit_removes_it(lab: Lab, tmp_path: Path) -> None:
    config = write_config(tmp_path, daemon_extra=DAEMON_SETTINGS)
    d = start_daemon(lab, config, tmp_path)
    d.wait_ready()
    kept = owned(rules(lab, lab.server))
    started = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - started < 2.0
    assert "STOPPING=1" in d.notify.seen("STOPPING=1")
    assert owned(rules(lab, lab.server)) == kept
    foreign_before = (foreign(rules(lab, lab.server)), foreign(routes(lab, lab.server)))

    config = write_config(tmp_path, daemon_extra=DAEMON_SETTINGS + "\ncleanup_on_exit = true")
    d = start_daemon(lab, config, tmp_path)
    d.wait_ready()
    assert d.stop() == 0
    assert not owned(rules(lab, lab.server)) and not owned(routes(lab, lab.server))
    assert (foreign(rules(lab, lab.server)), foreign(routes(lab, lab.server))) == foreign_before


def test_restart_after_sigkill_adopts_and_removes_stale(lab: Lab, tmp_path: Path) -> None:
    config = write_config(tmp_path, daemon_extra=DAEMON_SETTINGS)
    d = start_daemon(lab, config, tmp_path)
    d.wait_ready()
    d.signal(signal.SIGKILL)
    d.proc.wait(5)
    d.stop()
    # while it was down: an address went away
    lab.run(lab.server, "ip", "addr", "del", f"{ADDR.server_mgmt4}/24", "dev", "ens192")
    d = start_daemon(lab, config, tmp_path)
    try:
        d.wait_ready()
        mine = owned(rules(lab, lab.server))
        assert ADDR.server_mgmt4 not in {r.get("src") for r in mine}
        keys = [json.dumps(r, sort_keys=True) for r in mine]
        assert len(keys) == len(set(keys))  # no duplicate
        assert polroutd(lab, lab.server, "plan", "--config", str(config)).returncode == 0
    finally:
        d.stop()


def test_http_endpoints(daemon: LabDaemon) -> None:
    status, body = daemon.http("/metrics")
    assert status == 200
    names = {f.name for f in text_string_to_metric_families(body)}
    for name in (
        "polroutd_reconciles",
        "polroutd_reconcile_duration_seconds",
        "polroutd_drift_detected",
        "polroutd_repairs",
        "polroutd_changes",
        "polroutd_operation_errors",
        "polroutd_netlink_events",
        "polroutd_netlink_overruns",
        "polroutd_managed_interfaces",
        "polroutd_owned_rules",
        "polroutd_owned_routes",
        "polroutd_in_sync",
        "polroutd_last_success_timestamp_seconds",
        "polroutd_interface_gateway_present",
        "polroutd_config_reloads",
        "polroutd_build_info",
    ):
        assert name in names, name
    doc = daemon.state()
    jsonschema.validate(doc, SCHEMA)
    assert doc["in_sync"] and doc["ready"]
    data = next(i for i in doc["interfaces"] if i["name"] == "ens224")
    assert data["gateway"]["ipv4"] == {
        "address": "10.225.176.1",
        "source": "dhcp-lease",
        "reason": None,
    }
    assert all(r["present"] for r in doc["rules"] + doc["routes"])
    assert daemon.http("/nope")[0] == 404
    assert daemon.http("/state", "POST")[0] == 405
    assert daemon.http("/metrics", "DELETE")[0] == 405


def test_real_prometheus_scrapes_the_daemon_and_the_drift_alert_fires(
    daemon: LabDaemon, lab: Lab, tmp_path: Path
) -> None:
    from tests.support.prometheus_server import (
        running_prometheus,  # Debian's prometheus: ./dev installs it
    )

    alerts = Path(__file__).resolve().parents[2] / "contrib" / "prometheus" / "polroutd-alerts.yml"
    with running_prometheus(
        f"127.0.0.1:{HTTP_PORT}", tmp_path / "prom", rule_files=[alerts], netns=lab.server
    ) as prom:
        prom.wait_until_target_up()
        prom.wait_until_rules_evaluated()
        assert not prom.firing("PolroutdDriftRepaired")
        lab.run(lab.server, "ip", "rule", "del", "from", ADDR.server_mgmt4, "priority", "30000")
        daemon.wait_for(lambda: daemon.counters()["repairs"] >= 1, what="repair")
        alert = prom.wait_for_alert("PolroutdDriftRepaired", timeout=40)
        assert alert["labels"]["severity"] == "info"
