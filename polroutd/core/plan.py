"""The plan: the ordered operations that turn polroutd's objects in the kernel into the desired
ones, touching nothing that carries another protocol. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, NamedTuple

from polroutd.core.desired import route_order, rule_order
from polroutd.core.kernelview import grouped
from polroutd.core.model import (
    Conflict,
    DesiredState,
    KernelState,
    Operation,
    Plan,
    Route,
    RouteKey,
    RouteOp,
    Rule,
    RuleOp,
)

# Apply order: fill tables before rules point at them; remove rules before emptying tables.
_PHASE = {("route", "add"): 0, ("route", "replace"): 0, ("rule", "add"): 1,
          ("rule", "delete"): 2, ("route", "delete"): 3}
_MAKE_ROOM = -1  # deletes that must go first so a replace hits the one route left at its key


def make_plan(
    desired: DesiredState, actual: KernelState, protocol: int,
    adopt: frozenset[int] = frozenset(),
) -> Plan:
    """``adopt``: other protocols whose objects are polroutd's too (its protocol before a
    reload changed it). Each becomes its counterpart with ``protocol``: a route by a replace
    (the kernel's key has no protocol), a rule by an add before the old one's delete (rules
    have no replace), so no address is ever without its rule; the rest goes."""
    owned = frozenset({protocol}) | adopt
    # route_order of the routes in the kernel, by id (alive as long as ``actual``): each is
    # sorted once when they are looked at, and again when its operation is.
    order: dict[int, tuple[object, ...]] = {}
    route_ops, conflicts = _route_ops(desired, actual.routes, owned, order)
    adds, deletes = _rule_ops(desired.rules, actual.rules, protocol, owned)
    # Each phase sorted by its objects' order; the rules sorted themselves, not wrapped in
    # their operations first (a thousand in a cold start: every wrapper a cost).
    phases: dict[int, Sequence[Operation]] = {
        _PHASE[("rule", "add")]: [RuleOp("add", r) for r in sorted(adds, key=rule_order)],
        _PHASE[("rule", "delete")]: [RuleOp("delete", r) for r in sorted(deletes, key=rule_order)],
    }
    route_phases: dict[int, list[RouteOp]] = {}
    for phase, op in route_ops:
        route_phases.setdefault(phase, []).append(op)
    for phase, ops in route_phases.items():
        ops.sort(key=lambda op: order.get(id(op.route)) or route_order(op.route))
        phases[phase] = ops
    operations = [op for phase in sorted(phases) for op in phases[phase]]
    conflicts.extend(_rule_conflicts(desired.rules, actual.rules, owned))
    return Plan(tuple(operations), tuple(conflicts))


def _rule_ops(
    desired: Iterable[Rule], actual: Iterable[Rule], protocol: int, owned_protocols: frozenset[int]
) -> tuple[list[Rule], list[Rule]]:
    """The rules to add and those to delete. Two rules are the same rule when their
    identity() (every field but the protocol) is: here each is keyed by its form with
    ``protocol``, the rule itself for polroutd's own (no identity tuple built for each of a
    thousand rules)."""
    owned: dict[Rule, list[Rule]] = {}
    for r in actual:
        if r.protocol in owned_protocols:
            owned.setdefault(r if r.protocol == protocol else r._replace(protocol=protocol),
                             []).append(r)
    wanted = {r if r.protocol == protocol else r._replace(protocol=protocol): r
              for r in desired}
    if not owned:  # nothing of ours yet (a cold start): every rule is added
        return list(wanted.values()), []
    # (A set, not a Counter: a Counter's lookup of a missing key is a Python call, and a
    # burst's decision looks up a thousand rules that are not there yet.)
    ours = {ident for ident, rules in owned.items() for r in rules if r.protocol == protocol}
    adds = [r for ident, r in wanted.items() if ident not in ours]
    deletes = []
    for ident, rules in owned.items():
        # Extra copies (left by tools that add without NLM_F_EXCL) go, one delete each; so do
        # the adopted protocols' copies (after the add of their replacement: see _PHASE).
        keep = 1 if ident in wanted and ident in ours else 0
        kept = 0
        for r in rules:
            if r.protocol == protocol and kept < keep:
                kept += 1
            else:
                deletes.append(r)
    return adds, deletes


def _route_ops(
    desired: DesiredState, actual: Iterable[Route], owned_protocols: frozenset[int],
    order: dict[int, tuple[object, ...]] | None = None,
) -> tuple[list[tuple[int, RouteOp]], list[Conflict]]:
    """The route operations by phase, and the conflicts; ``order`` gets the route_order of
    each route of ``actual`` looked at, by id."""
    owned: dict[RouteKey, list[Route]] = {}
    foreign: dict[RouteKey, Route] = {}
    conflicts: list[Conflict] = []
    wanted = {route.key: route for route in desired.routes}
    # Only routes that can matter are sorted and looked at: ours, those in polroutd's tables,
    # and foreign ones where polroutd wants a route (the main table's own routes are none).
    relevant: list[tuple[Route, RouteKey]] = []
    for route in actual:
        key = route.key
        if route.protocol in owned_protocols or key in wanted or route.table in desired.tables:
            relevant.append((route, key))
    keys = {id(route): route_order(route) for route, _ in relevant}
    relevant.sort(key=lambda item: keys[id(item[0])])
    if order is not None:
        order.update(keys)
    for route, key in relevant:
        if route.protocol in owned_protocols:
            owned.setdefault(key, []).append(route)
        else:
            foreign.setdefault(key, route)
            if route.table in desired.tables:
                conflicts.append(Conflict("route", f"foreign route in table {route.table}", route))
    ops: list[tuple[int, RouteOp]] = []
    for key, route in wanted.items():
        current = owned.pop(key, [])
        if route in current:
            current.remove(route)
        elif current and route.keyed_by_device:
            # The kernel's replace would take the first such route of any device: make room
            # for a fresh add instead.
            ops.extend((_MAKE_ROOM, RouteOp("delete", old)) for old in current)
            ops.append((_PHASE[("route", "add")], RouteOp("add", route)))
            current = []
        elif current:
            # Several of ours at one key (appended next hops): which one a replace hits is the
            # kernel's choice, so all but one go first.
            ops.extend((_MAKE_ROOM, RouteOp("delete", extra)) for extra in current[1:])
            ops.append((_PHASE[("route", "replace")],
                        RouteOp("replace", route, previous=current[0])))
            current = []
        elif key not in foreign:
            ops.append((_PHASE[("route", "add")], RouteOp("add", route)))
        elif foreign[key].table not in desired.tables:  # else already reported above
            conflicts.append(Conflict(
                "route", f"foreign route holds the place of one polroutd wants in table "
                f"{route.table}", foreign[key]))
        # Whatever else of ours shares the key (appended next hops) goes.
        ops.extend((_PHASE[("route", "delete")], RouteOp("delete", extra)) for extra in current)
    ops.extend((_PHASE[("route", "delete")], RouteOp("delete", r))
               for routes in owned.values() for r in routes)
    return ops, conflicts


def _rule_conflicts(
    desired: Iterable[Rule], actual: Iterable[Rule], owned_protocols: frozenset[int]
) -> list[Conflict]:
    wanted = list(desired)
    priorities = {r.priority for r in wanted}
    # Only a foreign rule at one of polroutd's priorities can conflict: look closer at those.
    candidates = [r for r in actual
                  if r.protocol not in owned_protocols and r.priority in priorities]
    if not candidates:
        return []
    places = {(r.selector, r.priority) for r in wanted}
    return [
        Conflict("rule", f"foreign rule with polroutd's selector at priority {r.priority}", r)
        for r in candidates
        if (r.selector, r.priority) in places
    ]


Change = Literal["missing", "unexpected", "changed"]
_DRIFT: dict[str, Change] = {"add": "missing", "delete": "unexpected", "replace": "changed"}


Cause = Literal["drift", "change", "restoration"]


class Classified(NamedTuple):
    """One planned operation, said to repair drift, to follow a change of the desired state, or
    to restore what the kernel flushed itself when a link went down."""

    operation: Operation
    cause: Cause
    drift: Change | None  # what the drift was, for cause == "drift"


def classify(
    plan: Plan,
    previous: DesiredState | None,
    current: DesiredState,
    *,
    went_down: frozenset[int] = frozenset(),
) -> list[Classified]:
    """docs/behaviour.md §2.4: an operation repairs drift when its object's desired form did
    not change since the last successful reconcile (``previous``) and neither did the interface
    it belongs to. An address or link change makes the kernel drop routes by itself (no event
    says so): putting them back follows that change, it is not a repair. ``went_down`` holds
    the interfaces that link events said went down since then (even when they are up again):
    the routes through them that are missing were flushed by the kernel, and putting them back
    is a restoration."""
    if previous is None:
        return [Classified(op, "change", None) for op in plan.operations]
    if not plan.operations:
        return []
    # Only the tables the operations are in are looked at: an event's reconcile plans a few
    # operations on a host of thousands of rules (each desired state's groups by table are
    # derived from the last one's, see ``grouped``).
    rule_tables = {op.rule.table for op in plan.operations if isinstance(op, RuleOp)}
    route_tables = {op.route.table for op in plan.operations if isinstance(op, RouteOp)}
    old_rules = _rule_identities(previous, rule_tables, "previous")
    now_rules = _rule_identities(current, rule_tables, "current")
    old_routes = _routes_by_key(previous, route_tables, "previous")
    now_routes = _routes_by_key(current, route_tables, "current")
    by_table = {i.table_id: i.index for i in (*previous.interfaces, *current.interfaces)}
    concerned = {op.route.oif if isinstance(op, RouteOp) else by_table.get(op.rule.table)
                 for op in plan.operations}
    moved = _moved_interfaces(previous, current, concerned)
    out = []
    for op in plan.operations:
        if isinstance(op, RuleOp):
            ident = op.rule.identity()
            unchanged = (ident in old_rules) == (ident in now_rules)
            interface = by_table.get(op.rule.table)
        else:
            key = op.route.key
            unchanged = old_routes.get(key) == now_routes.get(key)
            interface = op.route.oif
        if unchanged and interface not in moved:
            if op.op == "add" and isinstance(op, RouteOp) and op.route.oif in went_down:
                out.append(Classified(op, "restoration", None))
            else:
                out.append(Classified(op, "drift", _DRIFT[op.op]))
        else:
            out.append(Classified(op, "change", None))
    return out


def _rule_identities(state: DesiredState, tables: set[int], slot: str) -> set[tuple[object, ...]]:
    if not tables:
        return set()
    by_table = grouped(state.rules, "table", slot)
    return {r.identity() for t in tables for r in by_table.get(t, ())}


def _routes_by_key(state: DesiredState, tables: set[int], slot: str) -> dict[RouteKey, Route]:
    if not tables:
        return {}
    by_table = grouped(state.routes, "table", slot)
    return {r.key: r for t in tables for r in by_table.get(t, ())}


def _moved_interfaces(
    previous: DesiredState, current: DesiredState, among: set[int | None]
) -> set[int]:
    """Those of the interfaces ``among`` whose presence, admin state or addresses differ
    between the two states."""
    def fingerprint(state: DesiredState) -> dict[int, tuple[bool, tuple[str, ...]]]:
        return {i.index: (i.up, i.addresses) for i in state.interfaces if i.index in among}

    old, new = fingerprint(previous), fingerprint(current)
    return {index for index in old.keys() | new.keys() if old.get(index) != new.get(index)}
