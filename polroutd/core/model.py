"""The vocabulary shared by every layer: observed kernel objects, desired objects, operations.

Pure data, no I/O. Addresses are canonical strings (``socket.inet_ntop`` form), so two objects
that the kernel considers equal compare equal here.

The records the kernel reads and writes in thousands (links, addresses, routes, rules and the
operations on them) are NamedTuples: immutable values like the records (``core.record``) used for
the rest, but cheaper still to build, which a cold start of a thousand rules feels.
"""

from __future__ import annotations

import errno
from typing import Literal, NamedTuple

from polroutd.core.limits import (
    AF_INET,
    AF_INET6,
    FR_ACT_TO_TBL,
    IFA_F_DADFAILED,
    IFA_F_DEPRECATED,
    IFA_F_OPTIMISTIC,
    IFA_F_SECONDARY,
    IFA_F_TENTATIVE,
    NUD_FAILED,
    RT_SCOPE_UNIVERSE,
    RTN_UNICAST,
)
from polroutd.core.record import record

Kind = Literal["rule", "route"]
OpName = Literal["add", "delete", "replace"]


def family_name(family: int) -> str:
    return "ipv4" if family == AF_INET else "ipv6"


def host_len(family: int) -> int:
    return 32 if family == AF_INET else 128


class Link(NamedTuple):
    ifindex: int
    name: str
    up: bool  # IFF_UP: administratively up
    carrier: bool  # IFF_LOWER_UP
    loopback: bool = False
    kind: str | None = None  # IFLA_INFO_KIND: "veth", "bridge", ...
    master: int | None = None  # IFLA_MASTER: the VRF, bond or bridge this link is a port of


class Neighbour(NamedTuple):
    ifindex: int
    family: int
    address: str
    state: int  # NUD_* bits

    @property
    def failed(self) -> bool:
        return bool(self.state & NUD_FAILED)


class Address(NamedTuple):
    ifindex: int
    family: int
    address: str
    prefixlen: int
    scope: int = RT_SCOPE_UNIVERSE
    flags: int = 0
    peer: str | None = None  # ``ip addr add LOCAL peer PEER/LEN``: the prefix is the peer's

    @property
    def network_address(self) -> str:
        """The address the connected prefix is taken from: the peer's when there is one."""
        return self.peer if self.peer is not None else self.address

    def text(self) -> str:
        """As ``ip addr`` writes it: ``10.0.0.1/24``, or ``10.0.0.1 peer 10.9.0.2/24``."""
        if self.peer is not None:
            return f"{self.address} peer {self.peer}/{self.prefixlen}"
        return f"{self.address}/{self.prefixlen}"

    @property
    def secondary(self) -> bool:
        return bool(self.flags & IFA_F_SECONDARY)

    @property
    def deprecated(self) -> bool:
        return bool(self.flags & IFA_F_DEPRECATED)

    @property
    def usable(self) -> bool:
        """Whether the kernel takes it as a source now (docs/behaviour.md, "Addresses"): not
        while duplicate address detection runs (tentative: a route with it as ``src`` fails
        with EINVAL) unless it is optimistic (RFC 4429, meant to be used during DAD), and
        never once DAD failed. The kernel sends an address event when DAD completes."""
        if self.flags & IFA_F_DADFAILED:
            return False
        return not self.flags & IFA_F_TENTATIVE or bool(self.flags & IFA_F_OPTIMISTIC)

    @property
    def is_global(self) -> bool:
        """A global address polroutd gives a rule (and routes their source) now."""
        return self.scope == RT_SCOPE_UNIVERSE and self.usable


class RouteKey(NamedTuple):
    """How the kernel tells routes apart within a table (``ip route replace`` matches on this).

    IPv6 also keeps routes without a next hop apart by their device: ``fe80::/64 dev docker0``
    and ``fe80::/64 dev vethX`` live side by side in one table at one metric (they are no
    multipath candidates), so ``device`` is their device, and None for every other route."""

    family: int
    table: int
    dst: str
    dst_len: int
    tos: int
    metric: int
    device: int | None = None


class NextHop(NamedTuple):
    """One path of a multipath route (``nexthop via G dev I weight W``)."""

    oif: int
    gateway: str | None
    weight: int = 1


class Route(NamedTuple):
    family: int
    table: int
    dst: str  # network address; "0.0.0.0" or "::" for default
    dst_len: int
    protocol: int
    metric: int = 0
    tos: int = 0
    type: int = RTN_UNICAST
    scope: int = RT_SCOPE_UNIVERSE
    oif: int | None = None
    gateway: str | None = None
    prefsrc: str | None = None
    # Attributes we do not model (multipath, metrics, encap, ...) as opaque (type, bytes) pairs,
    # so a foreign route that differs only there is still seen as different from ours.
    extra: tuple[tuple[int, bytes], ...] = ()
    # A multipath route's paths (RTA_MULTIPATH), in the kernel's order; then oif and gateway
    # are None. A route with one path is written as a plain one, as the kernel reports it.
    nexthops: tuple[NextHop, ...] = ()

    @property
    def key(self) -> RouteKey:
        device = self.oif if self.family == AF_INET6 and self.gateway is None else None
        return RouteKey(
            self.family, self.table, self.dst, self.dst_len, self.tos, self.metric, device
        )

    @property
    def keyed_by_device(self) -> bool:
        """Whether routes like this one through other devices may share its place (see
        RouteKey): it is added beside them, never in place of one."""
        return self.family == AF_INET6 and self.gateway is None and self.oif is not None

    @property
    def is_default(self) -> bool:
        return self.dst_len == 0


