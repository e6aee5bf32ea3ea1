"""The cost curve: cold convergence, event latency and no-op resync at 64, 256, 1,024 and 4,096
rules (4, 16, 64 and 256 interfaces x 16 addresses, main-table default routes), for polroutd and
for ``ip -batch`` of the same operations, so that one sees the event cost stay flat while the
cold cost grows with the host.

Per size, two identical hosts are built: ``c<n>`` for polroutd, ``i<n>`` for ``ip``.

* cold: polroutd's reconcile in a fresh process, read + decide + apply timed inside it
  (``bench.cold_child``: no interpreter start or imports); ip: ``ip -4 -batch`` of exactly the
  operations polroutd performs (``polroutd render --format ip-batch``), minus an ``ip -batch``
  of an empty file (ip's own start), paired per repetition.
* event: polroutd's daemon (HTTP on) and the latency probe (an address in a /24 of its own
  added; time to the ``RTM_NEWRULE`` from it, observed on netlink); ip's analogue: the address
  is added (untimed), then one ``ip -batch`` process of the two operations polroutd performs
  for it (the connected route in a table, the rule) is timed from its start to its exit,
  ip's start-up included, as a per-event ``ip`` would pay it.
* resync: the daemon's periodic resync once the probe has stopped (``resync_interval = 1``;
  ``/state`` ``last_reconcile.duration_seconds``): read everything, compare it with the view
  kept from events (found equal), nothing to apply; ip's analogue: one ``ip -batch`` that dumps
  links, addresses, routes (all tables) and rules, to /dev/null, minus the empty batch.

The table (one row per size and measure) and, with matplotlib (``pip install -e '.[bench]'``),
a PNG: ``docs/cost-curve.png`` in a full run, the run's temporary directory with ``--quick``.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import PREFIX, BenchError, hosts, nl, scen_latency
from bench.common import (
    REPO,
    Context,
    Row,
    check_rules,
    median,
    ms,
    periodic_resyncs,
    polroutd_cli,
    start_daemon,
    summary,
)
from bench.plot import draw_curve
from bench.scen_cold import in_fresh_process, render_batch
from polroutd.lab import netns

PER_INTERFACE = 16
INTERFACES = (4, 16, 64, 256)  # 64, 256, 1,024 and 4,096 rules
HTTP_PORT = 19660
PLOT = REPO / "docs" / "cost-curve.png"
PRIORITY = hosts.PRIORITY
IP_TABLE = 31000  # ip's analogue of an event puts its route and rule in a table of its own
DUMPS = "link show\naddr show\nroute show table all\nrule show\n"


def _wall(argv: Sequence[str], timeout: float = 60.0) -> float:
    """Seconds from the start of ``argv`` to its exit (output discarded); raises on failure."""
    started = time.perf_counter()
    proc = subprocess.run(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=timeout, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(argv[:6])} failed: {proc.stderr.decode().strip()[-300:]}")
    return elapsed


def _ip_batch(ns: str, path: Path, *family: str) -> float:
    return _wall(["ip", "-n", ns, *family, "-batch", str(path)])


def _paired(full: list[float], empty: list[float]) -> list[float]:
    return [a - b for a, b in zip(full, empty, strict=True)]


def _cold(ctx: Context, size: str, host: hosts.Host, ipb: hosts.Host, config: Path,
          reps: int) -> dict[str, Any]:
    tables_file = ctx.workdir / f"curve-{size}" / "iproute2" / "rt_tables.d" / "polroutd.conf"
    batch, routes, rules = render_batch(ctx, host.ns, config, f"curve-{size}")
    empty = ctx.workdir / "curve-empty.ip-batch"
    empty.write_text("# nothing\n")
    expected = host.expected_sources()
    sock, ipsock = nl.Socket(host.ns), nl.Socket(ipb.ns)
    ours: list[float] = []
    ip_full: list[float] = []
    ip_empty: list[float] = []
    try:
        for _ in range(reps):
            phases = in_fresh_process(host.ns, config, sock, expected, tables_file,
                                      rules + routes)
            ours.append(phases["total"])
            ip_empty.append(_ip_batch(ipb.ns, empty, "-4"))
            ip_full.append(_ip_batch(ipb.ns, batch, "-4"))
            check_rules(ipsock, expected, f"curve {size}: ip -batch")
            # what ip added goes the way polroutd's does (the batch's protocol is polroutd's)
            polroutd_cli(ipb.ns, "flush", "--config", str(config))
    finally:
        sock.close()
        ipsock.close()
    return {"polroutd": ours, "ip_batch": _paired(ip_full, ip_empty),
            "operations": {"rules": rules, "routes": routes}}


def _ip_event(ctx: Context, host: hosts.Host, count: int) -> list[float]:
    """ip's analogue of one event: one ``ip -batch`` of the connected route and the rule."""
    request = nl.Socket(host.ns)
    times: list[float] = []
    try:
        for k in range(count):
            interface = k % host.shape.interfaces
            name = hosts.ifname(interface)
            addr = scen_latency.probe_address(k)
            prefix = addr.rsplit(".", 1)[0] + ".0/24"
            table = IP_TABLE + interface
            request.wait_ack(request.address("add", host.index[name], addr, 24))
            adds = ctx.workdir / "curve-event.ip-batch"
            adds.write_text(
                f"route add {prefix} dev {name} src {addr} scope link table {table} proto 218\n"
                f"rule add from {addr} table {table} priority {PRIORITY} proto 218\n")
            times.append(_ip_batch(host.ns, adds, "-4"))
            undo = ctx.workdir / "curve-undo.ip-batch"
            undo.write_text(f"rule del from {addr} table {table} priority {PRIORITY}\n"
                            f"route del {prefix} dev {name} table {table}\n")
            _ip_batch(host.ns, undo, "-4")
            request.wait_ack(request.address("delete", host.index[name], addr, 24))
    finally:
        request.close()
    return times


