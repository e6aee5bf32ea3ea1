"""The desired state of docs/behaviour.md §2.2: a pure function of one kernel read and the
configuration."""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Collection, Iterable, Mapping, Sequence
from fnmatch import fnmatchcase

from polroutd.core.limits import (
    AF_INET,
    AF_INET6,
    FAMILIES,
    IFA_F_DADFAILED,
    IFA_F_DEPRECATED,
    IFA_F_OPTIMISTIC,
    IFA_F_SECONDARY,
    IFA_F_TENTATIVE,
    IP6_DEFAULT_METRIC,
    ROUTE_TYPE_NUMBERS,
    RT_SCOPE_LINK,
    RT_SCOPE_UNIVERSE,
    RT_TABLE_MAIN,
    RTN_UNICAST,
    RTN_UNREACHABLE,
)
from polroutd.core.model import (
    Address,
    DesiredState,
    Gateway,
    KernelState,
    LeaseFindings,
    LeaseOffer,
    Link,
    ManagedInterface,
    Route,
    Rule,
    SkippedInterface,
    family_name,
    host_len,
)
from polroutd.core.record import field, record, replace
from polroutd.core.settings import Config, InterfaceSpec, RouteSpec, UplinkSpec
from polroutd.core.tables import TableRef
from polroutd.core.uplinks import HealthView, UplinkObjects, uplink_objects

# The caches below wrap plain functions (``name = lru_cache(...)(name_uncached)``) rather than
# decorate them: mutation testing (docs/testing.md) only mutates undecorated functions, and
# tests/mutmut_plugin.py empties them between tests through ``CACHES``.


@record
class Inputs:
    """Everything besides the kernel read that the desired state depends on."""

    config: Config
    protocol: int
    tables: Mapping[str, TableRef]  # interface name -> its table
    named_tables: Mapping[str, int]  # every table name known (for extra routes' "table")
    leases: Mapping[str, LeaseFindings]  # interface name -> what its DHCP lease files say
    # interface name -> why it has no table (no number left in table_range): it is skipped
    table_errors: Mapping[str, str] = field(default_factory=dict)
    uplink_table: TableRef | None = None  # with uplinks on: polroutd's table of default routes
    uplink_health: HealthView | None = None  # the daemon's observations; None: links decide


def managed_links(state: KernelState, config: Config) -> list[tuple[Link, InterfaceSpec | None]]:
    """The interfaces polroutd manages, by name, with the configuration entry that matched."""
    return select_links(state, config)[0]


Selection = tuple[list[tuple[Link, InterfaceSpec | None]], list[SkippedInterface]]


def select_links(
    state: KernelState, config: Config, with_global: Collection[int] | None = None
) -> Selection:
    """The interfaces polroutd manages, and those selected (by a configuration entry, or by the
    default rule) that it leaves alone with the reason: loopbacks, VRF devices and ports of a
    VRF, bond, bridge or team (docs/topologies.md). ``with_global``: the indexes of the
    interfaces with a global address, when the caller has them (``addresses_by_interface``)."""
    links = sorted(state.links, key=lambda link: link.name)
    if config.interfaces:
        with_global = ()
    elif with_global is None:
        with_global = {a.ifindex for a in state.addresses if a.is_global}
    selected: list[tuple[Link, InterfaceSpec | None]] = []
    for link in links:
        chosen, spec = link_selection(link, config, link.ifindex in with_global)
        if chosen:
            selected.append((link, spec))
    if not any(link.loopback or link.master or link.kind == "vrf" for link, _ in selected):
        return selected, []
    by_index = state.link_by_index()
    managed: list[tuple[Link, InterfaceSpec | None]] = []
    skipped: list[SkippedInterface] = []
    for link, spec in selected:
        reason = unmanageable(link, by_index)
        if reason is None:
            managed.append((link, spec))
        elif spec is not None or not link.loopback:  # lo is silently left out by default
            skipped.append(SkippedInterface(link.name, link.ifindex, reason))
    return managed, skipped


