"""Hostile and unlucky production on the real kernel (issue 11): SIGHUP with files that used
to kill or hang the daemon, a second instance with the same protocol, no CAP_NET_ADMIN."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from polroutd.lab.daemon import LabDaemon
from polroutd.lab.lab import Lab
from tests.support.lab_tools import HTTP_PORT, polroutd, write_config


def test_sighup_with_hostile_files_keeps_the_daemon_and_its_configuration(
    daemon: LabDaemon, tmp_path: Path
) -> None:
    good = daemon.config.read_text()
    (tmp_path / "a-directory").mkdir()
    os.mkfifo(tmp_path / "a-fifo")
    tables_line = next(line for line in good.splitlines() if line.startswith("rt_tables_file"))
    hostile = {
        "float overflow": good.replace("resync_interval = 3600",
                                       "resync_interval = 1" + "0" * 400),
        "4,300 digits": good.replace("resync_interval = 3600",
                                     "resync_interval = 1" + "0" * 5000),
        "deep nesting": good + "\n[x]\ny = " + "[" * 2000 + "]" * 2000 + "\n",
        "spinning resync": good.replace("resync_interval = 3600", "resync_interval = 1e-300"),
        "rt_tables_file directory": good.replace(
            tables_line, f'rt_tables_file = "{tmp_path / "a-directory"}"'),
        "rt_tables_file FIFO": good.replace(
            tables_line, f'rt_tables_file = "{tmp_path / "a-fifo"}"'),
        "48 MB": good + "#" * (48 << 20) + "\n",
    }
    for n, (what, text) in enumerate(hostile.items(), 1):
        daemon.config.write_text(text)
        started = time.monotonic()
        daemon.signal(signal.SIGHUP)
        daemon.wait_for(_failed_reloads(daemon, n), timeout=5, what=f"failed reload: {what}")
        took = time.monotonic() - started
        assert took < 2, f"{what}: reload took {took:.2f} s"
        status, _ = daemon.http("/readyz")
        assert status == 200, what  # still running, with the old configuration
        assert daemon.state()["config_error"], what
    daemon.config.write_text(good)
    daemon.signal(signal.SIGHUP)
    daemon.wait_for(lambda: daemon.counters()["config_reloads_ok"] == 1, what="a good reload")
    assert daemon.state()["config_error"] is None
    assert daemon.proc.poll() is None


def _failed_reloads(daemon: LabDaemon, count: int) -> Callable[[], bool]:
    return lambda: daemon.counters()["config_reloads_error"] == count


def test_check_config_with_a_fifo_rt_tables_file_does_not_hang(
    lab: Lab, tmp_path: Path
) -> None:
    os.mkfifo(tmp_path / "a-fifo")
    config = write_config(tmp_path)
    text = config.read_text()
    tables_line = next(line for line in text.splitlines() if line.startswith("rt_tables_file"))
    config.write_text(text.replace(tables_line, f'rt_tables_file = "{tmp_path / "a-fifo"}"'))
    started = time.monotonic()
    result = polroutd(lab, lab.server, "check-config", "--config", str(config), timeout=10)
    assert time.monotonic() - started < 5
    assert result.returncode == 2
    assert "is a FIFO" in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_a_second_instance_with_the_same_protocol_refuses_to_start(
    daemon: LabDaemon, lab: Lab, tmp_path: Path
) -> None:
    other = tmp_path / "second"
    other.mkdir()
    same = write_config(other, daemon_extra=f'http_listen = "127.0.0.1:{HTTP_PORT + 1}"')
    result = lab.run(lab.server, sys.executable, "-m", "polroutd", "run", "--config", str(same),
                     check=False, timeout=15)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "another polroutd" in lines[0] and f"pid {daemon.proc.pid}" in lines[0], lines[0]
    assert "protocol 218" in lines[0]
    assert daemon.proc.poll() is None

    # Another protocol (and its own tables and priority) may run beside it.
    another = other / "another"
    another.mkdir()
    config = write_config(another, daemon_extra=(
        f'http_listen = "127.0.0.1:{HTTP_PORT + 2}"\nprotocol = 219\n'
        "table_range = [31000, 31999]\nrule_priority = 31000"))
    second = LabDaemon(lab, lab.server, config, http_listen=f"127.0.0.1:{HTTP_PORT + 2}",
                       directory=another)
    try:
        second.wait_ready()
        assert second.proc.poll() is None
    finally:
        second.stop()


def test_without_cap_net_admin_one_line_names_it(lab: Lab) -> None:
    # Readable by nobody (pytest's tmp_path is not).
    directory = Path(tempfile.mkdtemp(prefix="polroutd-nocap-"))
    try:
        directory.chmod(0o755)
        config = directory / "polroutd.toml"
        config.write_text('[daemon]\nrt_tables_file = ""\nhttp_listen = ""\n'
                          f'dhcp_lease_paths = ["{directory}/*.lease"]\n')
        config.chmod(0o644)
        unprivileged = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                        "--inh-caps=-all", sys.executable, "-m", "polroutd")
        for command in ("apply", "run"):
            result = lab.run(lab.server, *unprivileged, command, "--config", str(config),
                             check=False, timeout=15)
            assert result.returncode == 1, (command, result.stderr)
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and "CAP_NET_ADMIN" in lines[0], (command, result.stderr)
    finally:
        subprocess.run(["rm", "-rf", str(directory)], check=False)
