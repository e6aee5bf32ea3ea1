"""``polroutd plan``: the operations a reconcile would do now; changes nothing."""

from __future__ import annotations

import argparse
import json

from polroutd.cli.common import EXIT_OK, EXIT_USAGE, kernel_engine, load
from polroutd.core.describe import conflict_json, conflict_text, operation_json, operation_text


def command(args: argparse.Namespace) -> int:
    """0 in sync, 2 changes pending."""
    decision = kernel_engine(load(args)).read_and_decide()
    plan, names = decision.plan, decision.names
    if args.json:
        document = {
            "in_sync": plan.empty,
            "operations": [operation_json(op, names) for op in plan.operations],
            "conflicts": [conflict_json(c, names) for c in plan.conflicts],
            "skipped": [{"name": s.name, "index": s.index, "reason": s.reason}
                        for s in decision.desired.skipped],
        }
        print(json.dumps(document, indent=2))
    else:
        for op in plan.operations:
            print(operation_text(op, names))
        for conflict in plan.conflicts:
            print(f"! conflict: {conflict_text(conflict, names)}")
        for skipped in decision.desired.skipped:
            print(f"- skipped {skipped.name}: {skipped.reason}")
        count = len(plan.operations)
        print("in sync: nothing to do" if plan.empty else f"{count} operation(s) pending")
    return EXIT_OK if plan.empty else EXIT_USAGE