class Rule(NamedTuple):
    family: int
    priority: int
    table: int
    protocol: int
    src: str | None = None
    src_len: int = 0
    dst: str | None = None
    dst_len: int = 0
    action: int = FR_ACT_TO_TBL
    suppress_prefixlen: int | None = None
    iifname: str | None = None
    oifname: str | None = None
    fwmark: int | None = None
    tos: int = 0
    flags: int = 0
    extra: tuple[tuple[int, bytes], ...] = ()

    @property
    def selector(self) -> tuple[object, ...]:
        """What a packet is matched on: two rules with the same selector and priority compete."""
        return (
            self.family,
            self.src,
            self.src_len,
            self.dst,
            self.dst_len,
            self.iifname,
            self.oifname,
            self.fwmark,
            self.tos,
            self.flags,
            self.extra,
        )

    def identity(self) -> tuple[object, ...]:
        """Everything that makes two rules the same rule, protocol aside (every other field)."""
        return self[:3] + self[4:]


@record
class KernelState:
    """One consistent read of the kernel (never a partial one: reads that fail raise)."""

    links: tuple[Link, ...] = ()
    addresses: tuple[Address, ...] = ()
    routes: tuple[Route, ...] = ()
    rules: tuple[Rule, ...] = ()

    def link_by_index(self) -> dict[int, Link]:
        return {link.ifindex: link for link in self.links}


class RuleOp(NamedTuple):
    op: Literal["add", "delete"]
    rule: Rule

    @property
    def kind(self) -> Kind:
        return "rule"


class RouteOp(NamedTuple):
    op: OpName
    route: Route
    # For "replace": the route in the kernel that is being replaced (ours, same key).
    previous: Route | None = None

    @property
    def kind(self) -> Kind:
        return "route"


Operation = RuleOp | RouteOp


class OpResult(NamedTuple):
    """What the kernel said to one operation."""

    operation: Operation
    errno: int = 0  # 0: done, or the kernel was already as asked
    message: str | None = None  # the kernel's extended-ack text, when it gave one

    @property
    def ok(self) -> bool:
        return self.errno == 0

    @property
    def error_name(self) -> str:
        return errno.errorcode.get(self.errno, str(self.errno)) if self.errno else "OK"


GatewaySource = Literal["config", "main-table", "dhcp-lease"]


@record
class Gateway:
    """The gateway chosen for one interface and family, or why there is none."""

    address: str | None
    source: GatewaySource | None
    reason: str | None = None  # set when address is None and no device route applies
    device_route: bool = False  # "default dev I" without a next hop (point-to-point links)
    wanted: bool = True  # False when the configuration says "none" or "unreachable"
    unreachable: bool = False  # the table ends with "unreachable default" instead
    # Other default routes via the interface that lost (address, why): one gateway per
    # interface and family (docs/topologies.md, several subnets on one interface).
    passed_over: tuple[tuple[str, str], ...] = ()
    not_installed: str | None = None  # why a known gateway gets no default route
    # When the DHCP lease it comes from expires (Unix time; None: no lease, or no end): the
    # daemon reconciles then, so the default route does not outlive the lease.
    lease_expires: float | None = None

    @property
    def present(self) -> bool:
        return self.address is not None or self.device_route


@record
class LeaseOffer:
    """One DHCP lease found for an interface: its routers (preferred first), the address it
    leased (None when the file does not say), the file, for messages, and when it expires
    (Unix time; None when unknown or never)."""

    routers: tuple[str, ...]
    address: str | None
    path: str
    expires: float | None = None


@record
class LeaseFindings:
    """An interface's usable leases, best first, and why lease files for it were not read."""

    offers: tuple[LeaseOffer, ...] = ()
    refused: tuple[str, ...] = ()


@record
class ManagedInterface:
    name: str
    index: int
    up: bool
    carrier: bool
    addresses: tuple[str, ...]  # "addr/prefixlen", global scope only
    table_id: int
    table_name: str | None
    priority: int
    gateway4: Gateway
    gateway6: Gateway


@record
class Conflict:
    """A foreign object that stands where polroutd wants one of its own."""

    kind: Kind
    message: str
    foreign: Rule | Route


class UplinkChoice(NamedTuple):
    """One uplink and family as decided (core/uplinks.py): may it, and does it, carry traffic."""

    interface: str
    family: int
    healthy: bool
    active: bool  # its route carries new connections now
    metric: int
    weight: int
    reason: str | None = None  # why it carries nothing although configured


@record
class SkippedInterface:
    """An interface the configuration (or the default selection) names but polroutd leaves
    alone, and why: a port of a VRF, bond or bridge, a loopback, or no table number left."""

    name: str
    index: int
    reason: str


@record
class DesiredState:
    interfaces: tuple[ManagedInterface, ...]
    rules: tuple[Rule, ...]
    routes: tuple[Route, ...]
    tables: frozenset[int]  # every table polroutd uses per interface (and the uplink table)
    skipped: tuple[SkippedInterface, ...] = ()
    uplinks: tuple[UplinkChoice, ...] = ()  # what each uplink does now

    def route_keys(self) -> frozenset[RouteKey]:
        return frozenset(route.key for route in self.routes)


@record
class Plan:
    operations: tuple[Operation, ...]
    conflicts: tuple[Conflict, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.operations
