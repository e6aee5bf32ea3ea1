"""The configuration file (docs/behaviour.md §4), parsed once into frozen, typed values.

``load_config`` reads and parses the file; ``parse_config`` checks every rule of
docs/behaviour.md §4.1 and
raises a ``ConfigError`` that names the file, the key (spelled ``interface[2].gateway6``, array
positions 1-based), the line where the text shows it, and what was expected.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from polroutd.config import uplinks as _uplinks
from polroutd.config.files import read_regular_file, why_unreadable
from polroutd.config.tomllines import key_lines
from polroutd.config.values import (
    Parser,
    _bool,
    _found,
    _int,
    _seconds,
    _str,
    _str_list,
    _Where,
)
from polroutd.core.errors import ConfigError
from polroutd.core.globs import is_glob, overlap_witness
from polroutd.core.limits import (
    IFNAMSIZ,
    MAIN_RULE_PRIORITY,
    MAX_METRIC,
    MAX_PROTOCOL,
    MAX_RULE_PRIORITY,
    MAX_TABLE,
    MIN_MAIN_FIRST_PRIORITY,
    RESERVED_PROTOCOLS,
    RESERVED_TABLE_NAMES,
    RESERVED_TABLES,
    RT_TABLE_MAIN,
)
from polroutd.core.listen import parse_listen
from polroutd.core.record import fields, replace
from polroutd.core.settings import (
    GATEWAY_WORDS,
    LEASE_PATH_PLACEHOLDERS,
    LOG_FORMATS,
    LOG_LEVELS,
    MODES,
    ROUTE_TYPES,
    UPLINK_MODES,
    Config,
    DaemonSettings,
    InterfaceSpec,
    RouteSpec,
)
from polroutd.core.text import one_line

DEFAULT_CONFIG_PATH = Path("/etc/polroutd/polroutd.toml")
CONFIG_ENV_VAR = "POLROUTD_CONFIG"
# A real configuration is a few kilobytes; the bound keeps a stray file from blocking a reload.
MAX_CONFIG_SIZE = 1 << 20

# Seconds: (lowest, highest) accepted. Below the lowest the daemon would spin (a resync every
# nanosecond); above the highest a value is surely a typo (and would overflow the timers).
SECONDS_RANGES: Mapping[str, tuple[float, float]] = {
    "resync_interval": (1.0, 86400.0),
    "debounce": (0.0, 10.0),
    "max_delay": (0.001, 60.0),
}

_PROTOCOL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


# --- finding and reading the file -----------------------------------------------------------


def resolve_config_path(
    cli_path: str | None, environ: Mapping[str, str], *, default: Path = DEFAULT_CONFIG_PATH
) -> Path | None:
    """``--config``, else ``$POLROUTD_CONFIG``, else the default file if present, else None."""
    for given, origin in ((cli_path, "--config"), (environ.get(CONFIG_ENV_VAR), CONFIG_ENV_VAR)):
        if given:
            path = Path(given)
            try:
                os.stat(path)
            except OSError as error:
                raise ConfigError(
                    str(path), "file", f"{why_unreadable(error)} (given by {origin})"
                ) from None
            return path
    return default if default.exists() else None


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def load_config(path: Path | None) -> Config:
    """The configuration in ``path``; the built-in defaults when there is no file."""
    if path is None:
        return Config()
    source = str(path)
    try:
        text = read_regular_file(path, MAX_CONFIG_SIZE)[0].decode("utf-8")
    except OSError as error:
        raise ConfigError(source, "file", f"cannot be read: {why_unreadable(error)}") from None
    except UnicodeDecodeError as error:
        problem = f"cannot be read: not UTF-8 text ({error.reason})"
        raise ConfigError(source, "file", problem) from None
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise ConfigError(source, "syntax", "arrays or tables nested too deeply") from None
    except ValueError as error:  # TOMLDecodeError, or an integer beyond Python's digit limit
        if not isinstance(error, tomllib.TOMLDecodeError):
            raise _huge_integer(source, text) from None
        # tomllib (3.11) puts the position only in the message text.
        message = str(error)
        position = _TOML_POSITION.search(message)
        if position is None:
            raise ConfigError(source, "syntax", one_line(message)) from None
        problem = f"{message[: position.start()]} (column {position.group(2)})"
        raise ConfigError(source, "syntax", one_line(problem), int(position.group(1))) from None
    return parse_config(data, source, text)


_LONG_DIGITS = re.compile(r"[0-9][0-9_]{4000,}")
_KEY_AT_LINE_START = re.compile(r"\s*([A-Za-z0-9_.\"'-]+)\s*=")
_TABLE_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]", re.MULTILINE)


def _huge_integer(source: str, text: str) -> ConfigError:
    """tomllib refuses integers of more than 4,300 digits without saying where: find them."""
    found = _LONG_DIGITS.search(text)
    if found is None:
        return ConfigError(source, "syntax", "an integer has too many digits")
    line_start = text.rfind("\n", 0, found.start()) + 1
    key = _KEY_AT_LINE_START.match(text, line_start)
    headers = _TABLE_HEADER.findall(text, 0, line_start)
    name = "syntax"
    if key:
        name = key.group(1)
    if key and headers:
        brackets, table = headers[-1]
        if brackets == "[[":  # an array of tables' entry, numbered as in every other message
            table += f"[{sum(1 for h in headers if h == headers[-1])}]"
        name = f"{table}.{name}"
    return ConfigError(
        source, name,
        "an integer has thousands of digits; expected a sensible number",
        text.count("\n", 0, found.start()) + 1,
    )


# --- parsing and validation -----------------------------------------------------------------


def parse_config(data: Mapping[str, Any], source: str, text: str | None = None) -> Config:
    """Frozen values from parsed TOML; ``text`` (the raw file) only locates keys for messages."""
    where = _Where(source, key_lines(text) if text is not None else {})
    _reject_unknown(where, "", data, ("daemon", "interface"))
    daemon = _daemon(where, data.get("daemon", {}))
    entries = data.get("interface", [])
    if not isinstance(entries, list):
        raise where.error(
            "interface", f"must be an array of tables ([[interface]]), got {_found(entries)}"
        )
    interfaces = tuple(_interface(where, f"interface[{n}]", e) for n, e in enumerate(entries, 1))
    _check_priorities(where, daemon, interfaces)
    _check_overlaps(where, interfaces)
    _check_tables(where, interfaces, daemon)
    _uplinks.check_uplinks(where, daemon, interfaces)
    return Config(daemon=daemon, interfaces=interfaces, source=source)


def _daemon(where: _Where, value: Any) -> DaemonSettings:
    table = _table(where, "daemon", value)
    _reject_unknown(where, "daemon", table, _DAEMON_PARSERS)
    parsed = {key: _DAEMON_PARSERS[key](where, f"daemon.{key}", v) for key, v in table.items()}
    settings = replace(DaemonSettings(), **parsed)
    if settings.max_delay < settings.debounce:
        if "max_delay" in table:
            raise where.error(
                "daemon.max_delay",
                f"must be at least debounce ({settings.debounce:g}), got {settings.max_delay:g}",
            )
        raise where.error(
            "daemon.debounce",
            f"must be at most max_delay ({settings.max_delay:g}, the default), "
            f"got {settings.debounce:g}",
        )
    return settings


def _interface(where: _Where, key: str, value: Any) -> InterfaceSpec:
    entry = _table(where, key, value)
    _reject_unknown(where, key, entry, _INTERFACE_KEYS | _uplinks.UPLINK_KEYS)
    if "name" not in entry:
        raise where.error(f"{key}.name", "is required: an interface name or shell glob")
    name = _interface_name(where, f"{key}.name", entry["name"])
    table = _interface_table(where, f"{key}.table", entry["table"]) if "table" in entry else None
    if table is not None and is_glob(name):
        raise where.error(
            f"{key}.table",
            f"must be absent when name is a glob ({_found(name)}): each matching interface "
            "gets its own table, named after it",
        )
    if table is None and name in RESERVED_TABLE_NAMES:
        raise where.error(
            f"{key}.table",
            f"is required for interface {_found(name)}: a table named after it would be "
            f"the kernel's reserved table {RESERVED_TABLE_NAMES[name]}",
        )
    routes = entry.get("routes", [])
    if not isinstance(routes, list):
        raise where.error(f"{key}.routes", f"must be an array of tables, got {_found(routes)}")
    return InterfaceSpec(
        name=name,
        table=table,
        gateway=_gateway(where, f"{key}.gateway", entry.get("gateway", "auto"), 4),
        gateway6=_gateway(where, f"{key}.gateway6", entry.get("gateway6", "auto"), 6),
        priority=_priority(where, f"{key}.priority", entry["priority"])
        if "priority" in entry else None,
        routes=tuple(_route(where, f"{key}.routes[{n}]", r) for n, r in enumerate(routes, 1)),
        uplink=_uplinks.parse_uplink(where, key, entry),
    )


def _route(where: _Where, key: str, value: Any) -> RouteSpec:
    entry = _table(where, key, value)
    _reject_unknown(where, key, entry, _ROUTE_KEYS)
    if "to" not in entry:
        raise where.error(f"{key}.to", 'is required: a network such as "10.0.0.0/24" or "default"')
    via = _address(where, f"{key}.via", entry["via"]) if "via" in entry else None
    route_type = _choice(ROUTE_TYPES)(where, f"{key}.type", entry.get("type", "unicast"))
    if route_type != "unicast" and via is not None:
        raise where.error(
            f"{key}.via", f'must be absent for type = "{route_type}" (such a route has no next hop)'
        )
    to = _destination(where, f"{key}.to", entry["to"], via)
    if via is not None and via.version != to.version:
        raise where.error(
            f"{key}.via",
            f"must be an IPv{to.version} address, as to ({to}) is IPv{to.version}, "
            f"got IPv{via.version} address {via}",
        )
    return RouteSpec(
        to=f"{to.network_address}/{to.prefixlen}",
        via=str(via) if via is not None else None,
        table=_route_table(where, f"{key}.table", entry["table"]) if "table" in entry else None,
        metric=_int(where, f"{key}.metric", entry["metric"], 0, MAX_METRIC)
        if "metric" in entry else None,
        type=route_type,
    )


# --- cross-entry checks ---------------------------------------------------------------------


def _check_priorities(
    where: _Where, daemon: DaemonSettings, interfaces: tuple[InterfaceSpec, ...]
) -> None:
    if daemon.mode != "main-first":
        return
    found = [("daemon.rule_priority", daemon.rule_priority)] + [
        (f"interface[{n}].priority", spec.priority)
        for n, spec in enumerate(interfaces, 1) if spec.priority is not None
    ]
    for key, priority in found:
        if priority < MIN_MAIN_FIRST_PRIORITY:
            raise where.error(
                key,
                f"must be at least {MIN_MAIN_FIRST_PRIORITY} in main-first mode (the "
                f"suppress_prefixlength rule goes just ahead), got {priority}",
            )


def _check_tables(
    where: _Where, interfaces: tuple[InterfaceSpec, ...], daemon: DaemonSettings
) -> None:
    """No two entries may share a table (an exact name without a table uses its own name),
    nor the uplink table."""
    seen: dict[str | int, str] = {}  # table -> the entry that uses it, for the message
    if daemon.uplinks != "off":
        seen[daemon.uplink_table] = "daemon.uplink_table"
    for n, spec in enumerate(interfaces, 1):
        table = spec.table if spec.table is not None or is_glob(spec.name) else spec.name
        if table is None:
            continue
        if table in seen:
            key = f"interface[{n}].table" if spec.table is not None else f"interface[{n}].name"
            raise where.error(key, f"table {_found(table)} is already used by {seen[table]}")
        implicit = " (the table named after its interface)" if spec.table is None else ""
        seen[table] = f"interface[{n}]{implicit}"


def _check_overlaps(where: _Where, interfaces: tuple[InterfaceSpec, ...]) -> None:
    for n, spec in enumerate(interfaces, 1):
        for m, earlier in enumerate(interfaces[: n - 1], 1):
            if earlier.name == spec.name:
                raise where.error(
                    f"interface[{n}].name", f"{_found(spec.name)} is already interface[{m}]"
                )
            witness = overlap_witness(earlier.name, spec.name)
            if witness is not None:
                raise where.error(
                    f"interface[{n}].name",
                    f"{_found(spec.name)} overlaps interface[{m}].name {_found(earlier.name)}: "
                    f"both match {_found(witness)}; each interface must match one entry",
                )




# --- single values --------------------------------------------------------------------------


def _table(where: _Where, key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise where.error(key, f"must be a table, got {_found(value)}")
    return value


def _reject_unknown(
    where: _Where, prefix: str, table: Mapping[str, Any], known: Collection[str]
) -> None:
    for key in table:
        if key not in known:
            import difflib  # here: only a mistake needs it (not every start)

            expected = ", ".join(sorted(known))
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise where.error(
                f"{prefix}.{key}" if prefix else key,
                f"unknown key ({hint}expected one of: {expected})",
            )


def _daemon_seconds(where: _Where, key: str, value: Any) -> float:
    """A [daemon] number of seconds within its range in ``SECONDS_RANGES``."""
    low, high = SECONDS_RANGES[key.rpartition(".")[2]]
    return _seconds(where, key, value, low, high)


def _choice(choices: tuple[str, ...]) -> Parser:
    def parse(where: _Where, key: str, value: Any) -> str:
        if _str(where, key, value) not in choices:
            import json  # here: only a mistake needs it (not every start)

            quoted = [json.dumps(c) for c in choices]
            expected = f"{', '.join(quoted[:-1])} or {quoted[-1]}"
            raise where.error(key, f"must be {expected}, got {_found(value)}")
        return str(value)

    return parse


def _pattern(where: _Where, key: str, value: Any) -> str:
    if not _str(where, key, value):
        raise where.error(key, "must be a non-empty interface name or shell glob")
    return str(value)


def _lease_path(where: _Where, key: str, value: Any) -> str:
    path = _str(where, key, value)
    if not path.startswith("/"):
        raise where.error(key, f"must be an absolute path (glob), got {_found(path)}")
    unknown = set(re.findall(r"\{([^{}]*)\}", path)) - LEASE_PATH_PLACEHOLDERS
    if unknown:
        raise where.error(
            key, f"may use only the placeholders {{ifname}} and {{ifindex}}, got {{{min(unknown)}}}"
        )
    return path


def _rt_tables_file(where: _Where, key: str, value: Any) -> str:
    path = _str(where, key, value)
    if path and not path.startswith("/"):
        raise where.error(key, f'must be an absolute path or "" (do not write), got {_found(path)}')
    return path


def _http_listen(where: _Where, key: str, value: Any) -> str:
    listen = _str(where, key, value)
    if not listen:
        return listen
    try:
        parse_listen(listen)
    except ValueError as exc:
        raise where.error(key, f'{exc}, or "" (off); got {_found(listen)}') from None
    return listen


def _is_decimal(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _protocol(where: _Where, key: str, value: Any) -> str | int:
    if isinstance(value, str) and _is_decimal(value):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if value in RESERVED_PROTOCOLS:
            raise where.error(key, _reserved_protocol(value))
        return _int(where, key, value, 1, MAX_PROTOCOL)
    if not isinstance(value, str):
        raise where.error(
            key, f"must be a number from 1 to {MAX_PROTOCOL} or a name, got {_found(value)}"
        )
    name = value
    reserved = {n: number for number, n in RESERVED_PROTOCOLS.items()}
    if name in reserved:
        raise where.error(key, _reserved_protocol(reserved[name]))
    if not _PROTOCOL_NAME.fullmatch(name):
        raise where.error(
            key, f"must be a number from 1 to {MAX_PROTOCOL} or a name, got {_found(name)}"
        )
    return name


def _reserved_protocol(number: int) -> str:
    return (
        f"protocol {number} ({RESERVED_PROTOCOLS[number]}) is reserved for the kernel and other "
        f"tools; use a number from {max(RESERVED_PROTOCOLS) + 1} to {MAX_PROTOCOL} or a name"
    )


def _priority(where: _Where, key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise where.error(key, f"must be an integer, got {_found(value)}")
    if value >= MAIN_RULE_PRIORITY:
        raise where.error(
            key,
            f"must be an integer below {MAIN_RULE_PRIORITY} (the main table's rule), got {value}",
        )
    if value < 1:
        raise where.error(key, f"must be an integer from 1 to {MAX_RULE_PRIORITY}, got {value}")
    return value


def _uplink_priority(where: _Where, key: str, value: Any) -> int:
    """Two rules sit at ``uplink_priority`` and the next one, both before main's."""
    priority = _priority(where, key, value)
    if priority > MAX_RULE_PRIORITY - 1:
        raise where.error(
            key, f"must be at most {MAX_RULE_PRIORITY - 1} (its second rule takes the next "
            f"priority, below {MAIN_RULE_PRIORITY}), got {priority}",
        )
    return priority


