"""``polroutd apply``: one reconcile, then exit (for ifup/dispatcher hooks and cron)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from polroutd.cli.common import EXIT_ERROR, EXIT_OK, kernel_engine, load
from polroutd.core.describe import conflict_text, operation_text

if TYPE_CHECKING:
    from polroutd.engine import Engine


def command(args: argparse.Namespace) -> int:
    engine = kernel_engine(load(args))
    from polroutd.netlink.kernel import collector_paused  # imported by kernel_engine already

    # One reconcile and its report, then the process ends: the thousands of objects they make
    # hold no cycles, and collections between the steps (each walking all of them) cost a
    # cold apply several milliseconds.
    with collector_paused():
        return _reconcile(engine)


def _reconcile(engine: Engine) -> int:
    decision = engine.read_and_decide()
    results = engine.apply(decision)
    failed = [r for r in results if not r.ok]
    names = decision.names
    lines = []  # one write, not a thousand print() calls
    for result in results:
        line = operation_text(result.operation, names)
        if result.errno:
            line = f"{line}  FAILED {result.error_name}: {result.message or ''}".rstrip()
        lines.append(line)
    lines.append("")
    sys.stdout.write("\n".join(lines))
    for conflict in decision.plan.conflicts:
        print(f"! conflict: {conflict_text(conflict, decision.names)}")
    print(f"applied {len(results) - len(failed)} operation(s), {len(failed)} failed")
    if engine.tables_file_error:
        print(f"polroutd: warning: {engine.tables_file_error} (table names not recorded)",
              file=sys.stderr)
    return EXIT_ERROR if failed else EXIT_OK
