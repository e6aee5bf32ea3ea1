"""Table and protocol names and numbers (docs/behaviour.md §2.5), decided without I/O.

``assign_tables`` is pure: the same inputs always give the same tables, and a number, once
allocated to a name, stays with it. The files these names come from are read by
``polroutd.inputs.rt_tables``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from fnmatch import fnmatchcase

from polroutd.core.errors import ConfigError
from polroutd.core.globs import is_glob
from polroutd.core.limits import (
    MAX_PROTOCOL,
    RESERVED_PROTOCOLS,
    RESERVED_TABLE_NAMES,
    RESERVED_TABLES,
)
from polroutd.core.record import field, record
from polroutd.core.settings import Config

# Used for protocol = "polroutd" when no rt_protos file names it, so a fresh machine works.
DEFAULT_PROTOCOL_NAME = "polroutd"
DEFAULT_PROTOCOL_NUMBER = 218

# iproute2's own list, for machines whose rt_protos lacks them; files take precedence.
WELL_KNOWN_PROTOCOLS: Mapping[str, int] = {
    "ra": 9, "zebra": 11, "bird": 12, "dhcp": 16, "keepalived": 18, "babel": 42, "openr": 99,
    "bgp": 186, "isis": 187, "ospf": 188, "rip": 189, "eigrp": 192,
}

RECORDED_HEADER = "# Managed by polroutd; table numbers stay stable across restarts.\n"
UNUSED_MARK = "# unused-since"  # after a record: since when (unix time) no interface uses it


def parse_name_file(text: str) -> dict[str, int]:
    """``NUMBER NAME`` lines as iproute2 reads them: decimal or 0x hex, ``#`` comments.

    Like iproute2, anything after the name is ignored and malformed lines are skipped. The first
    definition of a name wins.
    """
    names: dict[str, int] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2 or words[0].startswith("#") or words[1].startswith("#"):
            continue
        number = _parse_number(words[0])
        if number is not None:
            names.setdefault(words[1], number)
    return names


def parse_recorded(text: str) -> tuple[dict[str, int], dict[str, float]]:
    """polroutd's own file: the records, and since when each unused one has been unused."""
    recorded = parse_name_file(text)
    unused_since: dict[str, float] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 5 and " ".join(words[2:4]) == UNUSED_MARK and words[1] in recorded:
            try:
                unused_since.setdefault(words[1], float(words[4]))
            except ValueError:
                continue
    return recorded, unused_since


def _parse_number(word: str) -> int | None:
    digits, base = (word[2:], 16) if word.startswith("0x") else (word, 10)
    if not digits or not digits.isascii() or not digits.isalnum():
        return None
    try:
        return int(digits, base)
    except ValueError:
        return None


@record
class NameRegistry:
    """Names the system knows: table name -> number, protocol name -> number."""

    tables: Mapping[str, int]
    protocols: Mapping[str, int]

    def table_name(self, number: int) -> str | None:
        """The first name registered for a table number."""
        return next((name for name, n in self.tables.items() if n == number), None)

    def names_by_number(self) -> dict[int, str]:
        """number -> its first name (one pass, for many lookups)."""
        names: dict[int, str] = {}
        for name, number in self.tables.items():
            names.setdefault(number, name)
        return names


def resolve_protocol(setting: str | int, registry: NameRegistry, source: str) -> int:
    """The protocol number that marks polroutd's rules and routes."""
    if isinstance(setting, int):
        return setting
    number = registry.protocols.get(setting)
    if number is None:
        if setting == DEFAULT_PROTOCOL_NAME:
            return DEFAULT_PROTOCOL_NUMBER
        raise ConfigError(
            source,
            "daemon.protocol",
            f"unknown protocol name {setting!r}: register it in /etc/iproute2/rt_protos.d/ "
            "or use a number",
        )
    if number in RESERVED_PROTOCOLS or not 0 < number <= MAX_PROTOCOL:
        raise ConfigError(
            source,
            "daemon.protocol",
            f"protocol name {setting!r} stands for {number}, which polroutd cannot use "
            f"(0-{max(RESERVED_PROTOCOLS)} are reserved, {MAX_PROTOCOL} is the highest)",
        )
    return number


@record
class TableRef:
    """A routing table: its number and, when it has one, the name ``ip`` shows."""

    id: int
    name: str | None


