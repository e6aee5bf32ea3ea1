"""``polroutd run``'s start (daemon/service.py): the first reconcile is made before the libraries
the rest needs are imported (asyncio, structlog, stdlib logging, aiohttp, prometheus_client,
and the uplink monitor when there are no uplinks; argparse is not needed at all): not at
``STATUS=starting``
(sent just before it), nor at ``READY=1`` (sent when it has converged, after its apply). What
changes during it is handled once the event loop runs, and a SIGTERM during it stops the daemon
cleanly. HTTP is served after it, on an address bound before it, so that a port already taken
still fails the start in one line.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from polroutd.lab import netns
from polroutd.lab.daemon import polroutd_env
from tests.support.lab_tools import PROTO, ip, namespace

PORT = 19671
# (and polroutd's uplink monitor, with no uplinks configured)
DEFERRED = ("aiohttp", "prometheus_client", "asyncio", "structlog", "argparse", "logging",
            "polroutd.daemon.uplinks")
LATE = "10.1.0.77"  # an address added to eth0 while the first reconcile applies

# `polroutd run`, with the notifier reporting which of the deferred libraries are loaded when
# STATUS=starting is sent, and again when READY=1 is.
PROBE = """
import sys
from polroutd.adapters import sdnotify

def loaded():
    return sorted(({name.split(".")[0] for name in sys.modules} | set(sys.modules))
                  & set(%(deferred)r))

status, ready = sdnotify.Notifier.status, sdnotify.Notifier.ready

def reporting_status(self, text):
    if text.startswith("starting"):
        print("STATUS=starting", loaded(), flush=True)
    status(self, text)

def reporting_ready(self):
    print("READY=1", loaded(), flush=True)
    ready(self)

sdnotify.Notifier.status, sdnotify.Notifier.ready = reporting_status, reporting_ready
%(during_apply)s
from polroutd.cli.main import main
sys.exit(main(["run", "--config", sys.argv[1]]))
"""

# What happens during the first apply (the kernel's, by the daemon's own process), for PROBE.
NOTHING = ""
ADDRESS_ADDED = f"""
import subprocess
from polroutd.netlink.kernel import Netlink
apply = Netlink.apply
def apply_once_an_address_came(self, operations):
    if not getattr(Netlink, "changed", False):
        Netlink.changed = True
        subprocess.run(["ip", "addr", "add", "{LATE}/24", "dev", "eth0"], check=True)
    return apply(self, operations)
Netlink.apply = apply_once_an_address_came
"""
TERMINATED = """
import os, signal
from polroutd.netlink.kernel import Netlink
apply = Netlink.apply
def apply_terminated(self, operations):
    os.kill(os.getpid(), signal.SIGTERM)
    return apply(self, operations)
Netlink.apply = apply_terminated
"""


def probe(ns: str, config: Path, during_apply: str = NOTHING) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c",
         PROBE % {"deferred": DEFERRED, "during_apply": during_apply}, str(config)],
        env=polroutd_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )

FETCH = """
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(sys.argv[1], timeout=20) as response:
    print(response.status)
    sys.stdout.write(response.read().decode())
"""


def config(tmp: Path, listen: str, *, interface: bool = False) -> Path:
    path = tmp / "polroutd.toml"
    path.write_text(
        "[daemon]\n"
        f'http_listen = "{listen}"\n'
        f'rt_tables_file = "{tmp}/rt_tables.d/polroutd.conf"\n'
        f'dhcp_lease_paths = ["{tmp}/*.lease"]\n'
        'log_format = "json"\n'
        + ('\n[[interface]]\nname = "eth0"\ntable = 30000\n' if interface else "")
    )
    return path


def owned_sources(ns: str) -> set[str]:
    return {m.group(1) for line in ip(ns, "-4", "rule", "show").splitlines()
            if f"proto {PROTO} " in f"{line} " or "proto polroutd " in f"{line} "
            for m in [re.search(r"from (\S+)", line)] if m}


def test_run_loads_no_deferred_library_before_its_first_reconcile_has_applied(
    tmp_path: Path,
) -> None:
    with namespace() as ns:
        daemon = probe(ns, config(tmp_path, f"127.0.0.1:{PORT}"))
        try:
            assert daemon.stdout is not None
            assert daemon.stdout.readline().strip() == "STATUS=starting []"
            assert daemon.stdout.readline().strip() == "READY=1 []"
            # Served after the first reconcile, with what was counted before it.
            fetched = subprocess.run(
                ["ip", "netns", "exec", ns, sys.executable, "-c", FETCH,
                 f"http://127.0.0.1:{PORT}/metrics"],
                capture_output=True, text=True, timeout=30, check=True)
            status, _, body = fetched.stdout.partition("\n")
            assert status == "200"
            [ok] = re.findall(r'^polroutd_reconciles_total\{result="ok"\} (\S+)$', body, re.M)
            assert float(ok) >= 1  # the first reconcile, counted before the library was loaded
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(10) == 0


def test_an_address_that_cannot_be_listened_on_fails_the_start_in_one_line(
    tmp_path: Path,
) -> None:
    with namespace() as ns:
        taken = netns.in_netns(ns, lambda: socket.create_server(("127.0.0.1", PORT)))
        try:
            for listen, reason in ((f"127.0.0.1:{PORT}", "Address already in use"),
                                   ("192.0.2.1:9641", "Cannot assign requested address")):
                result = subprocess.run(
                    ["ip", "netns", "exec", ns, sys.executable, "-m", "polroutd", "run",
                     "--config", str(config(tmp_path, listen))],
                    env=polroutd_env(), capture_output=True, text=True, timeout=60, check=False)
                assert result.returncode == 1, result.stderr
                assert result.stderr == (f"polroutd: error: cannot listen on {listen} "
                                         f"(daemon.http_listen): {reason}\n")
        finally:
            taken.close()


def test_an_address_added_during_the_first_reconcile_gets_its_rule_once_the_loop_runs(
    tmp_path: Path,
) -> None:
    with namespace() as ns:
        daemon = probe(ns, config(tmp_path, f"127.0.0.1:{PORT}", interface=True), ADDRESS_ADDED)
        try:
            assert daemon.stdout is not None
            assert daemon.stdout.readline().strip() == "STATUS=starting []"
            assert daemon.stdout.readline().strip() == "READY=1 []"  # after the first apply
            deadline = time.monotonic() + 20
            while LATE not in owned_sources(ns) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert owned_sources(ns) == {"10.1.0.2", LATE}
        finally:
            daemon.send_signal(signal.SIGTERM)
            _, err = daemon.communicate(timeout=10)
        assert daemon.returncode == 0, err


def test_a_sigterm_during_the_first_reconcile_stops_the_daemon_once_it_is_done(
    tmp_path: Path,
) -> None:
    with namespace() as ns:
        daemon = probe(ns, config(tmp_path, f"127.0.0.1:{PORT}", interface=True), TERMINATED)
        try:
            out, err = daemon.communicate(timeout=30)
        finally:
            if daemon.poll() is None:
                daemon.kill()
        assert daemon.returncode == 0, err
        assert out.splitlines() == ["STATUS=starting []", "READY=1 []"]
        events = [json.loads(line)["event"] for line in err.splitlines()]
        assert events.index("ready") < events.index("stopping")  # the apply was not cut short
        assert owned_sources(ns) == {"10.1.0.2"}  # left in place (cleanup_on_exit is off)
