"""The man pages polroutd(8) and polroutd.toml(5), generated from the code they describe.

The commands and their options come from the argparse parser (``polroutd.cli.parser.build_parser``),
the configuration keys and their defaults from the configuration's records
(``DaemonSettings``, ``InterfaceSpec``, ``RouteSpec``) and the limits from the constants the
validation uses, so the pages cannot drift from the code. What the code cannot say (what a key
means, what a command's exit codes are) is in the tables below, keyed by name; generating a page
fails when a command or a key has no entry there.

    python3 -m polroutd.cli.manpages --out DIR      writes DIR/polroutd.8 and DIR/polroutd.toml.5
    python3 -m polroutd.cli.manpages --check DIR    exit status 1 when the pages in DIR differ
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polroutd import __version__
from polroutd.cli.common import EXIT_ERROR, EXIT_OK, EXIT_USAGE
from polroutd.cli.parser import build_parser
from polroutd.config import parse
from polroutd.core import limits, settings
from polroutd.core.record import MISSING, fields

PAGES = {"polroutd.8": "polroutd", "polroutd.toml.5": "polroutd.toml"}
SECTIONS = {  # TOML table -> (record class, how the page spells the table)
    "daemon": (settings.DaemonSettings, "[daemon]"),
    "interface": (settings.InterfaceSpec, "[[interface]]"),
    "interface.routes": (settings.RouteSpec, "[[interface]] routes = [ { ... } ]"),
}

_LOWEST_PROTOCOL = max(limits.RESERVED_PROTOCOLS) + 1

# --- polroutd(8): what the parser cannot say ------------------------------------------------

# Per command: a longer description and its exit codes (status, meaning).
COMMANDS: dict[str, tuple[str, list[tuple[int, str]]]] = {
    "run": (
        "It reconciles at start-up, then on every netlink event (debounced), every "
        "resync_interval seconds and on SIGHUP, which re-reads the "
        "configuration. Under systemd it is Type=notify: READY=1 once the first reconcile "
        "converged, the watchdog fed only while the loop is healthy. Stopping leaves the rules "
        "and routes in place unless cleanup_on_exit is set.",
        [(EXIT_OK, "clean stop"), (EXIT_ERROR, "runtime failure"),
         (EXIT_USAGE, "bad usage or invalid configuration (nothing touched)")],
    ),
    "plan": (
        "Conflicts (objects of another protocol in the way of polroutd's) are listed too; "
        "--json prints both as one JSON document.",
        [(EXIT_OK, "in sync"), (EXIT_USAGE, "changes pending"),
         (EXIT_ERROR, "error, including an invalid configuration")],
    ),
    "apply": (
        "For ifup and dispatcher hooks or cron, on hosts that do not run the daemon.",
        [(EXIT_OK, "every operation succeeded"), (EXIT_ERROR, "an operation failed"),
         (EXIT_USAGE, "bad usage or invalid configuration")],
    ),
    "check-config": (
        "Prints a one-line summary; an error names the file, the key, the line and what is "
        "expected. Table and protocol names are resolved against iproute2's files; the kernel "
        "is not asked.",
        [(EXIT_OK, "valid"), (EXIT_USAGE, "invalid")],
    ),
    "render": (
        "A static snapshot for another tool (it does not follow later changes): ip-batch "
        "(ip -batch files), ifcfg (Red Hat network-scripts), "
        "interfaces (Debian ifupdown), networkd (systemd-networkd drop-ins) or nmcli (a "
        "NetworkManager script). Every file starts with a header saying how to load it.",
        [(EXIT_OK, "written"), (EXIT_ERROR, "error"),
         (EXIT_USAGE, "bad usage or invalid configuration")],
    ),
    "flush": (
        "Rules and routes of any other protocol are left alone.",
        [(EXIT_OK, "everything removed"),
         (EXIT_ERROR, "an operation failed, or the configuration is invalid")],
    ),
    "status": (
        "Interfaces, gateways (or why one is missing), pending operations and conflicts.",
        [(EXIT_OK, "in sync"), (EXIT_ERROR, "the daemon is unreachable"),
         (EXIT_USAGE, "not in sync")],
    ),
    "demo": (
        "The problem and the fix, in network namespaces it creates and removes (never the "
        "host's own network). Needs root.",
        [(EXIT_OK, "every step behaved as narrated"), (EXIT_ERROR, "a step did not")],
    ),
}

SIGNALS = [
    ("SIGHUP", "run: re-read the configuration (systemctl reload). An invalid file is refused "
               "and the old configuration kept; http_listen, log_format and log_level take "
               "effect on restart."),
    ("SIGTERM, SIGINT", "run: stop cleanly (exit status 0), leaving rules and routes in place "
                        "unless cleanup_on_exit is true."),
]

ENVIRONMENT = [
    (parse.CONFIG_ENV_VAR, f"the configuration file when --config is not given (default "
                            f"{parse.DEFAULT_CONFIG_PATH})."),
    ("NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID", "set by systemd: readiness, status and "
                                                   "watchdog notifications (sd_notify(3))."),
    ("JOURNAL_STREAM", "set by systemd: with log_format auto, logs go to the journal with "
                       "structured fields."),
    ("POLROUTD_EVENT_RCVBUF", "the netlink event socket's receive buffer in bytes (default "
                              "large enough for storms of thousands of events)."),
]

FILES = [
    (str(parse.DEFAULT_CONFIG_PATH), "the configuration, see polroutd.toml(5)."),
    (settings.DaemonSettings().rt_tables_file, "the table names polroutd allocated "
                                             "(rt_tables_file), kept across restarts."),
    ("/etc/iproute2/rt_protos.d/polroutd.conf", "names routing protocol 218 polroutd, so ip(8) "
                                                "prints proto polroutd."),
    ("/lib/systemd/system/polroutd.service", "the hardened systemd unit (/usr/lib/systemd/system "
                                             "on newer systems)."),
    ("/usr/lib/sysusers.d/polroutd.conf", "creates the polroutd system user."),
    ("/usr/lib/tmpfiles.d/polroutd.conf", "lets that user keep its file in "
                                          "/etc/iproute2/rt_tables.d."),
    ("/usr/share/polroutd/", "drop-ins for systemd-networkd and NetworkManager, Prometheus alert "
                             "rules and a Grafana dashboard (contrib/ in the source)."),
]

EXAMPLES = [
    ("See what polroutd would do before it does it:",
     "polroutd check-config && polroutd plan"),
    ("Validate a new file before reloading the daemon with it:",
     "polroutd check-config --config /etc/polroutd/polroutd.toml.new"),
    ("The persistent equivalent for systemd-networkd, as files:",
     "polroutd render --format networkd --out /tmp/polroutd-networkd"),
    ("Enable the daemon (packages install it disabled):",
     "systemctl enable --now polroutd"),
    ("What a running daemon keeps:",
     "polroutd status\nip rule show proto polroutd\nip route show table all proto polroutd"),
]

# --- polroutd.toml(5): what each key means and how it is checked ----------------------------

KEYS: dict[str, str] = {
    "daemon.uplinks":
        '"off", "failover" (the healthy uplink with the lowest uplink_metric carries the '
        'connections that chose no source address) or "balance" (one multipath default route '
        "over every healthy uplink, by uplink_weight). See docs/uplinks.md.",
    "daemon.uplink_table":
        "polroutd's own table for the healthy uplinks' default routes: a name (allocated and "
        "registered like an interface table) or a number.",
    "daemon.uplink_priority":
        "Priority of the rule lookup main suppress_prefixlength 0; lookup uplink_table sits at "
        f"the next priority. From 1 to {limits.MAX_RULE_PRIORITY - 1}, after every "
        "per-address rule.",
    "interface.uplink":
        "true: this interface's gateway may carry the connections that chose no source "
        'address (needs daemon.uplinks other than "off" and a gateway).',
    "interface.uplink_metric":
        f"Failover order, lower wins; an integer from 0 to {limits.MAX_METRIC}.",
    "interface.uplink_weight":
        f"Balance: this uplink's share of new flows; an integer from 1 to {limits.MAX_WEIGHT}.",
    "interface.probe":
        '"none" (link and neighbour events only), "icmp" (an unprivileged ping from the '
        'interface\'s address; needs net.ipv4.ping_group_range) or "tcp:HOST:PORT" (a connect).',
    "interface.probe_targets":
        "icmp: the addresses to ping, of the gateway's family.",
    "interface.probe_interval": "Seconds between probes, from 0.01 to 3600.",
    "interface.probe_timeout": "Seconds a probe may take, from 0.01 to 3600.",
    "interface.probe_down": "Probes failed in a row that make the uplink down (1 or more).",
    "interface.probe_up":
        "Probes answered in a row (link up, neighbour reachable) that make it up again "
        "(1 or more).",
    "daemon.http_listen":
        'Where the read-only HTTP API (/healthz, /readyz, /metrics, /state, /openapi.json) '
        'listens: "HOST:PORT" or "[IPv6]:PORT" with a literal IP address and a port from 1 to '
        f'{limits.MAX_PORT}; "" disables it. Takes effect on restart.',
    "daemon.resync_interval":
        "Seconds between full re-reads of the kernel's state (jittered by 10 %); a number "
        "greater than 0.",
    "daemon.debounce":
        "Seconds of quiet that end a burst of netlink events before a reconcile; a number of 0 "
        "or more, at most max_delay.",
    "daemon.max_delay":
        "A storm of events never delays a reconcile longer than this many seconds; a number "
        "greater than 0, at least debounce.",
    "daemon.protocol":
        "The routing protocol every rule and route of polroutd carries; polroutd changes or "
        "deletes only objects with it. A name from rt_protos(.d) (polroutd is 218 when not "
        f"registered) or a number from {_LOWEST_PROTOCOL} to {limits.MAX_PROTOCOL}; "
        + ", ".join(f"{n} ({name})" for n, name in sorted(limits.RESERVED_PROTOCOLS.items()))
        + " are reserved and refused.",
    "daemon.mode":
        f"{' or '.join(settings.MODES)}. strict: each table also gets copies of main-table "
        "routes through devices polroutd does not manage (container and VM bridges). "
        "main-first: a rule lookup main suppress_prefixlength 0 just ahead of polroutd's rules.",
    "daemon.rule_priority":
        "Priority of the from ADDRESS lookup TABLE rules; an integer from 1 to "
        f"{limits.MAX_RULE_PRIORITY} (below the main table's rule at {limits.MAIN_RULE_PRIORITY}"
        f"); at least {limits.MIN_MAIN_FIRST_PRIORITY} in main-first mode.",
    "daemon.table_range":
        "[low, high]: the numbers tables with a name get; integers from 1 to "
        f"{limits.MAX_TABLE}, low <= high, not containing the kernel's reserved tables "
        + ", ".join(str(t) for t in sorted(limits.RESERVED_TABLE_NAMES.values()) if t) + ".",
    "daemon.rt_tables_file":
        "The file polroutd keeps its table names in (replaced atomically), so ip(8) shows "
        'names; an absolute path, or "" not to write one. If it cannot be written the rules '
        "and routes are applied all the same and a warning says why.",
    "daemon.exclude":
        "Interface names or shell globs never managed when there is no [[interface]] entry; "
        "an array of non-empty strings.",
    "daemon.cleanup_on_exit":
        "true: remove polroutd's rules and routes when the daemon stops (false keeps them, so "
        "a restart or upgrade causes no outage).",
    "daemon.log_format":
        f"{', '.join(settings.LOG_FORMATS)}. auto: the journal under systemd, readable lines on "
        "a terminal, else JSON lines. Takes effect on restart.",
    "daemon.log_level":
        f"{', '.join(settings.LOG_LEVELS)}. Every applied operation is logged once at info. "
        "Takes effect on restart.",
    "daemon.dhcp_lease_paths":
        "Where DHCP leases are looked for (gateway auto, IPv4): absolute paths or globs; "
        "{ifname} and {ifindex} are filled in, no other placeholder is allowed.",
    "interface.name":
        "An exact interface name (1 to 15 characters, no '/', ':' or spaces) or a "
        "shell glob (each matching interface gets its own table, named after it). Entries must "
        "not overlap.",
    "interface.table":
        f"The interface's table: a name (letters, digits, '_', '.', '-', starting with a "
        f"letter; numbered from table_range and registered in rt_tables_file) or a number from "
        f"1 to {limits.MAX_TABLE}. Not a reserved table ("
        + ", ".join(limits.RESERVED_TABLE_NAMES) + "), not shared by two entries, and absent "
        "when name is a glob. Default: a table named after the interface.",
    "interface.gateway":
        '"auto" (a default route on the interface in the main table, else a DHCP lease), '
        '"none" (no default route: other destinations fall through to the main table), '
        '"unreachable" (the table ends with an unreachable default: an isolated network), '
        "or an IPv4 address.",
    "interface.gateway6":
        '"auto" (a default route on the interface in the main table), "none", "unreachable", '
        "or an IPv6 address (link-local allowed).",
    "interface.priority":
        "Priority of this interface's rules, overriding [daemon] rule_priority; the same "
        f"range (1 to {limits.MAX_RULE_PRIORITY}).",
    "interface.routes":
        "Extra routes for this interface: an array of inline tables with the keys below.",
    "interface.routes.to":
        'The destination network ("10.0.0.0/24", no host bits set), or "default" '
        "together with via.",
    "interface.routes.via":
        "The gateway, an address of the same family as to. Default: none (an on-link route).",
    "interface.routes.table":
        '"main", another table name or a number (not a reserved table). Default: the '
        "interface's own table.",
    "interface.routes.metric":
        f"The route's metric, an integer from 0 to {limits.MAX_METRIC}. Default: the kernel's.",
    "interface.routes.type":
        '"unicast" (the default), "unreachable", "blackhole" or "prohibit"; only unicast '
        "routes take via.",
}

# Defaults that are not a value in the file.
DEFAULT_WORDS = {
    "interface.probe_targets": "the gateway itself",
    "interface.name": "none (required)",
    "interface.table": "the interface's name",
    "interface.priority": "[daemon] rule_priority",
    "interface.routes.to": "none (required)",
    "interface.routes.via": "none",
    "interface.routes.table": "the interface's table",
    "interface.routes.metric": "the kernel's",
}


@dataclass(frozen=True)
class Key:
    section: str  # "daemon", "interface" or "interface.routes"
    name: str
    default: str  # as the file would spell it, or words
    description: str

    @property
    def path(self) -> str:
        return f"{self.section}.{self.name}"


def toml_value(value: Any) -> str:
    """A default as a TOML file spells it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple | list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def config_keys() -> list[Key]:
    """Every key of the file, in the order of the records' fields."""
    keys = []
    for section, (cls, _) in SECTIONS.items():
        for f in fields(cls):
            path = f"{section}.{f.name}"
            if path == "interface.uplink":  # in the file: flat keys of the entry
                keys.extend(_uplink_keys())
                continue
            if path not in KEYS:
                raise KeyError(f"{path} has no description in polroutd.cli.manpages.KEYS")
            if path in DEFAULT_WORDS:
                default = DEFAULT_WORDS[path]
            elif f.default is not MISSING:
                default = toml_value(f.default)
            elif f.default_factory is not MISSING:
                default = toml_value(f.default_factory())
            else:
                raise KeyError(f"{path} has no default and no entry in DEFAULT_WORDS")
            keys.append(Key(section, f.name, default, KEYS[path]))
    return keys