def _table_range(where: _Where, key: str, value: Any) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2:
        raise where.error(key, f"must be two table numbers [low, high], got {_found(value)}")
    low = _int(where, key, value[0], 1, MAX_TABLE)
    high = _int(where, key, value[1], 1, MAX_TABLE)
    if low > high:
        raise where.error(key, f"must be [low, high] with low <= high, got [{low}, {high}]")
    reserved = sorted(t for t in RESERVED_TABLES if low <= t <= high)
    if reserved:
        raise where.error(
            key, f"must not contain the kernel's reserved table {reserved[0]}, got [{low}, {high}]"
        )
    return (low, high)


def _interface_name(where: _Where, key: str, value: Any) -> str:
    name = _str(where, key, value)
    expected = "must be an interface name (1 to 15 characters, no '/', ':' or spaces) or a glob"
    bad_chars = any(c in "/:" or c.isspace() for c in name)
    too_long = not is_glob(name) and len(name.encode()) >= IFNAMSIZ
    if not name or bad_chars or too_long or name in (".", ".."):
        raise where.error(key, f"{expected}, got {_found(name)}")
    return name


def _table_number(where: _Where, key: str, number: int) -> int:
    if number in RESERVED_TABLES:
        name = next(n for n, t in RESERVED_TABLE_NAMES.items() if t == number)
        raise where.error(
            key, f"{number} is the kernel's reserved table {name!r}; pick another number"
        )
    return _int(where, key, number, 1, MAX_TABLE)


