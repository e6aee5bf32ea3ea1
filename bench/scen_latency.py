"""Event -> converged latency: one address added (and later removed), rule observed on netlink.

A probe in the host's namespace sends ``RTM_NEWADDR`` for a fresh address (in a prefix of its
own, so polroutd also installs a connected route before the rule), takes the time just before
``sendmsg``, and waits on a socket joined to RTNLGRP_IPV4_RULE for the ``RTM_NEWRULE`` whose
source is that address; the removal is timed the same way up to the ``RTM_DELRULE``. Events
are spaced by a random pause, so each one meets a quiet daemon (the case the leading-edge
schedule is built for).
"""

from __future__ import annotations

import random
import time

from bench import PREFIX, BenchError, hosts, nl
from bench.common import Context, Row, ms, percentile, reconcile_count, start_daemon, summary
from bench.naive import NaiveLoop
from polroutd.lab import netns

SMALL = hosts.HostShape(interfaces=4, per_interface=2)
HTTP_PORT = 19651


def probe_address(k: int) -> str:
    """The k-th probe address: 10.200.0.5, 10.200.1.5, ... (each in a /24 of its own)."""
    return f"10.{200 + k // 250}.{k % 250}.5"


def measure(host: hosts.Host, count: int, pause: tuple[float, float], seed: int,
            timeout: float = 10.0) -> tuple[list[float], list[float]]:
    """(add latencies, delete latencies) in seconds, ``count`` of each."""
    rng = random.Random(seed)
    watch = nl.RuleWatch(host.ns)
    request = nl.Socket(host.ns)
    adds: list[float] = []
    dels: list[float] = []
    try:
        for k in range(count):
            interface = k % host.shape.interfaces
            index = host.index[hosts.ifname(interface)]
            addr = probe_address(k)
            for op, into in (("add", adds), ("delete", dels)):
                time.sleep(rng.uniform(*pause))
                watch.drain()
                started = time.perf_counter()
                seq = request.address(op, index, addr, 24)
                seen = watch.wait_for({addr} if op == "add" else set(),
                                      {addr} if op == "delete" else set(), timeout)
                into.append(seen[addr] - started)
                request.wait_ack(seq)
    finally:
        watch.close()
        request.close()
    return adds, dels


def _rows(ctx: Context, scenario: str, label: str, adds: list[float], dels: list[float],
          naive: tuple[list[float], list[float]] | None, with_targets: bool) -> None:
    for op, values, naive_values in (
        ("add", adds, naive[0] if naive else None),
        ("remove", dels, naive[1] if naive else None),
    ):
        for stat, pct, limit in (("median", 50.0, 10.0), ("p99", 99.0, 50.0)):
            value = ms(percentile(values, pct))
            targeted = with_targets and op == "add"
            ctx.add(Row(
                scenario, f"{label}: address {op} -> rule {stat}", "ms", value,
                naive=ms(percentile(naive_values, pct)) if naive_values else None,
                target=f"<= {limit:g} ms" if targeted else "",
                met=(value <= limit) if targeted else None,
            ))


def run(ctx: Context) -> None:
    """Small multi-homed host (4 interfaces x 2 addresses), daemon with HTTP and metrics."""
    count = ctx.n(200, 20)
    spaces = netns.Namespaces(PREFIX)
    host = hosts.Host(spaces, "lat", SMALL)
    config = hosts.write_config(ctx.workdir / "latency.toml", ctx.workdir / "latency",
                                http_port=HTTP_PORT)
    daemon = start_daemon(ctx, host.ns, config, http_port=HTTP_PORT)
    try:
        ready = daemon.wait_ready(60)
        ctx.say(f"  latency: daemon ready in {ms(ready):.0f} ms; {count} add/remove events")
        if daemon.http("/readyz")[0] != 200:
            raise BenchError("daemon not ready on /readyz")
        adds, dels = measure(host, count, (0.08, 0.14), seed=1)
        rss = daemon.rss_kib()
        reconciles = reconcile_count(daemon)
        daemon.check_alive()
    finally:
        daemon.stop()
    ctx.say(f"  latency: naive loop, {count} events")
    naive_host = hosts.Host(spaces, "latn", SMALL)
    loop = NaiveLoop(naive_host.ns)
    try:
        warm_up(naive_host)
        naive = measure(naive_host, count, (0.02, 0.05), seed=1)
    finally:
        loop.stop()
    _rows(ctx, "latency", f"{SMALL.rules} rules", adds, dels, naive, with_targets=True)
    ctx.details["latency"] = {
        "host": f"{SMALL.interfaces} interfaces x {SMALL.per_interface} addresses",
        "events": count, "ready_seconds": ready, "rss_kib": rss, "reconciles": reconciles,
        "add_seconds": summary(adds), "remove_seconds": summary(dels),
        "naive_add_seconds": summary(naive[0]), "naive_remove_seconds": summary(naive[1]),
    }


def warm_up(host: hosts.Host, timeout: float = 10.0) -> None:
    """Waits until the naive loop reacts (``ip monitor`` has subscribed), then cleans up."""
    watch = nl.RuleWatch(host.ns)
    request = nl.Socket(host.ns)
    index = host.index[hosts.ifname(0)]
    try:
        deadline = time.monotonic() + timeout
        addr = "10.199.0.5"
        while True:
            seq = request.address("add", index, addr, 24)
            request.wait_ack(seq)
            try:
                watch.wait_for({addr}, set(), 0.5)
                break
            except BenchError:
                if time.monotonic() > deadline:
                    raise
                request.wait_ack(request.address("delete", index, addr, 24))
        request.wait_ack(request.address("delete", index, addr, 24))
        watch.wait_for(set(), {addr}, timeout)
    finally:
        watch.close()
        request.close()
