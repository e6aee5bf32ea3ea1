"""The kernel as last seen, kept up to date by its own announcements. Pure.

The daemon reads everything once, then applies each rtnetlink event (which carries the whole
object) to that view instead of reading everything again; a periodic full read compares the
two (``divergence``). The kernel also drops some objects without saying so, and those are
modelled here: IPv4 routes through a device that goes down, is deleted or loses its last IPv4
address, and main-table routes whose preferred source was a deleted address (IPv6 only
forgets the source). Notes in docs/performance.md, "Incremental reconcile".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, NamedTuple, TypeVar

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
from polroutd.core.record import record

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


@record
class Touched:
    """What a batch of events touched: where the desired state and the plan may change."""

    ifindexes: frozenset[int]  # interfaces whose links, addresses or routes changed
    tables: frozenset[int]  # tables a route or rule changed in
    rules: tuple[Rule, ...]  # the rules added or deleted
    main_routes: tuple[Route, ...]  # main-table routes added or deleted
    links_renamed: bool  # a link appeared, went, or changed name, kind, master or loopback


NOTHING_TOUCHED = Touched(frozenset(), frozenset(), (), (), links_renamed=False)

T = TypeVar("T", Link, Address, Route, Rule)
_KINDS = ("links", "addresses", "routes", "rules")
# (field, kind of object, slot) -> the tuple last grouped by that field, and its groups.
_LAST: dict[tuple[str, type, str], tuple[tuple[Any, ...], dict[Any, list[Any]]]] = {}
_REGROUP_ABOVE = 64  # more changes than this since the last tuple: grouped from scratch


def grouped(items: tuple[T, ...], field: str, slot: str = "view") -> Mapping[Any, list[T]]:
    """``items`` by the value of ``field``: the view is looked at by interface and by table
    after each event, and a pass over the whole view costs what the event should not.

    The groups of a view's tuple are derived from those of the tuple it replaced (the last one
    grouped by ``field`` in the same ``slot``: one per succession of tuples, e.g. the kernel
    view's, or the desired states'), changing only the groups of the objects that came or
    went; finding those compares the tuples at C speed (``_edits``). A pure memo: the result is
    what a fresh grouping gives, up to the order within a group when objects were replaced or
    deleted."""
    if not items:
        return {}
    memo = (field, type(items[0]), slot)
    last = _LAST.get(memo)
    if last is not None and last[0] is items:
        return last[1]
    groups: dict[Any, list[Any]] | None = None
    edits = None if last is None else _edits_memo(last[0], items)
    if last is not None and edits is not None:
        went, came = edits
        derived: dict[Any, list[Any]] = dict(last[1])
        key: Any
        for item in went:
            key = getattr(item, field)
            group = derived[key]
            at = group.index(item)
            derived[key] = group[:at] + group[at + 1:]
            if not derived[key]:
                del derived[key]
        for item in came:
            key = getattr(item, field)
            derived[key] = [*derived.get(key, ()), item]
        groups = derived
    if groups is None:
        groups = {}
        for item in items:
            value = getattr(item, field)
            found = groups.get(value)
            if found is None:
                groups[value] = [item]
            else:
                found.append(item)
    _LAST[memo] = (items, groups)
    return groups


# The last few (old tuple, new tuple) -> their edits: a view's tuple is grouped by several
# fields, each derived from the same previous tuple.
_EDITS: dict[tuple[int, int], tuple[tuple[Any, ...], tuple[Any, ...], Any]] = {}
_EDITS_KEPT = 8


def _remember_edits(old: tuple[Any, ...], new: tuple[Any, ...], went: list[Any],
                    came: list[Any]) -> None:
    """Tells ``grouped`` the edits that turned ``old`` into ``new`` (known to whoever made
    ``new``), so that it does not look for them."""
    if len(went) + len(came) > _REGROUP_ABOVE:
        return
    if len(_EDITS) >= _EDITS_KEPT:
        _EDITS.clear()
    _EDITS[(id(old), id(new))] = (old, new, (went, came))


def _edits_memo(
    old: tuple[Any, ...], new: tuple[Any, ...]
) -> tuple[list[Any], list[Any]] | None:
    key = (id(old), id(new))
    found = _EDITS.get(key)
    if found is not None and found[0] is old and found[1] is new:
        result: tuple[list[Any], list[Any]] | None = found[2]
        return result
    result = _edits(old, new, _REGROUP_ABOVE)
    if len(_EDITS) >= _EDITS_KEPT:
        _EDITS.clear()
    _EDITS[key] = (old, new, result)
    return result


def _edits(
    old: tuple[Any, ...], new: tuple[Any, ...], limit: int
) -> tuple[list[Any], list[Any]] | None:
    """(objects gone, objects come) that turn ``old`` into ``new``, when the two differ by at
    most ``limit`` of them; else None. The view changes a tuple by appending, deleting and
    replacing in place, so the two share long runs: each run is found by comparing slices
    (element identity first, at C speed) in a binary search, not one object at a time."""
    went: list[Any] = []
    came: list[Any] = []
    i = j = 0
    while True:
        i, j = _past_common_run(old, i, new, j)
        if i == len(old) or j == len(new):
            went.extend(old[i:])
            came.extend(new[j:])
            return (went, came) if len(went) + len(came) <= limit else None
        if len(went) + len(came) >= limit:
            return None
        if i + 1 < len(old) and old[i + 1] == new[j]:  # old[i] deleted
            went.append(old[i])
            i += 1
        elif j + 1 < len(new) and new[j + 1] == old[i]:  # new[j] inserted
            came.append(new[j])
            j += 1
        else:  # replaced
            went.append(old[i])
            came.append(new[j])
            i += 1
            j += 1


def _past_common_run(
    old: tuple[Any, ...], i: int, new: tuple[Any, ...], j: int
) -> tuple[int, int]:
    """The positions just past the longest run ``old[i:]`` and ``new[j:]`` start with."""
    n = min(len(old) - i, len(new) - j)
    if old[i:i + n] == new[j:j + n]:
        return i + n, j + n
    low, high = 0, n  # a run of ``low`` is common, one of ``high`` is not
    while high - low > 1:
        mid = (low + high) // 2
        # only the part not yet known to be common: the slices halve at each step
        if old[i + low:i + mid] == new[j + low:j + mid]:
            low = mid
        else:
            high = mid
    return i + low, j + low


def _address_key(a: Address) -> tuple[object, ...]:
    # IPv6 knows one address once per interface; IPv4 tells them apart by prefix and peer.
    if a.family == AF_INET6:
        return (a.ifindex, a.family, a.address)
    return (a.ifindex, a.family, a.address, a.prefixlen, a.peer)


def _remove_first(view: _View, match: Route) -> None:
    """Removes the route the kernel's delete of ``match`` took away, if the view has it."""
    items = view.routes
    if view.has_route(match):
        view.remove_at("routes", items.index(match))
        return
    key = match.key
    for i, item in enumerate(items):  # the kernel deletes by key, protocol, device, gateway
        if item.dst != match.dst or item.table != match.table:
            continue  # cheap to tell, before the key is built
        if (item.key == key and item.protocol == match.protocol
                and item.oif == match.oif and item.gateway == match.gateway):
            view.remove_at("routes", i)
            return