def _uplink_keys() -> list[Key]:
    """The [[interface]] uplink keys, with the defaults of ``UplinkSpec`` and ``ProbeSpec``."""
    spec, probe = settings.UplinkSpec(), settings.ProbeSpec()
    defaults = {
        "uplink": toml_value(False), "uplink_metric": toml_value(spec.metric),
        "uplink_weight": toml_value(spec.weight), "probe": toml_value(probe.kind),
        "probe_targets": DEFAULT_WORDS["interface.probe_targets"],
        "probe_interval": toml_value(spec.interval), "probe_timeout": toml_value(spec.timeout),
        "probe_down": toml_value(spec.down), "probe_up": toml_value(spec.up),
    }
    return [Key("interface", name, default, KEYS[f"interface.{name}"])
            for name, default in defaults.items()]


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    metavar: str | None
    help: str
    required: bool


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    options: tuple[Option, ...]


def _options(parser: argparse.ArgumentParser) -> Iterator[Option]:
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        metavar = None
        if action.nargs != 0:
            metavar = str(action.metavar or action.dest.upper())
        help_text = (action.help or "") % {"default": action.default, "prog": parser.prog}
        if action.choices:
            choices = ", ".join(str(c) for c in action.choices)
            metavar = metavar if action.metavar else action.dest.upper()
            help_text = (help_text + "; " if help_text else "") + f"one of {choices}"
        yield Option(tuple(action.option_strings), metavar, help_text, bool(action.required))


