"""``polroutd render``: the desired state as static configuration for other tools
(docs/behaviour.md §3.1).

``render`` is pure (a Decision in, file name -> content out); ``render_command`` reads the
kernel, renders and writes or prints. Every file starts with a header saying what a snapshot
cannot do: follow DHCP renewals, new interfaces or ``ip rule del`` -- the daemon's job.

The texts reuse describe.py's ``ip`` syntax, with two additions so that loading a snapshot
reproduces exactly the objects ``apply`` creates: the protocol, and the metric even where it
is the kernel's default (NetworkManager's ifcfg-rh reader would otherwise apply its own).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from polroutd.core.describe import Names, prefix_text, route_text, route_type_name, rule_text
from polroutd.core.limits import (
    AF_INET,
    AF_INET6,
    IP6_DEFAULT_METRIC,
    RT_SCOPE_HOST,
    RT_SCOPE_LINK,
    RT_SCOPE_UNIVERSE,
    RT_TABLE_DEFAULT,
    RT_TABLE_LOCAL,
    RT_TABLE_MAIN,
    RTN_UNICAST,
)
from polroutd.core.model import DesiredState, ManagedInterface, Route, Rule, host_len

if TYPE_CHECKING:
    from polroutd.core.decision import Decision
    from polroutd.engine import Engine

FORMATS = ("ip-batch", "ifcfg", "interfaces", "networkd", "nmcli")

_KERNEL_TABLES = frozenset({RT_TABLE_MAIN, RT_TABLE_LOCAL, RT_TABLE_DEFAULT})
_FAMILY_FLAG = {AF_INET: "-4", AF_INET6: "-6"}
_NETWORKD_SCOPES = {RT_SCOPE_UNIVERSE: "global", 200: "site", RT_SCOPE_LINK: "link",
                    RT_SCOPE_HOST: "host", 255: "nowhere"}


# ------------------------------------------------------------------ what every format shares


@dataclass(frozen=True, slots=True)
class _Objects:
    """One interface's share of the desired state: its table's routes and rules, and the
    extra main-table routes through it."""

    interface: ManagedInterface
    routes: list[Route] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)

    def routes_of(self, family: int) -> list[Route]:
        return [r for r in self.routes if r.family == family]

    def rules_of(self, family: int) -> list[Rule]:
        return [r for r in self.rules if r.family == family]


@dataclass(frozen=True, slots=True)
class _Snapshot:
    desired: DesiredState
    names: Names  # table names removed when rendering numeric tables
    protocol: str
    generated_at: datetime
    config_file: str | None

    def table(self, number: int) -> str:
        return self.names.table(number)

    def table_label(self, number: int) -> str:
        """``mgt (30000)``, or just the number when the table has no name."""
        name = self.names.table_name(number)
        return f"{name} ({number})" if name and number not in _KERNEL_TABLES else str(number)

    def named_tables(self) -> list[tuple[int, str]]:
        """(number, name) of every non-kernel table the snapshot uses that has a name."""
        used = {r.table for r in self.desired.routes} | {r.table for r in self.desired.rules}
        used |= {i.table_id for i in self.desired.interfaces}
        pairs = [(n, self.names.table_name(n)) for n in sorted(used - _KERNEL_TABLES)]
        return [(n, name) for n, name in pairs if name]

    def by_interface(self) -> list[_Objects]:
        """Routes and rules grouped by the interface whose configuration should carry them."""
        interfaces = self.desired.interfaces
        groups = {i.name: _Objects(i) for i in interfaces}
        if not interfaces:
            return []
        for route in self.desired.routes:
            groups[_route_owner(route, interfaces).name].routes.append(route)
        for rule in self.desired.rules:
            groups[_rule_owner(rule, interfaces).name].rules.append(rule)
        return list(groups.values())


def _route_owner(route: Route, interfaces: Sequence[ManagedInterface]) -> ManagedInterface:
    """The interface a route is configured with: its device when that device is managed and the
    route is in its table (or in a table no interface owns, e.g. main); else the interface
    whose table holds it (copies of docker0's routes go with the table, not the bridge)."""
    device = next((i for i in interfaces if i.index == route.oif), None)
    owners = [i for i in interfaces if i.table_id == route.table]
    if device is not None and (device in owners or not owners):
        return device
    return owners[0] if owners else device or interfaces[0]


def _rule_owner(rule: Rule, interfaces: Sequence[ManagedInterface]) -> ManagedInterface:
    """The interface holding the rule's source address; rules without one (main-first's
    suppress rule) go with the first interface."""
    for interface in interfaces:
        if any(a.split("/")[0].split()[0] == rule.src for a in interface.addresses):
            return interface
    owner = next((i for i in interfaces if i.table_id == rule.table), None)
    return owner or interfaces[0]


def _without_table_names(names: Names) -> Names:
    return Names(links=names.links, tables={}, protocols=names.protocols)


def _metric(route: Route) -> int:
    if route.family == AF_INET6 and route.metric == 0:
        return IP6_DEFAULT_METRIC  # what the kernel stores for an IPv6 metric of 0
    return route.metric


def route_args(route: Route, snap: _Snapshot, *, main_table_implicit: bool = False) -> str:
    """``ip route add`` arguments that recreate exactly this route (metric and protocol
    explicit)."""
    text, _, hops = route_text(route, snap.names).partition(" nexthop ")
    head, _, table = text.rpartition(" table ")
    shown = route.metric and not (route.family == AF_INET6 and route.metric == IP6_DEFAULT_METRIC)
    words = [head]
    if not shown:  # describe.py leaves the kernel's default metric out
        words.append(f"metric {_metric(route)}")
    if not (main_table_implicit and route.table == RT_TABLE_MAIN):
        words.append(f"table {table}")
    words.append(f"proto {snap.protocol}")
    if hops:
        words.append(f"nexthop {hops}")
    return " ".join(words)


def rule_args(rule: Rule, snap: _Snapshot) -> str:
    """``ip rule add`` arguments that recreate exactly this rule (priority and protocol)."""
    return f"{rule_text(rule, snap.names)} protocol {snap.protocol}"


def _source(rule: Rule) -> str | None:
    if rule.src is None or not rule.src_len:
        return None
    return rule.src if rule.src_len == host_len(rule.family) else f"{rule.src}/{rule.src_len}"


UPLINKS_NOTE = (
    "Uplinks: the uplink table's rules and its default routes are here as the links",
    "were at that moment (every uplink with carrier; failover by metric, balance as one",
    "multipath route). Switching on health - neighbour failures, probes of the path",
    "beyond the gateway, and recovery only after probe_up successes - needs the daemon.",
)


def _comment(lines: Sequence[str]) -> list[str]:
    return [f"# {line}".rstrip() for line in lines]


def _header(snap: _Snapshot, what: str, load: Sequence[str], notes: Sequence[str] = ()) -> str:
    """The comment every rendered file starts with."""
    config = snap.config_file or "<defaults>"
    when = snap.generated_at.isoformat(timespec="seconds")
    lines = [
        f"polroutd render: {what}",
        "",
        f"A STATIC SNAPSHOT of polroutd's desired state, generated at {when}",
        "from the current kernel state and the configuration",
        f"{config}.",
        "It does NOT follow DHCP renewals or other address changes, new or removed",
        "interfaces, or a stray `ip rule del`: it pins what polroutd wanted at that",
        "moment. Keeping policy routing true continuously is why the polroutd daemon",
        "exists.",
        "",
        "How to load it:",
        *(f"  {line}" for line in load),
    ]
    if notes:
        lines += ["", *notes]
    if snap.desired.uplinks:
        lines += ["", *UPLINKS_NOTE]
    tables = [f"  table {n} = {name}" for n, name in snap.named_tables()]
    if tables:
        lines += ["", "Tables:", *tables]
    return "\n".join(_comment(lines)) + "\n"


def _protocol_note(snap: _Snapshot) -> list[str]:
    if snap.protocol.isdigit():
        return []
    return [f"`proto {snap.protocol}` is a name from this host's /etc/iproute2/rt_protos(.d); a",
            "host whose `ip` does not know it rejects the lines (the polroutd package",
            "registers `polroutd` in /etc/iproute2/rt_protos.d/)."]


def _unexpressible(route: Route, owner: ManagedInterface) -> bool:
    """networkd and NetworkManager attach a route to the profile's own device only (a route
    of another type than unicast has no device of its own: IPv6 shows it on lo)."""
    return route.type == RTN_UNICAST and route.oif is not None and route.oif != owner.index


def _no_multipath(route: Route) -> bool:
    """A NetworkManager profile's route has one next hop: balance's multipath default
    cannot be written as one (rendered as a comment instead)."""
    return bool(route.nexthops)


def _file(header: str, body: Sequence[str]) -> str:
    return header + ("\n" + "\n".join(body) + "\n" if body else "")


# ------------------------------------------------------------------ ip-batch


BATCH_FILES = {AF_INET: "polroutd.ip-batch", AF_INET6: "polroutd6.ip-batch"}


def _ip_batch(snap: _Snapshot) -> dict[str, str]:
    numeric = replace(snap, names=_without_table_names(snap.names))
    files = {}
    for family, label in ((AF_INET, "IPv4"), (AF_INET6, "IPv6")):
        flag, other = _FAMILY_FLAG[family], AF_INET6 if family == AF_INET else AF_INET
        body = []
        for group in snap.by_interface():
            lines = [f"route add {route_args(r, numeric)}" for r in group.routes_of(family)]
            lines += [f"rule add {rule_args(r, numeric)}" for r in group.rules_of(family)]
            if lines:
                body += [f"# {group.interface.name}: table "
                         f"{snap.table_label(group.interface.table_id)}", *lines, ""]
        header = _header(
            snap,
            f"{label} routes and rules for `ip {flag} -batch`",
            [f"ip {flag} -batch {BATCH_FILES[family]}",
             f"ip {_FAMILY_FLAG[other]} -batch {BATCH_FILES[other]}   (the other family)",
             "`ip rule` in batch mode cannot tell an IPv6 rule by its address, hence one file",
             "per family. Tables are numbers, so no rt_tables names are needed.",
             f"Undo: `polroutd flush` (removes every object with protocol {snap.protocol})."],
            _protocol_note(snap),
        )
        files[BATCH_FILES[family]] = _file(header, body[:-1] or [f"# (no {label} routes or rules)"])
    return files


# ------------------------------------------------------------------ ifcfg (Red Hat network-scripts)


def _ifcfg(snap: _Snapshot) -> dict[str, str]:
    files: dict[str, str] = {}
    load = [
        "Copy the route-*, route6-*, rule-* and rule6-* files to /etc/sysconfig/network-scripts/",
        "and rt_tables.d/polroutd.conf to /etc/iproute2/rt_tables.d/ (on an iproute2 without",
        "rt_tables.d, append its lines to /etc/iproute2/rt_tables, as the article does);",
        "then `ifdown IF; ifup IF` per interface, or `systemctl restart network`.",
        "ifup-routes runs each non-comment line as `ip route add LINE` (route6-: `ip -6 route",
        "add`, rule-: `ip rule add`, rule6-: `ip -6 rule add`).",
    ]
    notes = [
        "NetworkManager reads these files too (ifcfg-rh; rule- files since NM 1.0), but",
        "applies them with its own protocol, so `polroutd flush` will not remove them.",
        *_protocol_note(snap),
    ]
    for group in snap.by_interface():
        name = group.interface.name
        for prefix, family, make in (
            ("route", AF_INET, "routes"), ("route6", AF_INET6, "routes"),
            ("rule", AF_INET, "rules"), ("rule6", AF_INET6, "rules"),
        ):
            if make == "routes":
                body = [route_args(r, snap, main_table_implicit=True)
                        for r in group.routes_of(family)]
            else:
                body = [rule_args(r, snap) for r in group.rules_of(family)]
            if body:
                what = f"{prefix}-{name}: {'IPv6' if family == AF_INET6 else 'IPv4'} {make} " \
                       f"of {name} (table {snap.table_label(group.interface.table_id)})"
                files[f"{prefix}-{name}"] = _file(_header(snap, what, load, notes), body)
    tables = [f"{number} {name}" for number, name in snap.named_tables()]
    if tables:
        header = _header(snap, "rt_tables lines for the table names the route-/rule- files use",
                         load, notes)
        files["rt_tables.d/polroutd.conf"] = _file(header, tables)
    return files


# ------------------------------------------------------------------ Debian ifupdown


def _interfaces(snap: _Snapshot) -> dict[str, str]:
    load = [
        "ifupdown only takes post-up/pre-down lines inside an `iface` stanza, and a second",
        "stanza for the same interface and family is an error. So every line below is",
        "COMMENTED OUT (the file is harmless even if /etc/network/interfaces.d/* is sourced):",
        "paste each block into the interface's existing stanza in /etc/network/interfaces and",
        "remove the leading '#'. IPv6 lines belong in the `inet6` stanza when there is one",
        "(the IPv6 source addresses must exist when they run), else in the `inet` stanza.",
        "Then `ifdown IF; ifup IF`.",
        "ifupdown runs post-up once the interface is configured and pre-down before it is",
        "deconfigured (`|| true` there: ifdown must not stop at an object already gone).",
    ]
    body: list[str] = []
    for group in snap.by_interface():
        name = group.interface.name
        body.append(f"# ==== {name}: table {snap.table_label(group.interface.table_id)} ====")
        for family, stanza in ((AF_INET, "inet"), (AF_INET6, "inet6")):
            routes, rules = group.routes_of(family), group.rules_of(family)
            if not routes and not rules:
                continue
            flag = _FAMILY_FLAG[family]
            body.append(f"# -- paste into: iface {name} {stanza} ...")
            body += [f"#    post-up ip {flag} route add {route_args(r, snap)}" for r in routes]
            body += [f"#    post-up ip {flag} rule add {rule_args(r, snap)}" for r in rules]
            body += [f"#    pre-down ip {flag} rule del {rule_args(r, snap)} || true"
                     for r in reversed(rules)]
            body += [f"#    pre-down ip {flag} route del {route_args(r, snap)} || true"
                     for r in reversed(routes)]
        body.append("")
    header = _header(snap, "post-up/pre-down lines for Debian ifupdown (/etc/network/interfaces)",
                     load, _protocol_note(snap))
    return {"interfaces.d/polroutd": _file(header, body[:-1])}


# ------------------------------------------------------------------ systemd-networkd


def _networkd_table(number: int, snap: _Snapshot) -> str:
    return snap.table(number)  # a name from RouteTable=, main/local/default, or the number


def _networkd_route(route: Route, snap: _Snapshot) -> list[str]:
    destination = prefix_text(route.dst, route.dst_len, route.family, cidr=True)
    lines = ["[Route]", f"Destination={destination}"]
    if route.type != RTN_UNICAST:
        lines.append(f"Type={route_type_name(route.type)}")
    if route.gateway is not None:
        # networkd turns GatewayOnLink= on by itself for a .network without static addresses
        # (DHCP); the route would then differ from polroutd's by the onlink flag.
        lines += [f"Gateway={route.gateway}", "GatewayOnLink=no"]
    # balance's multipath default: one MultiPathRoute= per next hop (systemd >= 243)
    lines += [f"MultiPathRoute={hop.gateway}@{snap.names.link(hop.oif)} {hop.weight}"
              for hop in route.nexthops if hop.gateway is not None]
    if route.family == AF_INET:
        lines.append(f"Scope={_NETWORKD_SCOPES.get(route.scope, str(route.scope))}")
    if route.prefsrc is not None:
        lines.append(f"PreferredSource={route.prefsrc}")
    lines += [f"Table={_networkd_table(route.table, snap)}", f"Metric={_metric(route)}",
              f"Protocol={route.protocol}"]
    return lines


def _networkd_rule(rule: Rule, snap: _Snapshot) -> list[str]:
    lines = ["[RoutingPolicyRule]"]
    source = _source(rule)
    if source is not None:
        lines.append(f"From={source}")
    lines += [f"Table={_networkd_table(rule.table, snap)}", f"Priority={rule.priority}"]
    if source is None:  # without From= networkd would assume IPv4
        lines.append(f"Family={'ipv6' if rule.family == AF_INET6 else 'ipv4'}")
    if rule.suppress_prefixlen is not None:
        lines.append(f"SuppressPrefixLength={rule.suppress_prefixlen}")
    return lines


def _networkd(snap: _Snapshot) -> dict[str, str]:
    load = [
        "Copy IF.network.d/polroutd.conf into the drop-in directory of the .network file that",
        "matches IF: the directory is named after that file, e.g. for",
        "/etc/systemd/network/10-ens192.network use",
        "/etc/systemd/network/10-ens192.network.d/polroutd.conf (`networkctl status IF` shows",
        "the file). Copy networkd.conf.d/polroutd-tables.conf to /etc/systemd/networkd.conf.d/.",
        "Then `systemctl restart systemd-networkd` (networkd.conf is read at start only).",
    ]
    notes = [
        "Named tables need RouteTable= (systemd >= 248); on older systemd use the numbers.",
        "networkd cannot express a rule for an address DHCP may change (systemd issue",
        "#33540): these rules pin today's addresses.",
        "[RoutingPolicyRule] has no Protocol=: networkd gives its rules its own protocol,",
        "so `polroutd flush` leaves them and a running polroutd reports them as conflicts.",
        "Routes keep polroutd's protocol (Protocol=). networkd attaches routes to the",
        "interface of the .network file only; routes through other devices (copies of",
        "container bridges' routes) are listed as comments and not configured.",
    ]
    files: dict[str, str] = {}
    for group in snap.by_interface():
        body: list[str] = []
        for route in group.routes:
            if _unexpressible(route, group.interface):
                body += [f"# not expressible here: {route_args(route, snap)}", ""]
                continue
            body += [*_networkd_route(route, snap), ""]
        for rule in group.rules:
            body += [*_networkd_rule(rule, snap), ""]
        what = (f"systemd-networkd drop-in for {group.interface.name} (table "
                f"{snap.table_label(group.interface.table_id)})")
        files[f"{group.interface.name}.network.d/polroutd.conf"] = _file(
            _header(snap, what, load, notes), body[:-1] if body and not body[-1] else body)
    route_tables = " ".join(f"{name}:{number}" for number, name in snap.named_tables())
    body = ["[Network]"]
    if route_tables:
        body.append(f"RouteTable={route_tables}")
    body += [
        "# Leave rules and routes alone that no .network file configures (those of a",
        "# polroutd daemon, container runtimes, VPNs), instead of deleting them on reload.",
        "ManageForeignRoutingPolicyRules=no",
        "ManageForeignRoutes=no",
    ]
    files["networkd.conf.d/polroutd-tables.conf"] = _file(
        _header(snap, "networkd.conf drop-in: table names and foreign objects", load, notes), body)
    return files


# ------------------------------------------------------------------ NetworkManager (nmcli)

def nm_route(route: Route) -> str:
    """An ``ipv4.routes``/``ipv6.routes`` entry: ``ip[/prefix] [next-hop] [metric]
    [attribute=value]...`` (nm-settings-nmcli). Tables are numbers: NM knows no names."""
    words = [prefix_text(route.dst, route.dst_len, route.family, cidr=True)]
    if route.gateway is not None:
        words.append(route.gateway)
    words += [str(_metric(route)), f"table={route.table}"]
    if route.type != RTN_UNICAST:
        words.append(f"type={route_type_name(route.type)}")
    if route.family == AF_INET and route.scope != RT_SCOPE_UNIVERSE:
        words.append(f"scope={route.scope}")
    if route.prefsrc is not None:
        words.append(f"src={route.prefsrc}")
    return " ".join(words)


def nm_rule(rule: Rule) -> str:
    """An ``ipv4.routing-rules`` entry: ``ip rule add`` syntax with a mandatory priority."""
    source = _source(rule) or prefix_text(None, 0, rule.family, cidr=True)
    words = [f"priority {rule.priority}", f"from {source}", f"table {rule.table}"]
    if rule.suppress_prefixlen is not None:
        words.append(f"suppress_prefixlength {rule.suppress_prefixlen}")
    return " ".join(words)


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _nmcli(snap: _Snapshot) -> dict[str, str]:
    load = [
        "As root, on the host: `sh polroutd-nmcli.sh`. It adds the routes and rules to the",
        "connection profile active on each interface (persistently; entries a profile",
        "already has are not duplicated) and applies them with `nmcli device reapply`.",
        "Undo: the same `nmcli connection modify` with -ipv4.routes/-ipv4.routing-rules.",
    ]
    notes = [
        "NetworkManager gives the routes and rules its own protocol, so `polroutd flush`",
        "leaves them and a running polroutd reports them as conflicts. Tables are numbers",
        "(NM knows no table names). Rules pin today's addresses. NM attaches routes to the",
        "profile's device only; routes through other devices (copies of container",
        "bridges' routes) and multipath routes (uplinks = \"balance\") are listed as",
        "comments and not configured.",
    ]
    body = ["set -eu", ""]
    for group in snap.by_interface():
        name = group.interface.name
        quoted = _shell_quote(name)
        body += [
            f"# {name}: table {snap.table_label(group.interface.table_id)}",
            f"CONN=$(nmcli -g GENERAL.CONNECTION device show {quoted})",
            'if [ -z "$CONN" ]; then',
            f"    echo {_shell_quote(f'polroutd-nmcli.sh: no active connection on {name}')} >&2",
            "    exit 1",
            "fi",
        ]
        args: list[str] = []
        for family, setting in ((AF_INET, "ipv4"), (AF_INET6, "ipv6")):
            for route in group.routes_of(family):
                if _unexpressible(route, group.interface) or _no_multipath(route):
                    body.append(f"# not expressible here: {route_args(route, snap)}")
                else:
                    args.append(f"+{setting}.routes {_shell_quote(nm_route(route))}")
            args += [f"+{setting}.routing-rules {_shell_quote(nm_rule(rule))}"
                     for rule in group.rules_of(family)]
        if args:
            body.append('nmcli connection modify "$CONN" \\')
            body += [f"    {arg} \\" for arg in args[:-1]] + [f"    {args[-1]}"]
            body.append(f"nmcli device reapply {quoted}")
        body.append("")
    header = _header(snap, "nmcli commands for NetworkManager", load, notes)
    return {"polroutd-nmcli.sh": "#!/bin/sh\n" + _file(header, body[:-1])}


# ------------------------------------------------------------------ entry points

_RENDERERS: Mapping[str, Callable[[_Snapshot], dict[str, str]]] = {
    "ip-batch": _ip_batch,
    "ifcfg": _ifcfg,
    "interfaces": _interfaces,
    "networkd": _networkd,
    "nmcli": _nmcli,
}


def render(
    decision: Decision,
    fmt: str,
    protocol_name: str,
    *,
    generated_at: datetime,
    numeric_tables: bool = False,
    config_file: str | None = None,
) -> dict[str, str]:
    """The files of one format: relative name -> content.

    ``protocol_name`` is how ``ip`` is to name polroutd's protocol (a name it knows, else the
    number). ``numeric_tables`` writes table numbers instead of names (for loading where no
    rt_tables names exist). ``generated_at`` is the time the header states (the caller's clock:
    rendering itself is pure).
    """
    names = _without_table_names(decision.names) if numeric_tables else decision.names
    snap = _Snapshot(
        desired=decision.desired,
        names=names,
        protocol=protocol_name,
        generated_at=generated_at,
        config_file=config_file,
    )
    try:
        renderer = _RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})") from None
    return renderer(snap)


