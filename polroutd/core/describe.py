"""Rules, routes and operations as operators read them: ``ip`` syntax and JSON. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from polroutd.core.limits import (
    AF_INET,
    AF_INET6,
    IP6_DEFAULT_METRIC,
    ROUTE_TYPE_NUMBERS,
    RT_SCOPE_HOST,
    RT_SCOPE_LINK,
    RT_TABLE_DEFAULT,
    RT_TABLE_LOCAL,
    RT_TABLE_MAIN,
    RTN_UNICAST,
)
from polroutd.core.model import (
    Conflict,
    Operation,
    Route,
    RouteOp,
    Rule,
    RuleOp,
    family_name,
    host_len,
)
from polroutd.core.record import field, record

_KERNEL_TABLES = {RT_TABLE_MAIN: "main", RT_TABLE_LOCAL: "local", RT_TABLE_DEFAULT: "default"}
_SCOPES = {RT_SCOPE_LINK: "link", RT_SCOPE_HOST: "host"}
_TYPE_NAMES = {number: name for name, number in ROUTE_TYPE_NUMBERS.items()}
_SIGNS = {"add": "+", "delete": "-", "replace": "~"}


@record
class Names:
    """Numbers the kernel uses, and the names an operator knows them by."""

    links: Mapping[int, str] = field(default_factory=dict)
    tables: Mapping[int, str] = field(default_factory=dict)
    protocols: Mapping[int, str] = field(default_factory=dict)

    def table(self, number: int) -> str:
        return self.tables.get(number) or _KERNEL_TABLES.get(number) or str(number)

    def table_name(self, number: int) -> str | None:
        return self.tables.get(number) or _KERNEL_TABLES.get(number)

    def link(self, index: int | None) -> str | None:
        if index is None:
            return None
        return self.links.get(index, f"if{index}")

    def protocol(self, number: int) -> str:
        return self.protocols.get(number, str(number))


def prefix_text(address: str | None, length: int, family: int, *, cidr: bool = False) -> str:
    """A destination or source as ``ip`` prints it (``default``, a host address without its
    length); with ``cidr``, always ``address/length`` (networkd and nmcli want prefixes)."""
    if address is None or (length == 0 and not cidr):
        if cidr or family != AF_INET:
            return "0.0.0.0/0" if family == AF_INET else "::/0"
        return "default"
    if cidr or length != host_len(family):
        return f"{address}/{length}"
    return address


def rule_text(rule: Rule, names: Names, *, with_protocol: bool = False) -> str:
    """``ip rule`` arguments: ``from 10.225.176.38 lookup data priority 30000``.

    Concatenated, each optional part tested once: ``polroutd apply`` writes a line per rule."""
    family = rule.family
    if rule.src is not None and rule.src_len:
        text = "from " + prefix_text(rule.src, rule.src_len, family)
    elif family == AF_INET6:
        text = "from ::/0"  # shows the reader it is IPv6 (``ip`` still needs -6)
    else:
        text = "from all"
    if rule.dst is not None and rule.dst_len:
        text += " to " + prefix_text(rule.dst, rule.dst_len, family)
    if rule.iifname:
        text += " iif " + rule.iifname
    if rule.oifname:
        text += " oif " + rule.oifname
    if rule.fwmark is not None:
        text += " fwmark " + hex(rule.fwmark)
    text += " lookup " + names.table(rule.table)
    if rule.suppress_prefixlen is not None:
        text += f" suppress_prefixlength {rule.suppress_prefixlen}"
    text += f" priority {rule.priority}"
    if with_protocol:
        text += " protocol " + names.protocol(rule.protocol)
    return text


def route_text(route: Route, names: Names, *, with_protocol: bool = False) -> str:
    """``ip route`` arguments: ``default via 10.225.176.1 dev ens224 table data``; a type
    other than unicast comes first, as ``ip`` writes it (``unreachable default table data``)."""
    words = [] if route.type == RTN_UNICAST else [route_type_name(route.type)]
    words.append(prefix_text(route.dst, route.dst_len, route.family))
    if route.gateway is not None:
        words += ["via", route.gateway]
    dev = names.link(route.oif)
    if dev is not None:
        words += ["dev", dev]
    if route.scope in _SCOPES and route.family == AF_INET:
        words += ["scope", _SCOPES[route.scope]]
    if route.prefsrc is not None:
        words += ["src", route.prefsrc]
    if route.metric and not (route.family == AF_INET6 and route.metric == IP6_DEFAULT_METRIC):
        words += ["metric", str(route.metric)]
    words += ["table", names.table(route.table)]
    if with_protocol:
        words += ["proto", names.protocol(route.protocol)]
    for hop in route.nexthops:  # last: `ip` reads everything after "nexthop" as next hops
        words += ["nexthop"] + (["via", hop.gateway] if hop.gateway else [])
        words += ["dev", names.link(hop.oif) or str(hop.oif), "weight", str(hop.weight)]
    return " ".join(words)


def route_type_name(rtype: int) -> str:
    return _TYPE_NAMES.get(rtype, str(rtype))


def operation_text(op: Operation, names: Names) -> str:
    """One plan line: ``+ rule from 10.225.176.38 lookup data priority 30000``."""
    if isinstance(op, RuleOp):
        return f"{_SIGNS[op.op]} rule {rule_text(op.rule, names)}"
    return f"{_SIGNS[op.op]} route {route_text(op.route, names)}"


def rule_json(rule: Rule, names: Names) -> dict[str, Any]:
    return {
        "family": family_name(rule.family),
        "priority": rule.priority,
        "from": prefix_text(rule.src, rule.src_len, rule.family) if rule.src_len else "all",
        "table": rule.table,
        "table_name": names.table_name(rule.table),
        "suppress_prefixlength": rule.suppress_prefixlen,
        "protocol": rule.protocol,
        "text": rule_text(rule, names),
    }


def route_json(route: Route, names: Names) -> dict[str, Any]:
    return {
        "family": family_name(route.family),
        "table": route.table,
        "table_name": names.table_name(route.table),
        "dst": prefix_text(route.dst, route.dst_len, route.family),
        "gateway": route.gateway,
        "dev": names.link(route.oif),
        "src": route.prefsrc,
        "metric": route.metric,
        "type": route_type_name(route.type),
        "protocol": route.protocol,
        "text": route_text(route, names),
    }


def operation_json(op: Operation, names: Names) -> dict[str, Any]:
    body = rule_json(op.rule, names) if isinstance(op, RuleOp) else route_json(op.route, names)
    out: dict[str, Any] = {
        "kind": op.kind,
        "op": op.op,
        "text": operation_text(op, names),
        op.kind: body,
    }
    if isinstance(op, RouteOp) and op.previous is not None:
        out["previous"] = route_json(op.previous, names)
    return out


def conflict_text(conflict: Conflict, names: Names) -> str:
    obj = conflict.foreign
    if isinstance(obj, Route):
        text = route_text(obj, names, with_protocol=True)
    else:
        text = rule_text(obj, names, with_protocol=True)
    return f"{conflict.message}: {text}"


def conflict_json(conflict: Conflict, names: Names) -> dict[str, Any]:
    return {
        "kind": conflict.kind,
        "message": conflict.message,
        "text": conflict_text(conflict, names),
    }
