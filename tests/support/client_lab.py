"""The configuration of the DHCP client and router advertisement tests: fixed table numbers,
the lab's interfaces, lease paths given per test."""

from __future__ import annotations

import json
from pathlib import Path

from polroutd.lab.lab import SERVER_DATA_IF, SERVER_MGMT_IF
from tests.support.lab_tools import HTTP_PORT

MGMT_TABLE, DATA_TABLE = 200, 201


def config_text(tmp: Path, lease_paths: list[str], data_extra: str = "") -> str:
    return f"""\
[daemon]
http_listen = "127.0.0.1:{HTTP_PORT}"
resync_interval = 3600
rt_tables_file = "{tmp}/rt_tables.d/polroutd.conf"
dhcp_lease_paths = {json.dumps(lease_paths)}
log_format = "json"

[[interface]]
name = "{SERVER_MGMT_IF}"
table = {MGMT_TABLE}

[[interface]]
name = "{SERVER_DATA_IF}"
table = {DATA_TABLE}
{data_extra}
"""


def write(tmp: Path, text: str) -> Path:
    path = tmp / "polroutd.toml"
    path.write_text(text)
    return path
