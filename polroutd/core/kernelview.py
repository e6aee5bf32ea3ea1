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
from collections.abc import Callable, Iterable, Mapping, Sequence
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

    def then(self, later: Touched) -> Touched:
        """What this batch and a ``later`` one touched together: what ``apply_events`` says
        of the two batches as one."""
        if later is NOTHING_TOUCHED:
            return self
        if self is NOTHING_TOUCHED:
            return later
        return Touched(self.ifindexes | later.ifindexes, self.tables | later.tables,
                       self.rules + later.rules, self.main_routes + later.main_routes,
                       self.links_renamed or later.links_renamed)


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
    steps = None if last is None else _steps(last[0], items)
    if last is not None and steps is not None:
        derived: dict[Any, list[Any]] = dict(last[1])
        key: Any
        for went, came in steps:
            for item in went:
                key = getattr(item, field)
                group = derived[key]
                at = _position(group, item)
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


_BY_INDEX: dict[str, tuple[tuple[Link, ...], dict[int, Link]]] = {}


def links_by_index(links: tuple[Link, ...]) -> Mapping[int, Link]:
    """``KernelState.link_by_index``, made again only when the links changed (an address's
    or a route's event leaves the view's links as they were). A pure memo."""
    last = _BY_INDEX.get("view")
    if last is not None and last[0] is links:
        return last[1]
    found = {link.ifindex: link for link in links}
    _BY_INDEX["view"] = (links, found)
    return found


_RECENT = 4  # the last places of a list looked at first for an object to take out


def _position(group: list[Any], item: Any) -> int:
    """Where ``item`` is in ``group``: the objects that come and go are mostly the recent
    ones, at the end (an event's rule among polroutd's thousands), so the last few places are
    looked at before the whole list is searched from the start (each comparison of two rules
    costs what a pass over thousands of them should not)."""
    for at in range(len(group) - 1, max(len(group) - _RECENT, 0) - 1, -1):
        if group[at] is item:
            return at
    return group.index(item)

# The last few (old tuple, new tuple) -> their edits: a view's tuple is grouped by several
# fields, each derived from the same previous tuple. The oldest go first: a reconcile makes
# the view's new tuples and then the desired state's, and clearing all at once would drop
# the view's before their groups are derived.
_EDITS: dict[tuple[int, int], tuple[tuple[Any, ...], tuple[Any, ...], Any]] = {}
_EDITS_KEPT = 16


def _keep_edits(key: tuple[int, int], entry: tuple[tuple[Any, ...], tuple[Any, ...], Any]) -> None:
    _EDITS.pop(key, None)
    while len(_EDITS) >= _EDITS_KEPT:
        del _EDITS[next(iter(_EDITS))]
    _EDITS[key] = entry


def _remember_edits(old: tuple[Any, ...], new: tuple[Any, ...], went: list[Any],
                    came: list[Any]) -> None:
    """Tells ``grouped`` the edits that turned ``old`` into ``new`` (known to whoever made
    ``new``), so that it does not look for them."""
    if len(went) + len(came) > _REGROUP_ABOVE:
        return
    entry = (old, new, (went, came))
    _keep_edits((id(old), id(new)), entry)
    _MADE_FROM.pop(id(new), None)
    while len(_MADE_FROM) >= _EDITS_KEPT:
        del _MADE_FROM[next(iter(_MADE_FROM))]
    _MADE_FROM[id(new)] = entry


# New tuple -> the tuple it was made from, and the edits: a grouping asked for only now and
# then (by address, for an address's removal) follows the view through several tuples.
_MADE_FROM: dict[int, tuple[tuple[Any, ...], tuple[Any, ...], Any]] = {}
_CHAIN = 8


