"""The desired state of spec §2.2: a pure function of one kernel read and the configuration."""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from polroutd.core.limits import (
    AF_INET,
    AF_INET6,
    FAMILIES,
    IFA_F_NOPREFIXROUTE,
    IP6_DEFAULT_METRIC,
    RT_SCOPE_LINK,
    RT_SCOPE_UNIVERSE,
    RT_TABLE_MAIN,
    RTN_UNICAST,
)
from polroutd.core.model import (
    Address,
    DesiredState,
    Gateway,
    KernelState,
    Link,
    ManagedInterface,
    Route,
    Rule,
    UplinkChoice,
    family_name,
    host_len,
)
from polroutd.core.settings import Config, InterfaceSpec, RouteSpec
from polroutd.core.tables import TableRef
from polroutd.core.uplinks import HealthView, uplink_objects


@dataclass(frozen=True, slots=True)
class Inputs:
    """Everything besides the kernel read that the desired state depends on."""

    config: Config
    protocol: int
    tables: Mapping[str, TableRef]  # interface name -> its table
    named_tables: Mapping[str, int]  # every table name known (for extra routes' "table")
    lease_gateways: Mapping[str, str]  # interface name -> IPv4 router from its DHCP lease
    uplink_table: TableRef | None = None  # with uplinks on: polroutd's table of default routes
    uplink_health: HealthView | None = None  # the daemon's observations; None: links decide


def managed_links(state: KernelState, config: Config) -> list[tuple[Link, InterfaceSpec | None]]:
    """The interfaces polroutd manages, by name, with the configuration entry that matched."""
    links = sorted(state.links, key=lambda link: link.name)
    if config.interfaces:
        matched: list[tuple[Link, InterfaceSpec | None]] = []
        for link in links:
            spec = next((s for s in config.interfaces if fnmatchcase(link.name, s.name)), None)
            if spec is not None:
                matched.append((link, spec))
        return matched
    with_global = {a.ifindex for a in state.addresses if a.is_global}
    excluded = config.daemon.exclude
    return [
        (link, None)
        for link in links
        if not link.loopback
        and link.ifindex in with_global
        and not _excluded(link.name, tuple(excluded))
    ]


