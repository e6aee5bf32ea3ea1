"""Deciding again for only the interfaces a batch of events touched. Pure.

A full decision (desired.py, plan.py) costs time in proportion to the host; after an event,
only the touched interfaces' pieces are derived again and planned against the kernel objects
that can concern them. Whatever could reach further (an interface appearing, going or being
renamed, a change of which interfaces are managed, the main-table routes strict mode copies,
a foreign rule at polroutd's priorities, a move of the main-first rules) is left to a full
decision: ``scope`` or ``redecide`` say None.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from polroutd.core.desired import (
    Inputs,
    Piece,
    addresses_by_interface,
    assemble,
    interface_piece,
    link_selection,
    loopback,
    main_first_rules,
    main_table_defaults,
    unmanageable,
)
from polroutd.core.kernelview import Touched, grouped, links_by_index
from polroutd.core.limits import RTN_UNICAST
from polroutd.core.model import Conflict, DesiredState, KernelState, Link, Plan, Route, Rule
from polroutd.core.plan import make_plan
from polroutd.core.record import record, replace
from polroutd.core.settings import Config, InterfaceSpec
from polroutd.core.tables import TableRef

Scope = tuple[tuple[Link, InterfaceSpec | None], ...]
T = TypeVar("T", Rule, Route)  # the managed interfaces to decide again


@record
class Layout:
    """What deciding again asks of every piece at once (how ``assemble`` laid them out, which
    tables and priorities they hold, when their leases end): found once per full decision and
    then carried from pieces to pieces in proportion to what changed, not by a pass over all.
    """

    order: tuple[int, ...]  # interface indexes in name order, as ``assemble`` lists them
    places: Mapping[int, int]  # interface index -> its place in ``order``
    rule_counts: tuple[int, ...]  # by place
    route_counts: tuple[int, ...]
    rules: int  # in all pieces
    routes: int
    by_table: Mapping[int, int]  # table -> the interface with it (the last, if several)
    priorities: Mapping[int, int]  # interfaces' rule priority -> how many have it
    shared: int  # pieces with routes outside their own table
    expiries: Mapping[float, int]  # a gateway's lease end -> how many gateways have it

    @classmethod
    def of(cls, pieces: Mapping[int, Piece]) -> Layout:
        by_name = sorted(pieces.values(), key=lambda p: p.interface.name)
        order = tuple(p.interface.index for p in by_name)
        rule_counts = tuple(len(p.rules) for p in by_name)
        route_counts = tuple(len(p.routes) for p in by_name)
        priorities: dict[int, int] = {}
        expiries: dict[float, int] = {}
        for p in by_name:
            _count(priorities, p.interface.priority, 1)
            for end in _lease_ends(p):
                _count(expiries, end, 1)
        return cls(order, {index: at for at, index in enumerate(order)}, rule_counts,
                   route_counts, sum(rule_counts), sum(route_counts),
                   {p.interface.table_id: index for index, p in pieces.items()}, priorities,
                   sum(not p.own_table_only for p in by_name), expiries)

    def replaced(self, old: Mapping[int, Piece], new: Mapping[int, Piece],
                 changed: Mapping[int, Piece]) -> Layout:
        """The layout of ``new``: ``old`` (this layout's pieces) with the ``changed`` ones."""
        if any(p.interface.name != old[i].interface.name
               or p.interface.table_id != old[i].interface.table_id for i, p in changed.items()):
            return Layout.of(new)  # a new order or a new table: rare, laid out afresh
        rule_counts, route_counts = list(self.rule_counts), list(self.route_counts)
        priorities, expiries = dict(self.priorities), dict(self.expiries)
        rules, routes, shared = self.rules, self.routes, self.shared
        for index, piece in changed.items():
            before, at = old[index], self.places[index]
            rule_counts[at], route_counts[at] = len(piece.rules), len(piece.routes)
            rules += len(piece.rules) - len(before.rules)
            routes += len(piece.routes) - len(before.routes)
            shared += (not piece.own_table_only) - (not before.own_table_only)
            _count(priorities, before.interface.priority, -1)
            _count(priorities, piece.interface.priority, 1)
            for end in _lease_ends(before):
                _count(expiries, end, -1)
            for end in _lease_ends(piece):
                _count(expiries, end, 1)
        return replace(self, rule_counts=tuple(rule_counts), route_counts=tuple(route_counts),
                       rules=rules, routes=routes, priorities=priorities, shared=shared,
                       expiries=expiries)

    @property
    def tables_apart(self) -> bool:
        """Whether every interface has a table of its own."""
        return len(self.by_table) == len(self.order)

    @property
    def earliest_lease_expiry(self) -> float | None:
        """``desired.earliest_lease_expiry`` of the state these pieces make."""
        return min(self.expiries, default=None)


def _count(counts: dict[Any, int], key: Any, step: int) -> None:
    left = counts.get(key, 0) + step
    if left:
        counts[key] = left
    else:
        del counts[key]


def _lease_ends(piece: Piece) -> Iterator[float]:
    for gateway in (piece.interface.gateway4, piece.interface.gateway6):
        if gateway.lease_expires is not None:
            yield gateway.lease_expires


class Pieces(Mapping[int, Piece]):
    """The managed interfaces' pieces by interface index, with their ``Layout``."""

    __slots__ = ("_by_index", "_layout")

    def __init__(self, by_index: Mapping[int, Piece] | Iterable[Piece],
                 layout: Layout | None = None) -> None:
        self._by_index: dict[int, Piece] = (
            dict(by_index) if isinstance(by_index, Mapping)
            else {p.interface.index: p for p in by_index})
        self._layout = layout

    def __getitem__(self, index: int) -> Piece:
        return self._by_index[index]

    def __iter__(self) -> Iterator[int]:
        return iter(self._by_index)

    def __len__(self) -> int:
        return len(self._by_index)

    def __contains__(self, index: object) -> bool:
        return index in self._by_index

    def values(self) -> Any:
        return self._by_index.values()

    def items(self) -> Any:
        return self._by_index.items()

    @property
    def layout(self) -> Layout:
        if self._layout is None:
            self._layout = Layout.of(self._by_index)
        return self._layout

    def replaced(self, changed: Mapping[int, Piece]) -> Pieces:
        """These pieces with the ``changed`` ones in place of theirs (same interfaces)."""
        by_index = dict(self._by_index)
        by_index.update(changed)
        return Pieces(by_index, self.layout.replaced(self._by_index, by_index, changed))


def scope(
    pieces: Pieces, skipped: frozenset[int], state: KernelState, touched: Touched,
    config: Config, protocol: int, uplink_table: int | None = None,
) -> Scope | None:
    """The managed interfaces whose pieces must be derived again (``state`` is the view after
    the events), or None when only a full decision can tell. ``uplink_table``: polroutd's
    table of uplink default routes, if any (a change in it, or at its rules' priority, is
    left to a full decision)."""
    if touched.links_renamed:
        return None
    if uplink_table is not None and (
        uplink_table in touched.tables
        or any(r.priority == config.daemon.uplink_priority for r in touched.rules)
    ):
        return None
    if config.daemon.mode == "strict" and any(
        r.oif not in pieces and r.type == RTN_UNICAST and r.dst_len for r in touched.main_routes
    ):
        return None  # a route that strict mode copies into every table changed
    layout = pieces.layout
    if any(r.protocol != protocol and r.priority in layout.priorities for r in touched.rules):
        return None  # a foreign rule that may stand in the way of any interface's rule
    by_table = layout.by_table
    if not layout.tables_apart:
        return None  # interfaces that share a table are not independent
    indexes = set(touched.ifindexes) | {by_table[t] for t in touched.tables if t in by_table}
    if not indexes:
        return ()
    links = links_by_index(state.links)
    by_interface = grouped(state.addresses, "ifindex")
    with_global = {i for i in indexes if any(a.is_global for a in by_interface.get(i, ()))}
    chosen: list[tuple[Link, InterfaceSpec | None]] = []
    for index in sorted(indexes):
        link = links.get(index)
        if link is None:
            if index in pieces or index in skipped:
                return None
            continue
        selected, spec = link_selection(link, config, index in with_global)
        if (index in skipped) != (selected and unmanageable(link, links) is not None):
            return None
        managed = selected and unmanageable(link, links) is None
        if managed != (index in pieces):
            return None  # an interface joins or leaves the managed set
        if managed:
            if pieces[index].interface.name != link.name:
                return None
            chosen.append((link, spec))
    return tuple(chosen)


def redecide(
    pieces: Pieces, desired: DesiredState, plan: Plan, state: KernelState, chosen: Scope,
    inputs: Inputs, copies: Sequence[Route],
) -> tuple[Pieces, DesiredState, Plan] | None:
    """New pieces for the chosen interfaces, the desired state they make with the others', and
    the plan for the chosen ones: the others were as desired after the last apply (anything
    else forces a full read), and their conflicts carry over. None: decide in full."""
    indexes = {link.ifindex for link, _ in chosen}
    if any(pieces[i].uplink is not None for i in indexes):
        # The uplink table's routes go through the uplinks and follow all of them (and their
        # health): a change on an uplink, even one the kernel made silently, is decided in full.
        return None
    by_interface = grouped(state.addresses, "ifindex")
    addresses = addresses_by_interface(
        KernelState(addresses=tuple(a for i in indexes for a in by_interface.get(i, ()))))
    through = grouped(state.routes, "oif")
    defaults = main_table_defaults(
        KernelState(routes=tuple(r for i in indexes for r in through.get(i, ()))),
        inputs.protocol)
    lo, lo_up = loopback(state.links)
    changed: dict[int, Piece] = {}
    for link, spec in chosen:
        old = pieces[link.ifindex].interface
        table = inputs.tables.get(link.name) or TableRef(old.table_id, old.table_name)
        changed[link.ifindex] = interface_piece(
            link, spec, table, addresses.get(link.ifindex, []), inputs, defaults, copies, lo,
            lo_up)
    new = pieces.replaced(changed)
    if inputs.config.daemon.mode == "main-first" and (
        main_first_rules(new.values(), inputs.protocol)
        != main_first_rules(pieces.values(), inputs.protocol)
    ):
        return None
    result = (_reassemble(pieces, new, indexes, desired, inputs)
              or assemble(new.values(), desired.skipped, inputs))
    if not chosen:
        return new, result, Plan((), plan.conflicts)
    mine = [new[index] for index in sorted(indexes)]
    tables = frozenset(p.interface.table_id for p in mine)
    part = DesiredState(
        interfaces=tuple(p.interface for p in mine),
        rules=tuple(r for p in mine for r in p.rules),
        routes=tuple(r for p in mine for r in p.routes),
        tables=tables,
    )
    wanted = part.route_keys()
    priorities = {p.interface.priority for p in mine}
    protocol = inputs.protocol
    # What the full plan would look at for these interfaces: their tables, their routes of
    # polroutd's protocol, foreign routes at keys they want, foreign rules at their priorities.
    # (A route's key holds its table: only keys wanted outside their own tables, rare, need
    # a route's key computed.)
    elsewhere = {key for key in wanted if key.table not in tables}
    other_tables = {key.table for key in elsewhere}
    rules_in = grouped(state.rules, "table")
    by_protocol = grouped(state.rules, "protocol")  # foreign rules are few; polroutd's many
    routes_in = grouped(state.routes, "table")
    relevant = KernelState(
        rules=tuple(dict.fromkeys(
            [r for t in tables for r in rules_in.get(t, ())]
            + [r for owner, rules in by_protocol.items() if owner != protocol
               for r in rules if r.priority in priorities])),
        routes=tuple(dict.fromkeys(
            [r for t in tables for r in routes_in.get(t, ())]
            + [r for i in indexes for r in through.get(i, ()) if r.protocol == protocol]
            + [r for t in other_tables for r in routes_in.get(t, ()) if r.key in elsewhere])),
    )
    partial = make_plan(part, relevant, protocol)
    sources = {r.src for index in indexes for p in (pieces[index], new[index]) for r in p.rules}
    kept = tuple(c for c in plan.conflicts if not _concerns(c, tables, indexes, sources))
    return new, result, Plan(partial.operations, kept + partial.conflicts)


def _reassemble(
    old: Pieces, new: Pieces, indexes: set[int], desired: DesiredState, inputs: Inputs
) -> DesiredState | None:
    """What ``assemble`` makes of the ``new`` pieces, from ``desired`` (assembled from the
    ``old`` ones) with the slices of the interfaces decided again replaced, when that is
    certain to be the same: each interface's routes in a table of its own, the same tables
    (so the same order and nothing claimed twice) and no uplink table (whose objects follow
    every uplink). None: assemble afresh."""
    if inputs.config.daemon.uplinks != "off" or desired.uplinks:
        return None
    if any(new[i].interface.table_id != old[i].interface.table_id
           or new[i].interface.name != old[i].interface.name
           or not new[i].own_table_only for i in indexes):
        return None
    layout = old.layout
    if layout.shared or not layout.tables_apart:
        return None
    first_rule = len(desired.rules) - layout.rules  # main-first rules
    if first_rule < 0 or len(desired.routes) != layout.routes:
        return None
    interfaces = list(desired.interfaces)
    places = sorted(layout.places[i] for i in indexes)
    if len(interfaces) != len(layout.order) or any(
            interfaces[at].index != layout.order[at] for at in places):
        return None
    for at in places:
        interfaces[at] = new[layout.order[at]].interface
    changed = [(at, old[layout.order[at]], new[layout.order[at]]) for at in places]
    rules = _spliced(desired.rules, first_rule, layout.rule_counts,
                     [(at, p.rules) for at, o, p in changed if p.rules != o.rules])
    routes = _spliced(desired.routes, 0, layout.route_counts,
                      [(at, p.routes) for at, o, p in changed if p.routes != o.routes])
    return replace(desired, interfaces=tuple(interfaces), rules=rules, routes=routes)


def _spliced(
    items: tuple[T, ...], start: int, counts: tuple[int, ...],
    replacements: list[tuple[int, tuple[T, ...]]],
) -> tuple[T, ...]:
    """``items`` (from ``start`` on, one slice of ``counts[place]`` objects per place in the
    layout's order) with the slice of each place in ``replacements`` (ascending) replaced:
    copied once and spliced in place (at C speed), from the last place back so that the
    earlier slices stay put; not copied at all when no slice changed."""
    if not replacements:
        return items
    spliced = list(items)
    for at, part in reversed(replacements):
        begin = start + sum(counts[:at])
        spliced[begin:begin + counts[at]] = part
    return tuple(spliced)


def _concerns(
    conflict: Conflict, tables: frozenset[int], indexes: set[int], sources: set[str | None]
) -> bool:
    """Whether a conflict of the last plan is about one of the interfaces decided again."""
    foreign = conflict.foreign
    if isinstance(foreign, Route):
        return foreign.table in tables or foreign.oif in indexes
    return foreign.src in sources
