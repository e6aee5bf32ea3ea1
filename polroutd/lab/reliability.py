"""Issue 11's reliability exercises on the article's lab (docs/reliability.md): the kernel
tests run them at CI sizes, ``bench/scen_reliability.py`` at full size. Each returns figures
and leaves the judging to its caller."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from polroutd.lab.article import article_config
from polroutd.lab.daemon import LabDaemon
from polroutd.lab.lab import Lab
from polroutd.lab.topology import SERVER_DATA_IF

PROTOCOL = 218  # the built-in number for "polroutd" when rt_protos does not name it
LEASE_ROUTER = "10.225.176.1"
BURST_ADDRESSES = tuple(f"10.225.176.{n}" for n in range(100, 110))


def write_config(directory: Path, daemon_extra: str = "") -> Path:
    """The article's example configuration (:mod:`polroutd.lab.article`), its files in
    ``directory``."""
    (directory / "leases").mkdir(exist_ok=True)
    path = directory / "polroutd.toml"
    path.write_text(article_config(
        rt_tables_file=f"{directory}/iproute2/rt_tables.d/polroutd.conf",
        lease_paths=[f"{directory}/leases/*.leases"],
        daemon_lines=[daemon_extra] if daemon_extra else []))
    return path


def write_lease(directory: Path, interface: str, address: str, router: str) -> None:
    """A dhclient lease file, as if the address came from DHCP (as in the article)."""
    (directory / "leases").mkdir(exist_ok=True)
    (directory / "leases" / "dhclient.leases").write_text(
        f'lease {{\n  interface "{interface}";\n  fixed-address {address};\n'
        f"  option subnet-mask 255.255.255.0;\n  option routers {router};\n"
        "  renew 4 2099/11/26 10:00:00;\n  expire 4 2099/11/26 12:00:00;\n}\n"
    )


def rules(lab: Lab, ns: str) -> list[dict[str, Any]]:
    out = []
    for family in ("-4", "-6"):
        text = lab.run(ns, "ip", "-j", family, "rule", "show").stdout
        out += [dict(r, family=family) for r in json.loads(text or "[]")]
    return out


def routes(lab: Lab, ns: str) -> list[dict[str, Any]]:
    out = []
    for family in ("-4", "-6"):
        text = lab.run(ns, "ip", "-j", family, "route", "show", "table", "all").stdout
        out += [
            dict(r, family=family)
            for r in json.loads(text or "[]")
            if r.get("table") != "local"
            and r.get("type") not in ("local", "broadcast", "multicast")
        ]
    return out


def owned(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in items if str(i.get("protocol")) in (str(PROTOCOL), "polroutd")]


def foreign(items: list[dict[str, Any]]) -> list[str]:
    """Foreign objects, comparable before/after (volatile fields dropped)."""
    keep = [i for i in items if i not in owned(items)]
    return sorted(
        json.dumps({k: v for k, v in i.items() if k not in ("expires", "flags")}, sort_keys=True)
        for i in keep
    )


def ip_batch(lab: Lab, ns: str, lines: list[str], directory: Path, timeout: float = 60) -> None:
    script = directory / "batch.ip"
    script.write_text("\n".join(lines) + "\n")
    lab.run(ns, "ip", "-batch", str(script), timeout=timeout)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def kill_cycles(
    lab: Lab, start: Callable[[], LabDaemon], directory: Path, cycles: int
) -> dict[str, Any]:
    """``cycles`` times: start the daemon, wait for READY=1, add (or delete) ten addresses on
    ens224 with one ``ip -batch``, SIGKILL it 0 to 40 ms later; then a last start. What the
    kernel holds afterwards: duplicate rules, rules for addresses that are gone, foreign
    objects changed."""
    ns = lab.server
    foreign_before = (foreign(rules(lab, ns)), foreign(routes(lab, ns)))
    started = time.monotonic()
    for cycle in range(cycles):
        d = start()
        try:
            d.wait_ready()
            verb = "add" if cycle % 2 == 0 else "del"
            ip_batch(lab, ns, [f"address {verb} {a}/24 dev {SERVER_DATA_IF}"
                               for a in BURST_ADDRESSES], directory)
            time.sleep(0.01 * (cycle % 5))
        finally:
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait(10)
            d.notify.close()
    killing = time.monotonic() - started
    d = start()
    try:
        d.wait_ready()
        d.wait_for(lambda: bool(d.state()["in_sync"]), what="in sync after the kills")
        ours = owned(rules(lab, ns))
        keys = [(r["priority"], r.get("src"), r.get("table")) for r in ours]
        present = {a["local"] for i in lab.ip_json(ns, "addr", "show")
                   for a in i.get("addr_info", [])}
        return {
            "cycles": cycles,
            "seconds": round(killing, 1),
            "rules": len(ours),
            "duplicate_rules": len(keys) - len(set(keys)),
            "orphan_rules": len({r.get("src") for r in ours} - present),
            "foreign_changed": (foreign(rules(lab, ns)), foreign(routes(lab, ns)))
            != foreign_before,
        }
    finally:
        d.stop()


def flap_storm(
    lab: Lab, daemon: LabDaemon, directory: Path, *, storm: int, paced: int, pace: float = 0.15
) -> dict[str, Any]:
    """``storm`` down/up pairs of ens224 in one ``ip -batch`` (most inside one coalescing
    window), then ``paced`` more ``pace`` apart; the daemon's counters, RSS and descriptors."""
    rss, fds = daemon.rss_kib(), open_fds(daemon.pid)
    flap = [f"link set dev {SERVER_DATA_IF} down", f"link set dev {SERVER_DATA_IF} up"]
    ip_batch(lab, lab.server, flap * storm, directory, timeout=max(60.0, storm / 10))
    for _ in range(paced):
        ip_batch(lab, lab.server, flap, directory)
        time.sleep(pace)
    daemon.wait_for(lambda: bool(daemon.state()["in_sync"]), what="in sync after the flaps")
    time.sleep(0.5)
    return {
        "flaps": storm + paced,
        "counters": daemon.counters(),
        "in_sync": daemon.state()["in_sync"],
        "rss_kib": (rss, daemon.rss_kib()),
        "fds": (fds, open_fds(daemon.pid)),
    }


