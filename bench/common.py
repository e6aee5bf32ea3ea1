"""What every scenario shares: result rows, the run context, statistics, convergence checks."""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from bench import PREFIX, BenchError, nl
from polroutd.lab import netns
from polroutd.lab.daemon import LabDaemon, polroutd_env

REPO = Path(__file__).resolve().parent.parent
PROTOCOL = 218  # polroutd's built-in protocol number (no rt_protos name needed)


@dataclass
class Row:
    """One line of the results table."""

    scenario: str
    measure: str
    unit: str
    polroutd: float | None
    ip_batch: float | None = None
    naive: float | None = None
    target: str = ""
    # Whether polroutd met the target (None: no target); judged, never asserted.
    met: bool | None = None

    @property
    def ratio_ip(self) -> float | None:
        if self.polroutd is None or not self.ip_batch:
            return None
        return self.polroutd / self.ip_batch

    @property
    def ratio_naive(self) -> float | None:
        if self.polroutd is None or not self.naive:
            return None
        return self.polroutd / self.naive

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario, "measure": self.measure, "unit": self.unit,
            "polroutd": self.polroutd, "ip_batch": self.ip_batch, "naive": self.naive,
            "ratio_ip_batch": self.ratio_ip, "ratio_naive": self.ratio_naive,
            "target": self.target or None, "met": self.met,
        }


@dataclass
class Context:
    quick: bool
    workdir: Path
    say: Callable[[str], None]
    rows: list[Row] = field(default_factory=list)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)
    cleanups: list[Callable[[], object]] = field(default_factory=list)
    soak_seconds: float = 600.0  # the reliability scenario's churn soak (--soak-minutes)

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def add(self, row: Row) -> None:
        self.rows.append(row)


def ms(seconds: float) -> float:
    return seconds * 1000.0


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 200 samples is the 198th smallest)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values), "min": min(values), "median": median(values),
        "p90": percentile(values, 90), "p99": percentile(values, 99), "max": max(values),
    }


class Timed(NamedTuple):
    wall: float  # seconds, fork to exit
    # user + system seconds of the process, the kernel's netlink work for it included (it runs
    # in the sender's context); steadier than wall time on a machine shared with other load
    cpu: float
    proc: subprocess.CompletedProcess[str]


def timed(argv: Sequence[str], *, env: dict[str, str] | None = None,
          timeout: float = 120.0) -> Timed:
    """Wall and CPU time of one command and its result; raises when it fails. (``ip netns
    exec`` execs the command, so the waited-for child is the command itself.)"""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          check=False, env=env, cwd=REPO)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(argv[4:7])} failed ({proc.returncode}): "
                               f"{(proc.stderr or proc.stdout).strip()[-800:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timed(elapsed, cpu, proc)


def polroutd_argv(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, "-m", "polroutd", *args]


def start_daemon(ctx: Context, ns: str, config: Path, http_port: int | None = None) -> LabDaemon:
    """``polroutd run`` in benchmark namespace ``ns``, timed with ``time.perf_counter``."""
    listen = None if http_port is None else f"127.0.0.1:{http_port}"
    return LabDaemon(netns.Namespaces(PREFIX), ns, config, directory=ctx.workdir,
                     http_listen=listen, clock=time.perf_counter)


def reconcile_count(daemon: LabDaemon) -> int:
    """Reconciles the daemon has made so far, successful or not."""
    counters = daemon.counters()
    return int(counters["reconciles_ok"]) + int(counters["reconciles_error"])


def polroutd_cli(ns: str, *args: str, timeout: float = 120.0) -> Timed:
    return timed(polroutd_argv(ns, *args), env=polroutd_env(), timeout=timeout)


def owned_sources(sock: nl.Socket) -> Counter[str]:
    """Source addresses of the IPv4 rules with polroutd's protocol, with their counts."""
    return Counter(r.src for r in sock.rules() if r.protocol == PROTOCOL and r.src)


def check_rules(sock: nl.Socket, expected: set[str], what: str) -> None:
    """Raises unless the rules with polroutd's protocol are exactly one per expected source."""
    have = owned_sources(sock)
    missing = expected - set(have)
    extra = set(have) - expected
    dupes = [src for src, count in have.items() if count > 1]
    if missing or extra or dupes:
        raise BenchError(
            f"{what}: not converged: {len(missing)} missing, {len(extra)} unexpected, "
            f"{len(dupes)} duplicated (e.g. {sorted(missing | extra | set(dupes))[:3]})"
        )


def check_sources(sock: nl.Socket, expected: set[str], what: str,
                  protocol: int | None = None) -> None:
    """Raises unless every expected source has a rule (any protocol, or ``protocol``)."""
    have = {r.src for r in sock.rules() if protocol is None or r.protocol == protocol}
    missing = expected - have
    if missing:
        raise BenchError(f"{what}: {len(missing)} rule(s) missing, "
                               f"e.g. {sorted(missing)[:3]}")


def periodic_resyncs(daemon: LabDaemon, count: int, timeout: float = 60.0) -> list[float]:
    """The durations of the daemon's next ``count`` periodic resyncs (its configuration must
    make them come often), each checked to be a no-op that found the view kept from events
    equal to the kernel (/state ``last_reconcile``, ``last_full_read``)."""
    durations: list[float] = []
    seen = (daemon.state()["last_reconcile"] or {}).get("at")
    deadline = time.monotonic() + timeout
    while len(durations) < count:
        if time.monotonic() > deadline:
            raise BenchError(f"only {len(durations)} periodic resync(s) in {timeout:.0f} s")
        state = daemon.state()
        last = state["last_reconcile"] or {}
        if last.get("at") != seen:
            seen = last.get("at")
            if last.get("reason") == "resync":
                full_read = state.get("last_full_read") or {}
                if last.get("operations") or last.get("result") != "ok":
                    raise BenchError(f"resync was not a no-op: {last}")
                if full_read.get("divergence"):
                    raise BenchError(f"resync found the view diverged: {full_read}")
                durations.append(float(last["duration_seconds"]))
        time.sleep(0.05)
    return durations
