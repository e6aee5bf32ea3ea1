"""Issue 11's reliability suite, CI sizes (``bench/scen_reliability.py`` runs the long ones):
link flap storms, HTTP abuse under a lowered descriptor limit, kill -9 during bursts, a
least-privilege run.
Each in the lab's namespaces, bounded in time; figures in docs/reliability.md."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from polroutd.lab.daemon import LabDaemon
from polroutd.lab.lab import ADDR, Lab
from polroutd.lab.netns import LabError
from polroutd.lab.probes import http_get
from polroutd.lab.reliability import flap_storm, kill_cycles
from tests.support.lab_tools import (
    HTTP_PORT,
    owned,
    rules,
    start_daemon,
    write_config,
    write_lease,
)

DAEMON = f'http_listen = "127.0.0.1:{HTTP_PORT}"\nresync_interval = 3600'
FLAPS = 100


@pytest.fixture
def daemon(lab: Lab, tmp_path: Path) -> Iterator[LabDaemon]:
    config = write_config(tmp_path, daemon_extra=DAEMON)
    write_lease(tmp_path, "ens224", ADDR.server_data4, "10.225.176.1")
    d = start_daemon(lab, config, tmp_path)
    try:
        d.wait_ready()
        d.wait_for(lambda: d.state()["in_sync"], what="in sync")
        yield d
    finally:
        d.stop()


def test_a_flap_storm_is_restorations_never_drift(
    lab: Lab, daemon: LabDaemon, tmp_path: Path
) -> None:
    figures = flap_storm(lab, daemon, tmp_path, storm=FLAPS, paced=10)
    counters = figures["counters"]
    assert counters["drift"] == 0 and counters["repairs"] == 0, counters
    assert counters["restorations"] > 0, counters
    assert figures["in_sync"]
    assert figures["fds"][1] <= figures["fds"][0] + 2
    assert figures["rss_kib"][1] < figures["rss_kib"][0] + 10_000
    print(f"flaps {FLAPS}+10: {figures}")


# Runs inside the server namespace: idle connections beyond the descriptor limit, slowloris,
# concurrent /state, malformed requests; then probes. Prints one JSON line of figures.
ABUSE = r"""
import concurrent.futures, http.client, json, socket, sys, time
port, idle_count, crowd = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
held = []
for _ in range(idle_count):
    try:
        held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
    except OSError:
        pass
for s in held[: idle_count // 4]:  # slowloris: a request that never ends
    try:
        s.sendall(b"GET /state HTTP/1.1\r\nHost: x\r\n")
    except OSError:
        pass
def get(path):
    started = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse(); r.read()
        return r.status, time.monotonic() - started
    except OSError as exc:
        return repr(exc), time.monotonic() - started
    finally:
        c.close()
health = get("/healthz")
with concurrent.futures.ThreadPoolExecutor(64) as pool:
    states = list(pool.map(get, ["/state"] * crowd))
bad = 0
for i in range(200):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall([b"GET /\xff HTTP/1.1\r\n\r\n", b"\x16\x03\x01junk\r\n\r\n",
                       b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"][i % 3])
            bad += s.recv(64)[8:11].startswith(b" 4")
    except OSError:
        pass
after = get("/healthz")
print(json.dumps({"held": len(held), "health": health, "after": after, "bad_400": bad,
                  "state_ok": sum(s == 200 for s, _ in states),
                  "state_max_s": max(t for _, t in states)}))
"""


def test_http_abuse_under_a_low_descriptor_limit_leaves_reconciling_alone(
    lab: Lab, daemon: LabDaemon
) -> None:
    subprocess.run(["prlimit", f"--pid={daemon.pid}", "--nofile=256:256"], check=True)
    log_before = daemon.log_path.stat().st_size
    abuse = lab.popen(lab.server, sys.executable, "-c", ABUSE, str(HTTP_PORT), "400", "200",
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.0)  # the idle connections are open by now: make drift under the abuse
    victim = next(r for r in owned(rules(lab, lab.server)) if r.get("src"))
    deleted = time.monotonic()
    lab.run(lab.server, "ip", "rule", "del", "priority", str(victim["priority"]),
            "from", victim["src"])
    daemon.wait_for(lambda: any(r.get("src") == victim["src"] and r["priority"]
                                == victim["priority"] for r in owned(rules(lab, lab.server))),
                    timeout=10, what="the deleted rule repaired under HTTP abuse")
    repaired_in = time.monotonic() - deleted
    out, err = abuse.communicate(timeout=120)
    assert abuse.returncode == 0, err
    figures = json.loads(out)
    print(f"abuse: {figures}, repair {repaired_in:.3f} s")
    assert figures["health"][0] == 200 and figures["after"][0] == 200, figures
    assert figures["state_ok"] == 200, figures
    assert figures["bad_400"] == 200, figures
    assert repaired_in < 3.0
    daemon.check_alive()
    assert daemon.state()["in_sync"]
    grown = daemon.log_path.stat().st_size - log_before
    assert grown < 20_000, daemon.log_text()[-2000:]  # no line per bad request or accept error


def test_kill_9_during_bursts_leaves_no_duplicate_orphan_or_foreign_change(
    lab: Lab, tmp_path: Path
) -> None:
    config = write_config(tmp_path, daemon_extra=DAEMON)
    write_lease(tmp_path, "ens224", ADDR.server_data4, "10.225.176.1")
    figures = kill_cycles(lab, lambda: start_daemon(lab, config, tmp_path), tmp_path, 20)
    print(f"kill -9: {figures}")
    assert figures["rules"] > 0
    assert figures["duplicate_rules"] == 0, figures
    assert figures["orphan_rules"] == 0, figures
    assert not figures["foreign_changed"], figures


def test_least_privilege_run_converges(lab: Lab) -> None:
    """As nobody with CAP_NET_ADMIN only, the way the unit runs it."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv not installed")
    directory = Path(tempfile.mkdtemp(prefix="polroutd-lp-"))
    try:
        directory.chmod(0o755)
        config = write_config(directory, daemon_extra=DAEMON)
        write_lease(directory, "ens224", ADDR.server_data4, "10.225.176.1")
        tables_dir = directory / "iproute2" / "rt_tables.d"
        tables_dir.mkdir(parents=True)
        for path in (directory / "iproute2", tables_dir):
            path.chmod(0o777)
        log = (directory / "daemon.log").open("w")
        proc = lab.popen(
            lab.server, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
            "--inh-caps=+net_admin", "--ambient-caps=+net_admin",
            sys.executable, "-m", "polroutd", "run", "--config", str(config),
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                assert proc.poll() is None, (directory / "daemon.log").read_text()
                try:
                    status, body = http_get(lab, lab.server,
                                            f"http://127.0.0.1:{HTTP_PORT}/state")
                    if status == 200 and json.loads(body)["in_sync"]:
                        break
                except (LabError, ValueError):  # not listening yet
                    pass
                assert time.monotonic() < deadline, (directory / "daemon.log").read_text()
                time.sleep(0.1)
            assert owned(rules(lab, lab.server))
            uid = Path(f"/proc/{proc.pid}/status").read_text()
            assert "Uid:\t65534" in uid
        finally:
            proc.terminate()
            proc.wait(10)
            log.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