def _steps(
    old: tuple[Any, ...], new: tuple[Any, ...]
) -> list[tuple[list[Any], list[Any]]] | None:
    """The edits that turn ``old`` into ``new``, as the remembered steps from one to the other
    (oldest first) or, without them, found by comparing the two; None: too many."""
    chain: list[tuple[list[Any], list[Any]]] = []
    at = new
    for _ in range(_CHAIN):
        found = _MADE_FROM.get(id(at))
        if found is None or found[1] is not at:
            break
        chain.append(found[2])
        if found[0] is old:
            return chain[::-1]
        at = found[0]
    edits = _edits_memo(old, new)
    return None if edits is None else [edits]


def _edits_memo(
    old: tuple[Any, ...], new: tuple[Any, ...]
) -> tuple[list[Any], list[Any]] | None:
    key = (id(old), id(new))
    found = _EDITS.get(key)
    if found is not None and found[0] is old and found[1] is new:
        result: tuple[list[Any], list[Any]] | None = found[2]
        return result
    result = _edits(old, new, _REGROUP_ABOVE)
    _keep_edits(key, (old, new, result))
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


# The field each list is looked at by when the view asks whether it holds an object: one that
# few objects share (routes by device, not destination: strict mode puts a copy of every
# fe80::/64 route in every table).
_HELD_BY = {"links": "ifindex", "addresses": "ifindex", "routes": "oif", "rules": "table"}
_FEW_GONE = 8  # objects taken out beyond which ``current`` drops them in one pass


def _edits_by(indexes: dict[tuple[str, str], dict[object, list[Any]]],
              edits: dict[str, list[Any]], kind: str, field: str) -> dict[object, list[Any]]:
    """A view's edits of one list by the value of ``field`` (made now if not yet)."""
    index = indexes.get((kind, field))
    if index is None:
        index = indexes[kind, field] = {}
        for obj in edits[kind]:
            index.setdefault(getattr(obj, field), []).append(obj)
    return index


def _note(indexes: dict[tuple[str, str], dict[object, list[Any]]],
          edits: dict[str, list[Any]], kind: str, objs: Sequence[Any]) -> None:
    """Edits of one list, added to the view's record of them and to its indexes made so far."""
    edits[kind].extend(objs)
    for (indexed, field), index in indexes.items():
        if indexed == kind:
            for obj in objs:
                index.setdefault(getattr(obj, field), []).append(obj)