class _View:
    """The lists being changed, materialised only for the kinds a batch touches."""

    def __init__(self, state: KernelState) -> None:
        self._state = state
        self._links: list[Link] | None = None
        self._addresses: list[Address] | None = None
        self._routes: list[Route] | None = None
        self._rules: list[Rule] | None = None
        # Objects put in the lists since the read (appended, or in place of another): with
        # the read's groups, they tell whether a list holds an object without a pass over it.
        self._new_routes: list[Route] = []
        self._new_rules: list[Rule] = []
        # Per list, the objects taken out and put in: the new tuple's edits, handed to
        # ``grouped`` so that it need not find them by comparing the tuples.
        self._went: dict[str, list[Any]] = {kind: [] for kind in _KINDS}
        self._came: dict[str, list[Any]] = {kind: [] for kind in _KINDS}

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

    def has_route(self, route: Route) -> bool:
        """Whether the routes, as changed so far, hold ``route``: an object neither in the
        read's group of its table nor put in since cannot be there."""
        if route in self._new_routes or route in grouped(self._state.routes, "table").get(
                route.table, ()):
            return route in self.routes
        return False

    def has_rule(self, rule: Rule) -> bool:
        if rule in self._new_rules or rule in grouped(self._state.rules, "table").get(
                rule.table, ()):
            return rule in self.rules
        return False

    def _list(self, kind: str) -> list[Any]:
        items: list[Any] = getattr(self, kind)
        return items

    def put(self, kind: str, obj: Any, at: int | None = None) -> None:
        """Appends ``obj`` to a list, or puts it in place of the one at ``at``."""
        items = self._list(kind)
        if at is None:
            items.append(obj)
        else:
            self._went[kind].append(items[at])
            items[at] = obj
        self._came[kind].append(obj)

    def remove_at(self, kind: str, at: int) -> None:
        items = self._list(kind)
        self._went[kind].append(items[at])
        del items[at]

    def keep_only(self, kind: str, keep: Callable[[Any], bool]) -> None:
        """Removes from a list every object ``keep`` refuses."""
        items = self._list(kind)
        self._went[kind].extend(x for x in items if not keep(x))
        setattr(self, "_" + kind, [x for x in items if keep(x)])

    def put_route(self, route: Route, at: int | None = None) -> None:
        self.put("routes", route, at)
        self._new_routes.append(route)

    def put_rule(self, rule: Rule) -> None:
        self.put("rules", rule)
        self._new_rules.append(rule)

    def drop_routes(self, **where: object) -> None:
        def matches(r: Route) -> bool:
            return all(getattr(r, name) == value for name, value in where.items())

        field = next((f for f in ("oif", "prefsrc") if f in where), None)
        if self._routes is None and field is not None:  # the read's list: its groups say which
            gone = [r for r in grouped(self._state.routes, field).get(where[field], ())
                    if matches(r)]
            if gone:
                routes = self.routes
                for r in gone:
                    self.remove_at("routes", routes.index(r))
            return
        self.keep_only("routes", lambda r: not matches(r))

    def state(self) -> KernelState:
        s = self._state
        return KernelState(
            links=self._tuple("links", s.links, self._links),
            addresses=self._tuple("addresses", s.addresses, self._addresses),
            routes=self._tuple("routes", s.routes, self._routes),
            rules=self._tuple("rules", s.rules, self._rules),
        )

    def _tuple(self, kind: str, old: tuple[T, ...], items: list[T] | None) -> tuple[T, ...]:
        """The list as the view's new tuple, its edits from ``old`` remembered for
        ``grouped`` (what came and went again cancels out)."""
        if items is None:
            return old
        new = tuple(items)
        went, came = list(self._went[kind]), list(self._came[kind])
        for item in self._went[kind]:
            if item in came:
                came.remove(item)
                went.remove(item)
        _remember_edits(old, new, went, came)
        return new


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
                view.put_rule(obj)
            elif obj in view.rules:
                view.remove_at("rules", view.rules.index(obj))
    touched = Touched(frozenset(ifindexes), frozenset(tables), tuple(rules), tuple(main_routes),
                      renamed)
    return view.state(), touched


