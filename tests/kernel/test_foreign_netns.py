"""Foreign rules and routes are never changed or deleted, whatever they are (real kernel)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.lab_tools import PROTO, ip, namespace

TABLE = 30000
CONFIG = """
[daemon]
rt_tables_file = "{tmp}/rt_tables.d/polroutd.conf"
dhcp_lease_paths = []

[[interface]]
name = "eth0"
table = {table}
"""


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
    return sorted(line for line in lines if not _ours(line))


def _ours(line: str) -> bool:
    """polroutd's protocol as `ip` shows it: its number, or its name where rt_protos has it."""
    return f"proto {PROTO} " in f"{line} " or "proto polroutd " in f"{line} "


def owned_rules(ns: str) -> list[str]:
    return [line for family in ("-4", "-6") for line in ip(ns, family, "rule", "show").splitlines()
            if _ours(line)]


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
            if command == "apply":  # polroutd's own rules (IPv4 and IPv6) are there meanwhile
                sources = [re.findall(r"from (\S+)", line)[0] for line in owned_rules(ns)]
                assert {"inet6" if ":" in src else "inet" for src in sources} == {
                    "inet", "inet6"}, sources
        assert owned_rules(ns) == []  # and gone after flush