def _interface_table(where: _Where, key: str, value: Any) -> str | int:
    if isinstance(value, str) and _is_decimal(value):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return _table_number(where, key, value)
    if not isinstance(value, str):
        raise where.error(key, f"must be a table number or name, got {_found(value)}")
    name = value
    if name in RESERVED_TABLE_NAMES:
        raise where.error(
            key,
            f"{name!r} is the kernel's reserved table {RESERVED_TABLE_NAMES[name]}; "
            "pick another name",
        )
    if not _TABLE_NAME.fullmatch(name):
        raise where.error(
            key,
            f"must be a table number or a name of letters, digits, '_', '.', '-' starting with "
            f"a letter, got {_found(name)}",
        )
    return name


def _route_table(where: _Where, key: str, value: Any) -> str | int:
    """Extra routes go to main, another polroutd table, or a registered table."""
    # type() is int: 254.0 == 254 and a float table is refused like any other
    if value == "main" or (type(value) is int and value == RT_TABLE_MAIN):
        return "main"
    if isinstance(value, str) and _is_decimal(value) and int(value) == RT_TABLE_MAIN:
        return "main"
    return _interface_table(where, key, value)


def _gateway(where: _Where, key: str, value: Any, version: int) -> str:
    text = _str(where, key, value)
    if text in GATEWAY_WORDS:
        return text
    expected = f'must be "auto", "none", "unreachable" or an IPv{version} address'
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise where.error(key, f"{expected}, got {_found(text)}") from None
    if address.version != version:
        other = "gateway6" if version == 4 else "gateway"
        raise where.error(
            key, f"{expected}, got IPv{address.version} address {address} (that goes in {other})"
        )
    return str(address)