def commands(parser: argparse.ArgumentParser | None = None) -> list[Command]:
    """Every command of the parser, with its options, in the parser's order."""
    parser = parser or build_parser()
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                found.append(Command(name, helps[name], tuple(_options(sub))))
    return found


def global_options(parser: argparse.ArgumentParser | None = None) -> list[Option]:
    return list(_options(parser or build_parser()))


# --- roff -------------------------------------------------------------------------------------


def esc(text: str) -> str:
    """Text safe in a roff line: backslashes, hyphens, and a leading dot or quote escaped."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text.startswith((".", "'")) else text


def _bold(text: str) -> str:
    return f"\\fB{esc(text)}\\fR"


def _italic(text: str) -> str:
    return f"\\fI{esc(text)}\\fR"


def _option_spec(option: Option) -> str:
    flags = ", ".join(_bold(f) for f in option.flags)
    return flags + (" " + _italic(option.metavar) if option.metavar else "")


def _synopsis(command: Command) -> str:
    parts = [_bold("polroutd"), _bold(command.name)]
    for option in command.options:
        if option.flags == ("--debug",):
            continue
        spec = _bold(option.flags[0]) + (" " + _italic(option.metavar) if option.metavar else "")
        parts.append(spec if option.required else f"[{spec}]")
    return " ".join(parts)


def _header(name: str, section: int, title: str) -> list[str]:
    return [
        '.\\" Generated by "python3 -m polroutd.cli.manpages" from the code; do not edit.',
        f'.TH {esc(name.upper())} {section} "" "polroutd {__version__}" "{title}"',
        ".SH NAME",
    ]


def _paragraphs(text: str) -> list[str]:
    return [esc(line) for line in text.splitlines()]


def _example(lines: str) -> list[str]:
    return [".PP", ".RS 4", ".nf", *(esc(line) for line in lines.splitlines()), ".fi", ".RE"]


def render_polroutd8() -> str:
    parser = build_parser()
    cmds = commands(parser)
    missing = [c.name for c in cmds if c.name not in COMMANDS]
    if missing:
        raise KeyError(f"commands without an entry in polroutd.cli.manpages.COMMANDS: {missing}")
    out = _header("polroutd", 8, "System Administration")
    out += [f"polroutd \\- {esc(parser.description or '')}", ".SH SYNOPSIS"]
    out += [".nf", _bold("polroutd") + " [" + _bold("--debug") + "] " + _italic("COMMAND")
            + " [" + _italic("OPTIONS") + "]"]
    out += [_synopsis(c) for c in cmds]
    out += [_bold("polroutd") + " " + _bold("--version"), ".fi"]
    out += [
        ".SH DESCRIPTION",
        esc("polroutd keeps source-based policy routing correct on a multi-homed Linux host, "
            "continuously: for every managed interface a routing table with its connected "
            "routes and its own default gateway, and a rule from ADDRESS lookup TABLE for each "
            "of its global addresses, kept true through DHCP renewals, hot-plugged interfaces "
            "and manual changes. Every rule and route it creates carries its own routing "
            "protocol number (proto polroutd, 218 by default); it never changes or deletes an "
            "object with another protocol."),
        ".PP",
        esc("The configuration is found at --config, else $" + parse.CONFIG_ENV_VAR + ", else "
            f"{parse.DEFAULT_CONFIG_PATH}, else built-in defaults; see polroutd.toml(5). "
            "Errors are one line on standard error; --debug adds the traceback."),
        ".SH COMMANDS",
    ]
    for c in cmds:
        out += [".TP", _synopsis(c), esc(c.summary[:1].upper() + c.summary[1:] + "."),
                *_paragraphs(COMMANDS[c.name][0])]
        own = [o for o in c.options if o.flags != ("--debug",)]
        for option in own:
            out += [".RS", ".TP", _option_spec(option), esc(option.help or ""), ".RE"]
    out += [".SH OPTIONS", esc("Accepted before the command and, except --version, after it:")]
    for option in global_options(parser):
        out += [".TP", _option_spec(option), esc(option.help)]
    out += [".TP", _bold("-h") + ", " + _bold("--help"),
            esc("show the usage of polroutd or of a command, and exit")]
    out += [".SH EXIT STATUS",
            esc(f"A usage error exits with {EXIT_USAGE} for every command; --help and --version "
                f"exit with {EXIT_OK}. Otherwise:")]
    for c in cmds:
        codes = "; ".join(f"{code} {meaning}" for code, meaning in COMMANDS[c.name][1])
        out += [".TP", _bold(c.name), esc(codes + ".")]
    out += [".SH SIGNALS"]
    for sig, meaning in SIGNALS:
        out += [".TP", _bold(sig), esc(meaning)]
    out += [".SH ENVIRONMENT"]
    for var, meaning in ENVIRONMENT:
        out += [".TP", _bold(var), esc(meaning)]
    out += [".SH FILES"]
    for path, meaning in FILES:
        out += [".TP", _italic(path), esc(meaning)]
    out += [".SH EXAMPLES"]
    for text, lines in EXAMPLES:
        out += [".PP", esc(text), *_example(lines)]
    out += [".SH SEE ALSO", ", ".join(_bold(p) + f"({s})" for p, s in [
        ("polroutd.toml", 5), ("ip-rule", 8), ("ip-route", 8), ("systemd.service", 5),
        ("sysusers.d", 5), ("tmpfiles.d", 5), ("networkd.conf", 5), ("NetworkManager.conf", 5),
    ])]
    return "\n".join(out) + "\n"


def render_polroutd_toml5() -> str:
    out = _header("polroutd.toml", 5, "File Formats")
    out += [
        "polroutd.toml \\- configuration of polroutd(8)",
        ".SH SYNOPSIS",
        _italic(str(parse.DEFAULT_CONFIG_PATH)),
        ".SH DESCRIPTION",
        esc("A TOML file with an optional [daemon] table and any number of [[interface]] "
            "entries. Every key is optional except where marked; a missing file means the "
            "defaults. With [[interface]] entries only matching interfaces are managed; without "
            "any, every interface with a global address that no exclude pattern matches is "
            "managed, with a table named after it."),
        ".PP",
        esc("Invalid values (unknown keys, wrong types, addresses of the wrong family, "
            "overlapping interface patterns, reserved tables, priorities at or above "
            f"{limits.MAIN_RULE_PRIORITY}) are refused with the file, the key, the line and "
            "what is expected, and nothing in the kernel is touched: by polroutd check-config, "
            "at start-up, and on reload (which keeps the old configuration)."),
    ]
    keys = config_keys()
    for section, (_, title) in SECTIONS.items():
        out += [".SH " + esc(title)]
        for key in (k for k in keys if k.section == section):
            out += _key_entry(key)
    out += [".SH EXAMPLE", *_example(_example_file()), ".SH SEE ALSO",
            _bold("polroutd") + "(8), " + _bold("ip-rule") + "(8), " + _bold("ip-route")
            + "(8)"]
    return "\n".join(out) + "\n"


def _key_entry(key: Key) -> list[str]:
    """A key as a tagged paragraph; a long default (an array) goes below, one item a line."""
    if key.default == "none (required)":
        return [".TP", _bold(key.name) + " (required)", esc(key.description)]
    if len(key.default) <= 40 or not key.default.startswith("["):
        return [".TP", _bold(key.name) + " = " + _italic(key.default), esc(key.description)]
    items = key.default[1:-1].split(", ")
    return [".TP", _bold(key.name), esc(key.description), ".IP", "Default:", ".nf",
            *(esc(line) for line in ["[", *(f"  {item}," for item in items), "]"]), ".fi"]


def _example_file() -> str:
    return "\n".join([
        "[daemon]",
        'mode = "strict"',
        "",
        "[[interface]]",
        'name = "ens192"',
        'table = "mgt"',
        "",
        "[[interface]]",
        'name = "ens224"',
        'table = "data"',
        'routes = [ { to = "10.225.144.0/24", via = "10.225.176.1", table = "main" } ]',
    ])


def render_all() -> dict[str, str]:
    return {"polroutd.8": render_polroutd8(), "polroutd.toml.5": render_polroutd_toml5()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m polroutd.cli.manpages", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--out", metavar="DIR", help="write the pages into DIR")
    group.add_argument("--check", metavar="DIR", help="exit 1 when the pages in DIR differ")
    args = parser.parse_args(argv)
    pages = render_all()
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name, text in pages.items():
            (out / name).write_text(text, encoding="utf-8")
        return 0
    stale = [n for n, t in pages.items() if not (Path(args.check) / n).is_file()
             or (Path(args.check) / n).read_text(encoding="utf-8") != t]
    for name in stale:
        print(f"{Path(args.check) / name} is out of date: python3 -m polroutd.cli.manpages "
              f"--out {args.check}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