@record
class TableAssignment:
    by_interface: Mapping[str, TableRef]
    recorded: Mapping[str, int]  # what the recorded-tables file should hold now
    # recorded names no interface uses now -> since when (their numbers are reused, oldest first)
    unused_since: Mapping[str, float] = field(default_factory=dict)
    unassigned: Mapping[str, str] = field(default_factory=dict)  # interface -> why no table


def assign_tables(
    requests: Sequence[tuple[str, str | int | None]],
    *,
    registry: NameRegistry,
    recorded: Mapping[str, int],
    table_range: tuple[int, int],
    in_use: Set[int],
    source: str,
    unused_since: Mapping[str, float] | None = None,
    now: float = 0.0,
) -> TableAssignment:
    """The table of each interface, from (interface name, table setting) pairs.

    No setting: a table named after the interface. A number: that table. A name: the number the
    system's rt_tables gives it, else the one recorded earlier, else the lowest number in
    ``table_range`` that no name, record or foreign route (``in_use``) holds, allocated in sorted
    name order. A record whose number is now taken explicitly or by another record, or whose
    name the system's rt_tables now defines, is dropped (and allocated afresh if still wanted);
    every other record is kept, so a number stays with its name while the interface is gone.
    Only when the range is full is the number of the record unused longest (``unused_since``,
    else ``now``) handed to a new name; an interface for which even that finds no number is
    left in ``unassigned`` with the reason, and the others still get theirs.
    """
    refs: dict[str, TableRef] = {}
    pending: dict[str, list[str]] = {}  # table name -> interfaces waiting for its number
    targets = {interface: _target(interface, setting) for interface, setting in requests}
    explicit = {interface: targets[interface] for interface, setting in requests
                if setting is not None}
    names = registry.names_by_number() if any(isinstance(t, int) for t in targets.values()) else {}
    for interface, target in targets.items():
        if isinstance(target, int):
            refs[interface] = TableRef(target, names.get(target))
        elif (number := _system_number(target, registry, recorded)) is not None:
            refs[interface] = TableRef(number, target)
        else:
            pending.setdefault(target, []).append(interface)
    claimed = {ref.id for ref in refs.values()}
    kept = _kept_records(recorded, registry, claimed)
    used = set(registry.tables.values()) | set(kept.values()) | set(in_use) | claimed
    used |= RESERVED_TABLES
    low, high = table_range
    since = unused_since or {}
    unused = {name: since.get(name, now) for name in kept if name not in pending}
    # Numbers that may be handed on once the range is full, unused longest first.
    reusable = sorted(
        (when, number, name) for name, when in unused.items()
        if low <= (number := kept[name]) <= high and number not in in_use
    )
    reusable.reverse()  # popped from the end
    allocated: dict[str, int] = {}
    unassigned: dict[str, str] = {}
    candidate = low
    for name in sorted(pending):
        number = kept.get(name)
        if number is None:
            while candidate in used:
                candidate += 1
            if candidate <= high:
                number = candidate
                used.add(number)
            elif reusable:
                _, number, previous = reusable.pop()
                del kept[previous], unused[previous]
            else:
                for interface in pending[name]:
                    unassigned[interface] = (
                        f"no free table number left in {low}..{high} for table {name!r} "
                        "(every number is used by an interface present now): widen "
                        f"daemon.table_range in {source}"
                    )
                continue
            allocated[name] = number
        for interface in pending[name]:
            refs[interface] = TableRef(number, name)
    _check_distinct(refs, explicit, source)
    return TableAssignment(
        by_interface=refs, recorded={**kept, **allocated}, unused_since=unused,
        unassigned=unassigned,
    )


def _target(interface: str, setting: str | int | None) -> str | int:
    if setting is None:
        return interface_table_name(interface)
    if isinstance(setting, str) and setting.isascii() and setting.isdigit():
        return int(setting)
    return setting


# Words ``ip`` reads as something else than a table name (``ip route show table all``).
_TABLE_KEYWORDS = frozenset({*RESERVED_TABLE_NAMES, "all", "cache"})
INTERFACE_TABLE_PREFIX = "if:"


