"""The /state document (docs/behaviour.md §3.2), built from the last reconcile. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from polroutd import __version__
from polroutd.core.decision import Decision
from polroutd.core.describe import Names, conflict_json, operation_text, route_json, rule_json
from polroutd.core.model import Gateway, OpResult, RouteKey, RouteOp, RuleOp
from polroutd.core.record import record


@record
class LastReconcile:
    at: float  # unix time it finished
    duration: float
    result: str  # "ok" | "error"
    reason: str  # "startup" | "event" | "resync" | "reload" | "retry" | "lease-expiry" | "uplink"
    operations: int
    failures: tuple[OpResult, ...] = ()
    read_error: str | None = None
    mode: str = "full"  # "incremental": events applied to the last read; "full": read again


@record
class FullRead:
    """The last read of everything, and where it found the view kept from events wrong."""

    at: float  # Unix time
    divergence: tuple[str, ...] | None  # kinds of object; None: there was no view to compare


def _gateway(gateway: Gateway) -> dict[str, Any]:
    out: dict[str, Any] = {
        "address": gateway.address,
        "source": gateway.source,
        "reason": gateway.reason,
    }
    if gateway.device_route:
        out["device_route"] = True
    if gateway.not_installed:
        out["not_installed"] = gateway.not_installed
    if gateway.passed_over:
        out["passed_over"] = [
            {"address": address, "reason": reason} for address, reason in gateway.passed_over
        ]
    return out


def present_after(
    decision: Decision, results: Sequence[OpResult]
) -> tuple[set[tuple[object, ...]], set[RouteKey]]:
    """Identities of desired rules and keys of desired routes that the kernel holds now."""
    desired_rules, desired_routes = set(decision.desired.rules), set(decision.desired.routes)
    owned_rules = {r.identity() for r in decision.state.rules if r in desired_rules}
    owned_routes = {r.key for r in decision.state.routes if r in desired_routes}
    for result in results:
        op = result.operation
        if not result.ok:
            continue
        if isinstance(op, RuleOp) and op.op == "add":
            owned_rules.add(op.rule.identity())
        elif isinstance(op, RouteOp) and op.op in ("add", "replace"):
            owned_routes.add(op.route.key)
    return owned_rules, owned_routes


def state_document(
    *,
    decision: Decision | None,
    results: Sequence[OpResult],
    last: LastReconcile | None,
    counters: Mapping[str, int],
    config_file: str,
    mode: str,
    protocol: int,
    config_error: str | None,
    ready: bool,
    in_sync: bool,
    full_read: FullRead | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": __version__,
        "in_sync": in_sync,
        "ready": ready,
        "last_reconcile": _last(last, decision.names if decision else Names()),
        "config_error": config_error,
        "config_file": config_file,
        "mode": mode,
        "protocol": protocol,
        "interfaces": [],
        "skipped": [],
        "rules": [],
        "routes": [],
        "conflicts": [],
        "pending": [],
        "counters": dict(counters),
        "last_full_read": None if full_read is None else {
            "at": full_read.at,
            "divergence": None if full_read.divergence is None else list(full_read.divergence),
        },
    }
    if decision is None:
        return doc
    names = decision.names
    rules_present, routes_present = present_after(decision, results)
    doc["interfaces"] = [
        {
            "name": i.name,
            "index": i.index,
            "up": i.up,
            "carrier": i.carrier,
            "addresses": list(i.addresses),
            "priority": i.priority,
            "table": {"id": i.table_id, "name": i.table_name},
            "gateway": {"ipv4": _gateway(i.gateway4), "ipv6": _gateway(i.gateway6)},
        }
        for i in decision.desired.interfaces
    ]
    doc["skipped"] = [
        {"name": s.name, "index": s.index, "reason": s.reason} for s in decision.desired.skipped
    ]
    doc["rules"] = [
        {**rule_json(r, names), "present": r.identity() in rules_present}
        for r in decision.desired.rules
    ]
    doc["routes"] = [
        {**route_json(r, names), "present": r.key in routes_present}
        for r in decision.desired.routes
    ]
    doc["conflicts"] = [conflict_json(c, names) for c in decision.plan.conflicts]
    doc["pending"] = [
        {
            "kind": r.operation.kind,
            "op": r.operation.op,
            "text": operation_text(r.operation, names),
            "errno": r.error_name,
        }
        for r in results
        if not r.ok
    ]
    return doc


def _last(last: LastReconcile | None, names: Names) -> dict[str, Any] | None:
    if last is None:
        return None
    errors = [
        {"text": operation_text(f.operation, names), "errno": f.error_name, "message": f.message}
        for f in last.failures
    ]
    if last.read_error:
        errors.append({"text": "read kernel state", "errno": None, "message": last.read_error})
    return {
        "at": last.at,
        "duration_seconds": round(last.duration, 6),
        "result": last.result,
        "reason": last.reason,
        "mode": last.mode,
        "operations": last.operations,
        "errors": errors,
    }
