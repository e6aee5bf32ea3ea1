"""Running polroutd and reading the kernel inside a lab namespace, for the real-kernel tests."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from polroutd.lab.lab import Lab, delete_netns

PROTO = 218  # the built-in number for "polroutd" when rt_protos does not name it

SPEC_EXAMPLE = """
[daemon]
rt_tables_file = "{tmp}/iproute2/rt_tables.d/polroutd.conf"
dhcp_lease_paths = ["{tmp}/leases/*.leases"]
{daemon_extra}

[[interface]]
name = "ens192"
table = "mgt"

[[interface]]
name = "ens224"
table = "data"
routes = [ {{ to = "10.225.144.0/24", via = "10.225.176.1", table = "main" }} ]
"""


def write_config(tmp: Path, text: str = SPEC_EXAMPLE, daemon_extra: str = "") -> Path:
    (tmp / "leases").mkdir(exist_ok=True)
    path = tmp / "polroutd.toml"
    path.write_text(text.format(tmp=tmp, daemon_extra=daemon_extra))
    return path


def polroutd(
    lab: Lab, ns: str, *args: str, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return lab.run(ns, sys.executable, "-m", "polroutd", *args, check=False, timeout=timeout)


def rules(lab: Lab, ns: str) -> list[dict[str, Any]]:
    out = []
    for family in ("-4", "-6"):
        text = lab.run(ns, "ip", "-j", family, "rule", "show").stdout
        out += [dict(r, family=family) for r in json.loads(text or "[]")]
    return out


def routes(lab: Lab, ns: str) -> list[dict[str, Any]]:
    out = []
    for family in ("-4", "-6"):
        text = lab.run(ns, "ip", "-j", family, "route", "show", "table", "all").stdout
        out += [
            dict(r, family=family)
            for r in json.loads(text or "[]")
            if r.get("table") != "local"
            and r.get("type") not in ("local", "broadcast", "multicast")
        ]
    return out


def owned(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in items if str(i.get("protocol")) in (str(PROTO), "polroutd")]


def foreign(items: list[dict[str, Any]]) -> list[str]:
    """Foreign objects, comparable before/after (volatile fields dropped)."""
    keep = [i for i in items if i not in owned(items)]
    return sorted(
        json.dumps({k: v for k, v in i.items() if k not in ("expires", "flags")}, sort_keys=True)
        for i in keep
    )


def tables(lab: Lab, ns: str) -> dict[str, list[dict[str, Any]]]:
    by_table: dict[str, list[dict[str, Any]]] = {}
    for r in owned(routes(lab, ns)):
        by_table.setdefault(str(r.get("table", "main")), []).append(r)
    return by_table


def recorded_tables(tmp: Path) -> dict[str, int]:
    path = tmp / "iproute2" / "rt_tables.d" / "polroutd.conf"
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            number, name = line.split()
            out[name] = int(number)
    return out


def write_lease(tmp: Path, interface: str, address: str, router: str) -> None:
    """A dhclient lease file, as if ens224's address came from DHCP (as in the article)."""
    (tmp / "leases").mkdir(exist_ok=True)
    (tmp / "leases" / "dhclient.leases").write_text(
        f'lease {{\n  interface "{interface}";\n  fixed-address {address};\n'
        f"  option subnet-mask 255.255.255.0;\n  option routers {router};\n"
        "  renew 4 2099/11/26 10:00:00;\n  expire 4 2099/11/26 12:00:00;\n}\n"
    )


@contextmanager
def namespace() -> Iterator[str]:
    """A bare namespace with ``eth0`` (10.1.0.2/24, 2001:db8:1::2/64) and a default route,
    deleted afterwards with whatever runs inside it."""
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
