"""Burst: 1,024 addresses (64 interfaces x 16) added by one ``ip -batch`` while the daemon runs.

Measured from outside, the same way for every contender: the clock starts when the ``ip
-batch`` process is started, and stops at the ``RTM_NEWRULE`` (seen by a probe joined to
RTNLGRP_IPV4_RULE) that completes the set of 1,024 source rules.

* polroutd: the daemon (HTTP on) runs on a host with the 64 interfaces and no address; the
  address batch is started.
* ip -batch (the target's floor): a host without addresses gets one ``ip -batch`` of the same
  address lines followed by exactly the operations polroutd performs there (``polroutd render
  --format ip-batch``: 64 connected routes and 1,024 rules). Same clock as polroutd's, which
  also includes adding the addresses.
* ip -batch, operations only: a host that already has the addresses gets the rendered
  operations alone; set against polroutd's time from the last address event to the last rule.
* naive: the ``ip monitor`` shell loop runs on a host without addresses; the address batch is
  started.

One burst is one sample and this machine's speed drifts, so polroutd and both ``ip -batch``
runs are repeated (5 times; quick: once), each on a freshly built host, one after the other
within a repetition, and the medians are compared. The naive loop (two seconds a burst) runs
once.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from bench import PREFIX, BenchError, hosts, nl
from bench.common import (
    Context,
    Row,
    check_rules,
    check_sources,
    median,
    ms,
    reconcile_count,
    start_daemon,
)
from bench.naive import NaiveLoop
from bench.scen_cold import render_batch
from bench.scen_latency import warm_up
from polroutd.lab import netns

SHAPE = hosts.HostShape(interfaces=64, per_interface=16, gateways=False)
HTTP_PORT = 19652


def timed_burst(ns: str, batch: Path, expected: set[str], timeout: float) -> dict[str, float]:
    """Starts ``ip -n NS -batch FILE``; seconds until every expected rule was seen, until the
    batch process exited, and until its last address event."""
    watch = nl.RuleWatch(ns, addresses=True)
    try:
        watch.drain()
        started = time.perf_counter()
        proc = subprocess.Popen(["ip", "-n", ns, "-batch", str(batch)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        seen = watch.wait_for(expected, set(), timeout)
        _, err = proc.communicate(timeout=timeout)
        exited = time.perf_counter()
        if proc.returncode != 0:
            raise BenchError(f"ip -batch failed: {err.decode().strip()[:300]}")
        return {
            "converged": max(seen.values()) - started,
            "first_rule": min(seen.values()) - started,
            "batch_exited_by": exited - started,
            "last_address_event": (watch.last_address_event - started
                                   if watch.last_address_event else 0.0),
        }
    finally:
        watch.close()


def ip_batch_burst(host: hosts.Host, batch: Path, expected: set[str]) -> dict[str, float]:
    """``timed_burst`` of ``ip -batch`` on ``host``, checked, then the host removed."""
    timing = timed_burst(host.ns, batch, expected, 60)
    sock = nl.Socket(host.ns)
    try:
        check_rules(sock, expected, f"burst: {batch.name}")
    finally:
        sock.close()
    netns.delete(host.peer)
    netns.delete(host.ns)
    return timing


def polroutd_burst(ctx: Context, spaces: netns.Namespaces, address_batch: Path,
                   rep: int) -> dict[str, float]:
    """The daemon, started on a host without addresses, through one burst."""
    host = hosts.Host(spaces, f"burst{rep}", SHAPE, with_addresses=False)
    expected = host.expected_sources()
    config = hosts.write_config(ctx.workdir / "burst.toml", ctx.workdir / f"burst{rep}",
                                http_port=HTTP_PORT)
    daemon = start_daemon(ctx, host.ns, config, http_port=HTTP_PORT)
    try:
        daemon.wait_ready(60)
        before = reconcile_count(daemon)
        timing = timed_burst(host.ns, address_batch, expected, 60)
        watch = nl.RuleWatch(host.ns)
        try:
            watch.quiet(0.5, 30)
        finally:
            watch.close()
        sock = nl.Socket(host.ns)
        try:
            check_rules(sock, expected, "burst")
        finally:
            sock.close()
        timing["reconciles"] = reconcile_count(daemon) - before
        daemon.check_alive()
    finally:
        daemon.stop()
    netns.delete(host.peer)
    netns.delete(host.ns)
    return timing


def naive_burst(spaces: netns.Namespaces, address_batch: Path) -> dict[str, float]:
    host = hosts.Host(spaces, "burstn", SHAPE, with_addresses=False)
    expected = host.expected_sources()
    loop = NaiveLoop(host.ns)
    try:
        warm_up(host)
        timing = timed_burst(host.ns, address_batch, expected, 120)
        sock = nl.Socket(host.ns)
        try:
            check_sources(sock, expected, "burst naive")
        finally:
            sock.close()
    finally:
        loop.stop()
    netns.delete(host.peer)
    netns.delete(host.ns)
    return timing


def run(ctx: Context) -> None:
    reps = ctx.n(5, 1)
    spaces = netns.Namespaces(PREFIX)
    shape_host = hosts.Host(spaces, "burstr", SHAPE)  # has the addresses: for rendering
    expected = shape_host.expected_sources()
    address_batch = ctx.workdir / "burst-addresses.ip-batch"
    address_batch.write_text("\n".join(shape_host.address_lines()) + "\n")
    render_config = hosts.write_config(ctx.workdir / "burst-r.toml", ctx.workdir / "burst-r")
    rules_batch, routes, rules = render_batch(ctx, shape_host.ns, render_config, "burst")
    netns.delete(shape_host.peer)
    netns.delete(shape_host.ns)
    combined = ctx.workdir / "burst-combined.ip-batch"
    combined.write_text(address_batch.read_text() + rules_batch.read_text())

    runs: dict[str, list[dict[str, float]]] = {
        "polroutd": [], "ip_batch": [], "ip_batch_operations": []}
    ctx.say(f"  burst: {len(expected)} addresses, {reps} repetition(s) of: polroutd; ip -batch "
            f"of the addresses then {routes} routes + {rules} rules; those operations alone")
    for rep in range(reps):
        runs["polroutd"].append(polroutd_burst(ctx, spaces, address_batch, rep))
        # ip -batch of the addresses and then polroutd's operations, on a host without them
        bare = hosts.Host(spaces, f"burstc{rep}", SHAPE, with_addresses=False)
        runs["ip_batch"].append(ip_batch_burst(bare, combined, expected))
        # the operations alone, on a host that has the addresses
        ready = hosts.Host(spaces, f"burstb{rep}", SHAPE)
        runs["ip_batch_operations"].append(ip_batch_burst(ready, rules_batch, expected))
    ctx.say("  burst: naive loop")
    naive = naive_burst(spaces, address_batch)

    est = {key: {field: median([r[field] for r in values]) for field in values[0]}
           for key, values in runs.items()}
    ours, floor = est["polroutd"], est["ip_batch"]["converged"]
    ratio = ours["converged"] / floor
    ctx.add(Row("burst", f"{len(expected)} addresses in one ip -batch -> every rule", "ms",
                ms(ours["converged"]), ip_batch=ms(floor), naive=ms(naive["converged"]),
                target="<= 1.5x ip -batch", met=ratio <= 1.5))
    after_last = median([r["converged"] - r["last_address_event"] for r in runs["polroutd"]])
    ctx.add(Row("burst", "same, from the last address event; ip -batch: operations only", "ms",
                ms(after_last), ip_batch=ms(est["ip_batch_operations"]["converged"])))
    ctx.details["burst"] = {
        "addresses": len(expected),
        "repetitions": reps,
        "estimate": "median over the repetitions, each field on its own",
        "median": est,
        "runs": runs,
        "naive": naive,
    }
