"""The article's example configuration, adapted to the lab: ens192 → table ``mgt``, ens224 →
table ``data`` with the article's extra route to 10.225.144.0/24. The one copy of it, used by
``polroutd demo`` and by the tests (which also derive their pure ``Config`` from it)."""

from __future__ import annotations

from collections.abc import Sequence

from polroutd.lab.topology import ADDR, SERVER_DATA_IF, SERVER_MGMT_IF


def article_config(*, rt_tables_file: str, lease_paths: Sequence[str],
                   daemon_lines: Sequence[str] = ()) -> str:
    """The configuration as TOML; ``daemon_lines`` are added to its ``[daemon]`` table."""
    leases = ", ".join(f'"{path}"' for path in lease_paths)
    daemon = "\n".join([f'rt_tables_file = "{rt_tables_file}"',
                        f"dhcp_lease_paths = [{leases}]", *daemon_lines])
    return f"""\
[daemon]
{daemon}

[[interface]]
name = "{SERVER_MGMT_IF}"
table = "mgt"

[[interface]]
name = "{SERVER_DATA_IF}"
table = "data"
routes = [ {{ to = "10.225.144.0/24", via = "{ADDR.router_data4}", table = "main" }} ]
"""
