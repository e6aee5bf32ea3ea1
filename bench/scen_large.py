"""Scenarios on one long-running daemon at the 1,024-rule size (64 interfaces x 16 addresses,
main-table default routes, HTTP on): RSS, no-op resync, idle CPU, event latency, storm.

The host and daemon are built by the first of these scenarios that runs and shared by the
others (the storm, which changes the addresses, runs last in the default order).
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from bench import PREFIX, BenchError, hosts, nl, scen_latency
from bench.common import (
    Context,
    Row,
    check_rules,
    median,
    ms,
    percentile,
    periodic_resyncs,
    reconcile_count,
    start_daemon,
    summary,
)
from polroutd.lab import netns
from polroutd.lab.daemon import LabDaemon

SHAPE = hosts.HostShape(interfaces=64, per_interface=16)
HTTP_PORT = 19653
KEY = "large"
SHAPE_4096 = hosts.HostShape(interfaces=256, per_interface=16)
HTTP_PORT_4096 = 19654
KEY_4096 = "large4096"


@dataclass
class Large:
    host: hosts.Host
    daemon: LabDaemon
    ready: float
    expected: set[str]


def _large(ctx: Context, shape: hosts.HostShape = SHAPE, key: str = KEY,
           http_port: int = HTTP_PORT) -> Large:
    existing = ctx.shared.get(key)
    if isinstance(existing, Large):
        existing.daemon.check_alive()
        return existing
    spaces = netns.Namespaces(PREFIX)
    host = hosts.Host(spaces, key, shape)
    config = hosts.write_config(ctx.workdir / f"{key}.toml", ctx.workdir / key,
                                http_port=http_port)
    daemon = start_daemon(ctx, host.ns, config, http_port=http_port)
    ctx.cleanups.append(daemon.stop)
    ready = daemon.wait_ready(60)
    large = Large(host, daemon, ready, host.expected_sources())
    _settle(large)
    ctx.shared[key] = large
    ctx.say(f"  large: daemon ready in {ms(ready):.0f} ms with {len(large.expected)} rules")
    return large


def _settle(large: Large, quiet: float = 0.5) -> None:
    """Waits until rules stop changing, then checks they are exactly the expected ones."""
    watch = nl.RuleWatch(large.host.ns)
    try:
        watch.quiet(quiet, 30)
    finally:
        watch.close()
    sock = nl.Socket(large.host.ns)
    try:
        check_rules(sock, large.expected, "large host")
    finally:
        sock.close()


def _large_4096(ctx: Context) -> Large:
    """The 4,096-rule host (256 interfaces x 16 addresses) and its daemon, shared like the
    1,024-rule one (stopped at the end of the run)."""
    return _large(ctx, SHAPE_4096, KEY_4096, HTTP_PORT_4096)


def rss(ctx: Context) -> None:
    _rss(ctx, "rss", _large(ctx))


def rss_4096(ctx: Context) -> None:
    _rss(ctx, "rss-4096", _large_4096(ctx))


def _rss(ctx: Context, scenario: str, large: Large) -> None:
    value = large.daemon.rss_kib() / 1024
    ctx.add(Row(scenario, f"daemon VmRSS at {len(large.expected)} rules", "MiB", value,
                target="<= 80 MiB", met=value <= 80))
    ctx.details[scenario] = {"vmrss_kib": large.daemon.rss_kib(), "ready_seconds": large.ready}


def _last_reconcile(daemon: LabDaemon) -> dict[str, Any]:
    last: dict[str, Any] = daemon.state()["last_reconcile"] or {}
    return last


def resync(ctx: Context) -> None:
    _resync(ctx, "resync", _large(ctx), "large")


def resync_4096(ctx: Context) -> None:
    """The last of the 4,096-rule scenarios: its daemon and host go afterwards (a daemon left
    running would resync, and disturb the scenarios that follow)."""
    large = _large_4096(ctx)
    try:
        _resync(ctx, "resync-4096", large, KEY_4096)
    finally:
        large.daemon.stop()
        ctx.shared.pop(KEY_4096, None)
        netns.delete(large.host.peer)
        netns.delete(large.host.ns)


def _resync(ctx: Context, scenario: str, large: Large, config_key: str) -> None:
    """A reconcile that finds nothing to do: timed in the daemon (reload-triggered reconciles,
    /state ``last_reconcile.duration_seconds``) and in-process (``Engine.read_and_decide``)."""
    daemon = large.daemon
    durations: list[float] = []
    for _ in range(ctx.n(10, 2)):
        before = _last_reconcile(daemon).get("at")
        daemon.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while True:
            last = _last_reconcile(daemon)
            if last.get("at") != before and last.get("reason") == "reload":
                break
            if time.monotonic() > deadline:
                raise BenchError("no reconcile after SIGHUP")
            time.sleep(0.05)
        if last.get("operations") or last.get("result") != "ok":
            raise BenchError(f"resync was not a no-op: {last}")
        durations.append(float(last["duration_seconds"]))
        time.sleep(0.1)
    inproc = in_process_noop(ctx, large, ctx.n(50, 3), config_key)
    # The periodic resync: the daemon is reloaded with a resync every second for a while.
    config = ctx.workdir / f"{config_key}.toml"
    original = config.read_text()
    config.write_text(original + "resync_interval = 1\n")
    try:
        daemon.proc.send_signal(signal.SIGHUP)
        periodic = periodic_resyncs(daemon, ctx.n(10, 2))
    finally:
        config.write_text(original)
        daemon.proc.send_signal(signal.SIGHUP)
    rules = len(large.expected)
    ctx.add(Row(scenario, f"periodic no-op resync in the daemon at {rules} rules (full read, "
                "view found right)", "ms", ms(median(periodic)), target="<= 50 ms",
                met=ms(median(periodic)) <= 50))
    ctx.add(Row(scenario, f"no-op reconcile after SIGHUP at {rules} rules (full read and "
                "decision)", "ms", ms(median(durations))))
    ctx.add(Row(scenario, "no-op Engine.read_and_decide() in-process (full decision)", "ms",
                ms(inproc["total"]["median"])))
    divergence = daemon.counters().get("cache_divergence", 0)
    if divergence:
        raise BenchError(f"{scenario}: cache divergence counted {divergence} time(s)")
    ctx.details[scenario] = {"periodic_resync_seconds": summary(periodic),
                             "reload_seconds": summary(durations), "in_process_seconds": inproc}


def in_process_noop(ctx: Context, large: Large, reps: int, config_key: str) -> dict[str, Any]:
    from polroutd.config.parse import load_config
    from polroutd.engine import Engine
    from polroutd.netlink.kernel import Netlink

    kernel = netns.in_netns(large.host.ns, Netlink)
    phases: dict[str, list[float]] = {"read": [], "decide": [], "total": []}
    try:
        engine = Engine(load_config(ctx.workdir / f"{config_key}.toml"), kernel)
        for _ in range(reps):
            t0 = time.perf_counter()
            state = kernel.read_state()
            t1 = time.perf_counter()
            decision = engine.decide(state)
            t2 = time.perf_counter()
            if not decision.plan.empty:
                raise BenchError(f"{len(decision.plan.operations)} operations pending")
            phases["read"].append(t1 - t0)
            phases["decide"].append(t2 - t1)
            phases["total"].append(t2 - t0)
    finally:
        kernel.close()
    return {key: summary(values) for key, values in phases.items()}


def idle(ctx: Context) -> None:
    large = _large(ctx)
    seconds = ctx.n(60, 5)
    cpu0, t0 = large.daemon.cpu_seconds(), time.perf_counter()
    time.sleep(seconds)
    cpu1, t1 = large.daemon.cpu_seconds(), time.perf_counter()
    pct = 100.0 * (cpu1 - cpu0) / (t1 - t0)
    ctx.add(Row("idle", f"daemon CPU over {seconds} s at {len(large.expected)} rules",
                "% core", pct, target="< 0.5 %", met=pct < 0.5))
    ctx.details["idle"] = {"seconds": t1 - t0, "cpu_seconds": cpu1 - cpu0, "percent": pct}


def latency(ctx: Context) -> None:
    _latency(ctx, "latency-large", _large(ctx), p99_target=0.020)


def latency_4096(ctx: Context) -> None:
    """The same at 4,096 rules (256 x 16): per-event work must not grow with the host."""
    _latency(ctx, "latency-4096", _large_4096(ctx), p99_target=None)


def _latency(ctx: Context, scenario: str, large: Large, p99_target: float | None) -> None:
    count = ctx.n(200, 10)
    ctx.say(f"  {scenario}: {count} add/remove events")
    adds, dels = scen_latency.measure(large.host, count, (0.15, 0.25), seed=2)
    for op, values in (("add", adds), ("remove", dels)):
        mid, p99 = median(values), percentile(values, 99)
        targeted = op == "add"  # the targets are for an address appearing
        ctx.add(Row(scenario, f"{len(large.expected)} rules: address {op} -> rule median",
                    "ms", ms(mid), target="<= 5 ms" if targeted else "",
                    met=mid <= 0.005 if targeted else None))
        with_p99 = targeted and p99_target is not None
        ctx.add(Row(scenario, f"{len(large.expected)} rules: address {op} -> rule p99",
                    "ms", ms(p99), target=f"<= {ms(p99_target or 0):.0f} ms" if with_p99 else "",
                    met=p99 <= (p99_target or 0) if with_p99 else None))
    _settle(large)
    divergence = large.daemon.counters().get("cache_divergence", 0)
    ctx.details[scenario] = {"add_seconds": summary(adds), "remove_seconds": summary(dels),
                             "cache_divergence": divergence}
    if divergence:
        raise BenchError(f"{scenario}: cache divergence counted {divergence} time(s)")


def storm_lines(shape: hosts.HostShape, events: int) -> tuple[list[str], set[str], set[str]]:
    """``events`` address lines (half adds, half deletes, the last one an add); returns the
    lines, the sources added for good and the original sources deleted."""
    def extra(k: int) -> str:
        return f"{hosts.subnet(k % shape.interfaces)}.{100 + k // shape.interfaces}"

    adds = events // 2
    if adds > shape.interfaces * 150:
        raise ValueError("storm too large for the address plan")
    last = shape.per_interface - 1
    removed = {hosts.address(0, last), hosts.address(1, last)}
    lines = [f"addr del {hosts.address(i, last)}/24 dev {hosts.ifname(i)}" for i in (0, 1)]
    for k in range(adds):
        if k >= 2:
            gone = k - 2
            lines.append(f"addr del {extra(gone)}/24 dev {hosts.ifname(gone % shape.interfaces)}")
        lines.append(f"addr add {extra(k)}/24 dev {hosts.ifname(k % shape.interfaces)}")
    kept = {extra(adds - 2), extra(adds - 1)}
    if len(lines) != events or not lines[-1].startswith("addr add"):
        raise AssertionError("storm shape")
    return lines, kept, removed


def storm(ctx: Context) -> None:
    """5,000 address events in one ``ip -batch``: time from the storm's last address event to
    the last rule change, reconciles (/state counters) and RSS growth."""
    large = _large(ctx)
    daemon = large.daemon
    events = 5000
    lines, kept, removed = storm_lines(SHAPE, events)
    batch = ctx.workdir / "storm.ip-batch"
    batch.write_text("\n".join(lines) + "\n")
    # The counters first: a daemon's first HTTP requests load what its API needs, growth
    # that is not the storm's (the storm run alone measured it as 4.6-8.2 MiB of "growth").
    reconciles_before = reconcile_count(daemon)
    overruns_before = daemon.state()["counters"]["netlink_overruns"]
    rss_before = daemon.rss_kib()
    watch = nl.RuleWatch(large.host.ns, addresses=True)
    try:
        watch.drain()
        started = time.perf_counter()
        proc = subprocess.Popen(["ip", "-n", large.host.ns, "-batch", str(batch)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # read events while the storm runs: each is timestamped when it is received
        last_rule = watch.quiet(1.0, 60)
        _, err = proc.communicate(timeout=60)
        exited = time.perf_counter()
        if proc.returncode != 0:
            raise BenchError(f"storm batch failed: {err.decode().strip()[:300]}")
        storm_end = watch.last_address_event
        address_events = watch.address_events
    finally:
        watch.close()
    if last_rule < storm_end:
        raise BenchError("no rule change followed the storm's last address event")
    large.expected = (large.expected - removed) | kept
    _settle(large)
    reconciles = reconcile_count(daemon) - reconciles_before
    rss_after = daemon.rss_kib()
    overruns = daemon.state()["counters"]["netlink_overruns"] - overruns_before
    converge = max(0.0, last_rule - storm_end)
    growth = (rss_after - rss_before) / 1024
    ctx.add(Row("storm", f"{events} address events: converged after the last one", "ms",
                ms(converge), target="<= 1000 ms", met=ms(converge) <= 1000))
    ctx.add(Row("storm", "reconciles during and after the storm", "count", reconciles,
                target="<= 50", met=reconciles <= 50))
    ctx.add(Row("storm", "RSS growth over the storm", "MiB", growth, target="< 5 MiB",
                met=growth < 5))
    ctx.details["storm"] = {
        "events": events, "address_events_seen": address_events,
        "storm_seconds": storm_end - started, "storm_and_quiet_seconds": exited - started,
        "converged_after_last_event_seconds": converge, "reconciles": reconciles,
        "rss_before_kib": rss_before, "rss_after_kib": rss_after, "overruns": overruns,
    }