def _apply_link(view: _View, link: Link, change: Change) -> bool:
    """Applies one link event; True when the link's identity (not just its state) changed."""
    at = next((i for i, old in enumerate(view.links) if old.ifindex == link.ifindex), None)
    old = view.links[at] if at is not None else None
    if change == "del":
        if at is not None:
            view.remove_at("links", at)
        # Its addresses go with it (each announced, usually after this); its routes silently.
        view.keep_only("addresses", lambda a: a.ifindex != link.ifindex)
        view.drop_routes(oif=link.ifindex)
        return True
    view.put("links", link, at)
    if old is not None and old.up and not link.up:
        view.drop_routes(oif=link.ifindex)  # the kernel flushes them without a word
    return old is None or (old.name, old.kind, old.master, old.loopback) != (
        link.name, link.kind, link.master, link.loopback)


def _apply_address(view: _View, address: Address, change: Change) -> None:
    key = _address_key(address)
    fresh = view._addresses is None
    if fresh:  # the read's list: its interface's addresses say where
        same = [old for old in grouped(view._state.addresses, "ifindex").get(address.ifindex, ())
                if old.address == address.address and _address_key(old) == key]
        addresses = view.addresses
        at = addresses.index(same[0]) if same else None
    else:
        addresses = view.addresses
        at = next((i for i, old in enumerate(addresses)
                   if old.address == address.address and _address_key(old) == key), None)
    if change == "new":
        view.put("addresses", address, at)
        return
    gone = None
    if at is not None:
        gone = addresses[at]
        view.remove_at("addresses", at)
    if fresh:  # what is left, from the read's groups less the one deleted
        read = view._state.addresses
        holders = [a for a in grouped(read, "address").get(address.address, ()) if a != gone]
        here = [a for a in grouped(read, "ifindex").get(address.ifindex, ()) if a != gone]
    else:
        holders = [a for a in addresses if a.address == address.address]
        here = [a for a in addresses if a.ifindex == address.ifindex]
    if address.family == AF_INET:
        # The kernel flushes main-table routes preferring a source no interface holds any
        # more (recent kernels, seen on 6.18, only those of the address's own table, main
        # outside a VRF: routes in other tables keep the stale source; older kernels flushed
        # every table, and there the plan's deletes of polroutd's own find them gone, ESRCH,
        # "already done"), and every IPv4 route through the device when its last IPv4 address goes.
        if not any(a.family == AF_INET for a in holders):
            view.drop_routes(family=AF_INET, prefsrc=address.address, table=RT_TABLE_MAIN)
        if not any(a.family == AF_INET for a in here):
            view.drop_routes(family=AF_INET, oif=address.ifindex)
        return

    # IPv6 keeps such routes and forgets their preferred source.
    def forgets(r: Route) -> bool:
        return r.family == AF_INET6 and r.oif == address.ifindex and r.prefsrc == address.address

    if view._routes is None and not any(
            forgets(r) for r in grouped(view._state.routes, "oif").get(address.ifindex, ())):
        return
    for at, route in enumerate(view.routes):
        if forgets(route):
            view.put_route(route._replace(prefsrc=None), at)


