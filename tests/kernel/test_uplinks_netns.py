"""Uplink failover and balance with real packets (polroutd.lab.uplinks): the host's new TCP
connections, with no source address chosen, measured across each kind of failure."""

from __future__ import annotations

import json
import math
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from polroutd.lab.daemon import LabDaemon
from polroutd.lab.uplinks import (
    SERVER6,
    UplinkLab,
    attempts,
    outage,
    uplink_config,
    uplink_state,
    via,
)

INTERVAL, TIMEOUT, DOWN, UP = 0.2, 0.3, 3, 3
FLAP_SECONDS = float(os.environ.get("POLROUTD_FLAP_SECONDS", "3"))  # the target says 10
PROBE_BOUND = INTERVAL * DOWN + TIMEOUT  # detection by probes, configuration arithmetic


@pytest.fixture
def lab(uplink_lab: UplinkLab) -> UplinkLab:
    return uplink_lab


def start(lab: UplinkLab, tmp_path: Path, **options: Any) -> LabDaemon:
    daemon = lab.daemon(uplink_config(tmp_path, **options), tmp_path, 19642)
    daemon.wait_ready()
    daemon.wait_for(lambda: active(daemon) == ["wan1"], what="wan1 active")
    return daemon


def active(daemon: LabDaemon) -> list[str]:
    return sorted(u["interface"] for u in daemon.state()["uplinks"]
                  if u["active"] and u["family"] == "ipv4")


def wall(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp()


def uplink_table(lab: UplinkLab, tmp_path: Path) -> list[dict[str, Any]]:
    """The routes of polroutd's uplink table (its number from the daemon's rt_tables file)."""
    recorded = (tmp_path / "rt_tables.d" / "polroutd.conf").read_text().split("\n")
    number = next(line.split()[0] for line in recorded if line.endswith(" uplinks"))
    return routes(lab, number)


def routes(lab: UplinkLab, table: str = "all") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(
        lab.sh(lab.host, "ip", "-j", "route", "show", "table", table) or "[]")
    return out


def main_defaults(lab: UplinkLab) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in routes(lab, "main")
                  if r["dst"] == "default")


def measure(lab: UplinkLab, daemon: LabDaemon, fail: Any, seconds: float = 4.0) -> tuple[
        float | None, float | None, list[Any]]:
    """Breaks wan1 with ``fail(False)`` while a client loop runs, restores it with
    ``fail(True)`` 1.5 s later: (failover seconds, recovery seconds, attempts)."""
    client = lab.client(seconds)
    time.sleep(0.5)
    broke = time.monotonic()
    fail(False)
    time.sleep(1.5)
    restored = time.monotonic()
    fail(True)
    tries = attempts(client)
    daemon.check_alive()
    return outage(tries, broke, "wan2"), outage(tries, restored, "wan1"), tries


def test_carrier_loss_fails_over_at_once_and_recovers_after_probe_up(
    lab: UplinkLab, tmp_path: Path
) -> None:
    daemon = start(lab, tmp_path)
    before = main_defaults(lab)
    failover, recovery, _ = measure(lab, daemon, lambda on: lab.carrier("wan1", on))
    # One sample, on a shared machine: far below any probe's time (the 100 ms median target is
    # the benchmark's, bench/scen_uplinks.py).
    assert failover is not None and failover < 0.3, failover
    assert recovery is not None and (UP - 1) * INTERVAL <= recovery < UP * INTERVAL + 1.0
    wan1 = uplink_state(daemon, "wan1")
    assert wan1["up"] and wan1["cause"] == "probe"
    metrics = daemon.http("/metrics")[1]
    assert ('polroutd_uplink_transitions_total{cause="link",family="ipv4",interface="wan1",'
            'to="down"} 1.0') in metrics
    assert main_defaults(lab) == before  # DHCP's defaults in main: never touched
    print(f"carrier: failover {failover * 1000:.0f} ms, recovery {recovery * 1000:.0f} ms")


