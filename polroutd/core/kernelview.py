"""The kernel as last seen, kept up to date by its own announcements. Pure.

The daemon reads everything once, then applies each rtnetlink event (which carries the whole
object) to that view instead of reading everything again; a periodic full read compares the
two (``divergence``). The kernel also drops some objects without saying so, and those are
modelled here: IPv4 routes through a device that goes down, is deleted or loses its last IPv4
address, and routes whose preferred source was a deleted address (IPv6 only forgets the
source). Notes in docs/performance.md, "Incremental reconcile".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, NamedTuple

from polroutd.core.limits import AF_INET, AF_INET6, RT_TABLE_LOCAL, RT_TABLE_MAIN
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

EventKind = Literal["link", "address", "route", "rule"]
Change = Literal["new", "del"]
KernelObject = Link | Address | Route | Rule


class Event(NamedTuple):
    """A change the kernel announced, with the object as the kernel sent it.

    ``change`` None: only the kind is known, a hint to read everything again. ``obj`` None with
    a change: an object polroutd does not model (another address family): nothing to update.
    ``replace``: a new route that took the place of the one at its key (NLM_F_REPLACE).
    ``ifindex`` and ``up``: for a link event, which link and whether it is administratively up
    now (False when deleted), known even when the rest of the message could not be decoded.
    """

    kind: EventKind
    change: Change | None = None
    obj: KernelObject | None = None
    replace: bool = False
    ifindex: int | None = None
    up: bool | None = None

    @property
    def went_down(self) -> bool:
        """The link went down or away: the kernel flushes the routes through it by itself."""
        return self.kind == "link" and self.up is False


@dataclass(frozen=True, slots=True)
class Touched:
    """What a batch of events touched: where the desired state and the plan may change."""

    ifindexes: frozenset[int]  # interfaces whose links, addresses or routes changed
    tables: frozenset[int]  # tables a route or rule changed in
    rules: tuple[Rule, ...]  # the rules added or deleted
    main_routes: tuple[Route, ...]  # main-table routes added or deleted
    links_renamed: bool  # a link appeared, went, or changed name, kind, master or loopback


def _address_key(a: Address) -> tuple[object, ...]:
    # IPv6 knows one address once per interface; IPv4 tells them apart by prefix and peer.
    if a.family == AF_INET6:
        return (a.ifindex, a.family, a.address)
    return (a.ifindex, a.family, a.address, a.prefixlen, a.peer)


def _remove_first(items: list[Route], match: Route) -> bool:
    for i, item in enumerate(items):
        if item == match:
            del items[i]
            return True
    for i, item in enumerate(items):  # the kernel deletes by key, protocol, device, gateway
        if (item.key == match.key and item.protocol == match.protocol
                and item.oif == match.oif and item.gateway == match.gateway):
            del items[i]
            return True
    return False


class _View:
    """The lists being changed, materialised only for the kinds a batch touches."""

    def __init__(self, state: KernelState) -> None:
        self._state = state
        self._links: list[Link] | None = None
        self._addresses: list[Address] | None = None
        self._routes: list[Route] | None = None
        self._rules: list[Rule] | None = None

    @property
    def links(self) -> list[Link]:
        if self._links is None:
            self._links = list(self._state.links)
        return self._links

    @property
    def addresses(self) -> list[Address]:
        if self._addresses is None:
            self._addresses = list(self._state.addresses)
        return self._addresses

    @property
    def routes(self) -> list[Route]:
        if self._routes is None:
            self._routes = list(self._state.routes)
        return self._routes

    @property
    def rules(self) -> list[Rule]:
        if self._rules is None:
            self._rules = list(self._state.rules)
        return self._rules

    def drop_routes(self, **where: object) -> None:
        self._routes = [r for r in self.routes
                        if not all(getattr(r, name) == value for name, value in where.items())]

    def state(self) -> KernelState:
        s = self._state
        return KernelState(
            links=s.links if self._links is None else tuple(self._links),
            addresses=s.addresses if self._addresses is None else tuple(self._addresses),
            routes=s.routes if self._routes is None else tuple(self._routes),
            rules=s.rules if self._rules is None else tuple(self._rules),
        )


def apply_events(state: KernelState, events: Iterable[Event]) -> tuple[KernelState, Touched] | None:
    """The view after ``events`` (in the kernel's order), and what they touched; None when an
    event carries no object (only a full read can tell what changed)."""
    view = _View(state)
    ifindexes: set[int] = set()
    tables: set[int] = set()
    rules: list[Rule] = []
    main_routes: list[Route] = []
    renamed = False
    for event in events:
        if event.change is None:
            return None
        obj = event.obj
        if obj is None:
            continue
        if isinstance(obj, Link):
            ifindexes.add(obj.ifindex)
            renamed |= _apply_link(view, obj, event.change)
        elif isinstance(obj, Address):
            ifindexes.add(obj.ifindex)
            _apply_address(view, obj, event.change)
        elif isinstance(obj, Route):
            if obj.table == RT_TABLE_LOCAL:
                continue  # never read, never ours
            if obj.oif is not None:
                ifindexes.add(obj.oif)
            tables.add(obj.table)
            if obj.table == RT_TABLE_MAIN:
                main_routes.append(obj)
            _apply_route(view, obj, event.change, event.replace)
        else:
            tables.add(obj.table)
            rules.append(obj)
            if event.change == "new":
                view.rules.append(obj)
            elif obj in view.rules:
                view.rules.remove(obj)
    touched = Touched(frozenset(ifindexes), frozenset(tables), tuple(rules), tuple(main_routes),
                      renamed)
    return view.state(), touched


def _apply_link(view: _View, link: Link, change: Change) -> bool:
    """Applies one link event; True when the link's identity (not just its state) changed."""
    at = next((i for i, old in enumerate(view.links) if old.ifindex == link.ifindex), None)
    old = view.links[at] if at is not None else None
    if change == "del":
        if at is not None:
            del view.links[at]
        # Its addresses go with it (each announced, usually after this); its routes silently.
        view._addresses = [a for a in view.addresses if a.ifindex != link.ifindex]
        view.drop_routes(oif=link.ifindex)
        return True
    if at is None:
        view.links.append(link)
    else:
        view.links[at] = link
    if old is not None and old.up and not link.up:
        view.drop_routes(oif=link.ifindex)  # the kernel flushes them without a word
    return old is None or (old.name, old.kind, old.master, old.loopback) != (
        link.name, link.kind, link.master, link.loopback)


def _apply_address(view: _View, address: Address, change: Change) -> None:
    key = _address_key(address)
    addresses = view.addresses
    at = next((i for i, old in enumerate(addresses)
               if old.address == address.address and _address_key(old) == key), None)
    if change == "new":
        if at is None:
            addresses.append(address)
        else:
            addresses[at] = address
        return
    if at is not None:
        del addresses[at]
    if address.family == AF_INET:
        # The kernel flushes routes preferring a source no interface holds any more, and every
        # IPv4 route through the device when its last IPv4 address goes.
        if not any(a.family == AF_INET and a.address == address.address for a in addresses):
            view.drop_routes(family=AF_INET, prefsrc=address.address)
        if not any(a.family == AF_INET and a.ifindex == address.ifindex for a in addresses):
            view.drop_routes(family=AF_INET, oif=address.ifindex)
    else:  # IPv6 keeps such routes and forgets their preferred source
        view._routes = [
            r._replace(prefsrc=None)
            if r.family == AF_INET6 and r.oif == address.ifindex and r.prefsrc == address.address
            else r
            for r in view.routes
        ]


def _apply_route(view: _View, route: Route, change: Change, replace: bool) -> None:
    routes = view.routes
    if change == "del":
        _remove_first(routes, route)
        return
    if replace:
        key = route.key
        at = next((i for i, old in enumerate(routes) if old.key == key), None)
        if at is not None:
            routes[at] = route
            return
    if route not in routes:
        routes.append(route)


def apply_results(state: KernelState, results: Iterable[OpResult]) -> KernelState:
    """The view after polroutd's own operations that succeeded (their echo events are not
    read: they would only tell what was just done)."""
    view = _View(state)
    for result in results:
        if result.ok:
            _apply_operation(view, result.operation)
    return view.state()


def _apply_operation(view: _View, op: Operation) -> None:
    if isinstance(op, RuleOp):
        if op.op == "add":
            if op.rule not in view.rules:
                view.rules.append(op.rule)
        elif op.rule in view.rules:
            view.rules.remove(op.rule)
        return
    assert isinstance(op, RouteOp)
    if op.op == "delete":
        _remove_first(view.routes, op.route)
    elif op.op == "replace":
        _apply_route(view, op.route, "new", replace=True)
    elif op.route not in view.routes:
        view.routes.append(op.route)


DivergenceKind = Literal["link", "address", "route", "rule"]


def divergence(view: KernelState, read: KernelState) -> list[DivergenceKind]:
    """The kinds of object in which the view differs from a full read (order aside)."""
    kinds: list[DivergenceKind] = []
    if Counter(view.links) != Counter(read.links):
        kinds.append("link")
    if Counter(view.addresses) != Counter(read.addresses):
        kinds.append("address")
    if Counter(view.routes) != Counter(read.routes):
        kinds.append("route")
    if Counter(view.rules) != Counter(read.rules):
        kinds.append("rule")
    return kinds
