"""The benchmark harness's smallest scenario, run for real: it produced its numbers, converged
and left no namespace (see tests/unit/test_bench_quick.py for its pure helpers).
"""

from __future__ import annotations

from pathlib import Path

from tests.support.bench_run import run_quick


def test_quick_latency_scenario_runs_and_cleans_up(tmp_path: Path) -> None:
    doc, stderr = run_quick(tmp_path, "latency")
    rows = [r for r in doc["rows"] if r["scenario"] == "latency"]
    assert rows and all(r["polroutd"] is not None and r["naive"] is not None for r in rows)
    assert doc["details"]["latency"]["events"] == 20
    assert "removed 4 namespaces" in stderr and "LEFT" not in stderr, stderr
