"""``polroutd run``'s start (daemon/service.py): up to ``STATUS=starting`` (sent just before the
first reconcile) neither aiohttp nor prometheus_client is imported; HTTP is served after it, on
an address bound before it, so that a port already taken still fails the start in one line.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from polroutd.lab import netns
from polroutd.lab.daemon import polroutd_env
from tests.support.lab_tools import namespace

PORT = 19671
DEFERRED = ("aiohttp", "prometheus_client")

# `polroutd run`, with the notifier reporting which of the deferred libraries are loaded when
# STATUS=starting is sent, and again when READY=1 is.
PROBE = """
import sys
from polroutd.adapters import sdnotify

def loaded():
    return sorted({name.split(".")[0] for name in sys.modules} & set(%(deferred)r))

status, ready = sdnotify.Notifier.status, sdnotify.Notifier.ready

def reporting_status(self, text):
    if text.startswith("starting"):
        print("STATUS=starting", loaded(), flush=True)
    status(self, text)

def reporting_ready(self):
    print("READY=1", loaded(), flush=True)
    ready(self)

sdnotify.Notifier.status, sdnotify.Notifier.ready = reporting_status, reporting_ready
from polroutd.cli.main import main
sys.exit(main(["run", "--config", sys.argv[1]]))
"""

FETCH = """
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(sys.argv[1], timeout=20) as response:
    print(response.status)
    sys.stdout.write(response.read().decode())
"""


def config(tmp: Path, listen: str) -> Path:
    path = tmp / "polroutd.toml"
    path.write_text(
        "[daemon]\n"
        f'http_listen = "{listen}"\n'
        f'rt_tables_file = "{tmp}/rt_tables.d/polroutd.conf"\n'
        f'dhcp_lease_paths = ["{tmp}/*.lease"]\n'
    )
    return path


def test_run_loads_neither_aiohttp_nor_prometheus_client_before_its_first_reconcile(
    tmp_path: Path,
) -> None:
    with namespace() as ns:
        daemon = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", PROBE % {"deferred": DEFERRED},
             str(config(tmp_path, f"127.0.0.1:{PORT}"))],
            env=polroutd_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            start_new_session=True,
        )
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
