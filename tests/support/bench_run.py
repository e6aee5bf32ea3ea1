"""Runs a benchmark scenario for real from the tests (``python -m bench --quick``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support import REPO


def run_quick(tmp_path: Path, scenario: str) -> tuple[dict[str, Any], str]:
    """``python -m bench --quick --scenario SCENARIO`` from the repository: its JSON document,
    checked to report success and no error, and what it printed on stderr."""
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--scenario", scenario, "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc: dict[str, Any] = json.loads(out.read_text())
    assert doc["ok"] and not doc["errors"]
    return doc, proc.stderr