def link_selection(
    link: Link, config: Config, has_global: bool
) -> tuple[bool, InterfaceSpec | None]:
    """Whether the configuration selects the link (before asking if it can be managed), and
    the entry that matched: the first whose name pattern matches; without entries, every
    interface with a global address (``has_global``) that no exclude pattern names."""
    if config.interfaces:
        spec = next((s for s in config.interfaces if fnmatchcase(link.name, s.name)), None)
        return spec is not None, spec
    return has_global and not _excluded(link.name, tuple(config.daemon.exclude)), None


def unmanageable(link: Link, by_index: Mapping[int, Link]) -> str | None:
    """Why polroutd must leave this interface alone, if it must."""
    if link.loopback:
        return "a loopback interface: its addresses are local, not a way out"
    if link.kind == "vrf":
        return "a VRF device: the VRF's own table routes for its ports"
    if link.master is None:
        return None
    master = by_index.get(link.master)
    name = master.name if master else f"ifindex {link.master}"
    kind = master.kind if master and master.kind else "master"
    if kind == "vrf":
        return (
            f"enslaved to VRF {name}: its addresses are local only inside the VRF, so a source "
            "rule outside it cannot work; policy routing inside a VRF is out of scope"
        )
    return f"a port of {kind} {name}: traffic leaves through {name}, which polroutd may manage"


def _excluded_uncached(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether an exclude pattern matches the interface name (asked on every reconcile)."""
    names, prefixes, others = _pattern_kinds(patterns)
    return (name in names or name.startswith(prefixes)
            or any(fnmatchcase(name, pattern) for pattern in others))


_excluded = functools.lru_cache(maxsize=4096)(_excluded_uncached)


def _pattern_kinds_uncached(
    patterns: tuple[str, ...],
) -> tuple[frozenset[str], tuple[str, ...], tuple[str, ...]]:
    """The plain names among ``patterns``, the plain prefixes (those ending in the only
    ``*``), and the rest: only the rest is matched by ``fnmatchcase``, whose regular
    expressions cost a cold ``polroutd apply`` 1.5 ms to compile for the default ones."""
    plain = [p for p in patterns if not any(c in p for c in "*?[")]
    prefixes = tuple(p[:-1] for p in patterns
                     if p.endswith("*") and not any(c in p[:-1] for c in "*?["))
    others = tuple(p for p in patterns
                   if p not in plain and not (p.endswith("*") and p[:-1] in prefixes))
    return frozenset(plain), prefixes, others


_pattern_kinds = functools.lru_cache(maxsize=64)(_pattern_kinds_uncached)


def table_requests(
    managed: Iterable[tuple[Link, InterfaceSpec | None]],
) -> list[tuple[str, str | int | None]]:
    return [(link.name, spec.table if spec else None) for link, spec in managed]


def _default_metric(family: int) -> int:
    return IP6_DEFAULT_METRIC if family == AF_INET6 else 0


def _any_address(family: int) -> str:
    return "0.0.0.0" if family == AF_INET else "::"


def _address_order(a: Address) -> tuple[int, int, int, tuple[int, int]]:
    # A deprecated address keeps its rule (its sessions go on) but is the connected route's
    # source only when no preferred address of the prefix is left. (The flags themselves,
    # not Address.secondary and .deprecated: the same order, without two calls per address.)
    flags = a.flags
    return (a.family, flags & IFA_F_SECONDARY, flags & IFA_F_DEPRECATED, _ip_key(a.address))


def addresses_by_interface(state: KernelState) -> dict[int, list[Address]]:
    """Global addresses by interface index, each interface's primaries first, in an order that
    does not depend on the dump's (one pass over the addresses, not one per interface)."""
    by_index: dict[int, list[Address]] = {}
    for a in state.addresses:
        # Address.is_global, spelled out: two property calls per address were most of this
        # pass (a burst's full decision sorts a thousand new addresses).
        flags = a.flags
        if a.scope == RT_SCOPE_UNIVERSE and not flags & IFA_F_DADFAILED and (
                not flags & IFA_F_TENTATIVE or flags & IFA_F_OPTIMISTIC):
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
    inputs: Inputs,
    main_defaults: MainDefaults,
    addresses: Sequence[Address] = (),
) -> Gateway:
    """The gateway of one interface and family: configured, else the main table's default
    through the interface, else its DHCP lease's router, else none (why is recorded).

    ``main_defaults`` is ``main_table_defaults`` of the kernel read (one scan of every route
    for all interfaces); ``addresses`` (the interface's global addresses) decide which lease
    routers are fit to be the gateway (docs/behaviour.md §2.2)."""
    key = "gateway" if family == AF_INET else "gateway6"
    if setting == "none":
        return Gateway(
            None, None, reason=f'disabled in the configuration ({key} = "none")', wanted=False
        )
    if setting == "unreachable":
        return Gateway(
            None, None, wanted=False, unreachable=True,
            reason=f'isolated in the configuration ({key} = "unreachable"): the table ends '
            "with unreachable default",
        )
    if setting != "auto":
        return Gateway(setting, "config")
    found = main_defaults.get((link.ifindex, family))
    if found:
        defaults = sorted(found, key=lambda r: (r.metric, r.gateway or ""))
        best = defaults[0]
        passed_over = tuple(
            (other.gateway or "dev " + link.name,
             f"metric {other.metric}; one default per interface and family, the lowest metric "
             "(then address) wins")
            for other in defaults[1:]
        )
        if best.gateway is None:
            return Gateway(None, "main-table", device_route=True, passed_over=passed_over)
        return Gateway(best.gateway, "main-table", passed_over=passed_over)
    reason = f"no {family_name(family)} default route via {link.name} in the main table"
    if family != AF_INET:
        return Gateway(None, None, reason=reason)
    findings = inputs.leases.get(link.name)
    if findings is None or not (findings.offers or findings.refused):  # no lease file said a word
        return Gateway(None, None, reason=reason + " and no readable DHCP lease names a router")
    problems = list(findings.refused)
    prefixes = [a for a in addresses if a.family == AF_INET]
    own = {a.address for a in prefixes}
    # The interface's own leases first; a lease for an address it lacks only after them (see
    # _lease_router).
    ordered = sorted(findings.offers, key=lambda offer: offer.address not in (None, *own))
    for offer in ordered:
        router, problem = _lease_router(link.name, offer, prefixes)
        if router is not None:
            return Gateway(router, "dhcp-lease", lease_expires=offer.expires)
        problems.append(problem)  # (every offer not taken says why: never empty here)
    return Gateway(None, None, reason=f"{reason}; " + "; ".join(problems))


