"""Foreign rules and routes are never changed or deleted, whatever they are (real kernel)."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polroutd.lab import delete_netns
from tests.netns_tools import PROTO

pytestmark = pytest.mark.netns

TABLE = 30000
CONFIG = """
[daemon]
rt_tables_file = "{tmp}/rt_tables.d/polroutd.conf"
dhcp_lease_paths = []

[[interface]]
name = "eth0"
table = {table}
"""


@contextmanager
def namespace() -> Iterator[str]:
    ns = f"polroutd-t-{secrets.token_hex(3)}-foreign"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        batch = "\n".join(
            [
                "link set lo up",
                "link add eth0 type veth peer name peer0",
                "link set eth0 up",
                "link set peer0 up",
                "addr add 10.1.0.2/24 dev eth0",
                "addr add 2001:db8:1::2/64 dev eth0 nodad",
                "route add default via 10.1.0.1 dev eth0",
            ]
        )
        subprocess.run(["ip", "-n", ns, "-batch", "-"], input=batch, text=True, check=True)
        yield ns
    finally:
        delete_netns(ns)


def ip(ns: str, *args: str) -> str:
    return subprocess.run(
        ["ip", "-n", ns, *args], check=True, capture_output=True, text=True
    ).stdout


def foreign_dump(ns: str) -> list[str]:
    lines = []
    for family in ("-4", "-6"):
        lines += ip(ns, family, "rule", "show").splitlines()
        lines += [
            line
            for line in ip(ns, family, "route", "show", "table", "all").splitlines()
            if not line.startswith(("local ", "broadcast ", "multicast "))
            and "table local" not in line
        ]
    return sorted(line for line in lines if f"proto {PROTO}" not in line)


foreign_protocols = st.sampled_from(["boot", "static", "dhcp", "66", "99"])
rule_lines = st.builds(
    lambda proto, prio, src, table: f"rule add {src} lookup {table} priority {prio} proto {proto}",
    foreign_protocols,
    st.sampled_from([30000, 100, 31000, 29999]),
    st.sampled_from(["from 10.1.0.2", "from 10.1.0.9", "from all", "from 2001:db8:1::2"]),
    st.sampled_from([TABLE, 100, "main"]),
)
route_lines = st.builds(
    lambda proto, table, target: f"route add {target} table {table} proto {proto}",
    foreign_protocols,
    st.sampled_from([TABLE, 100, "main"]),
    st.sampled_from(
        [
            "default via 10.1.0.1 dev eth0",
            "192.0.2.0/24 via 10.1.0.1",
            "10.1.0.0/24 dev eth0 scope link",
            "198.51.100.7 dev eth0",
            "2001:db8:9::/64 dev eth0",
            "default via fe80::1 dev eth0 metric 1024",
        ]
    ),
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.one_of(rule_lines, route_lines), min_size=1, max_size=8))
def test_random_foreign_objects_survive_apply_and_flush(tmp_path: Path, lines: list[str]) -> None:
    config = tmp_path / "polroutd.toml"
    config.write_text(CONFIG.format(tmp=tmp_path, table=TABLE))
    with namespace() as ns:
        # routes first, so no rule is refused for want of its table; tolerate duplicates
        for line in sorted(lines, key=lambda text: not text.startswith("route")):
            subprocess.run(["ip", "-n", ns, *line.split()], capture_output=True)
        before = foreign_dump(ns)
        for command in ("apply", "apply", "flush"):
            result = subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    sys.executable,
                    "-m",
                    "polroutd",
                    command,
                    "--config",
                    str(config),
                ],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert result.returncode == 0, result.stdout + result.stderr
            assert foreign_dump(ns) == before, command
        # polroutd's own objects were there in between and are gone after flush
        assert f"proto {PROTO}" not in ip(ns, "rule", "show")
