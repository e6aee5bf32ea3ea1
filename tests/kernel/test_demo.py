"""``polroutd demo`` as a user runs it: a subprocess that builds its own namespaces, narrates
every step with a verdict, and leaves nothing behind, also when interrupted."""

from __future__ import annotations

import io
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from polroutd.cli.demo import PREFIX, STEP_TITLES, Demo, StepFailed, run_demo
from polroutd.lab.scripts import HTTP_GET

ROOT = Path(__file__).resolve().parents[2]
TOKEN = re.compile(rf"ip netns exec {PREFIX}-([0-9a-f]{{6}})-server")


def demo_process(*argv: str) -> subprocess.Popen[str]:
    """``python -m polroutd demo``, or ``python argv...`` when given."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                                     os.environ.get("PYTHONPATH")])))
    command = [sys.executable, *argv] if argv else [sys.executable, "-m", "polroutd", "demo"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def leftovers(token: str) -> list[str]:
    """Anything of the demo run ``token`` still on the machine: namespaces, /etc/netns
    entries, temporary directories, processes."""
    left = [str(p) for pattern in (f"/run/netns/{PREFIX}-{token}-*",
                                   f"/etc/netns/{PREFIX}-{token}-*",
                                   f"{tempfile.gettempdir()}/{PREFIX}-{token}-*")
            for p in Path("/").glob(pattern.lstrip("/"))]
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f"{PREFIX}-{token}-" in cmdline:
            left.append(f"process {proc.name}: {cmdline[:120]}")
    return left


def test_demo_every_step_behaves_as_narrated_and_nothing_is_left(
    require_netadmin: None,
) -> None:
    started = time.monotonic()
    proc = demo_process()
    out, _ = proc.communicate(timeout=120)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, out
    for number, title in enumerate(STEP_TITLES):
        assert f"== {number}. {title}" in out, title
        assert f"✓ {number}. {title}" in out, title
    assert "✗" not in out
    assert "\033[" not in out  # not a terminal: no colours in a log file
    # The evidence the narration promises.
    assert "DHCPNAK" in out and "READY=1" in out and "dhcp-lease" in out
    assert "polroutd_repairs_total" in out
    # The uplink steps: wan1's upstream dies with its link up; a probe transition moves new
    # connections to wan2, counted; after the repair wan1 comes back, by probes again.
    failover, recovery = out.split("== 10. ")[1].split("== 11. ")
    assert "leaving by wan2" in failover and "LOWER_UP>" in failover  # wan1's link stayed up
    assert '"event": "uplink_down"' in failover and '"cause": "probe"' in failover
    assert ('polroutd_uplink_transitions_total{cause="probe",family="ipv4",interface="wan1",'
            'to="down"} 1.0') in failover
    assert 'polroutd_uplink_active{family="ipv4",interface="wan2"} 1.0' in failover
    assert '"event": "uplink_up"' in recovery and "leaving by wan1" in recovery
    assert 'polroutd_uplink_active{family="ipv4",interface="wan1"} 1.0' in recovery
    assert f"removed the uplink lab: {PREFIX}-" in recovery
    token = TOKEN.search(out)
    assert token is not None, out
    assert leftovers(token[1]) == []  # the uplink lab's namespaces share the demo's token
    assert elapsed < 60, f"the demo took {elapsed:.1f} s"


@pytest.mark.parametrize(("during", "sig"), [
    ("== 5. ", signal.SIGINT),  # while polroutd starts
    ("== 7. ", signal.SIGINT),  # while the DHCP renewal is awaited
    ("== 7. ", signal.SIGTERM),
    ("== 10. ", signal.SIGINT),  # while the uplink lab is built
    ("== 11. ", signal.SIGTERM),  # while its polroutd runs and the upstream recovers
])
def test_interrupted_demo_leaves_nothing_behind(
    require_netadmin: None, during: str, sig: signal.Signals
) -> None:
    proc = demo_process()
    assert proc.stdout is not None
    out = ""
    deadline = time.monotonic() + 60
    while during not in out:
        assert time.monotonic() < deadline and proc.poll() is None, out
        if select.select([proc.stdout], [], [], 1.0)[0]:
            out += proc.stdout.readline()
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=30)
    out += rest
    assert proc.returncode == 130, out
    assert "interrupted" in out
    token = TOKEN.search(out)
    assert token is not None, out
    assert leftovers(token[1]) == []


def test_keep_leaves_polroutd_running_until_cleanup(require_netadmin: None) -> None:
    etc_netns_existed = Path("/etc/netns").exists()
    proc = demo_process("-c", "import sys; from polroutd.cli.demo import run_demo; "
                              "sys.exit(run_demo(keep=True))")
    out, _ = proc.communicate(timeout=120)
    token = TOKEN.search(out)
    assert token is not None, out
    try:
        assert proc.returncode == 0, out
        assert f"✓ {len(STEP_TITLES) - 1}. {STEP_TITLES[-1]}" in out
        server = f"{PREFIX}-{token[1]}-server"
        assert f"ip netns exec {server} ip rule" in out  # how to explore
        state = subprocess.run(
            ["ip", "netns", "exec", server, sys.executable, "-c", HTTP_GET,
             "http://127.0.0.1:9641/state"], capture_output=True, text=True, timeout=10)
        assert state.returncode == 0 and '"in_sync": true' in state.stdout, state
        rules = subprocess.run(["ip", "netns", "exec", server, "ip", "rule"],
                               capture_output=True, text=True, timeout=10).stdout
        assert "lookup data proto polroutd" in rules  # names visible in the namespace
    finally:
        cleanup = demo_process("-c", "import sys; from polroutd.cli.demo import cleanup_demo; "
                                     "sys.exit(cleanup_demo())")
        cleaned, _ = cleanup.communicate(timeout=60)
    assert cleanup.returncode == 0, cleaned
    assert f"removed {PREFIX}-{token[1]}-server" in cleaned
    assert leftovers(token[1]) == []
    assert Path("/etc/netns").exists() == etc_netns_existed


def test_a_step_that_misbehaves_fails_the_demo_and_tears_down(
    require_netadmin: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def misbehaves(self: Demo) -> str:
        raise StepFailed("the reply went the wrong way")

    monkeypatch.setattr(Demo, "step_data_works", misbehaves)
    out = io.StringIO()
    assert run_demo(out=out) == 1
    text = out.getvalue()
    assert "✗ the reply went the wrong way" in text
    assert f"✓ 5. {STEP_TITLES[5]}" in text
    assert f"✗ 6. {STEP_TITLES[6]}" in text
    assert f"== 7. {STEP_TITLES[7]}" not in text  # nothing runs after a failed step
    assert "removed the lab" in text
    token = TOKEN.search(text)
    assert token is not None, text
    assert leftovers(token[1]) == []
