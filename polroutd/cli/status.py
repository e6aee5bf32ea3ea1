"""``polroutd status``: a running daemon's /state (docs/behaviour.md §3.2), summarised for an
operator.

``format_status`` is pure (a /state document in, text out); ``status_command`` does the HTTP
and maps the outcome to docs/behaviour.md §3.1's exit codes: 0 in sync, 1 unreachable or an
answer that is not a /state document, 2 not in sync, a configuration error pending, or
conflicts with foreign objects.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from polroutd.cli.status_uplinks import uplink_lines

EXIT_IN_SYNC = 0
EXIT_UNREACHABLE = 1
EXIT_NOT_IN_SYNC = 2

TIMEOUT = 3.0  # seconds; the daemon answers from memory, so anything slower is a problem
MAX_ANSWER = 64 * 1024 * 1024  # a /state of thousands of rules is a few MB

# What the summary calls each counter, in the order shown.
COUNTERS = (
    ("drift", "drift"), ("repairs", "repairs"), ("restorations", "restorations"),
    ("changes", "changes"),
    ("errors", "operation_errors"), ("events", "netlink_events"),
    ("overruns", "netlink_overruns"),
)
HISTORY_COUNTERS = (
    ("reconciles ok", "reconciles_ok"), ("reconciles failed", "reconciles_error"),
    ("reloads ok", "config_reloads_ok"), ("reloads failed", "config_reloads_error"),
)


class MalformedState(ValueError):
    """The answer is not a /state document; the message says what is wrong with it."""


class Unreachable(Exception):
    """No HTTP answer at all; the message is the reason."""


# ------------------------------------------------------------------ reading the document


def _field(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str,
           *, optional: bool = False) -> Any:
    """``obj[key]`` checked against ``kind``; a missing optional field is None."""
    if key not in obj or (optional and obj[key] is None):
        if optional:
            return None
        raise MalformedState(f"{where}{key!r} is missing")
    value = obj[key]
    # bool is an int in Python; a counter or index that is true/false is still malformed
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        raise MalformedState(f"{where}{key!r} is {type(value).__name__}, not {_names(kind)}")
    return value


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _names(kind: type | tuple[type, ...]) -> str:
    names = {"dict": "an object", "list": "a list", "str": "a string", "bool": "true/false",
             "int": "a number", "float": "a number"}
    return " or ".join(dict.fromkeys(names.get(k.__name__, k.__name__) for k in _kinds(kind)))


def _entries(doc: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    items = _field(doc, key, list, "", optional=True) or []
    for number, item in enumerate(items):
        if not isinstance(item, dict):
            raise MalformedState(f"{key}[{number}] is {type(item).__name__}, not an object")
    return items


# ------------------------------------------------------------------ formatting


def _when(at: float, now: float | None) -> str:
    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return stamp if now is None else f"{stamp} ({_ago(now - at)})"


def _ago(seconds: float) -> str:
    if seconds < 1:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _table(number: Any, name: Any, where: str) -> str:
    """``data(30001)``, or the bare number for a table without a name."""
    if not isinstance(number, int) or isinstance(number, bool):
        raise MalformedState(f"{where} is not a table number")
    return f"{name}({number})" if isinstance(name, str) and name else str(number)


def _gateway(gateway: Any, family: str, where: str) -> str:
    if not isinstance(gateway, dict):
        raise MalformedState(f"{where}gateway.{family} is not an object")
    address = _field(gateway, "address", str, where, optional=True)
    source = _field(gateway, "source", str, where, optional=True)
    if address:
        return f"{address} (from {source or 'unknown source'})"
    if gateway.get("device_route"):
        return f"device route without next hop (from {source or 'unknown source'})"
    reason = _field(gateway, "reason", str, where, optional=True)
    return f"NONE - {reason or 'no reason given'}"


def _last_reconcile(last: Mapping[str, Any] | None, now: float | None) -> list[str]:
    if last is None:
        return ["last reconcile: none yet"]
    where = "last_reconcile: "
    at = _field(last, "at", (int, float), where)
    result = _field(last, "result", str, where)
    parts = [
        _when(at, now),
        "ok" if result == "ok" else result.upper(),
        f"reason {_field(last, 'reason', str, where)}",
        _duration(_field(last, "duration_seconds", (int, float), where)),
        f"{_field(last, 'operations', int, where)} operation(s)",
    ]
    lines = ["last reconcile: " + ", ".join(parts)]
    for error in _field(last, "errors", list, where, optional=True) or []:
        if isinstance(error, dict):
            errno = error.get("errno") or "error"
            message = f": {error['message']}" if error.get("message") else ""
            lines.append(f"  failed: {error.get('text', '?')} ({errno}{message})")
    return lines


def _interfaces(doc: Mapping[str, Any]) -> list[str]:
    interfaces = _entries(doc, "interfaces")
    lines = [f"interfaces ({len(interfaces)}):" if interfaces else "interfaces: none managed"]
    for number, iface in enumerate(interfaces):
        where = f"interfaces[{number}]."
        name = _field(iface, "name", str, where)
        link = "up" if _field(iface, "up", bool, where) else "DOWN"
        carrier = "carrier" if _field(iface, "carrier", bool, where) else "NO CARRIER"
        table = _field(iface, "table", dict, where)
        label = _table(table.get("id"), table.get("name"), f"{where}table.id")
        priority = _field(iface, "priority", int, where, optional=True)
        head = f"  {name}  {link}, {carrier}  table {label}"
        lines.append(head + (f"  priority {priority}" if priority is not None else ""))
        addresses = _field(iface, "addresses", list, where, optional=True) or []
        lines.append(f"    addresses: {' '.join(map(str, addresses)) or 'none'}")
        gateways = _field(iface, "gateway", dict, where)
        for family in ("ipv4", "ipv6"):
            lines.append(f"    gateway {family}: "
                         f"{_gateway(gateways.get(family), family, where)}")
    return lines


def _rules(doc: Mapping[str, Any]) -> list[str]:
    rules = _entries(doc, "rules")
    present = [_field(r, "present", bool, f"rules[{n}].") for n, r in enumerate(rules)]
    missing = present.count(False)
    head = f"rules: {len(rules)} desired, " + (
        f"{len(rules) - missing} present, {missing} MISSING" if missing else "all present")
    lines = [head]
    for number, (rule, here) in enumerate(zip(rules, present, strict=True)):
        text = _field(rule, "text", str, f"rules[{number}].")
        lines.append(f"  {'ok     ' if here else 'MISSING'}  {text}")
    return lines


def _routes(doc: Mapping[str, Any]) -> list[str]:
    routes = _entries(doc, "routes")
    by_table: dict[str, list[tuple[bool, str]]] = {}
    for number, route in enumerate(routes):
        where = f"routes[{number}]."
        entry = (_field(route, "present", bool, where), _field(route, "text", str, where))
        label = _table(route.get("table"), route.get("table_name"), f"{where}table")
        by_table.setdefault(label, []).append(entry)
    missing = sum(not here for entries in by_table.values() for here, _ in entries)
    lines = [f"routes: {len(routes)} desired, " + (
        f"{len(routes) - missing} present, {missing} MISSING" if missing else "all present")]
    for label, entries in by_table.items():
        gone = [text for here, text in entries if not here]
        state = f"{len(gone)} MISSING" if gone else "all present"
        lines.append(f"  table {label}: {len(entries)} route(s), {state}")
        lines += [f"    MISSING  {text}" for text in gone]
    return lines


def _listed(doc: Mapping[str, Any], key: str, title: str) -> list[str]:
    items = _entries(doc, key)
    if not items:
        return [f"{title}: none"]
    lines = [f"{title} ({len(items)}):"]
    for number, item in enumerate(items):
        text = _field(item, "text", str, f"{key}[{number}].")
        errno = item.get("errno")
        lines.append(f"  {text}" + (f"  ({errno})" if errno else ""))
    return lines


def _counters(doc: Mapping[str, Any]) -> list[str]:
    counters = _field(doc, "counters", dict, "")

    def shown(pairs: Sequence[tuple[str, str]]) -> str:
        return ", ".join(f"{label} {counters.get(key, '?')}" for label, key in pairs)

    return [f"counters: {shown(COUNTERS)}", f"          {shown(HISTORY_COUNTERS)}"]


def format_status(doc: dict[str, Any], *, now: float | None = None) -> str:
    """A readable summary of a /state document; raises MalformedState if it is not one.

    ``now`` (unix time) adds how long ago the last reconcile was.
    """
    if not isinstance(doc, dict):
        raise MalformedState(f"the document is {type(doc).__name__}, not an object")
    in_sync = _field(doc, "in_sync", bool, "")
    ready = _field(doc, "ready", bool, "", optional=True)
    version = _field(doc, "version", str, "", optional=True)
    headline = "in sync" if in_sync else "NOT in sync"
    if ready is False:
        headline += " (not ready)"
    lines = [f"polroutd{' ' + version if version else ''}: {headline}"]
    error = _field(doc, "config_error", str, "", optional=True)
    if error:  # right under the headline: the daemon runs on an older configuration
        lines += ["!!! CONFIGURATION ERROR - the reload was refused and the previous",
                  "!!! configuration stays in force until this is fixed:",
                  *(f"!!!   {line}" for line in error.splitlines()), ""]
    lines += _last_reconcile(_field(doc, "last_reconcile", dict, "", optional=True), now)
    config = _field(doc, "config_file", str, "", optional=True) or "?"
    mode = _field(doc, "mode", str, "", optional=True) or "?"
    protocol = _field(doc, "protocol", int, "", optional=True)
    lines.append(f"config: {config}, mode {mode}"
                 + (f", protocol {protocol}" if protocol is not None else ""))
    for section in (_interfaces(doc), uplink_lines(doc, now), _rules(doc), _routes(doc),
                    _listed(doc, "conflicts", "conflicts with foreign objects (left alone)"),
                    _listed(doc, "pending", "pending operations (retried)"), _counters(doc)):
        if section:
            lines += ["", *section]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ I/O


def _reason(error: BaseException, timeout: float) -> str:
    if isinstance(error, urllib.error.URLError):
        inner = error.reason
        return _reason(inner, timeout) if isinstance(inner, BaseException) else str(inner)
    if isinstance(error, (socket.timeout, TimeoutError)):
        return f"no answer within {timeout:g} s"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def fetch_state(url: str, timeout: float = TIMEOUT) -> Any:
    """GET ``<url>/state`` (no proxies: the daemon is local) and decode the JSON.

    Raises Unreachable when no HTTP answer came, MalformedState for any other answer than a
    JSON document with status 200.
    """
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url.rstrip('/')}/state", timeout=timeout) as response:
            body = response.read(MAX_ANSWER + 1)
    except urllib.error.HTTPError as exc:
        raise MalformedState(f"HTTP {exc.code} {exc.reason}") from None
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets
        raise Unreachable(_reason(exc, timeout)) from None
    except ValueError as exc:  # urllib's "unknown url type"
        raise Unreachable(str(exc)) from None
    if len(body) > MAX_ANSWER:
        raise MalformedState(f"more than {MAX_ANSWER} bytes")
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedState(f"not JSON ({exc})") from None


def status_command(url: str) -> int:
    """``polroutd status``: print the daemon's state; the exit code says whether it is in sync."""
    if "://" not in url:
        url = f"http://{url}"  # "127.0.0.1:9641" is what http_listen looks like
    try:
        doc = fetch_state(url)
        text = format_status(doc, now=time.time())
    except Unreachable as exc:
        print(f"polroutd: cannot reach the daemon at {url}: {exc} "
              "(is polroutd running? is http_listen set?)", file=sys.stderr)
        return EXIT_UNREACHABLE
    except MalformedState as exc:
        print(f"polroutd: the answer of {url}/state is not a polroutd state document: {exc}",
              file=sys.stderr)
        return EXIT_UNREACHABLE
    sys.stdout.write(text)
    return EXIT_IN_SYNC if status_ok(doc) else EXIT_NOT_IN_SYNC


def status_ok(doc: Mapping[str, Any]) -> bool:
    """In sync, no configuration error pending (a refused reload), no conflicts."""
    return bool(doc["in_sync"]) and not doc.get("config_error") and not doc.get("conflicts")


def command(args: argparse.Namespace) -> int:
    return status_command(args.url)
