"""A real Prometheus inside a network namespace, scraping a target on that namespace's loopback:
how the real daemon is scraped (rules and dashboard: tests/unit/test_prometheus_contrib.py).
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

from polroutd.lab.netns import delete_netns, stop_process
from tests.support import ALERTS
from tests.support.prometheus_server import (
    free_port,
    healthy_metrics,
    http_get,
    needs_prometheus,
    running_prometheus,
)

# --- the same inside a network namespace (how the real daemon will be scraped) ----------------

# An exporter for inside a namespace: serves the file argv[2] on 127.0.0.1:argv[1]/metrics.
_FILE_EXPORTER = r"""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = open(sys.argv[2], "rb").read()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


@needs_prometheus
def test_prometheus_in_a_network_namespace(tmp_path: Path) -> None:
    """``netns=``: Prometheus and its API calls run inside the namespace, where a target on
    127.0.0.1 (unreachable from the root namespace) is scraped."""
    ns = f"polroutd-t-{secrets.token_hex(3)}-prom"
    exposition = tmp_path / "metrics.txt"
    m = healthy_metrics()
    exposition.write_bytes(m.exposition())
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True, timeout=10)
    exporter: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True,
                       capture_output=True, timeout=10)
        port = free_port(ns)
        exporter = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", _FILE_EXPORTER, str(port),
             str(exposition)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = f"127.0.0.1:{port}"
        with running_prometheus(target, tmp_path / "prom", rule_files=[ALERTS],
                                netns=ns) as prom:
            # This Prometheus is not reachable from the root namespace, only from inside.
            assert target.encode() not in http_get(f"{prom.base_url}/api/v1/targets")[1]
            assert prom.wait_until_target_up()["labels"]["instance"] == target
            m.drift.labels(kind="route", change="missing").inc()
            exposition.write_bytes(m.exposition())
            alert = prom.wait_for_alert("PolroutdDriftRepaired", timeout=30,
                                        labels={"kind": "route", "instance": target})
            assert alert["labels"]["change"] == "missing"
    finally:
        if exporter is not None:
            stop_process(exporter, 10)
        delete_netns(ns)  # kills whatever is left inside first
    assert not Path("/run/netns", ns).exists()