def _ip_resync(ctx: Context, ns: str, reps: int) -> list[float]:
    dumps = ctx.workdir / "curve-dumps.ip-batch"
    dumps.write_text(DUMPS)
    empty = ctx.workdir / "curve-empty.ip-batch"
    full: list[float] = []
    none: list[float] = []
    for _ in range(reps):
        none.append(_ip_batch(ns, empty))
        full.append(_ip_batch(ns, dumps))
    return _paired(full, none)


def _one_size(ctx: Context, interfaces: int, port: int) -> dict[str, Any]:
    shape = hosts.HostShape(interfaces, PER_INTERFACE)
    size = str(shape.rules)
    spaces = netns.Namespaces(PREFIX)
    host = hosts.Host(spaces, f"c{size}", shape)
    ipb = hosts.Host(spaces, f"i{size}", shape)
    # A resync a second once the probe stops (its events keep putting it off until then).
    config = hosts.write_config(ctx.workdir / f"curve-{size}.toml", ctx.workdir / f"curve-{size}",
                                http_port=port, resync_interval=1)
    try:
        cold = _cold(ctx, size, host, ipb, config, ctx.n(5, 1))
        daemon = start_daemon(ctx, host.ns, config, http_port=port)
        try:
            daemon.wait_ready(120)
            count = ctx.n(100, 5)
            adds, _ = scen_latency.measure(host, count, (0.1, 0.2), seed=3)
            resync = periodic_resyncs(daemon, ctx.n(10, 2))
            divergence = daemon.counters().get("cache_divergence", 0)
            rss_kib = daemon.rss_kib()
            daemon.check_alive()
        finally:
            daemon.stop()
        if divergence:
            raise BenchError(f"curve {size}: cache divergence counted {divergence} time(s)")
        ip_event = _ip_event(ctx, ipb, count)
        ip_resync = _ip_resync(ctx, ipb.ns, ctx.n(10, 2))
    finally:
        for ns in (host.peer, host.ns, ipb.peer, ipb.ns):
            netns.delete(ns)
    return {
        "rules": shape.rules, "interfaces": interfaces, "operations": cold["operations"],
        "cold": {"polroutd": cold["polroutd"], "ip_batch": cold["ip_batch"]},
        "event": {"polroutd": adds, "ip_batch": ip_event},
        "resync": {"polroutd": resync, "ip_batch": ip_resync},
        "rss_kib": rss_kib,
    }


def plot_target(quick: bool, workdir: Path) -> Path:
    """docs/cost-curve.png for a full run; a quick run's few samples go to its own directory."""
    return workdir / "cost-curve.png" if quick else PLOT


MEASURES = (
    ("cold", "cold convergence: read + decide + apply; ip: -batch of the same operations"),
    ("event", "address add -> rule (median); ip: one -batch process of its 2 operations"),
    ("resync", "periodic no-op resync in the daemon; ip: -batch dumping everything"),
)


def run(ctx: Context) -> None:
    results: list[dict[str, Any]] = []
    for k, interfaces in enumerate(INTERFACES):
        ctx.say(f"  curve: {interfaces * PER_INTERFACE} rules")
        results.append(_one_size(ctx, interfaces, HTTP_PORT + k))
    curve: dict[str, dict[str, dict[str, float]]] = {}
    for measure, label in MEASURES:
        for result in results:
            ours = median(result[measure]["polroutd"])
            theirs = median(result[measure]["ip_batch"])
            ctx.add(Row("curve", f"{result['rules']} rules: {label}", "ms", ms(ours),
                        ip_batch=ms(theirs)))
            curve.setdefault(measure, {})[str(result["rules"])] = {
                "polroutd_ms": ms(ours), "ip_batch_ms": ms(theirs)}
    drawn = draw_curve(curve, plot_target(ctx.quick, ctx.workdir))
    ctx.say(f"  curve: plot {'written to ' + str(drawn) if drawn else 'skipped (no matplotlib)'}")
    ctx.details["curve"] = {
        "estimate": "median of the samples; ip -batch figures minus an empty batch (cold, "
                    "resync), ip's start-up included (event)",
        "medians_ms": curve,
        "plot": str(drawn) if drawn else None,
        "sizes": [{key: (summary(value) if isinstance(value, list) else value)
                   for key, value in _flat(result).items()} for result in results],
    }


def _flat(result: dict[str, Any]) -> dict[str, Any]:
    """The per-size samples as name -> list (summarised in the JSON), the rest as is."""
    out: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, dict) and key in {m for m, _ in MEASURES}:
            for who, samples in value.items():
                out[f"{key}_{who}_seconds"] = samples
        else:
            out[key] = value
    return out
