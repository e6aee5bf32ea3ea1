"""``python -m bench``: runs the scenarios, prints the table, writes JSON.

``--quick`` (CI) uses fewer samples and shorter waits and must finish in well under a minute;
it asserts nothing about timing, only that every scenario produced its numbers and converged.
Targets (docs/behaviour.md §5) are shown as met or missed in both modes; ``--strict`` makes a
missed target
fail the run (exit 3).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    scen_burst,
    scen_cold,
    scen_curve,
    scen_large,
    scen_latency,
    scen_reliability,
    scen_start,
    scen_uplinks,
)
from bench.common import Context, Row
from polroutd.lab import netns

Scenario = Callable[[Context], None]

SCENARIOS: dict[str, tuple[Scenario, str]] = {
    "latency": (scen_latency.run, "event -> converged latency, small host, HTTP + metrics on"),
    "cold": (scen_cold.run, "cold convergence, 64 x 16 = 1,024 rules, vs ip -batch"),
    "burst": (scen_burst.run, "1,024 addresses in one ip -batch, vs ip -batch and naive"),
    "rss": (scen_large.rss, "daemon RSS at 1,024 rules"),
    "resync": (scen_large.resync, "no-op resync at 1,024 rules"),
    "idle": (scen_large.idle, "idle CPU at 1,024 rules"),
    "latency-large": (scen_large.latency, "event -> converged latency at 1,024 rules"),
    "latency-4096": (scen_large.latency_4096, "event -> converged latency at 4,096 rules"),
    "rss-4096": (scen_large.rss_4096, "daemon RSS at 4,096 rules"),
    "resync-4096": (scen_large.resync_4096, "no-op resync at 4,096 rules"),
    "storm": (scen_large.storm, "5,000 address events: convergence, reconciles, RSS"),
    "reliability": (scen_reliability.run, "100 kill -9, 1,000 flaps, 1,000 concurrent /state, "
                    "churn soak (--soak-minutes)"),
    "uplinks": (scen_uplinks.run, "uplink failover: carrier, upstream, recovery; probe CPU"),
    "start": (scen_start.run, "process start -> STATUS=starting, runtime-only and dev venv; "
              "imports"),
    "curve": (scen_curve.run, "cold, event and no-op resync at 64 to 4,096 rules, vs ip -batch; "
              "table and docs/cost-curve.png"),
}
# Too long for --quick (reliability: about 15 minutes; curve: builds hosts of up to 256
# interfaces): run by full runs and by name only.
NOT_QUICK = frozenset({"reliability", "curve"})

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MISSED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="few samples, short waits, no timing judgement (CI smoke run)")
    parser.add_argument("--out", metavar="FILE.json", help="write the results as JSON")
    parser.add_argument("--scenario", action="append", choices=list(SCENARIOS), metavar="NAME",
                        help="run only these (repeatable): " + ", ".join(SCENARIOS))
    parser.add_argument("--strict", action="store_true",
                        help="exit 3 when polroutd misses a target (full runs only)")
    parser.add_argument("--soak-minutes", type=float, default=10.0, metavar="MIN",
                        help="the reliability scenario's churn soak (default 10)")
    parser.add_argument("--keep-workdir", action="store_true",
                        help="keep the temporary directory (configs, daemon logs)")
    return parser.parse_args(argv)


def selected(args: argparse.Namespace) -> list[str]:
    """The scenarios named, else all of them (but the long ones under --quick)."""
    return list(args.scenario or [name for name in SCENARIOS
                                  if not (args.quick and name in NOT_QUICK)])


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "count" or (unit == "MiB" and value >= 100):
        return f"{value:.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(rows: Sequence[Row]) -> str:
    head = ["scenario", "measure", "unit", "polroutd", "ip -batch", "naive", "ratio/ip",
            "ratio/naive", "target", "met"]
    body = [
        [r.scenario, r.measure, r.unit, _fmt(r.polroutd, r.unit), _fmt(r.ip_batch, r.unit),
         _fmt(r.naive, r.unit), _fmt(r.ratio_ip), _fmt(r.ratio_naive), r.target or "-",
         "-" if r.met is None else ("yes" if r.met else "MISSED")]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    numeric = {3, 4, 5, 6, 7}

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(
            c.rjust(widths[i]) if i in numeric else c.ljust(widths[i]) for i, c in enumerate(cells)
        ) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i in numeric else "-" * (w + 2)
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([line(head), rule, *(line(cells) for cells in body)])


def _meta(args: argparse.Namespace, argv: Sequence[str], elapsed: float) -> dict[str, Any]:
    uname = platform.uname()
    return {
        "command": "python -m bench " + " ".join(shlex.quote(a) for a in argv),
        "quick": args.quick,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(elapsed, 1),
        "kernel": uname.release,
        "machine": uname.machine,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_before": os.getloadavg(),
        "soak_minutes": args.soak_minutes,
    }


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip() or None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench: needs root (network namespaces); run it as `./dev bench`", file=sys.stderr)
        return EXIT_USAGE
    names = selected(args)
    workdir = Path(tempfile.mkdtemp(prefix="polroutd-bench-"))
    ctx = Context(quick=args.quick, workdir=workdir,
                  say=lambda text: print(text, file=sys.stderr, flush=True),
                  soak_seconds=args.soak_minutes * 60)
    errors: dict[str, str] = {}
    load_before = os.getloadavg()
    started = time.monotonic()
    commit = _commit()  # the code that runs (HEAD may move during a long run)
    netns.raise_on_sigterm()
    interrupted: str | None = None
    try:
        for name in names:
            func, what = SCENARIOS[name]
            ctx.say(f"== {name}: {what}")
            t0 = time.monotonic()
            try:
                func(ctx)
            except netns.LabError as exc:
                errors[name] = str(exc)
                ctx.say(f"!! {name} failed: {exc}")
            except Exception as exc:  # a bug in a scenario must not skip the others
                errors[name] = f"{type(exc).__name__}: {exc}"
                ctx.say(f"!! {name} failed:\n{traceback.format_exc()}")
            ctx.say(f"   ({time.monotonic() - t0:.1f} s)")
    except (KeyboardInterrupt, netns.Terminated) as exc:
        interrupted = "SIGINT" if isinstance(exc, KeyboardInterrupt) else "SIGTERM"
        ctx.say(f"!! interrupted ({interrupted}): cleaning up")
    finally:
        for cleanup in reversed(ctx.cleanups):
            try:
                cleanup()
            except Exception as exc:
                ctx.say(f"!! cleanup failed: {exc}")
        removed = netns.teardown_all()
        left = netns.leftovers()
        ctx.say(f"== removed {len(removed)} namespaces" + (f"; LEFT: {left}" if left else ""))
        if not args.keep_workdir:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    if interrupted:
        return EXIT_INTERRUPTED
    elapsed = time.monotonic() - started
    produced = {row.scenario for row in ctx.rows}
    for name in names:
        if name not in errors and not any(p == name for p in produced):
            errors[name] = "produced no numbers"
    meta = _meta(args, argv, elapsed)
    meta["commit"] = commit
    meta["load_average_before"] = load_before
    print(table(ctx.rows))
    print(f"\n{len(names)} scenario(s) in {elapsed:.1f} s"
          + (f"; FAILED: {', '.join(sorted(errors))}" if errors else "; all converged"))
    missed = [r for r in ctx.rows if r.met is False]
    if missed and not args.quick:
        print(f"targets missed: {len(missed)} (see docs/performance.md)")
    if args.out:
        doc = {"meta": meta, "rows": [r.as_json() for r in ctx.rows], "details": ctx.details,
               "errors": errors, "ok": not errors}
        Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    if errors or left:
        return EXIT_FAILED
    if args.strict and missed and not args.quick:
        return EXIT_MISSED
    return EXIT_OK