# Runs inside the namespace: ``count`` GET /state over ``threads`` client threads at once.
# Prints one JSON line: how many were answered 200, the slowest, the errors.
CONCURRENT_STATE = r"""
import concurrent.futures, http.client, json, sys, time
port, count, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def get(_):
    started = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("GET", "/state")
        r = c.getresponse(); body = r.read()
        json.loads(body)
        return r.status, time.monotonic() - started
    except Exception as exc:
        return repr(exc), time.monotonic() - started
    finally:
        c.close()
began = time.monotonic()
with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    results = list(pool.map(get, range(count)))
times = sorted(t for _, t in results)
print(json.dumps({"count": count, "ok": sum(s == 200 for s, _ in results),
                  "errors": sorted({str(s) for s, _ in results if s != 200})[:5],
                  "p50_s": times[len(times) // 2], "max_s": times[-1],
                  "wall_s": time.monotonic() - began}))
"""


def concurrent_state(lab: Lab, port: int, count: int, threads: int) -> dict[str, Any]:
    proc = lab.run(lab.server, sys.executable, "-c", CONCURRENT_STATE, str(port), str(count),
                   str(threads), timeout=300)
    figures: dict[str, Any] = json.loads(proc.stdout)
    return figures


def churn_soak(
    lab: Lab, daemon: LabDaemon, directory: Path, *, seconds: float, sample_every: float = 10.0,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """For ``seconds``: address bursts on ens224 (ten added, then deleted), a link flap and a
    rule deleted behind the daemon's back, in turn, every 0.2 s; RSS and open descriptors
    sampled every ``sample_every`` s. Afterwards: in sync, and the counters."""
    samples: list[tuple[float, int, int]] = []
    began = time.monotonic()
    next_sample = began
    step = 0
    while (now := time.monotonic()) - began < seconds:
        if now >= next_sample:
            samples.append((round(now - began, 1), daemon.rss_kib(), open_fds(daemon.pid)))
            say(f"   soak {now - began:5.0f} s: rss {samples[-1][1]} KiB, fds {samples[-1][2]}")
            next_sample += sample_every
        kind = step % 4
        if kind in (0, 1):
            verb = "add" if kind == 0 else "del"
            ip_batch(lab, lab.server, [f"address {verb} {a}/24 dev {SERVER_DATA_IF}"
                                       for a in BURST_ADDRESSES], directory)
        elif kind == 2:
            ip_batch(lab, lab.server, [f"link set dev {SERVER_DATA_IF} down",
                                       f"link set dev {SERVER_DATA_IF} up"], directory)
        else:
            victim = next((r for r in owned(rules(lab, lab.server)) if r.get("src")), None)
            if victim is not None:
                lab.run(lab.server, "ip", "rule", "del", "priority", str(victim["priority"]),
                        "from", victim["src"], check=False)
        step += 1
        time.sleep(0.2)
    daemon.check_alive()
    daemon.wait_for(lambda: bool(daemon.state()["in_sync"]), what="in sync after the soak")
    samples.append((round(time.monotonic() - began, 1), daemon.rss_kib(), open_fds(daemon.pid)))
    rss = [s[1] for s in samples]
    fds = [s[2] for s in samples]
    # Growth after warm-up: the first minute (or first fifth) settles caches and allocators.
    settled = [s for s in samples if s[0] >= min(60.0, seconds / 5)] or samples
    return {
        "seconds": round(time.monotonic() - began, 1),
        "steps": step,
        "samples": samples,
        "rss_kib_first_last_max": (rss[0], rss[-1], max(rss)),
        "rss_kib_settled_growth": settled[-1][1] - settled[0][1],
        "fds_min_max": (min(fds), max(fds)),
        "counters": daemon.counters(),
        "in_sync": daemon.state()["in_sync"],
    }

