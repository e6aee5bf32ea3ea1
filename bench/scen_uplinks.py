"""Uplink failover (docs/uplinks.md), with real packets in polroutd.lab.uplinks.

A client loop on the host opens a TCP connection to the lab's "internet" server every 5 ms
with no source address chosen (30 ms connect timeout); each line says when it started and
from which uplink it left. Failover time: from the moment a failure is injected on the active
uplink (wan1) to the first connection started after it that leaves by wan2. Recovery time:
from the repair to the first connection back on wan1.

* carrier loss (the router's end of the link down): event-driven, target <= 100 ms median;
* upstream failure (a blackhole on the router, link up): found by ICMP probes, target
  <= probe_interval x probe_down + probe_timeout (0.2 x 3 + 0.3 = 0.9 s here, <= 1 s);
* recovery honours probe_up: three successes in a row span at least (3 - 1) x 0.2 = 0.4 s;
* the CPU polroutd spends probing 4 uplinks every 0.2 s (target < 1 % of a core), the median
  of 3 runs; with ``POLROUTD_BENCH_UPLINK_BASELINE=DIR`` the polroutd of source tree DIR runs
  alternately with this one, in the same lab and under the same load, for a before/after
  (``POLROUTD_BENCH_UPLINK_PARTS=cpu`` skips the failover measurements).

The reference beside it is configuration arithmetic, not a measurement: mwan3's defaults
(interval 10 s, down 5) need 50 s of failed pings before it fails over.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from bench import PREFIX, BenchError
from bench.common import Context, Row, median, ms, summary
from polroutd.lab.daemon import LabDaemon
from polroutd.lab.uplinks import UplinkLab, attempts, outage, uplink_config

HTTP_PORT = 19652
INTERVAL, TIMEOUT, DOWN, UP = 0.2, 0.3, 3, 3
MWAN3_SECONDS = 10 * 5  # mwan3 defaults: interval 10 s, down 5
BASELINE_ENV = "POLROUTD_BENCH_UPLINK_BASELINE"  # a source tree to compare the probe CPU with
PARTS_ENV = "POLROUTD_BENCH_UPLINK_PARTS"  # "cpu": only the probe CPU


def _active(daemon: LabDaemon) -> list[str]:
    """The uplinks that carry IPv4 connections now."""
    return sorted(u["interface"] for u in daemon.state()["uplinks"]
                  if u["active"] and u["family"] == "ipv4")


def _wait_active(daemon: LabDaemon, names: list[str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _active(daemon) != names:
        daemon.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"uplinks {names} never became the active ones: {_active(daemon)}")
        time.sleep(0.05)


def _sample(lab: UplinkLab, daemon: LabDaemon, fail: str) -> tuple[float, float]:
    """(failover seconds, recovery seconds) of one injected failure of wan1."""
    inject = {"carrier": lab.carrier, "upstream": lab.upstream}[fail]
    client = lab.client(4.0)
    time.sleep(0.5)
    broke = time.monotonic()
    inject("wan1", False)
    time.sleep(1.5)
    restored = time.monotonic()
    inject("wan1", True)
    tries = attempts(client)
    _wait_active(daemon, ["wan1"])
    failover, recovery = outage(tries, broke, "wan2"), outage(tries, restored, "wan1")
    if failover is None or recovery is None:
        raise BenchError(f"{fail}: no connection by the other uplink ({failover}, {recovery})")
    return failover, recovery


def _failures(ctx: Context) -> None:
    lab = UplinkLab(PREFIX)
    ctx.cleanups.append(lab.close)
    daemon = LabDaemon(lab.spaces, lab.host,
                       uplink_config(ctx.workdir, interval=INTERVAL, timeout=TIMEOUT,
                                     down=DOWN, up=UP, http_port=HTTP_PORT),
                       directory=ctx.workdir, http_listen=f"127.0.0.1:{HTTP_PORT}")
    try:
        daemon.wait_ready(60)
        _wait_active(daemon, ["wan1"])
        results: dict[str, tuple[list[float], list[float]]] = {}
        for fail, count in (("carrier", ctx.n(20, 3)), ("upstream", ctx.n(10, 2))):
            ctx.say(f"  uplinks: {count} x {fail} failure of the active uplink")
            samples = [_sample(lab, daemon, fail) for _ in range(count)]
            results[fail] = ([f for f, _ in samples], [r for _, r in samples])
    finally:
        daemon.stop()
        lab.close()
    bound = INTERVAL * DOWN + TIMEOUT
    carrier, upstream = results["carrier"], results["upstream"]
    rows = [
        ("carrier loss -> next uplink, median", median(carrier[0]), "<= 100 ms", 0.1),
        ("upstream failure -> next uplink, median", median(upstream[0]),
         f"<= {ms(bound):.0f} ms (interval x down + timeout)", bound),
        ("upstream failure -> next uplink, worst", max(upstream[0]), "<= 1000 ms", 1.0),
        ("recovery after repair (carrier), min", min(carrier[1]),
         f">= {ms((UP - 1) * INTERVAL):.0f} ms ((probe_up - 1) x interval)", None),
        ("recovery after repair (carrier), median", median(carrier[1]), "", None),
        ("recovery after repair (upstream), min", min(upstream[1]),
         f">= {ms((UP - 1) * INTERVAL):.0f} ms ((probe_up - 1) x interval)", None),
        ("recovery after repair (upstream), median", median(upstream[1]), "", None),
    ]
    for measure, value, target, limit in rows:
        # Recovery needs probe_up successes in a row, the first of which may come at once.
        met = (value <= limit if limit is not None else value >= (UP - 1) * INTERVAL
               ) if target else None
        ctx.add(Row("uplinks", measure, "ms", ms(value), target=target, met=met))
    ctx.add(Row("uplinks", "reference: mwan3 default detection (10 s x 5, arithmetic)", "ms",
                ms(MWAN3_SECONDS)))
    ctx.details["uplinks"] = {
        "probe": {"interval": INTERVAL, "timeout": TIMEOUT, "down": DOWN, "up": UP},
        "carrier_failover_seconds": summary(carrier[0]),
        "carrier_recovery_seconds": summary(carrier[1]),
        "upstream_failover_seconds": summary(upstream[0]),
        "upstream_recovery_seconds": summary(upstream[1]),
        "mwan3_default_detection_seconds": MWAN3_SECONDS,
    }


def _cpu_share(lab: UplinkLab, ctx: Context, *, ipv6: bool, seconds: float,
               source: str | None) -> float:
    """The share of a core one polroutd spends probing the lab's 4 uplinks for ``seconds``;
    ``source``: run the polroutd of that source tree instead of this one."""
    extra = {"PYTHONPATH": source} if source else None
    config = uplink_config(ctx.workdir, interval=INTERVAL, timeout=TIMEOUT, count=4,
                           weights=(1, 1, 1, 1), http_port=HTTP_PORT, ipv6=ipv6)
    # `python -m polroutd` imports from its working directory first: start it in the tree.
    with contextlib.chdir(source or os.getcwd()):
        daemon = LabDaemon(lab.spaces, lab.host, config, directory=ctx.workdir,
                           http_listen=f"127.0.0.1:{HTTP_PORT}", extra_env=extra)
    try:
        daemon.wait_ready(60)
        _wait_active(daemon, ["wan1"])
        time.sleep(1.0)  # past the start-up's imports and first reconciles
        cpu, started = _cpu_seconds(daemon), time.monotonic()
        time.sleep(seconds)
        share = (_cpu_seconds(daemon) - cpu) / (time.monotonic() - started)
        daemon.check_alive()
    finally:
        daemon.stop()
    return share


def _cpu_seconds(daemon: LabDaemon) -> float:
    """The daemon's CPU time to the nanosecond: the scheduler's runtime of each of its threads
    (/proc/PID/task/*/schedstat). /proc/PID/stat's utime + stime count 10 ms ticks: a 20 s
    run at 0.5 % is a dozen of them, too coarse to tell two versions apart."""
    total = 0
    for task in Path(f"/proc/{daemon.pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            return daemon.cpu_seconds()  # no schedstat in this kernel
    return total / 1e9


def _probe_cpu(ctx: Context) -> None:
    """Runs of ``seconds`` each, alternating with the baseline's when BASELINE_ENV names a
    source tree (e.g. ``git archive COMMIT | tar -x -C DIR``): both then share the machine's
    load, and the medians compare."""
    baseline = os.environ.get(BASELINE_ENV)
    variants: list[tuple[str, str | None]] = [("", None)]
    if baseline:
        variants.append((" [baseline]", baseline))
    lab = UplinkLab(PREFIX, count=4)
    ctx.cleanups.append(lab.close)
    seconds, repeats = ctx.n(20, 3), ctx.n(3, 1)
    try:
        for ipv6, label in ((False, "IPv4"), (True, "IPv4 + IPv6")):
            shares: dict[str, list[float]] = {name: [] for name, _ in variants}
            for repeat in range(repeats if not ipv6 else 1):
                for name, source in variants:
                    ctx.say(f"  uplinks: CPU of probing 4 uplinks ({label}){name} every "
                            f"{INTERVAL:g} s, {seconds} s (run {repeat + 1}); load "
                            f"{_loadavg()}")
                    shares[name].append(_cpu_share(lab, ctx, ipv6=ipv6, seconds=seconds,
                                                   source=source))
            paths = 8 if ipv6 else 4
            for name, values in shares.items():
                share = median(values)
                target = not ipv6 and not name
                ctx.add(Row("uplinks", f"CPU, 4 uplinks ({label}: {paths} paths) probed every "
                            f"0.2 s{name}, median of {len(values)}", "% core", share * 100,
                            target="< 1 %" if target else "", met=share < 0.01 if target else None))
                key = f"probe_cpu_share_{paths}_paths{'_baseline' if name else ''}"
                ctx.details.setdefault("uplinks", {})[key] = values
    finally:
        lab.close()


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run(ctx: Context) -> None:
    if os.environ.get(PARTS_ENV, "all") != "cpu":
        _failures(ctx)
    _probe_cpu(ctx)
