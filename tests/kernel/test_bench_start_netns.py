"""The benchmark's start scenario, run for real in --quick (the current interpreter): it
produced its numbers, found neither aiohttp nor prometheus_client imported before the daemon's
STATUS=starting, and left no namespace (its helpers: tests/unit/test_bench_quick.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import REPO


def test_quick_start_scenario_runs_and_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--scenario", "start", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    assert doc["ok"] and not doc["errors"]
    rows = [r for r in doc["rows"] if r["scenario"] == "start"]
    assert rows and all(r["polroutd"] is not None for r in rows)
    [measured] = doc["details"]["start"]["interpreters"].values()
    assert measured["deferred_libraries_loaded_before_starting"] == []
    assert measured["imports_before_starting"] > 0 and measured["top_cumulative_imports"]
    assert "LEFT" not in proc.stderr, proc.stderr
