"""The vocabulary shared by every layer: observed kernel objects, desired objects, operations.

Pure data, no I/O. Addresses are canonical strings (``socket.inet_ntop`` form), so two objects
that the kernel considers equal compare equal here.

The records the kernel reads and writes in thousands (links, addresses, routes, rules and the
operations on them) are NamedTuples: immutable values like the frozen dataclasses used for the
rest, but three to four times cheaper to build, which a cold start of a thousand rules feels.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Literal, NamedTuple

from polroutd.core.limits import (
    AF_INET,
    FR_ACT_TO_TBL,
    IFA_F_DADFAILED,
    IFA_F_SECONDARY,
    RT_SCOPE_UNIVERSE,
    RTN_UNICAST,
)

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


class Address(NamedTuple):
    ifindex: int
    family: int
    address: str
    prefixlen: int
    scope: int = RT_SCOPE_UNIVERSE
    flags: int = 0

    @property
    def secondary(self) -> bool:
        return bool(self.flags & IFA_F_SECONDARY)

    @property
    def is_global(self) -> bool:
        return self.scope == RT_SCOPE_UNIVERSE and not self.flags & IFA_F_DADFAILED


class RouteKey(NamedTuple):
    """How the kernel tells routes apart within a table (``ip route replace`` matches on this)."""

    family: int
    table: int
    dst: str
    dst_len: int
    tos: int
    metric: int


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
        return RouteKey(self.family, self.table, self.dst, self.dst_len, self.tos, self.metric)

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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Gateway:
    """The gateway chosen for one interface and family, or why there is none."""

    address: str | None
    source: GatewaySource | None
    reason: str | None = None  # set when address is None and no device route applies
    device_route: bool = False  # "default dev I" without a next hop (point-to-point links)
    wanted: bool = True  # False when the configuration says gateway = "none"

    @property
    def present(self) -> bool:
        return self.address is not None or self.device_route


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class DesiredState:
    interfaces: tuple[ManagedInterface, ...]
    rules: tuple[Rule, ...]
    routes: tuple[Route, ...]
    tables: frozenset[int]  # every table polroutd uses per interface (and the uplink table)
    uplinks: tuple[UplinkChoice, ...] = ()  # what each uplink does now

    def route_keys(self) -> frozenset[RouteKey]:
        return frozenset(route.key for route in self.routes)


@dataclass(frozen=True, slots=True)
class Plan:
    operations: tuple[Operation, ...]
    conflicts: tuple[Conflict, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.operations
