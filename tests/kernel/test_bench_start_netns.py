"""The benchmark's start scenario, run for real in --quick (the current interpreter): it
produced its numbers, found neither aiohttp nor prometheus_client imported before the daemon's
STATUS=starting, and left no namespace (its helpers: tests/unit/test_bench_quick.py)."""

from __future__ import annotations

from pathlib import Path

from tests.support.bench_run import run_quick


def test_quick_start_scenario_runs_and_cleans_up(tmp_path: Path) -> None:
    doc, stderr = run_quick(tmp_path, "start")
    rows = [r for r in doc["rows"] if r["scenario"] == "start"]
    assert rows and all(r["polroutd"] is not None for r in rows)
    [measured] = doc["details"]["start"]["interpreters"].values()
    assert measured["deferred_libraries_loaded_before_starting"] == []
    assert measured["imports_before_starting"] > 0 and measured["top_cumulative_imports"]
    assert "LEFT" not in stderr, stderr
