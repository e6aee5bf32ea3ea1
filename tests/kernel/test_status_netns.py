"""``polroutd status`` against the real daemon in the lab (the pure summary and the HTTP client:
tests/unit/test_status.py).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from polroutd.lab.lab import ADDR, Lab
from tests.support.lab_tools import polroutd, recorded_tables, write_config, write_lease

# ------------------------------------------------------------------ against the real daemon


def test_status_of_the_real_daemon_in_the_lab(lab: Lab, tmp_path: Path) -> None:
    """``polroutd run`` in the server namespace; ``polroutd status`` from the same namespace
    (its loopback is reachable only from inside)."""
    url = f"http://127.0.0.1:{DAEMON_PORT}"
    config = write_config(tmp_path, daemon_extra=f'http_listen = "127.0.0.1:{DAEMON_PORT}"')
    write_lease(tmp_path, "ens224", ADDR.server_data4, "10.225.176.1")
    daemon = lab.popen(lab.server, sys.executable, "-m", "polroutd", "run", "--config",
                       str(config), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)

    def status() -> subprocess.CompletedProcess[str]:
        return polroutd(lab, lab.server, "status", "--url", url)

    first = _until(status, lambda r: r.returncode == 0)
    assert first.stdout.splitlines()[0].endswith(": in sync"), first.stdout
    data = recorded_tables(tmp_path)["data"]
    assert f"  ens224  up, carrier  table data({data})  priority 30000" in first.stdout
    assert "    gateway ipv4: 10.225.176.1 (from dhcp-lease)" in first.stdout
    assert "rules: 4 desired, all present" in first.stdout

    # drift: someone deletes a rule; the daemon repairs it and counts it
    lab.run(lab.server, "ip", "rule", "del", "from", ADDR.server_data4, "priority", "30000")
    repaired = _until(status, lambda r: r.returncode == 0 and "repairs 0," not in r.stdout)
    assert "drift 0," not in repaired.stdout and "rules: 4 desired, all present" in repaired.stdout

    # a broken reload: the old configuration stays, status says so prominently and exits 2
    # (in sync, but a configuration error is pending)
    config.write_text(config.read_text() + "\n[daemon2]\n")
    daemon.send_signal(signal.SIGHUP)
    refused = _until(status, lambda r: "CONFIGURATION ERROR" in r.stdout)
    assert refused.returncode == 2 and str(config) in refused.stdout

    daemon.terminate()
    daemon.wait(timeout=10)
    gone = status()
    assert gone.returncode == 1 and gone.stdout == ""
    assert gone.stderr.strip() == (f"polroutd: cannot reach the daemon at {url}: Connection "
                                   "refused (is polroutd running? is http_listen set?)")


DAEMON_PORT = 19641


def _until(
    probe: Callable[[], subprocess.CompletedProcess[str]],
    done: Callable[[subprocess.CompletedProcess[str]], bool],
    timeout: float = 15,
) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if done(result) or time.monotonic() > deadline:
            assert done(result), result.stdout + result.stderr
            return result
        time.sleep(0.2)