def _lease_router(
    interface: str, offer: LeaseOffer, addresses: Sequence[Address]
) -> tuple[str | None, str]:
    """The first router of a lease fit to be ``interface``'s gateway, else why none is.

    A router must be a unicast address on one of the interface's IPv4 prefixes other than its
    own address and the prefix's network and broadcast addresses: the kernel refuses anything
    else (every reconcile would fail) or the route leads nowhere.

    A lease for an address the interface does not have is a stale lease: from another network
    (its routers are then off-link, refused above, and the reason says whose lease it is), or
    the previous lease of this network while a renewal to a new address is under way. The
    DHCP clients set the new address before they write the lease file, and writing a file is no
    event polroutd sees: refusing that lease would leave the table without its default route
    until the next resync, though its router is the network's. So it serves, after the
    interface's own leases, when its router is fit."""
    where = f"DHCP lease {offer.path}"
    if offer.address is not None and offer.address not in {a.address for a in addresses}:
        where += f" (for {offer.address}, which {interface} does not have: stale?)"
    problems = [_router_problem(router, addresses) for router in offer.routers]
    for router, problem in zip(offer.routers, problems, strict=True):
        if problem is None:
            return router, ""
    return None, f"{where}: " + ", ".join(
        f"router {router} {problem}" for router, problem in zip(offer.routers, problems,
                                                                strict=True)
    )


