"""Running polroutd and reading the kernel inside a lab namespace, for the real-kernel tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from polroutd.lab.daemon import LabDaemon
from polroutd.lab.lab import ADDR, ROUTER_MGMT_IF, Lab
from polroutd.lab.netns import bare_namespace
from polroutd.lab.reliability import (  # shared with bench/
    foreign,
    owned,
    routes,
    rules,
    write_config,
    write_lease,
)
from tests.support.article import PROTO

__all__ = [
    "HTTP_PORT", "LAB_PREFIX", "PROTO", "foreign", "ip", "namespace", "owned", "polroutd",
    "recorded_tables", "routes", "rules", "start_daemon", "tables", "write_config", "write_lease",
]

LAB_PREFIX = "polroutd-t"  # every namespace of the tests: lab ones and bare ones
HTTP_PORT = 19641  # the daemon's HTTP API inside a lab's server namespace
# [daemon] lines of the tests' running daemons: HTTP on HTTP_PORT, no resync during a test
DAEMON_SETTINGS = f'http_listen = "127.0.0.1:{HTTP_PORT}"\nresync_interval = 3600'


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


@contextmanager
def namespace() -> Iterator[str]:
    """A bare namespace (:func:`polroutd.lab.netns.bare_namespace`) with the tests' prefix."""
    with bare_namespace(LAB_PREFIX) as ns:
        yield ns


def ip(ns: str, *args: str) -> str:
    return subprocess.run(
        ["ip", "-n", ns, *args], check=True, capture_output=True, text=True
    ).stdout


def probe(ns: str, code: str, setup: Iterable[str] = ()) -> subprocess.CompletedProcess[str]:
    """Runs the ``ip`` lines ``setup`` in ``ns``, then the Python ``code`` inside it (a probe
    that prints what it saw); its exit code and output are the caller's to check."""
    for line in setup:
        ip(ns, *line.split())
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code],
                          capture_output=True, text=True)


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
