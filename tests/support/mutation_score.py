"""The mutation score per module, from ``mutmut results --all true`` on stdin (./dev mutate).

Score = mutants killed (a test failed, or it timed out) / every mutant of the module, those no
test reaches included. Prints the survivors, and exits 1 when a module is below its target.
"""

from __future__ import annotations

import re
import sys
from collections import Counter, defaultdict

TARGETS = {
    "polroutd.core.desired": 90.0,
    "polroutd.core.plan": 90.0,
    "polroutd.core.schedule": 90.0,
    "polroutd.config.parse": 90.0,
    "polroutd.config.values": 90.0,
    "polroutd.config.uplinks": 90.0,
    "polroutd.netlink.codec": 85.0,
}
DETECTED = {"killed", "timeout", "caught by type check"}
LINE = re.compile(r"^\s*(?P<mutant>(?P<module>[\w.]+?)\.x[_ǁ]\S*__mutmut_\d+): (?P<status>.+)$")


def main(modules: list[str]) -> int:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    for line in sys.stdin:
        match = LINE.match(line)
        if not match or (modules and match["module"] not in modules):
            continue
        counts[match["module"]][match["status"]] += 1
        if match["status"] not in DETECTED:
            survivors[match["module"]].append(f"{match['mutant']}: {match['status']}")
    below = False
    for module in sorted(counts):
        tally = counts[module]
        checked = sum(tally.values()) - tally["not checked"]
        score = 100.0 * sum(tally[s] for s in DETECTED) / checked if checked else 0.0
        target = TARGETS.get(module, 90.0)
        below |= score < target or tally["not checked"] > 0
        detail = ", ".join(f"{n} {status}" for status, n in sorted(tally.items()))
        print(f"{module:26} {score:5.1f} % (target {target:.0f} %)  [{detail}]")
    for module in sorted(survivors):
        print(f"\nnot killed in {module}:")
        print("\n".join(f"  {s}" for s in survivors[module]))
    return 1 if below or not counts else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
