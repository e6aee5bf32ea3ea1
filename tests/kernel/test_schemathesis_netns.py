"""Issue 11: the HTTP API against its OpenAPI document (``polroutd/openapi.json``, as the daemon
serves it at /openapi.json with the state schema bundled), checked by schemathesis with every
check: no 5xx, and status codes, content types, headers and bodies as documented. The daemon
runs in the lab's server namespace; schemathesis runs inside it (the API is on loopback)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from polroutd.lab.lab import ADDR, Lab
from tests.support.lab_tools import HTTP_PORT, start_daemon, write_config, write_lease

DAEMON = f'http_listen = "127.0.0.1:{HTTP_PORT}"\nresync_interval = 3600'


def test_the_http_api_matches_its_openapi_document(lab: Lab, tmp_path: Path) -> None:
    schemathesis = Path(sys.executable).parent / "schemathesis"
    if not schemathesis.exists():
        pytest.skip("schemathesis is not installed (the dev extra)")
    config = write_config(tmp_path, daemon_extra=DAEMON)
    write_lease(tmp_path, "ens224", ADDR.server_data4, "10.225.176.1")
    d = start_daemon(lab, config, tmp_path)
    try:
        d.wait_ready()
        d.wait_for(lambda: d.state()["in_sync"], what="in sync")
        started = time.monotonic()
        proc = lab.run(
            # in tmp_path: schemathesis keeps a cache in .schemathesis/ of its working directory
            lab.server, "env", f"--chdir={tmp_path}", str(schemathesis), "run", f"http://127.0.0.1:{HTTP_PORT}/openapi.json",
            "--checks", "all", "--max-examples", "30", "--seed", "11", "--workers", "1",
            "--generation-database", "none", "--no-color",
            f"--report-dir={tmp_path / 'schemathesis'}",
            check=False, timeout=60,
        )
        took = time.monotonic() - started
        print(proc.stdout[-3000:], f"\nschemathesis took {took:.1f} s")
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
        assert took < 60
        d.check_alive()
        assert d.state()["in_sync"]
    finally:
        d.stop()