def concatenate(files: Mapping[str, str]) -> str:
    """Files as printed on stdout: each preceded by a ``# ==> NAME <==`` line."""
    return "\n".join(f"# ==> {name} <==\n{content}" for name, content in files.items())


def ip_protocol_name(setting: str | int, number: int, known: Mapping[str, int]) -> str:
    """How ``ip`` can name the protocol: the configured name when ``ip`` knows it, else any name
    it knows for the number, else the number itself."""
    if isinstance(setting, str) and known.get(setting) == number:
        return setting
    return next((name for name, n in known.items() if n == number), str(number))


def write_files(out: Path, files: Mapping[str, str]) -> list[Path]:
    written = []
    for name, content in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        if content.startswith("#!"):
            os.chmod(path, 0o755)
        written.append(path)
    return written


def render_command(engine: Engine, fmt: str, out: Path | None) -> int:
    """``polroutd render``: read the kernel, decide, render; write into ``out`` or print."""
    decision = engine.read_and_decide()
    protocol = ip_protocol_name(engine.config.daemon.protocol, engine.protocol,
                                engine.registry.protocols)
    files = render(decision, fmt, protocol, generated_at=datetime.now(UTC).astimezone(),
                   config_file=engine.config.source)
    if out is None:
        sys.stdout.write(concatenate(files))
        return 0
    for path in write_files(out, files):
        print(f"wrote {path}")
    return 0


def command(args: argparse.Namespace) -> int:
    from polroutd.cli.common import kernel_engine, load

    return render_command(kernel_engine(load(args)), args.format,
                          Path(args.out) if args.out else None)
