"""Running polroutd and reading the kernel inside a lab namespace, for the real-kernel tests."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from polroutd.lab.article import article_config
from polroutd.lab.daemon import LabDaemon
from polroutd.lab.lab import ADDR, ROUTER_MGMT_IF, Lab
from polroutd.lab.netns import bare_namespace
from tests.support.article import PROTO

LAB_PREFIX = "polroutd-t"  # every namespace of the tests: lab ones and bare ones
HTTP_PORT = 19641  # the daemon's HTTP API inside a lab's server namespace
# [daemon] lines of the tests' running daemons: HTTP on HTTP_PORT, no resync during a test
DAEMON_SETTINGS = f'http_listen = "127.0.0.1:{HTTP_PORT}"\nresync_interval = 3600'


def write_config(tmp: Path, daemon_extra: str = "") -> Path:
    """The article's example configuration (:mod:`polroutd.lab.article`), its files in ``tmp``."""
    (tmp / "leases").mkdir(exist_ok=True)
    path = tmp / "polroutd.toml"
    path.write_text(article_config(rt_tables_file=f"{tmp}/iproute2/rt_tables.d/polroutd.conf",
                                   lease_paths=[f"{tmp}/leases/*.leases"],
                                   daemon_lines=[daemon_extra] if daemon_extra else []))
    return path


def start_daemon(lab: Lab, config: Path, tmp: Path, *, watchdog_usec: int = 200_000,
                 extra_env: dict[str, str] | None = None) -> LabDaemon:
    """``polroutd run`` in the lab's server, HTTP on :data:`HTTP_PORT`, a watchdog asked for."""
    return LabDaemon(lab, lab.server, config, directory=tmp,
                     http_listen=f"127.0.0.1:{HTTP_PORT}", watchdog_usec=watchdog_usec,
                     extra_env=extra_env)


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
    """A bare namespace (:func:`polroutd.lab.netns.bare_namespace`) with the tests' prefix."""
    with bare_namespace(LAB_PREFIX) as ns:
        yield ns


def ip(ns: str, *args: str) -> str:
    return subprocess.run(
        ["ip", "-n", ns, *args], check=True, capture_output=True, text=True
    ).stdout


T = TypeVar("T")
TCP_PORT = 8080  # the lab server's TCP service that answers who reached it, and from where


def replies(lab: Lab, source: str, request: Callable[[], T]) -> tuple[T, dict[str, int]]:
    """Run ``request``; also count the TCP segments from ``source``:TCP_PORT that reach the router
    on its management side (``mgmt``) and its data side (``data``), and rp_filter drops."""
    drops = lab.probes.rp_filter_drops(lab.router)
    with lab.probes.count_packets(lab.router, [ROUTER_MGMT_IF, lab.router_data_if], source=source,
                           port=TCP_PORT) as seen:
        result = request()
    return result, {"mgmt": seen.by_interface[ROUTER_MGMT_IF],
                    "data": seen.by_interface[lab.router_data_if],
                    "drops": lab.probes.rp_filter_drops(lab.router) - drops}


def answer(address: str, peer: str = ADDR.client4) -> str:
    return f"polroutd-lab reached-at {address} from {peer}"