def _router_problem(router: str, addresses: Sequence[Address]) -> str | None:
    """Why ``router`` cannot be the IPv4 gateway of an interface with ``addresses``; None if it
    can."""
    ip = ipaddress.IPv4Address(router)
    for kind, bad in (
        ("a loopback", ip.is_loopback), ("a multicast", ip.is_multicast),
        ("a link-local", ip.is_link_local), ("the unspecified", ip.is_unspecified),
        ("a broadcast or reserved", ip.is_reserved),  # 240.0.0.0/4 holds 255.255.255.255
    ):
        if bad:
            return f"is {kind} address, not a unicast router"
    for a in addresses:
        if a.prefixlen >= 32:
            continue
        network = ipaddress.IPv4Network(f"{a.address}/{a.prefixlen}", strict=False)
        if ip not in network:
            continue
        if router == a.address:
            return "is the interface's own address"
        if network.prefixlen < 31 and ip in (network.network_address, network.broadcast_address):
            which = "network" if ip == network.network_address else "broadcast"
            return f"is the {which} address of {network}"
        return None
    prefixes = ", ".join(f"{a.address}/{a.prefixlen}" for a in addresses) or "none"
    return f"is not on the interface's IPv4 prefixes ({prefixes}): off-link"


def _source_rule_uncached(
    family: int, address: str, priority: int, table: int, protocol: int
) -> Rule:
    """``from ADDRESS lookup TABLE``. Rules are immutable values, so the same one is handed out
    again for the same arguments: every reconcile wants the same thousand rules, and building
    a Rule is most of the cost of deciding."""
    # Positional (Rule's first six fields): keywords would make building it three times dearer.
    return Rule(family, priority, table, protocol, address, host_len(family))


_source_rule = functools.lru_cache(maxsize=1 << 16)(_source_rule_uncached)


def _network_address_uncached(address: str, prefixlen: int) -> str:
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


_network_address = functools.lru_cache(maxsize=1 << 14)(_network_address_uncached)