def test_upstream_failure_is_found_by_probes_within_interval_times_down_plus_timeout(
    lab: UplinkLab, tmp_path: Path
) -> None:
    daemon = start(lab, tmp_path)
    failover, recovery, _ = measure(lab, daemon, lambda on: lab.upstream("wan1", on))
    assert failover is not None and failover <= PROBE_BOUND + 0.15, failover
    assert recovery is not None and recovery >= (UP - 1) * INTERVAL
    assert uplink_state(daemon, "wan1")["cause"] == "probe"
    print(f"upstream: failover {failover * 1000:.0f} ms, recovery {recovery * 1000:.0f} ms")


def test_a_gateway_that_stops_answering_arp_is_left(lab: UplinkLab, tmp_path: Path) -> None:
    daemon = start(lab, tmp_path)
    failover, recovery, _ = measure(lab, daemon, lambda on: lab.arp("wan1", on))
    assert failover is not None and failover <= PROBE_BOUND + 0.15, failover
    # requests queued for the unresolved gateway are answered together: they count once
    assert recovery is not None and recovery >= (UP - 1) * INTERVAL, recovery
    causes = daemon.http("/metrics")[1]
    assert 'interface="wan1",to="down"} 1.0' in causes
    print(f"arp: failover {failover * 1000:.0f} ms, recovery {recovery * 1000:.0f} ms, "
          f"{[line for line in causes.splitlines() if 'transitions_total{' in line]}")


def test_connections_bound_to_the_other_uplink_are_never_disturbed(
    lab: UplinkLab, tmp_path: Path
) -> None:
    daemon = start(lab, tmp_path)
    long_lived = lab.long_lived("10.2.0.2", 3.0)
    time.sleep(0.5)
    lab.carrier("wan1", False)
    time.sleep(1.0)
    lab.carrier("wan1", True)
    out, _ = long_lived.communicate(timeout=30)
    result = json.loads(out)
    assert result["broken"] is None and result["worst_gap"] < 0.2, result
    daemon.check_alive()


def test_a_flapping_link_causes_only_the_transitions_hysteresis_allows(
    lab: UplinkLab, tmp_path: Path
) -> None:
    daemon = start(lab, tmp_path)
    before = daemon.counters()
    flapping_until = time.monotonic() + FLAP_SECONDS
    on = False
    while time.monotonic() < flapping_until:
        lab.carrier("wan1", on)
        on = not on
        time.sleep(0.1)
    lab.carrier("wan1", True)
    flapping_ended = time.time()
    # The kernel reports a veth's carrier changes through linkwatch, at most about one a
    # second, so probes see flaps the events miss: the bound is the hysteresis' own, at most
    # two transitions per probe_up x probe_interval (docs/uplinks.md).
    during = [e for e in daemon.log_events("uplink_down") + daemon.log_events("uplink_up")
              if wall(e) < flapping_ended and e["family"] == "ipv4"]
    allowed = 2 * math.ceil(FLAP_SECONDS / (UP * INTERVAL))
    assert 1 <= len(during) <= allowed, during
    daemon.wait_for(lambda: uplink_state(daemon, "wan1")["up"], timeout=5, what="wan1 back")
    after = daemon.counters()
    operations = after["changes"] - before["changes"] + after["repairs"] - before["repairs"]
    transitions = uplink_state(daemon, "wan1")["transitions"]
    print(f"flapping {FLAP_SECONDS:g} s: {len(during)} transitions while flapping "
          f"(allowed {allowed}), {operations} operations, {transitions} transitions in all")
    assert operations <= transitions + 2, (before, after)  # one route op per transition


