"""Deciding again for only the interfaces a batch of events touched. Pure.

A full decision (desired.py, plan.py) costs time in proportion to the host; after an event,
only the touched interfaces' pieces are derived again and planned against the kernel objects
that can concern them. Whatever could reach further (an interface appearing, going or being
renamed, a change of which interfaces are managed, the main-table routes strict mode copies,
a foreign rule at polroutd's priorities, a move of the main-first rules) is left to a full
decision: ``scope`` or ``redecide`` say None.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
from polroutd.core.kernelview import Touched, grouped
from polroutd.core.limits import RTN_UNICAST
from polroutd.core.model import Conflict, DesiredState, KernelState, Link, Plan, Route, Rule
from polroutd.core.plan import make_plan
from polroutd.core.record import replace
from polroutd.core.settings import Config, InterfaceSpec
from polroutd.core.tables import TableRef

Pieces = Mapping[int, Piece]  # interface index -> its piece
Scope = tuple[tuple[Link, InterfaceSpec | None], ...]  # the managed interfaces to decide again


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
    priorities = {p.interface.priority for p in pieces.values()}
    if any(r.protocol != protocol and r.priority in priorities for r in touched.rules):
        return None  # a foreign rule that may stand in the way of any interface's rule
    by_table = {p.interface.table_id: index for index, p in pieces.items()}
    if len(by_table) != len(pieces):
        return None  # interfaces that share a table are not independent
    indexes = set(touched.ifindexes) | {by_table[t] for t in touched.tables if t in by_table}
    if not indexes:
        return ()
    links = state.link_by_index()
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
) -> tuple[dict[int, Piece], DesiredState, Plan] | None:
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
    new = dict(pieces)
    for link, spec in chosen:
        old = pieces[link.ifindex].interface
        table = inputs.tables.get(link.name) or TableRef(old.table_id, old.table_name)
        new[link.ifindex] = interface_piece(
            link, spec, table, addresses.get(link.ifindex, []), inputs, defaults, copies, lo,
            lo_up)
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
    if not all(p.own_table_only for p in old.values()) or len(
            {p.interface.table_id for p in old.values()}) != len(old):
        return None
    by_name = sorted(old.values(), key=lambda p: p.interface.name)
    first_rule = len(desired.rules) - sum(len(p.rules) for p in by_name)  # main-first rules
    if first_rule < 0 or len(desired.routes) != sum(len(p.routes) for p in by_name):
        return None
    interfaces = tuple(new[p.interface.index].interface if p.interface.index in indexes
                       else p.interface for p in by_name)
    rules, routes = _spliced(desired, by_name, new, indexes, first_rule)
    return replace(desired, interfaces=interfaces, rules=rules, routes=routes)


def _spliced(
    desired: DesiredState, by_name: list[Piece], new: Pieces, indexes: set[int], first_rule: int
) -> tuple[tuple[Rule, ...], tuple[Route, ...]]:
    """``desired``'s rules and routes with each chosen interface's slice replaced by its new
    piece's: the untouched runs are copied as slices (at C speed), not object by object."""
    rules: list[Rule] = []
    routes: list[Route] = []
    rule_from, route_from = 0, 0  # where the current untouched run started
    at_rule, at_route = first_rule, 0
    for piece in by_name:
        n_rules, n_routes = len(piece.rules), len(piece.routes)
        if piece.interface.index in indexes:
            rules.extend(desired.rules[rule_from:at_rule])
            routes.extend(desired.routes[route_from:at_route])
            replacement = new[piece.interface.index]
            rules.extend(replacement.rules)
            routes.extend(replacement.routes)
            rule_from, route_from = at_rule + n_rules, at_route + n_routes
        at_rule += n_rules
        at_route += n_routes
    rules.extend(desired.rules[rule_from:])
    routes.extend(desired.routes[route_from:])
    return tuple(rules), tuple(routes)


def _concerns(
    conflict: Conflict, tables: frozenset[int], indexes: set[int], sources: set[str | None]
) -> bool:
    """Whether a conflict of the last plan is about one of the interfaces decided again."""
    foreign = conflict.foreign
    if isinstance(foreign, Route):
        return foreign.table in tables or foreign.oif in indexes
    return foreign.src in sources