class _View:
    """The lists being changed, materialised only for the kinds a batch touches.

    Which objects a list holds, and where, is found from the read's groups (``grouped``) and
    what was put in and taken out since: never by a pass over the list in Python, nor by
    comparing its objects one by one (thousands of them) when the one sought is among the last
    few, as the objects an event takes out mostly are (those the last events put in)."""

    def __init__(self, state: KernelState) -> None:
        self._state = state
        self._links: list[Link] | None = None
        self._addresses: list[Address] | None = None
        self._routes: list[Route] | None = None
        self._rules: list[Rule] | None = None
        # Per list, the objects taken out and put in since the read: the new tuple's edits,
        # handed to ``grouped`` so that it need not find them by comparing the tuples.
        self._went: dict[str, list[Any]] = {kind: [] for kind in _KINDS}
        self._came: dict[str, list[Any]] = {kind: [] for kind in _KINDS}
        # The same, by (list, field) -> value, made when first asked for and kept up to date
        # after: ``current`` is asked once per operation when a whole plan is applied to the
        # view (1,152 after a cold start at 1,024 rules), and a pass over every edit each time
        # made that quadratic.
        self._went_by: dict[tuple[str, str], dict[object, list[Any]]] = {}
        self._came_by: dict[tuple[str, str], dict[object, list[Any]]] = {}
        # Objects appended to a list not made yet: its new tuple is the read's with these
        # added, one copy instead of a list's two (an event mostly adds).
        self._appended: dict[str, list[Any]] = {}

    @property
    def links(self) -> list[Link]:
        return self._list("links")

    @property
    def addresses(self) -> list[Address]:
        return self._list("addresses")

    @property
    def routes(self) -> list[Route]:
        return self._list("routes")

    @property
    def rules(self) -> list[Rule]:
        return self._list("rules")

    def _list(self, kind: str) -> list[Any]:
        """A list to change, made from the read's tuple (and what was appended) when first
        needed."""
        items: list[Any] | None = getattr(self, "_" + kind)
        if items is None:
            items = [*getattr(self._state, kind), *self._appended.pop(kind, ())]
            setattr(self, "_" + kind, items)
        return items

    def current(self, kind: str, field: str, value: object) -> list[Any]:
        """The objects of a list whose ``field`` is ``value`` now (with repeats, in no
        particular order): the read's group, with what was put in and taken out since."""
        found = list(grouped(getattr(self._state, kind), field).get(value, ()))
        found.extend(_edits_by(self._came_by, self._came, kind, field).get(value, ()))
        went = _edits_by(self._went_by, self._went, kind, field).get(value, ())
        if len(went) <= _FEW_GONE:
            for obj in went:
                found.remove(obj)
            return found
        # Many taken out (a plan deleting hundreds of routes alike): one pass, not one each.
        gone = Counter(went)
        kept = []
        for obj in found:
            if gone[obj]:
                gone[obj] -= 1
            else:
                kept.append(obj)
        return kept

    def holds(self, kind: str, obj: Any) -> int:
        """How many times a list holds ``obj``: counted in the read's group and the edits
        (at C speed), not in a list made of them."""
        field = _HELD_BY[kind]
        value = getattr(obj, field)
        held = grouped(getattr(self._state, kind), field).get(value, ())
        came = _edits_by(self._came_by, self._came, kind, field).get(value, ())
        went = _edits_by(self._went_by, self._went, kind, field).get(value, ())
        return held.count(obj) + came.count(obj) - went.count(obj)

    def find(self, kind: str, obj: Any) -> int | None:
        """Where the first of ``obj`` is in a list; None when it holds none."""
        held = self.holds(kind, obj)
        if not held:
            return None
        items = self._list(kind)
        if held == 1:
            for at in range(len(items) - 1, max(len(items) - _RECENT, 0) - 1, -1):
                if items[at] == obj:
                    return at
        return items.index(obj)

    def first(self, kind: str, candidates: Iterable[Any]) -> int | None:
        """Where the first of ``candidates`` (objects the list may hold) is in a list."""
        places = [at for obj in dict.fromkeys(candidates)
                  if (at := self.find(kind, obj)) is not None]
        return min(places, default=None)

    def has_route(self, route: Route) -> bool:
        return self.holds("routes", route) > 0

    def has_rule(self, rule: Rule) -> bool:
        return self.holds("rules", rule) > 0

    def put(self, kind: str, obj: Any, at: int | None = None) -> None:
        """Appends ``obj`` to a list, or puts it in place of the one at ``at``."""
        if at is None:
            items = getattr(self, "_" + kind)
            (self._appended.setdefault(kind, []) if items is None else items).append(obj)
        else:
            items = self._list(kind)
            _note(self._went_by, self._went, kind, (items[at],))
            items[at] = obj
        _note(self._came_by, self._came, kind, (obj,))

    def remove_at(self, kind: str, at: int) -> None:
        items = self._list(kind)
        _note(self._went_by, self._went, kind, (items[at],))
        del items[at]

    def remove(self, kind: str, obj: Any) -> None:
        """Takes the first of ``obj`` out of a list, if it holds one."""
        at = self.find(kind, obj)
        if at is not None:
            self.remove_at(kind, at)

    def keep_only(self, kind: str, keep: Callable[[Any], bool]) -> None:
        """Removes from a list every object ``keep`` refuses."""
        items = self._list(kind)
        _note(self._went_by, self._went, kind, [x for x in items if not keep(x)])
        setattr(self, "_" + kind, [x for x in items if keep(x)])

    def put_route(self, route: Route, at: int | None = None) -> None:
        self.put("routes", route, at)

    def put_rule(self, rule: Rule) -> None:
        self.put("rules", rule)

    def drop_routes(self, field: Literal["oif", "prefsrc"], value: object,
                    **where: object) -> None:
        """Removes the routes whose ``field`` is ``value`` and that match ``where``."""
        for route in self.current("routes", field, value):
            if all(getattr(route, name) == wanted for name, wanted in where.items()):
                self.remove("routes", route)

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
            appended = self._appended.get(kind)
            if not appended:
                return old
            new = old + tuple(appended)
        else:
            new = tuple(items)
        went, came = list(self._went[kind]), list(self._came[kind])
        for item in self._went[kind]:
            if item in came:
                came.remove(item)
                went.remove(item)
        _remember_edits(old, new, went, came)
        return new