@functools.lru_cache(maxsize=4096)
def _excluded(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether an exclude pattern matches the interface name (asked on every reconcile)."""
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def table_requests(
    managed: Iterable[tuple[Link, InterfaceSpec | None]],
) -> list[tuple[str, str | int | None]]:
    return [(link.name, spec.table if spec else None) for link, spec in managed]


def _default_metric(family: int) -> int:
    return IP6_DEFAULT_METRIC if family == AF_INET6 else 0


def _any_address(family: int) -> str:
    return "0.0.0.0" if family == AF_INET else "::"


def _address_order(a: Address) -> tuple[int, bool, tuple[int, int]]:
    return (a.family, a.secondary, _ip_key(a.address))


def _addresses_by_interface(state: KernelState) -> dict[int, list[Address]]:
    """Global addresses by interface index, each interface's primaries first, in an order that
    does not depend on the dump's (one pass over the addresses, not one per interface)."""
    by_index: dict[int, list[Address]] = {}
    for a in state.addresses:
        if a.is_global:
            by_index.setdefault(a.ifindex, []).append(a)
    for addresses in by_index.values():
        addresses.sort(key=_address_order)
    return by_index


MainDefaults = Mapping[tuple[int, int], Sequence[Route]]


def main_table_defaults(state: KernelState, protocol: int) -> dict[tuple[int, int], list[Route]]:
    """Foreign unicast default routes of the main table by (interface index, family)."""
    found: dict[tuple[int, int], list[Route]] = {}
    for r in state.routes:
        if (
            r.table == RT_TABLE_MAIN and r.is_default and r.type == RTN_UNICAST
            and r.protocol != protocol and r.oif is not None
        ):
            found.setdefault((r.oif, r.family), []).append(r)
    return found


def choose_gateway(
    link: Link,
    family: int,
    setting: str,
    state: KernelState,
    inputs: Inputs,
    main_defaults: MainDefaults | None = None,
) -> Gateway:
    """G(I) per spec §2.2: configured, else main-table default on I, else DHCP lease, else none.

    ``main_defaults`` (``main_table_defaults`` of ``state``) spares a scan of every route."""
    if setting == "none":
        return Gateway(
            None, None, reason='disabled in the configuration (gateway = "none")', wanted=False
        )
    if setting != "auto":
        return Gateway(setting, "config")
    if main_defaults is None:
        main_defaults = main_table_defaults(state, inputs.protocol)
    defaults = sorted(
        main_defaults.get((link.ifindex, family), ()), key=lambda r: (r.metric, r.gateway or "")
    )
    if defaults:
        best = defaults[0]
        if best.gateway is None:
            return Gateway(None, "main-table", device_route=True)
        return Gateway(best.gateway, "main-table")
    if family == AF_INET and link.name in inputs.lease_gateways:
        return Gateway(inputs.lease_gateways[link.name], "dhcp-lease")
    lease_note = " and no readable DHCP lease names a router" if family == AF_INET else ""
    return Gateway(
        None, None,
        reason=f"no {family_name(family)} default route via {link.name} in the main table"
        + lease_note,
    )


@functools.lru_cache(maxsize=1 << 16)
def _source_rule(family: int, address: str, priority: int, table: int, protocol: int) -> Rule:
    """``from ADDRESS lookup TABLE``. Rules are immutable values, so the same one is handed out
    again for the same arguments: every reconcile wants the same thousand rules, and building
    a Rule is most of the cost of deciding."""
    return Rule(
        family=family, priority=priority, table=table, protocol=protocol, src=address,
        src_len=host_len(family),
    )


@functools.lru_cache(maxsize=1 << 14)
def _network_address(address: str, prefixlen: int) -> str:
    """The network address of ``address/prefixlen``, written as ``ipaddress`` writes it.

    Masked as an integer and written by ``inet_ntop`` (as the kernel's addresses are, see
    rtnl._addr), ten times faster than ``ipaddress``; ``ipaddress`` decides what that cannot
    write the same way (``::a.b.c.d`` forms) and whatever is no plain address."""
    family = AF_INET6 if ":" in address else AF_INET
    try:
        raw = socket.inet_pton(family, address)
    except (OSError, ValueError):
        raw = b""
    bits = len(raw) * 8
    if raw and 0 <= prefixlen <= bits:
        host = (1 << (bits - prefixlen)) - 1
        masked = (int.from_bytes(raw, "big") | host) ^ host
        text = socket.inet_ntop(family, masked.to_bytes(len(raw), "big"))
        if "." not in text or family == AF_INET:
            return text
    return str(ipaddress.ip_network(f"{address}/{prefixlen}", strict=False).network_address)


def _connected_routes(
    addresses: list[Address], table: int, oif: int, protocol: int
) -> list[Route]:
    routes: dict[tuple[int, str, int], Route] = {}
    for a in addresses:
        if a.prefixlen >= host_len(a.family) or a.flags & IFA_F_NOPREFIXROUTE:
            continue
        key = (a.family, _network_address(a.address, a.prefixlen), a.prefixlen)
        if key in routes:
            continue  # the primary (sorted first) address is the source for the prefix
        routes[key] = Route(
            family=a.family, table=table, dst=key[1], dst_len=a.prefixlen, protocol=protocol,
            metric=_default_metric(a.family),
            scope=RT_SCOPE_LINK if a.family == AF_INET else RT_SCOPE_UNIVERSE,
            oif=oif, prefsrc=a.address,
        )
    return list(routes.values())


def _default_route(family: int, gateway: Gateway, table: int, oif: int, protocol: int) -> Route:
    device_only = gateway.address is None
    return Route(
        family=family, table=table, dst=_any_address(family), dst_len=0, protocol=protocol,
        metric=_default_metric(family),
        scope=RT_SCOPE_LINK if device_only and family == AF_INET else RT_SCOPE_UNIVERSE,
        oif=oif, gateway=gateway.address,
    )


def _extra_route(spec: RouteSpec, own_table: int, oif: int, inputs: Inputs) -> Route:
    net = ipaddress.ip_network(spec.to)
    family = AF_INET if net.version == 4 else AF_INET6
    if spec.table is None:
        table = own_table
    elif isinstance(spec.table, int):
        table = spec.table
    elif spec.table == "main":
        table = RT_TABLE_MAIN
    else:
        table = inputs.named_tables[spec.table]
    on_link = spec.via is None and family == AF_INET
    return Route(
        family=family, table=table, dst=str(net.network_address), dst_len=net.prefixlen,
        protocol=inputs.protocol,
        metric=spec.metric if spec.metric is not None else _default_metric(family),
        scope=RT_SCOPE_LINK if on_link else RT_SCOPE_UNIVERSE, oif=oif, gateway=spec.via,
    )


def _unmanaged_copies(
    state: KernelState, managed_indexes: set[int], protocol: int
) -> list[Route]:
    """Main-table routes through local unmanaged devices (docker0, virbr0, cni0, ...)."""
    local_unmanaged = {
        link.ifindex
        for link in state.links
        if link.ifindex not in managed_indexes and not link.loopback
    }
    return [
        r for r in state.routes
        if r.table == RT_TABLE_MAIN and r.type == RTN_UNICAST and not r.is_default
        and r.oif in local_unmanaged and r.protocol != protocol
    ]


def desired_state(state: KernelState, inputs: Inputs) -> DesiredState:
    config = inputs.config
    protocol = inputs.protocol
    managed = managed_links(state, config)
    managed_indexes = {link.ifindex for link, _ in managed}
    down = {link.ifindex for link in state.links if not link.up}
    copies = (
        _unmanaged_copies(state, managed_indexes, protocol)
        if config.daemon.mode == "strict" else []
    )

    interfaces: list[ManagedInterface] = []
    rules: dict[tuple[object, ...], Rule] = {}
    routes: dict[object, Route] = {}

    by_index = _addresses_by_interface(state)
    families_on = {(index, a.family) for index, mine in by_index.items() for a in mine}
    main_defaults = main_table_defaults(state, protocol)

    def installable(route: Route) -> bool:
        """What the kernel would accept now: no route through a down device, and no gateway
        reached through an interface without an address of its family (the kernel also
        drops such routes silently when the last address goes)."""
        if route.oif in down:
            return False
        if route.gateway is None or _link_local(route.gateway):
            return True
        return (route.oif, route.family) in families_on

    def want(route: Route) -> None:
        if installable(route):
            routes.setdefault(route.key, route)

    for link, spec in managed:
        table = inputs.tables[link.name]
        priority = (
            spec.priority if spec and spec.priority else None
        ) or config.daemon.rule_priority
        addresses = by_index.get(link.ifindex, [])
        gateways = {
            AF_INET: choose_gateway(
                link, AF_INET, spec.gateway if spec else "auto", state, inputs, main_defaults
            ),
            AF_INET6: choose_gateway(
                link, AF_INET6, spec.gateway6 if spec else "auto", state, inputs, main_defaults
            ),
        }
        for a in addresses:
            # These rules differ only in what this key holds, so it stands for their identity()
            # (cheaper, and no Rule is built for a duplicate address).
            key = (a.family, a.address, priority, table.id)
            if key not in rules:
                rules[key] = _source_rule(a.family, a.address, priority, table.id, protocol)
        for route in _connected_routes(addresses, table.id, link.ifindex, protocol):
            want(route)
        families_here = {a.family for a in addresses}
        for family in FAMILIES:
            if gateways[family].present and family in families_here:  # no rule, no use
                want(_default_route(family, gateways[family], table.id, link.ifindex, protocol))
        for extra in spec.routes if spec else ():
            want(_extra_route(extra, table.id, link.ifindex, inputs))
        for copy in copies:
            want(copy._replace(table=table.id, protocol=protocol, extra=()))
        interfaces.append(
            ManagedInterface(
                name=link.name, index=link.ifindex, up=link.up, carrier=link.carrier,
                addresses=tuple(f"{a.address}/{a.prefixlen}" for a in addresses),
                table_id=table.id, table_name=table.name, priority=priority,
                gateway4=gateways[AF_INET], gateway6=gateways[AF_INET6],
            )
        )

    # --- uplinks (core/uplinks.py): health is an input, like the kernel state ---
    uplink_choices: tuple[UplinkChoice, ...] = ()
    if config.daemon.uplinks != "off" and inputs.uplink_table is not None:
        specs = {link.name: (link, spec.uplink) for link, spec in managed if spec and spec.uplink}
        found = uplink_objects(
            ((i, specs[i.name][0], uplink) for i in interfaces
             if i.name in specs and (uplink := specs[i.name][1]) is not None),
            mode=config.daemon.uplinks, table=inputs.uplink_table.id,
            priority=config.daemon.uplink_priority, protocol=protocol,
            health=inputs.uplink_health,
            usable=lambda index, family: index not in down and (index, family) in families_on,
        )
        for rule in found.rules:
            rules.setdefault(rule.identity(), rule)
        for route in found.routes:
            routes.setdefault(route.key, route)
        uplink_choices = found.choices
    # --- end uplinks ---

    if config.daemon.mode == "main-first" and rules:
        first = min(r.priority for r in rules.values()) - 1
        for family in sorted({r.family for r in rules.values()}):
            rule = Rule(
                family=family, priority=first, table=RT_TABLE_MAIN, protocol=protocol,
                suppress_prefixlen=0,
            )
            rules.setdefault(rule.identity(), rule)

    return DesiredState(
        interfaces=tuple(interfaces),
        rules=tuple(sorted(rules.values(), key=rule_order)),
        routes=tuple(sorted(routes.values(), key=route_order)),
        tables=frozenset(inputs.tables[link.name].id for link, _ in managed)
        | ({inputs.uplink_table.id} if uplink_choices and inputs.uplink_table else set()),
        uplinks=uplink_choices,
    )


def rule_order(rule: Rule) -> tuple[object, ...]:
    return (rule.priority, rule.family, rule.table, _addr_key(rule.src), rule.src_len)


def route_order(route: Route) -> tuple[object, ...]:
    # Routes without a gateway first: a gateway must be reachable when its route is added.
    return (
        route.table, route.family, route.gateway is not None, _addr_key(route.dst),
        route.dst_len, route.metric, route.tos, _addr_key(route.gateway), route.oif or 0,
        _addr_key(route.prefsrc), route.scope, route.type,
    )


def _addr_key(address: str | None) -> tuple[int, int]:
    if address is None:
        return (0, 0)
    return _ip_key(address)


@functools.lru_cache(maxsize=1 << 12)
def _link_local(address: str) -> bool:
    """An IPv6 gateway in fe80::/10: reached through the interface itself, whatever its global
    addresses."""
    return ":" in address and ipaddress.ip_address(address).is_link_local


@functools.lru_cache(maxsize=1 << 16)
def _ip_key(address: str) -> tuple[int, int]:
    """(IP version, integer value) as ``ipaddress`` gives them; cached, because the same few
    thousand addresses are sorted in every reconcile. ``inet_pton`` is ~10x faster than
    ``ipaddress`` and agrees with it on every address it accepts; ``ipaddress`` decides the
    rest (scoped IPv6 addresses) and raises ``ValueError`` for what is no address."""
    try:
        if ":" in address:
            return (6, int.from_bytes(socket.inet_pton(AF_INET6, address), "big"))
        return (4, int.from_bytes(socket.inet_pton(AF_INET, address), "big"))
    except (OSError, ValueError):
        ip = ipaddress.ip_address(address)
        return (ip.version, int(ip))
