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
from polroutd.core.model import Conflict, DesiredState, KernelState, Link, Plan, Route
from polroutd.core.plan import make_plan
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
    result = assemble(new.values(), desired.skipped, inputs)
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


def _concerns(
    conflict: Conflict, tables: frozenset[int], indexes: set[int], sources: set[str | None]
) -> bool:
    """Whether a conflict of the last plan is about one of the interfaces decided again."""
    foreign = conflict.foreign
    if isinstance(foreign, Route):
        return foreign.table in tables or foreign.oif in indexes
    return foreign.src in sources