def _connected_routes(
    addresses: list[Address], table: int, oif: int, protocol: int
) -> list[Route]:
    """The prefix of each address, on-link in the interface's table. Also for ``noprefixroute``
    addresses (dhcpcd, NetworkManager, networkd with ``RouteTable=``): whoever installs
    their prefix route elsewhere, the prefix is on-link, and without it here neighbours would
    be reached through the router and a gateway on it refused (ENETUNREACH)."""
    routes: dict[tuple[int, int, int], Route] = {}
    for a in addresses:
        family, prefixlen, peer = a.family, a.prefixlen, a.peer
        bits = 32 if family == AF_INET else 128  # host_len, inline: once per address
        if prefixlen >= bits and peer is None:
            continue
        # With a peer, the kernel's route is the peer's prefix (a /32 one too), from LOCAL.
        # The prefix is told by the address's number (already known: addresses are sorted by
        # it), its text written once per prefix, not once per address.
        network = a.address if peer is None else peer
        key = (family, _ip_key(network)[1] >> (bits - prefixlen), prefixlen)
        if key in routes:
            continue  # the primary (sorted first) address is the source for the prefix
        routes[key] = Route(
            family=family, table=table, dst=_network_address(network, prefixlen),
            dst_len=prefixlen, protocol=protocol,
            metric=_default_metric(family),
            scope=RT_SCOPE_LINK if family == AF_INET else RT_SCOPE_UNIVERSE,
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


def _unreachable_default(family: int, table: int, protocol: int, lo: int | None) -> Route:
    return _typed_route(
        Route(family=family, table=table, dst=_any_address(family), dst_len=0,
              protocol=protocol, metric=_default_metric(family)),
        RTN_UNREACHABLE, lo,
    )


def _typed_route(route: Route, rtype: int, lo: int | None) -> Route:
    """``route`` as a route of type ``rtype``: a unicast route as it is; the others have no
    next hop, and the kernel stores an IPv6 one on the loopback device (so polroutd wants it
    there, or it would see a difference on every read)."""
    if rtype == RTN_UNICAST:
        return route
    oif = lo if route.family == AF_INET6 else None
    return route._replace(type=rtype, oif=oif, gateway=None, scope=RT_SCOPE_UNIVERSE)


def _extra_route(
    spec: RouteSpec, own_table: int, oif: int, inputs: Inputs, lo: int | None
) -> Route:
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
    route = Route(
        family=family, table=table, dst=str(net.network_address), dst_len=net.prefixlen,
        protocol=inputs.protocol,
        metric=spec.metric if spec.metric is not None else _default_metric(family),
        scope=RT_SCOPE_LINK if on_link else RT_SCOPE_UNIVERSE, oif=oif, gateway=spec.via,
    )
    return _typed_route(route, ROUTE_TYPE_NUMBERS[spec.type], lo)


def unmanaged_copies(
    state: KernelState, managed_indexes: set[int], protocol: int
) -> list[Route]:
    """Main-table routes through local unmanaged devices (docker0, virbr0, cni0, ...)."""
    local_unmanaged = {
        link.ifindex
        for link in state.links
        if link.ifindex not in managed_indexes and not link.loopback and link.up
    }
    # Only those the kernel would accept in another table now: a gateway must be reached
    # through a device with an address of its family.
    families_on = {(a.ifindex, a.family) for a in state.addresses
                   if a.ifindex in local_unmanaged and a.is_global}
    return [
        r for r in state.routes
        if r.table == RT_TABLE_MAIN and r.type == RTN_UNICAST and not r.is_default
        and r.oif in local_unmanaged and r.protocol != protocol
        and (r.gateway is None or _link_local(r.gateway) or (r.oif, r.family) in families_on)
    ]


@record
class Piece:
    """One managed interface's share of the desired state: its rules and routes."""

    interface: ManagedInterface
    rules: tuple[Rule, ...]
    routes: tuple[Route, ...]
    own_table_only: bool = True  # every route is in the interface's own table
    # With uplinks on and an ``uplink`` entry: the link (its state decides health with the
    # daemon's observations) and the entry; the uplink table's objects come from all of these.
    uplink: tuple[Link, UplinkSpec] | None = None


def interface_piece(
    link: Link,
    spec: InterfaceSpec | None,
    table: TableRef,
    addresses: list[Address],
    inputs: Inputs,
    main_defaults: MainDefaults,
    copies: Sequence[Route],
    lo: int | None,
    lo_up: bool = True,
) -> Piece:
    """What polroutd wants for one interface. ``addresses``: its global ones, primaries first
    (``addresses_by_interface``); ``copies``: the main-table routes strict mode copies (only
    those the kernel would accept, ``unmanaged_copies``); ``lo``: the loopback's index (where
    the kernel keeps IPv6 routes without a next hop), ``lo_up`` whether it is up."""
    config, protocol = inputs.config, inputs.protocol
    priority = (spec.priority if spec and spec.priority else None) or config.daemon.rule_priority
    families_here = {a.family for a in addresses}
    routes: dict[object, Route] = {}

    def want(route: Route) -> None:
        """Only what the kernel would accept now: no route through a down device, and no
        gateway reached through an interface without an address of its family (the kernel
        also drops such routes silently when the last address goes)."""
        if route.oif == link.ifindex:
            if not link.up:
                return
            if (route.gateway is None or _link_local(route.gateway)
                    or route.family in families_here):
                routes.setdefault(route.key, route)
        elif route.oif is None or route.oif != lo or lo_up:  # copies, typed routes
            routes.setdefault(route.key, route)

    gateways = {
        AF_INET: choose_gateway(
            link, AF_INET, spec.gateway if spec else "auto", inputs, main_defaults, addresses
        ),
        AF_INET6: choose_gateway(
            link, AF_INET6, spec.gateway6 if spec else "auto", inputs, main_defaults
        ),
    }
    # Source rules differ only in (family, address): the pair stands for a rule's identity()
    # (no Rule is built for a duplicate address), mapped to the rule's place in rule_order.
    sources: dict[tuple[int, str], tuple[int, tuple[int, int]]] = {}
    table_id = table.id
    for a in addresses:
        family, address = key = a.family, a.address
        if key not in sources:
            sources[key] = (family, _ip_key(address))
    for route in _connected_routes(addresses, table.id, link.ifindex, protocol):
        want(route)
    for family in FAMILIES:
        gateway = gateways[family]
        if family not in families_here:  # no rule, no use
            if gateway.present:  # say so rather than show a gateway that is not installed
                gateways[family] = replace(gateway, not_installed=(
                    f"no global {family_name(family)} address on {link.name}: no rule uses "
                    "the table, so no default route is installed there"))
            continue
        if gateway.present:
            want(_default_route(family, gateway, table.id, link.ifindex, protocol))
        elif gateway.unreachable:
            want(_unreachable_default(family, table.id, protocol, lo))
    for extra in spec.routes if spec else ():
        want(_extra_route(extra, table.id, link.ifindex, inputs, lo))
    for copy in copies:
        want(copy._replace(table=table.id, protocol=protocol, extra=()))
    interface = ManagedInterface(
        name=link.name, index=link.ifindex, up=link.up, carrier=link.carrier,
        addresses=tuple([a.text() for a in addresses]),
        table_id=table.id, table_name=table.name, priority=priority,
        gateway4=gateways[AF_INET], gateway6=gateways[AF_INET6],
    )
    uplink = (link, spec.uplink) if (
        spec and spec.uplink and config.daemon.uplinks != "off") else None
    # In rule_order: the rules of one interface differ only in family and address.
    return Piece(interface,
                 tuple([_source_rule(family, address, priority, table_id, protocol)
                        for family, address in sorted(sources, key=sources.__getitem__)]),
                 tuple(sorted(routes.values(), key=route_order)),
                 all(r.table == table.id for r in routes.values()), uplink)


def loopback(links: Iterable[Link]) -> tuple[int | None, bool]:
    """The loopback device's index, and whether it is up."""
    lo = next((link for link in links if link.loopback), None)
    return (None, True) if lo is None else (lo.ifindex, lo.up)


def desired_state(state: KernelState, inputs: Inputs) -> DesiredState:
    return assemble(*desired_pieces(state, inputs))


def desired_pieces(
    state: KernelState,
    inputs: Inputs,
    selection: Selection | None = None,
    by_index: Mapping[int, list[Address]] | None = None,
) -> tuple[list[Piece], list[SkippedInterface], Inputs]:
    """Every managed interface's piece, the interfaces skipped, and the inputs. ``selection``
    (``select_links``) and ``by_index`` (``addresses_by_interface``) of ``state``, when the
    caller has them already."""
    config = inputs.config
    if by_index is None:
        by_index = addresses_by_interface(state)
    selected, skipped = selection or select_links(state, config, by_index.keys())
    managed = [(link, spec) for link, spec in selected if link.name in inputs.tables]
    skipped = [*skipped, *(
        SkippedInterface(link.name, link.ifindex, inputs.table_errors.get(link.name, "no table"))
        for link, _ in selected if link.name not in inputs.tables
    )]
    copies = (
        unmanaged_copies(state, {link.ifindex for link, _ in managed}, inputs.protocol)
        if config.daemon.mode == "strict" else []
    )
    main_defaults = main_table_defaults(state, inputs.protocol)
    lo, lo_up = loopback(state.links)
    pieces = [
        interface_piece(link, spec, inputs.tables[link.name], by_index.get(link.ifindex, []),
                        inputs, main_defaults, copies, lo, lo_up)
        for link, spec in managed
    ]
    return pieces, skipped, inputs


def main_first_rules(pieces: Iterable[Piece], protocol: int) -> list[Rule]:
    """``main-first`` mode: ``lookup main suppress_prefixlength 0`` just before polroutd's
    first rule, per family that has rules."""
    priorities: list[int] = []
    families: set[int] = set()
    for piece in pieces:
        if piece.rules:
            priorities.append(piece.interface.priority)
            families.update(r.family for r in piece.rules)
    if not priorities:
        return []
    first = min(priorities) - 1
    return [
        Rule(family=family, priority=first, table=RT_TABLE_MAIN, protocol=protocol,
             suppress_prefixlen=0)
        for family in sorted(families)
    ]


def assemble(
    pieces: Iterable[Piece], skipped: Iterable[SkippedInterface], inputs: Inputs
) -> DesiredState:
    """The desired state from the interfaces' pieces, listed interface by interface (in name
    order, each piece sorted), so that replacing one piece sorts nothing else. A route that
    two interfaces want goes to the first by name."""
    by_name = sorted(pieces, key=lambda p: p.interface.name)
    rules: list[Rule] = []
    if inputs.config.daemon.mode == "main-first":
        rules.extend(main_first_rules(by_name, inputs.protocol))
    routes: list[Route] = []
    claimed: set[object] = set()
    # Routes each in a table of its interface's own: no key is anyone else's.
    apart = all(p.own_table_only for p in by_name) and len(
        {p.interface.table_id for p in by_name}) == len(by_name)
    for piece in by_name:
        rules.extend(piece.rules)
        if apart:
            routes.extend(piece.routes)
            continue
        for route in piece.routes:
            if route.key not in claimed:
                claimed.add(route.key)
                routes.append(route)
    # The uplink table's rules and routes, after every interface's (core/uplinks.py).
    uplinks = uplink_part(by_name, inputs)
    rules.extend(sorted(uplinks.rules, key=rule_order))
    if uplinks.routes and apart:
        claimed.update(r.key for r in routes)
    routes.extend(r for r in uplinks.routes if r.key not in claimed)
    return DesiredState(
        interfaces=tuple(p.interface for p in by_name),
        rules=tuple(rules),
        routes=tuple(routes),
        tables=frozenset(p.interface.table_id for p in by_name)
        | ({inputs.uplink_table.id} if uplinks.choices and inputs.uplink_table else set()),
        skipped=tuple(sorted(skipped, key=lambda s: s.name)),
        uplinks=uplinks.choices,
    )


def uplink_part(pieces: Iterable[Piece], inputs: Inputs) -> UplinkObjects:
    """The uplinks' rules, routes and choices (nothing with uplinks off or no uplink table).
    They depend on every uplink interface's piece and on the uplinks' health."""
    if inputs.config.daemon.uplinks == "off" or inputs.uplink_table is None:
        return UplinkObjects((), (), ())
    candidates = [(p.interface, *p.uplink) for p in pieces if p.uplink is not None]
    up = {iface.index for iface, link, _ in candidates if link.up}
    return uplink_objects(
        candidates, mode=inputs.config.daemon.uplinks, table=inputs.uplink_table.id,
        priority=inputs.config.daemon.uplink_priority, protocol=inputs.protocol,
        health=inputs.uplink_health,
        # uplink_objects looks at the addresses' families itself; up is what is left
        usable=lambda index, _family: index in up,
    )


def earliest_lease_expiry(desired: DesiredState) -> float | None:
    """When the first DHCP lease that a gateway of ``desired`` comes from expires (Unix time),
    or None: at that moment the gateway has to go (or another lease takes over)."""
    expiries = [
        gateway.lease_expires
        for interface in desired.interfaces
        for gateway in (interface.gateway4, interface.gateway6)
        if gateway.lease_expires is not None
    ]
    return min(expiries, default=None)


# No address sorts before every address. (rule_order and route_order look up _ip_key
# themselves: a plan sorts a thousand rules and every route of polroutd's tables.)
_NO_ADDRESS = (0, 0)


def rule_order(rule: Rule) -> tuple[object, ...]:
    src = rule.src
    return (rule.priority, rule.family, rule.table, _NO_ADDRESS if src is None else _ip_key(src),
            rule.src_len)


def route_order(route: Route) -> tuple[object, ...]:
    # Routes without a gateway first: a gateway must be reachable when its route is added.
    dst, gateway, prefsrc = route.dst, route.gateway, route.prefsrc
    return (
        route.table, route.family, gateway is not None,
        _NO_ADDRESS if dst is None else _ip_key(dst), route.dst_len, route.metric, route.tos,
        _NO_ADDRESS if gateway is None else _ip_key(gateway), route.oif or 0,
        _NO_ADDRESS if prefsrc is None else _ip_key(prefsrc), route.scope, route.type,
    )


def _link_local_uncached(address: str) -> bool:
    """An IPv6 gateway in fe80::/10: reached through the interface itself, whatever its global
    addresses."""
    return ":" in address and ipaddress.ip_address(address).is_link_local


_link_local = functools.lru_cache(maxsize=1 << 12)(_link_local_uncached)


def _ip_key_uncached(address: str) -> tuple[int, int]:
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


_ip_key = functools.lru_cache(maxsize=1 << 16)(_ip_key_uncached)

CACHES = (_excluded, _pattern_kinds, _source_rule, _network_address, _link_local, _ip_key)