def test_main_defaults_carry_traffic_only_when_no_uplink_is_healthy(
    lab: UplinkLab, tmp_path: Path
) -> None:
    daemon = start(lab, tmp_path)
    before = main_defaults(lab)
    lab.upstream("wan1", False)
    lab.upstream("wan2", False)
    daemon.wait_for(lambda: active(daemon) == [], timeout=5, what="no uplink healthy")
    assert uplink_table(lab, tmp_path) == []
    # main's foreign defaults remain, untouched: the last resort
    assert main_defaults(lab) == before and len(before) == 2
    got = lab.sh(lab.host, "ip", "-j", "route", "get", "198.51.100.1")
    assert json.loads(got)[0]["dev"] == "wan1"  # main's metric 100 default
    lab.upstream("wan2", True)
    daemon.wait_for(lambda: active(daemon) == ["wan2"], timeout=5, what="wan2 back")


def test_balance_spreads_new_flows_by_weight_and_drops_a_dead_uplink(
    lab: UplinkLab, tmp_path: Path
) -> None:
    daemon = lab.daemon(uplink_config(tmp_path, mode="balance", weights=(3, 1)), tmp_path,
                        19642)
    daemon.wait_ready()
    daemon.wait_for(lambda: active(daemon) == ["wan1", "wan2"], what="both active")
    (multipath,) = uplink_table(lab, tmp_path)
    assert sorted((h["dev"], h["weight"]) for h in multipath["nexthops"]) == [
        ("wan1", 3), ("wan2", 1)]
    tries = attempts(lab.client(3.0, every=0.005))
    ok = [via(t.src) for t in tries if t.ok]
    share = ok.count("wan1") / len(ok)
    print(f"balance: {len(ok)} connections, wan1 share {share:.2f} (weight 3:1 -> 0.75)")
    assert 0.6 <= share <= 0.9, share
    lab.carrier("wan2", False)
    daemon.wait_for(lambda: active(daemon) == ["wan1"], timeout=2, what="wan2 left")
    (single,) = uplink_table(lab, tmp_path)
    assert single["dev"] == "wan1" and "nexthops" not in single
    daemon.stop()


def test_icmp_probes_not_allowed_are_said_once_at_start_and_in_state(
    lab: UplinkLab, tmp_path: Path
) -> None:
    lab.sh(lab.host, "sysctl", "-qw", "net.ipv4.ping_group_range=1 0")
    daemon = lab.daemon(uplink_config(tmp_path), tmp_path, 19642)
    daemon.wait_ready()
    daemon.wait_for(lambda: daemon.state()["uplinks_error"] is not None, what="uplinks_error")
    error = daemon.state()["uplinks_error"]
    assert "net.ipv4.ping_group_range" in error and "\n" not in error
    assert len(daemon.log_events("icmp_probes_unavailable")) == 1
    # events still work without probes: carrier loss moves traffic
    lab.carrier("wan1", False)
    daemon.wait_for(lambda: active(daemon) == ["wan2"], timeout=2, what="failover")


def test_ipv6_fails_over_on_carrier_loss_like_ipv4(lab: UplinkLab, tmp_path: Path) -> None:
    daemon = start(lab, tmp_path)
    daemon.wait_for(lambda: uplink_state(daemon, "wan1", "ipv6")["active"], what="wan1 v6")
    recorded = (tmp_path / "rt_tables.d" / "polroutd.conf").read_text().split("\n")
    number = next(line.split()[0] for line in recorded if line.endswith(" uplinks"))
    six = json.loads(lab.sh(lab.host, "ip", "-6", "-j", "route", "show", "table", number))
    assert sorted((r["dev"], r["metric"]) for r in six) == [("wan1", 100), ("wan2", 200)]
    client = lab.client(2.5, server=SERVER6)
    time.sleep(0.5)
    broke = time.monotonic()
    lab.carrier("wan1", False)
    tries = attempts(client)
    failover = outage(tries, broke, "wan2")
    assert failover is not None and failover < 0.3, failover
    assert uplink_state(daemon, "wan1", "ipv6")["cause"] == "link"
    print(f"ipv6 carrier: failover {failover * 1000:.0f} ms")
