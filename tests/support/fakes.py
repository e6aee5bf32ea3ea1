"""A small in-memory kernel with the rtnetlink semantics polroutd relies on, and fault injection.

Rules: an add with EXCL fails with EEXIST only when an identical rule (protocol included)
exists; delete removes the first match or fails with ENOENT. Routes: keyed like the kernel
(table, dst, tos, metric, and the device of an IPv6 route without next hop: RouteKey); add
fails with EEXIST on an occupied key, replace takes the key over, delete of a missing route
fails with ESRCH. Routes through a down or missing device fail. An IPv6 route given metric 0
is stored with 1024, as the kernel does. Any other operation name is refused with EOPNOTSUPP.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass, field

from polroutd.core.errors import KernelError
from polroutd.core.kernelview import Event
from polroutd.core.limits import AF_INET, AF_INET6, IP6_DEFAULT_METRIC, RT_TABLE_MAIN
from polroutd.core.model import (
    Address,
    KernelState,
    Link,
    Operation,
    OpResult,
    Route,
    RouteOp,
    Rule,
    RuleOp,
)
from polroutd.core.record import replace
from polroutd.netlink.kernel import IDEMPOTENT

_OPERATIONS = {"rule": ("add", "delete"), "route": ("add", "replace", "delete")}


def _rule_match(existing: Rule, wanted: Rule) -> bool:
    return existing.identity() == wanted.identity() and existing.protocol == wanted.protocol


@dataclass
class FakeKernel:
    state: KernelState = field(default_factory=KernelState)
    fail_next: list[tuple[str, str, int]] = field(default_factory=list)  # (kind, op, errno)
    failing_reads: int = 0
    reads: int = 0
    applied: list[Operation] = field(default_factory=list)
    # What "someone else" changed through the helpers below, as the kernel announces it
    # (polroutd's own operations are not announced to it: it ignores their echo).
    events: list[Event] = field(default_factory=list)

    def read_state(self) -> KernelState:
        self.reads += 1
        if self.failing_reads:
            self.failing_reads -= 1
            raise KernelError("injected read failure", errno.EBUSY)
        return self.state

    def apply(self, operations: Sequence[Operation]) -> list[OpResult]:
        return [self._apply_one(op) for op in operations]

    def _injected(self, op: Operation) -> int:
        for i, (kind, name, code) in enumerate(self.fail_next):
            if kind == op.kind and name == op.op:
                del self.fail_next[i]
                return code
        return 0

    def _apply_one(self, op: Operation) -> OpResult:
        code = self._injected(op)
        if code:
            return OpResult(op, code)
        if op.op not in _OPERATIONS[op.kind]:
            return OpResult(op, errno.EOPNOTSUPP)
        self.applied.append(op)
        if isinstance(op, RuleOp):
            code = self._rule(op)
        else:
            assert isinstance(op, RouteOp)
            code = self._route(op)
        if code == IDEMPOTENT.get((op.kind, op.op)):
            code = 0  # the same idempotent cases the netlink adapter forgives
        return OpResult(op, code)

    def _rule(self, op: RuleOp) -> int:
        rules = list(self.state.rules)
        if op.op == "add":
            if any(_rule_match(r, op.rule) for r in rules):
                return errno.EEXIST
            rules.append(op.rule)
        else:
            idx = next((i for i, r in enumerate(rules) if _rule_match(r, op.rule)), None)
            if idx is None:
                return errno.ENOENT
            del rules[idx]
        self.state = replace(self.state, rules=tuple(rules))
        return 0

    def _route(self, op: RouteOp) -> int:
        route = op.route
        if route.family == AF_INET6 and route.metric == 0:
            route = route._replace(metric=IP6_DEFAULT_METRIC)
        routes = list(self.state.routes)
        at = next((i for i, r in enumerate(routes) if r.key == route.key), None)
        if op.op == "delete":
            # Like the kernel: the protocol, device and gateway given must match too.
            at = next(
                (
                    i
                    for i, r in enumerate(routes)
                    if r.key == route.key
                    and r.protocol == route.protocol
                    and r.oif == route.oif
                    and r.gateway == route.gateway
                ),
                None,
            )
            if at is None:
                return errno.ESRCH
            del routes[at]
        else:
            links = self.state.link_by_index()
            link = links.get(route.oif) if route.oif is not None else None
            if route.oif is not None and link is None:
                return errno.ENODEV
            if link is not None and not link.up:
                return errno.ENETDOWN
            if op.op == "add" and at is not None:
                return errno.EEXIST
            if at is None:
                routes.append(route)
            else:
                routes[at] = route
        self.state = replace(self.state, routes=tuple(routes))
        return 0

    # Helpers for tests that play "someone else" changing the kernel.
    def remove_rule(self, rule: Rule) -> None:
        self.state = replace(self.state, rules=tuple(r for r in self.state.rules if r != rule))
        self.events.append(Event("rule", "del", rule))

    def add_rule(self, rule: Rule) -> None:
        self.state = replace(self.state, rules=(*self.state.rules, rule))
        self.events.append(Event("rule", "new", rule))

    def add_route(self, route: Route) -> None:
        if any(r.key == route.key for r in self.state.routes):
            return
        self.state = replace(self.state, routes=(*self.state.routes, route))
        self.events.append(Event("route", "new", route))

    def remove_route(self, route: Route) -> None:
        if route in self.state.routes:
            self.state = replace(self.state, routes=tuple(
                r for r in self.state.routes if r != route))
            self.events.append(Event("route", "del", route))

    def add_address(self, address: Address) -> None:
        if address in self.state.addresses:
            return
        self.state = replace(self.state, addresses=(*self.state.addresses, address))
        self.events.append(Event("address", "new", address))

    def remove_address(self, address: Address) -> None:
        """Like a recent kernel (seen on 6.18): with the last IPv4 address of a device go its
        IPv4 routes, and main-table routes preferring the address as source when no device
        holds it any more, unannounced (other tables keep them, with the stale source).
        """
        if address not in self.state.addresses:
            return
        rest = tuple(a for a in self.state.addresses if a != address)
        routes = self.state.routes
        if address.family == AF_INET:
            if all(a.address != address.address for a in rest):
                routes = tuple(r for r in routes if r.prefsrc != address.address
                               or r.table != RT_TABLE_MAIN)
            if not any(a.ifindex == address.ifindex and a.family == AF_INET for a in rest):
                routes = tuple(r for r in routes
                               if not (r.oif == address.ifindex and r.family == AF_INET))
        self.state = replace(self.state, addresses=rest, routes=routes)
        self.events.append(Event("address", "del", address))

    def set_link(self, link: Link) -> None:
        """A link changed (same index); going down flushes its routes, unannounced."""
        old = self.state.link_by_index().get(link.ifindex)
        routes = self.state.routes
        if old is not None and old.up and not link.up:
            routes = tuple(r for r in routes if r.oif != link.ifindex)
        links = tuple(link if x.ifindex == link.ifindex else x for x in self.state.links)
        self.state = replace(self.state, links=links, routes=routes)
        self.events.append(Event("link", "new", link, ifindex=link.ifindex, up=link.up))


class FakeNotifier:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def ready(self) -> None:
        self.sent.append("READY=1")

    def reloading(self) -> None:
        self.sent.append("RELOADING=1")

    def stopping(self) -> None:
        self.sent.append("STOPPING=1")

    def status(self, text: str) -> None:
        self.sent.append(f"STATUS={text}")

    def watchdog(self) -> None:
        self.sent.append("WATCHDOG=1")

    def watchdog_interval(self) -> float | None:
        return 0.01
