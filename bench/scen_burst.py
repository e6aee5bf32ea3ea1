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
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from bench import hosts, netns, nl
from bench.common import Context, Row, check_rules, check_sources, ms
from bench.daemon import RunningDaemon
from bench.naive import NaiveLoop
from bench.scen_cold import render_batch
from bench.scen_latency import warm_up

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
            raise netns.BenchError(f"ip -batch failed: {err.decode().strip()[:300]}")
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


def run(ctx: Context) -> None:
    spaces = netns.Namespaces()
    address_batch = ctx.workdir / "burst-addresses.ip-batch"
    expected: set[str] = set()
    details: dict[str, Any] = {}

    # polroutd
    host = hosts.Host(spaces, "burst", SHAPE, with_addresses=False)
    address_batch.write_text("\n".join(host.address_lines()) + "\n")
    expected = host.expected_sources()
    config = hosts.write_config(ctx.workdir / "burst.toml", ctx.workdir / "burst",
                                http_port=HTTP_PORT)
    daemon = RunningDaemon(host.ns, config, ctx.workdir, "burst", http_port=HTTP_PORT)
    try:
        daemon.wait_ready()
        before = daemon.reconciles()
        ctx.say(f"  burst: polroutd, {len(expected)} addresses")
        details["polroutd"] = timed_burst(host.ns, address_batch, expected, 60)
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
        details["polroutd"]["reconciles"] = daemon.reconciles() - before
        daemon.check_alive()
    finally:
        daemon.stop()
    netns.delete(host.peer)
    netns.delete(host.ns)

    # ip -batch of the same operations, on a host that has the addresses
    ipb = hosts.Host(spaces, "burstb", SHAPE)
    ipb_config = hosts.write_config(ctx.workdir / "burst-ipb.toml", ctx.workdir / "burst-ipb")
    rules_batch, routes, rules = render_batch(ctx, ipb.ns, ipb_config, "burst")
    ctx.say(f"  burst: ip -batch of {routes} routes + {rules} rules")
    details["ip_batch_operations"] = ip_batch_burst(ipb, rules_batch, expected)

    # ip -batch of the addresses and then those operations, on a host without addresses
    ipc = hosts.Host(spaces, "burstc", SHAPE, with_addresses=False)
    combined = ctx.workdir / "burst-combined.ip-batch"
    combined.write_text(address_batch.read_text() + rules_batch.read_text())
    ctx.say(f"  burst: ip -batch of {len(expected)} addresses, then the same operations")
    details["ip_batch"] = ip_batch_burst(ipc, combined, expected)

    # the naive loop
    naive_host = hosts.Host(spaces, "burstn", SHAPE, with_addresses=False)
    loop = NaiveLoop(naive_host.ns)
    try:
        warm_up(naive_host)
        ctx.say("  burst: naive loop")
        details["naive"] = timed_burst(naive_host.ns, address_batch, expected, 120)
        sock = nl.Socket(naive_host.ns)
        try:
            check_sources(sock, expected, "burst naive")
        finally:
            sock.close()
    finally:
        loop.stop()

    ours, floor = details["polroutd"], details["ip_batch"]["converged"]
    ratio = ours["converged"] / floor
    ctx.add(Row("burst", f"{len(expected)} addresses in one ip -batch -> every rule", "ms",
                ms(ours["converged"]), ip_batch=ms(floor), naive=ms(details["naive"]["converged"]),
                target="<= 2x ip -batch", met=ratio <= 2.0))
    ctx.add(Row("burst", "same, from the last address event; ip -batch: operations only", "ms",
                ms(ours["converged"] - ours["last_address_event"]),
                ip_batch=ms(details["ip_batch_operations"]["converged"])))
    details["addresses"] = len(expected)
    ctx.details["burst"] = details
