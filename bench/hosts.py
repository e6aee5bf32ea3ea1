"""Multi-homed hosts in namespaces: N interfaces (veth pairs) x M IPv4 addresses each.

The host namespace holds the interfaces ``bn0..bnN-1``; their veth peers live in a second
``peer`` namespace (the "network"), so the host looks like a server with N NICs. Interface
``bn<i>`` is on a /24 of its own, ``10.100.<i>.0/24`` for the first 250 and then ``10.101.<i -
250>.0/24`` (``subnet``); its addresses are ``.10`` upwards and, with ``gateways``, the main
table has ``default via <subnet>.1 dev bn<i> metric 100+i``, the way
DHCP leaves a multi-homed host. IPv6 stays on (link-local addresses, as on a real host) with
DAD off, so no late address events disturb the measurements.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from polroutd.lab import netns

BASE_TABLE = 30000  # polroutd allocates from its default range in interface-name order
PRIORITY = 30000


@dataclass(frozen=True)
class HostShape:
    interfaces: int
    per_interface: int
    gateways: bool = True

    @property
    def rules(self) -> int:
        return self.interfaces * self.per_interface


def ifname(i: int) -> str:
    return f"bn{i}"


MAX_INTERFACES = 1000  # 10.100.0.0 to 10.103.249.0: probes use 10.200 upwards
SUBNETS_PER_OCTET = 250


def subnet(i: int) -> str:
    """The first three octets of interface i's /24."""
    return f"10.{100 + i // SUBNETS_PER_OCTET}.{i % SUBNETS_PER_OCTET}"


def address(i: int, j: int) -> str:
    """The j-th address of interface i (j up to 239)."""
    return f"{subnet(i)}.{10 + j}"


def gateway(i: int) -> str:
    return f"{subnet(i)}.1"


class Host:
    """One built host: ``ns`` is where polroutd runs, ``peer`` holds the other veth ends."""

    def __init__(self, spaces: netns.Namespaces, role: str, shape: HostShape, *,
                 with_addresses: bool = True) -> None:
        if shape.interfaces > MAX_INTERFACES or shape.per_interface > 200:
            raise ValueError("host too large for the address plan")
        self.shape = shape
        self.ns = spaces.add(role)
        self.peer = spaces.add(role + "p")
        netns.sysctl(self.ns, "net.ipv6.conf.all.accept_dad=0",
                     "net.ipv6.conf.default.accept_dad=0")
        n = shape.interfaces
        netns.batch(self.ns, [f"link add {ifname(i)} type veth peer name p{i} netns {self.peer}"
                              for i in range(n)])
        netns.batch(self.peer, [f"link set p{i} up" for i in range(n)])
        netns.batch(self.ns, [f"link set {ifname(i)} up" for i in range(n)])
        self.index = {link["ifname"]: int(link["ifindex"]) for link in json.loads(
            netns.run_checked(["ip", "-n", self.ns, "-j", "link", "show"]).stdout)}
        if with_addresses:
            self.add_addresses()

    def address_lines(self, op: str = "add") -> list[str]:
        s = self.shape
        return [f"addr {op} {address(i, j)}/24 dev {ifname(i)}"
                for i in range(s.interfaces) for j in range(s.per_interface)]

    def add_addresses(self) -> None:
        s = self.shape
        lines = self.address_lines()
        if s.gateways:
            lines += [f"route add default via {gateway(i)} dev {ifname(i)} metric {100 + i}"
                      for i in range(s.interfaces)]
        netns.batch(self.ns, lines)

    def expected_sources(self) -> set[str]:
        s = self.shape
        return {address(i, j) for i in range(s.interfaces) for j in range(s.per_interface)}


def write_config(path: Path, workdir: Path, *, http_port: int | None = None,
                 resync_interval: float | None = None) -> Path:
    """polroutd's configuration for a benchmark host: defaults (every interface with a global
    address, tables named after interfaces), with the rt_tables.d file kept in ``workdir``."""
    listen = f"127.0.0.1:{http_port}" if http_port else ""
    resync = "" if resync_interval is None else f"resync_interval = {resync_interval}\n"
    path.write_text(
        "[daemon]\n"
        f'http_listen = "{listen}"\n'
        f'rt_tables_file = "{workdir}/iproute2/rt_tables.d/polroutd.conf"\n'
        + resync
    )
    return path
