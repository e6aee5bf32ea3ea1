"""Edge topologies on the real kernel: bridge ports are skipped, peer addresses take the
peer's prefix (see docs/topologies.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.lab_tools import ip, namespace

NETNS_CONFIG = """
[daemon]
rt_tables_file = "{tmp}/rt_tables.d/polroutd.conf"
dhcp_lease_paths = []

[[interface]]
name = "*"
"""


def test_bridge_ports_are_skipped_and_peer_prefixes_installed_on_the_real_kernel(
    tmp_path: Path, require_netadmin: None
) -> None:
    config = tmp_path / "polroutd.toml"
    config.write_text(NETNS_CONFIG.format(tmp=tmp_path))
    with namespace() as ns:
        batch = "\n".join([
            "link add br0 type bridge",
            "link add port0 type veth peer name port0b",
            "link set port0 master br0",
            "link set br0 up", "link set port0 up", "link set port0b up",
            "addr add 10.2.0.2/24 dev port0",  # an address on a port: still not managed
            "addr add 172.16.4.1 peer 192.168.44.2/24 dev eth0",
        ])
        subprocess.run(["ip", "-n", ns, "-batch", "-"], input=batch, text=True, check=True)

        def polroutd(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["ip", "netns", "exec", ns, sys.executable, "-m", "polroutd", *args,
                 "--config", str(config)], capture_output=True, text=True, timeout=30)

        applied = polroutd("apply")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        plan = polroutd("plan", "--json")
        assert plan.returncode == 0, plan.stdout + plan.stderr  # in sync: the kernel agreed
        skipped = {s["name"]: s["reason"] for s in json.loads(plan.stdout)["skipped"]}
        assert skipped["port0"].startswith("a port of bridge br0")
        assert "10.2.0.2" not in ip(ns, "rule", "show")
        recorded = (tmp_path / "rt_tables.d" / "polroutd.conf").read_text()
        table = next(line.split()[0] for line in recorded.splitlines() if line.endswith(" eth0"))
        routes = ip(ns, "route", "show", "table", table)
        assert "192.168.44.0/24 dev eth0" in routes and "src 172.16.4.1" in routes
        assert "172.16.4.0/24" not in routes