def _remove_first(view: _View, match: Route) -> None:
    """Removes the route the kernel's delete of ``match`` took away, if the view has it."""
    at = view.find("routes", match)
    if at is None:
        key = match.key  # the kernel deletes by key, protocol, device, gateway
        at = view.first("routes", (
            r for r in view.current("routes", "dst", match.dst)
            if r.table == match.table and r.key == key and r.protocol == match.protocol
            and r.oif == match.oif and r.gateway == match.gateway))
    if at is not None:
        view.remove_at("routes", at)


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
            else:
                view.remove("rules", obj)
    touched = Touched(frozenset(ifindexes), frozenset(tables), tuple(rules), tuple(main_routes),
                      renamed)
    return view.state(), touched


def _apply_link(view: _View, link: Link, change: Change) -> bool:
    """Applies one link event; True when the link's identity (not just its state) changed."""
    at = view.first("links", view.current("links", "ifindex", link.ifindex))
    old = view.links[at] if at is not None else None
    if change == "del":
        if at is not None:
            view.remove_at("links", at)
        # Its addresses go with it (each announced, usually after this); its routes silently.
        view.keep_only("addresses", lambda a: a.ifindex != link.ifindex)
        view.drop_routes("oif", link.ifindex)
        return True
    view.put("links", link, at)
    if old is not None and old.up and not link.up:
        view.drop_routes("oif", link.ifindex)  # the kernel flushes them without a word
    return old is None or (old.name, old.kind, old.master, old.loopback) != (
        link.name, link.kind, link.master, link.loopback)


def _apply_address(view: _View, address: Address, change: Change) -> None:
    key = _address_key(address)
    # Looked for among the addresses equal to it (mostly none or one), not among its
    # interface's (dozens, on a host with many addresses per interface).
    at = view.first("addresses", (
        old for old in view.current("addresses", "address", address.address)
        if old.ifindex == address.ifindex and _address_key(old) == key))
    if change == "new":
        view.put("addresses", address, at)
        return
    if at is not None:
        view.remove_at("addresses", at)
    if address.family == AF_INET:
        # The kernel flushes main-table routes preferring a source no interface holds any
        # more (recent kernels, seen on 6.18, only those of the address's own table, main
        # outside a VRF: routes in other tables keep the stale source; older kernels flushed
        # every table, and there the plan's deletes of polroutd's own find them gone, ESRCH,
        # "already done"), and every IPv4 route through the device when its last IPv4 address goes.
        if not any(a.family == AF_INET
                   for a in view.current("addresses", "address", address.address)):
            view.drop_routes("prefsrc", address.address, family=AF_INET, table=RT_TABLE_MAIN)
        if not any(a.family == AF_INET
                   for a in view.current("addresses", "ifindex", address.ifindex)):
            view.drop_routes("oif", address.ifindex, family=AF_INET)
        return
    # IPv6 keeps such routes and forgets their preferred source.
    for route in view.current("routes", "oif", address.ifindex):
        if route.family == AF_INET6 and route.prefsrc == address.address:
            view.put_route(route._replace(prefsrc=None), view.find("routes", route))


def _apply_route(view: _View, route: Route, change: Change, replace: bool) -> None:
    if change == "del":
        _remove_first(view, route)
        return
    if replace:
        key, table = route.key, route.table
        at = view.first("routes", (old for old in view.current("routes", "dst", route.dst)
                                   if old.table == table and old.key == key))
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
        else:
            view.remove("rules", op.rule)
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
