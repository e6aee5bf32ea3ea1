"""One cold reconcile in a fresh process, phases timed apart: ``python -m bench.cold_child CONFIG``.

Run by scen_cold inside the benchmark host's namespace; prints one JSON line. It shows where
``polroutd apply``'s time goes (read, decide, apply) with cold caches, as the command has them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from bench import PREFIX


def main() -> int:
    here = os.stat("/proc/self/ns/net").st_ino
    if not any(ns.stat().st_ino == here for ns in Path("/run/netns").glob(f"{PREFIX}-*")):
        print("bench.cold_child changes the kernel's rules: run it only inside a benchmark "
              "namespace (ip netns exec NS ...), as scen_cold does", file=sys.stderr)
        return 2
    from polroutd.config.parse import load_config
    from polroutd.engine import Engine
    from polroutd.netlink.kernel import Netlink

    engine = Engine(load_config(Path(sys.argv[1])), Netlink())
    t0 = time.perf_counter()
    state = engine.kernel.read_state()
    t1 = time.perf_counter()
    decision = engine.decide(state)
    t2 = time.perf_counter()
    results = engine.apply(decision)
    t3 = time.perf_counter()
    failed = sum(not r.ok for r in results)
    print(json.dumps({"read": t1 - t0, "decide": t2 - t1, "apply": t3 - t2, "total": t3 - t0,
                      "operations": len(results), "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
