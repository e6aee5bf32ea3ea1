"""``polroutd flush``: removes every object with polroutd's protocol."""

from __future__ import annotations

import argparse

from polroutd.cli.common import EXIT_ERROR, EXIT_OK, kernel_engine, load
from polroutd.core.describe import operation_text


def command(args: argparse.Namespace) -> int:
    engine = kernel_engine(load(args))
    state = engine.kernel.read_state()
    names = engine.decide(state).names  # before anything is removed: names for the output
    results = engine.flush(state)
    failed = [r for r in results if not r.ok]
    for result in results:
        status = "" if result.ok else f"  FAILED {result.error_name}"
        print(operation_text(result.operation, names) + status)
    print(f"removed {len(results) - len(failed)} object(s), {len(failed)} failed")
    return EXIT_ERROR if failed else EXIT_OK