def interface_table_name(interface: str) -> str:
    """The name of the table of an interface without a configured table: its own name, unless
    ``ip`` would read that name as another table. iproute2 looks a name up in the files before
    trying it as a number, so a table named "254" would hide main, one named "0x10" table 16;
    and "main", "all", ... mean the kernel's tables. Those get the prefix "if:", which keeps
    them distinct from every other name (no interface name and no configured table name
    holds a ':'). A leading '#' would make the line a comment to our own reader."""
    if not all(c.isprintable() for c in interface):  # Unicode spaces, line separators, ...
        # would split the rt_tables line: hex, after "if::" (the netlink codec's escapes of
        # undecodable bytes, ":xNN", never hold "::")
        return INTERFACE_TABLE_PREFIX + ":" + interface.encode("utf-8", "surrogateescape").hex()
    first = interface[:1]
    if interface in _TABLE_KEYWORDS or (first != "" and (first.isdigit() or first in "+-#")):
        return INTERFACE_TABLE_PREFIX + interface
    return interface


def _system_number(name: str, registry: NameRegistry, recorded: Mapping[str, int]) -> int | None:
    """The number rt_tables gives a name, unless that entry is just our own record of it."""
    number = registry.tables.get(name)
    return None if number is None or recorded.get(name) == number else number


def _kept_records(
    recorded: Mapping[str, int], registry: NameRegistry, claimed: Set[int]
) -> dict[str, int]:
    """The records still valid: one name per number, not reserved, not taken or renamed."""
    kept: dict[str, int] = {}
    numbers: set[int] = set()
    for name, number in sorted(recorded.items(), key=_by_number):
        taken = number in claimed or number in numbers or number in RESERVED_TABLES
        if not taken and _system_number(name, registry, recorded) is None:
            kept[name] = number
            numbers.add(number)
    return kept


def _check_distinct(
    refs: Mapping[str, TableRef], explicit: Mapping[str, str | int], source: str
) -> None:
    """Two interfaces share a table only if both asked for that very table."""
    first: dict[int, str] = {}
    for interface in sorted(refs):
        number = refs[interface].id
        if number in RESERVED_TABLES:
            raise ConfigError(
                source,
                "interface.table",
                f"interface {interface!r} would use the kernel's reserved table {number}; "
                "give it a table in [[interface]]",
            )
        other = first.setdefault(number, interface)
        asked = explicit.get(interface)
        if other != interface and (asked is None or explicit.get(other) != asked):
            raise ConfigError(
                source,
                "interface.table",
                f"interfaces {other!r} and {interface!r} would share table {number}; "
                "give them distinct tables",
            )


def check_route_tables(
    config: Config, registry: NameRegistry, recorded: Mapping[str, int]
) -> None:
    """Every table name an extra route uses must be one polroutd or the system knows.

    Known: registered or recorded names, configured interface tables and the names of exact
    interfaces. A name a glob entry matches is accepted too (that interface may come later).
    """
    known = set(registry.tables) | set(recorded)
    patterns = []
    for spec in config.interfaces:
        if isinstance(spec.table, str):
            known.add(spec.table)
        elif spec.table is None:
            if is_glob(spec.name):
                patterns.append(spec.name)
            else:
                known.add(spec.name)
    for n, spec in enumerate(config.interfaces, 1):
        for m, route in enumerate(spec.routes, 1):
            name = route.table
            if not isinstance(name, str) or name in known:
                continue
            if any(fnmatchcase(name, pattern) for pattern in patterns):
                continue
            raise ConfigError(
                config.source,
                f"interface[{n}].routes[{m}].table",
                f"unknown table {name!r}: use \"main\", a number, a table of an [[interface]], "
                "or register it in /etc/iproute2/rt_tables.d/",
            )


def render_recorded(
    recorded: Mapping[str, int], unused_since: Mapping[str, float] | None = None
) -> str:
    """The file's text; an unused record says since when (``ip`` ignores what follows a name)."""
    since = unused_since or {}
    lines = []
    for name, number in sorted(recorded.items(), key=_by_number):
        when = since.get(name)
        mark = "" if when is None else f" {UNUSED_MARK} {int(when)}"
        lines.append(f"{number} {name}{mark}\n")
    return RECORDED_HEADER + "".join(lines)


def _by_number(item: tuple[str, int]) -> tuple[int, str]:
    return item[1], item[0]


