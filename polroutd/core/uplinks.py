"""The uplink table and its two rules (docs/uplinks.md): pure, with health as an input.

``lookup main suppress_prefixlength 0`` at ``uplink_priority`` lets main's specific routes win;
``lookup <uplink table>`` at the next priority then gives traffic that chose no source address
polroutd's default routes: one per healthy uplink by metric (failover), or one multipath route
over every healthy uplink by weight (balance). Main's own default (a DHCP client's) stays the
last resort when no uplink is healthy; polroutd never touches it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

from polroutd.core.limits import (
    AF_INET,
    AF_INET6,
    IP6_DEFAULT_METRIC,
    RT_SCOPE_LINK,
    RT_SCOPE_UNIVERSE,
    RT_TABLE_MAIN,
)
from polroutd.core.model import (
    Gateway,
    Link,
    ManagedInterface,
    NextHop,
    Route,
    Rule,
    UplinkChoice,
)
from polroutd.core.settings import UplinkMode, UplinkSpec

HealthView = Mapping[tuple[str, int], bool]  # (interface, family) -> up; absent: the link says


class UplinkObjects(NamedTuple):
    rules: tuple[Rule, ...]
    routes: tuple[Route, ...]
    choices: tuple[UplinkChoice, ...]


def _any(family: int) -> str:
    return "0.0.0.0" if family == AF_INET else "::"


def _metric(family: int, metric: int) -> int:
    # IPv6 routes added with metric 0 are stored with 1024: ask for what the kernel will show.
    return IP6_DEFAULT_METRIC if family == AF_INET6 and metric == 0 else metric


def uplink_rules(families: Iterable[int], priority: int, table: int, protocol: int) -> list[Rule]:
    rules = []
    for family in sorted(set(families)):
        rules.append(Rule(family=family, priority=priority, table=RT_TABLE_MAIN,
                          protocol=protocol, suppress_prefixlen=0))
        rules.append(Rule(family=family, priority=priority + 1, table=table, protocol=protocol))
    return rules


def uplink_objects(
    candidates: Iterable[tuple[ManagedInterface, Link, UplinkSpec]],
    *,
    mode: UplinkMode,
    table: int,
    priority: int,
    protocol: int,
    health: HealthView | None,
    usable: Callable[[int, int], bool],
) -> UplinkObjects:
    """The rules, routes and choices for the uplinks among the managed interfaces.

    ``usable(ifindex, family)``: whether the interface can hold a route of that family now
    (up, with an address of the family). ``health`` absent (commands, render): an uplink is
    healthy when its link is up with carrier; the daemon passes what it observed."""
    choices: list[UplinkChoice] = []
    paths: dict[int, list[tuple[int, str, ManagedInterface, Gateway, UplinkSpec]]] = {}
    families: set[int] = set()
    for iface, link, spec in sorted(candidates, key=lambda c: (c[2].metric, c[0].name)):
        for family, gateway in ((AF_INET, iface.gateway4), (AF_INET6, iface.gateway6)):
            if not any((":" in a) == (family == AF_INET6) for a in iface.addresses):
                continue  # no address of this family: not an uplink for it
            families.add(family)
            seen = health.get((iface.name, family)) if health is not None else None
            # The kernel's link state is certain and read fresh: it vetoes whatever was seen.
            healthy = link.up and link.carrier and seen is not False
            reason = None
            if not gateway.present:
                reason = gateway.reason or "no gateway"
            elif not usable(iface.index, family):
                reason = "link down"
            elif not healthy:
                reason = "down"
            if reason is None:
                paths.setdefault(family, []).append(
                    (_metric(family, spec.metric), iface.name, iface, gateway, spec))
            choices.append(UplinkChoice(iface.name, family, healthy and reason is None, False,
                                        spec.metric, spec.weight, reason))
    routes: list[Route] = []
    active: set[tuple[str, int]] = set()
    for family, found in sorted(paths.items()):
        if mode == "failover":
            keys: set[int] = set()
            for metric, name, iface, gateway, _spec in found:
                if metric in keys:
                    continue  # equal metrics: the first by name holds the place
                keys.add(metric)
                routes.append(_default(family, table, protocol, metric, iface.index, gateway))
                if len(keys) == 1:
                    active.add((name, family))
        else:
            hops = sorted(found, key=lambda f: f[2].index)
            if len(hops) == 1:  # the kernel shows a one-path multipath route as a plain one
                _m, name, iface, gateway, _spec = hops[0]
                routes.append(_default(family, table, protocol, _metric(family, 0), iface.index,
                                       gateway))
            else:
                routes.append(Route(
                    family=family, table=table, dst=_any(family), dst_len=0, protocol=protocol,
                    metric=_metric(family, 0),
                    nexthops=tuple(NextHop(i.index, g.address, s.weight)
                                   for _m, _n, i, g, s in hops),
                ))
            active.update((name, family) for _m, name, *_rest in hops)
    choices = [c._replace(active=(c.interface, c.family) in active) for c in choices]
    return UplinkObjects(
        rules=tuple(uplink_rules(families, priority, table, protocol)),
        routes=tuple(routes),
        choices=tuple(sorted(choices, key=lambda c: (c.interface, c.family))),
    )


def _default(
    family: int, table: int, protocol: int, metric: int, oif: int, gateway: Gateway
) -> Route:
    device_only = gateway.address is None and family == AF_INET
    return Route(family=family, table=table, dst=_any(family), dst_len=0, protocol=protocol,
                 metric=metric, oif=oif, gateway=gateway.address,
                 scope=RT_SCOPE_LINK if device_only else RT_SCOPE_UNIVERSE)
