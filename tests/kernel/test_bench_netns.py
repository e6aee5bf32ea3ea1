"""The benchmark harness's smallest scenario, run for real: it produced its numbers, converged
and left no namespace (see tests/unit/test_bench_quick.py for its pure helpers).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import REPO


def test_quick_latency_scenario_runs_and_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--scenario", "latency", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    assert doc["ok"] and not doc["errors"]
    rows = [r for r in doc["rows"] if r["scenario"] == "latency"]
    assert rows and all(r["polroutd"] is not None and r["naive"] is not None for r in rows)
    assert doc["details"]["latency"]["events"] == 20
    assert "removed 4 namespaces" in proc.stderr and "LEFT" not in proc.stderr, proc.stderr