def _apply_route(view: _View, route: Route, change: Change, replace: bool) -> None:
    if change == "del":
        _remove_first(view, route)
        return
    if replace:
        key, dst, table = route.key, route.dst, route.table
        at = next((i for i, old in enumerate(view.routes)
                   if old.dst == dst and old.table == table and old.key == key), None)
        if at is not None:
            view.put_route(route, at)
            return
    if not view.has_route(route):
        view.put_route(route)


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
            if not view.has_rule(op.rule):
                view.put_rule(op.rule)
        elif view.has_rule(op.rule):
            view.remove_at("rules", view.rules.index(op.rule))
        return
    assert isinstance(op, RouteOp)
    if op.op == "delete":
        _remove_first(view, op.route)
    elif op.op == "replace":
        _apply_route(view, op.route, "new", replace=True)
    elif not view.has_route(op.route):
        view.put_route(op.route)


DivergenceKind = Literal["link", "address", "route", "rule"]


def divergence(view: KernelState, read: KernelState) -> list[DivergenceKind]:
    """The kinds of object in which the view differs from a full read (order aside)."""
    pairs: tuple[tuple[DivergenceKind, tuple[Any, ...], tuple[Any, ...]], ...] = (
        ("link", view.links, read.links),
        ("address", view.addresses, read.addresses),
        ("route", view.routes, read.routes),
        ("rule", view.rules, read.rules),
    )
    return [kind for kind, mine, theirs in pairs if not _same_objects(mine, theirs)]


def _same_objects(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Whether two tuples hold the same objects, in whatever order. The view and a read list
    them mostly in the same order (the view moves few objects between reads): the runs they
    share are skipped at C speed, and only what lies between them is counted."""
    if len(a) != len(b):
        return False
    edits = _edits(a, b, _REGROUP_ABOVE)
    if edits is None:
        return Counter(a) == Counter(b)
    went, came = edits
    return Counter(went) == Counter(came)