def _address(
    where: _Where, key: str, value: Any
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    text = _str(where, key, value)
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise where.error(key, f"must be an IPv4 or IPv6 address, got {_found(text)}") from None


def _destination(
    where: _Where,
    key: str,
    value: Any,
    via: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    text = _str(where, key, value)
    if text == "default":
        if via is None:
            raise where.error(
                key, '"default" needs via to tell IPv4 from IPv6; or write "0.0.0.0/0" or "::/0"'
            )
        return ipaddress.ip_network("0.0.0.0/0" if via.version == 4 else "::/0")
    try:
        return ipaddress.ip_network(text)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise where.error(
            key, f'must be a network such as "10.0.0.0/24" or "default", got {_found(text)}'
        ) from None
    raise where.error(key, f"{_found(text)} has host bits set (the network is {loose})")


_DAEMON_PARSERS: Mapping[str, Parser] = {
    "http_listen": _http_listen,
    "resync_interval": _daemon_seconds,
    "debounce": _daemon_seconds,
    "max_delay": _daemon_seconds,
    "protocol": _protocol,
    "mode": _choice(MODES),
    "rule_priority": _priority,
    "table_range": _table_range,
    "rt_tables_file": _rt_tables_file,
    "exclude": _str_list(_pattern),
    "cleanup_on_exit": _bool,
    "log_format": _choice(LOG_FORMATS),
    "log_level": _choice(LOG_LEVELS),
    "dhcp_lease_paths": _str_list(_lease_path),
    "uplinks": _choice(UPLINK_MODES),
    "uplink_table": lambda where, key, value: _interface_table(where, key, value),
    "uplink_priority": lambda where, key, value: _uplink_priority(where, key, value),
}
_INTERFACE_KEYS = frozenset(f.name for f in fields(InterfaceSpec)) - {"uplink"}
_ROUTE_KEYS = frozenset(f.name for f in fields(RouteSpec))
