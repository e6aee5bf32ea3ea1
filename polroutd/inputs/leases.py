"""IPv4 gateways from the DHCP leases of the common clients: the last fallback of
docs/behaviour.md §2.2.

The parsers are pure and forgiving: a lease file is written by someone else and may be half
written, from another version, or no lease at all, so garbage yields no lease, never an exception.

``Lease.routers`` holds the gateways the client itself uses for its default route: the router
option (3), or, when the lease carries classless static routes (option 121), the gateways of
their 0.0.0.0/0 entries, because RFC 3442 makes clients ignore option 3 then.

Nothing here reads the clock or keeps state between calls: expiry is judged at the ``now`` the
caller gives, and the listings and parsed files reused between searches live in a
``LeaseFiles`` its owner (the engine) hands in.
"""

from __future__ import annotations

import errno
import fnmatch
import functools
import glob
import ipaddress
import os
import re
import socket
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import PurePath
from typing import Literal

from polroutd.config.files import FileRefused, read_regular_file, why_unreadable
from polroutd.core.errors import is_starved
from polroutd.core.model import LeaseFindings, LeaseOffer
from polroutd.core.record import field, record, replace
from polroutd.inputs.filecache import SettledFileCache

Client = Literal["networkd", "dhclient", "networkmanager", "dhcpcd"]

INFINITE_LEASE_TIME = 0xFFFFFFFF  # RFC 2131 §3.3: "infinity"
MAX_LEASE_FILE_SIZE = 4 << 20  # far above any real lease file; a stray glob can't eat memory
MAX_KEPT_MATCHES = 1 << 14  # LeaseFiles' matches kept: every interface's patterns, at thousands



def warn_through_logging(message: str) -> None:
    """A lease file's warning on the stdlib logger ``polroutd.leases`` (the daemon passes its
    own logger instead: stdlib logging costs ~20 ms to load, which its start does not pay)."""
    import logging

    logging.getLogger("polroutd.leases").warning("%s", message)

BOOTP_HEADER_SIZE = 236
MAGIC_COOKIE = bytes((99, 130, 83, 99))
CIADDR = slice(12, 16)
YIADDR = slice(16, 20)
SNAME = slice(44, 108)
FILE = slice(108, 236)
COOKIE = slice(236, 240)

OPT_PAD = 0
OPT_ROUTERS = 3
OPT_LEASE_TIME = 51
OPT_OVERLOAD = 52
OPT_MESSAGE_TYPE = 53
OPT_CLASSLESS_ROUTES = 121
OPT_END = 255
DHCPACK = 5

# Names dhclient prints option 121 under: Debian's and NetworkManager's dhclient.conf declare it
# as rfc3442-classless-static-routes; without a declaration it shows up as unknown-121.
DHCLIENT_CLASSLESS_OPTIONS = frozenset(
    {"rfc3442-classless-static-routes", "classless-static-routes", "unknown-121"}
)


@record
class Lease:
    interface: str  # "" for a dhclient block that names no interface
    address: str | None
    routers: tuple[str, ...]
    expires: float | None  # unix time; None = unknown or infinite
    path: str
    client: Client

    @property
    def gateway(self) -> str | None:
        return self.routers[0] if self.routers else None

    def valid_at(self, now: float) -> bool:
        return self.expires is None or self.expires > now


# --- shared helpers --------------------------------------------------------------------------


def _ipv4(text: str) -> str | None:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        return None


def _routers(candidates: Iterable[str]) -> tuple[str, ...]:
    """Valid, distinct router addresses in the order given (0.0.0.0 is "on-link", no router)."""
    found: list[str] = []
    for text in candidates:
        address = _ipv4(text)
        if address is not None and address != "0.0.0.0" and address not in found:
            found.append(address)
    return tuple(found)


def _classless_defaults(raw: bytes) -> tuple[str, ...] | None:
    """Gateways of the default routes in an RFC 3442 option 121 value.

    None when the option holds no valid route: clients then fall back to the router option.
    """
    defaults: list[str] = []
    pos = 0
    while pos < len(raw):
        width = raw[pos]
        end = pos + 1 + (width + 7) // 8 + 4  # width, significant octets, router
        if width > 32 or end > len(raw):
            return None
        if width == 0:
            defaults.append(socket.inet_ntoa(raw[end - 4 : end]))
        pos = end
    return _routers(defaults) if pos else None


def _seconds(text: str | None) -> int | None:
    if text is None or not re.fullmatch(r"[0-9]{1,10}", text):
        return None
    value = int(text)
    return value if value <= INFINITE_LEASE_TIME else None


def _expiry(start: float | None, lease_time: int | None) -> float | None:
    if start is None or lease_time is None or lease_time == INFINITE_LEASE_TIME:
        return None
    return start + lease_time


def _client(path: str, default: Client) -> Client:
    return "networkmanager" if "NetworkManager" in PurePath(path).parts else default


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


# --- systemd-networkd and NetworkManager's internal client: KEY=VALUE --------------------------


def parse_networkd_lease(
    text: str, interface: str, path: str, mtime: float | None = None
) -> Lease | None:
    """A systemd-networkd lease (or NetworkManager's internal client's, same format).

    LIFETIME is a duration, so the expiry needs the time the file was written (``mtime``);
    without it the expiry is unknown. NetworkManager's current internal client (nettools)
    saves only ADDRESS=: such a lease has no routers.
    """
    fields = _env_fields(text)
    if "ADDRESS" not in fields and "ROUTER" not in fields:
        return None
    routers = _routers(fields.get("ROUTER", "").split())
    classless = _networkd_classless_defaults(fields.get("CLASSLESS_ROUTES", ""))
    return Lease(
        interface=interface,
        address=_ipv4(fields.get("ADDRESS", "")),
        routers=routers if classless is None else classless,
        expires=_expiry(mtime, _seconds(fields.get("LIFETIME"))),
        path=path,
        client=_client(path, "networkd"),
    )


def _env_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        fields[key.strip()] = _unquote(value.strip())
    return fields


def _networkd_classless_defaults(value: str) -> tuple[str, ...] | None:
    """CLASSLESS_ROUTES="10.0.0.0/8,192.0.2.1 0.0.0.0/0,192.0.2.1" (systemd >= 249)."""
    defaults: list[str] = []
    any_route = False
    for item in value.split():
        destination, _, gateway = item.partition(",")
        try:
            network = ipaddress.IPv4Network(destination, strict=False)
        except ValueError:
            continue
        any_route = True
        if network.prefixlen == 0:
            defaults.append(gateway)
    return _routers(defaults) if any_route else None


# --- ISC dhclient (also NetworkManager's dhclient backend) ------------------------------------

# Quoted strings (maybe unterminated), comments, braces and semicolons, bare words.
_DHCLIENT_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|#[^\n]*|[{};]|[^\s{};"#]+', re.DOTALL)
_DHCLIENT_LEASE_BLOCK = re.compile(r"^\s*lease\s*\{", re.MULTILINE)


def parse_dhclient_leases(text: str, path: str) -> list[Lease]:
    """The current lease of each interface in a dhclient lease file.

    dhclient appends a block on every renewal, so the last block of an interface is its current
    lease. When that block is unusable (no readable ``expire``) the interface has no lease: an
    older block would be stale. ``lease6`` blocks (DHCPv6) are ignored.
    """
    current: dict[str, Lease | None] = {}
    for statements in _dhclient_lease_blocks(text):
        interface, lease = _dhclient_lease(statements, path)
        current.pop(interface, None)  # keep the file order of the last blocks
        current[interface] = lease
    return [lease for lease in current.values() if lease is not None]


def _dhclient_lease_blocks(text: str) -> Iterator[list[list[str]]]:
    """The statements (lists of words) of each complete top-level ``lease { }`` block.

    Iterative on purpose: garbage with deep nesting must not hit the recursion limit.
    """
    depth = 0
    words: list[str] = []
    block: list[list[str]] | None = None
    for token in _DHCLIENT_TOKEN.findall(text):
        if token.startswith("#"):
            continue
        if token == "{":
            if depth == 0:
                block = [] if words == ["lease"] else None
            depth += 1
            words = []
        elif token == "}":
            if depth == 1 and block is not None:
                yield block
                block = None
            depth = max(depth - 1, 0)
            words = []
        elif token == ";":
            if depth == 1 and block is not None:
                block.append(words)
            words = []
        else:
            words.append(token)


def _dhclient_lease(statements: list[list[str]], path: str) -> tuple[str, Lease | None]:
    interface = ""
    address: str | None = None
    routers: tuple[str, ...] = ()
    classless: tuple[str, ...] | None = None
    expires: float | None = None
    expiry_known = False
    for words in statements:
        match words:
            case ["interface", name]:
                interface = _unquote(name)
            case ["fixed-address", value]:
                address = _ipv4(value)
            case ["option", "routers", *values]:
                routers = _routers(_comma_list(values))
            case ["option", name, *values] if name in DHCLIENT_CLASSLESS_OPTIONS:
                raw = _option_bytes(values)
                classless = None if raw is None else _classless_defaults(raw)
            case ["expire", *when]:
                try:
                    expires, expiry_known = _dhclient_time(when), True
                except (ValueError, OverflowError):
                    expiry_known = False
    if not expiry_known:
        return interface, None
    lease = Lease(
        interface=interface,
        address=address,
        routers=routers if classless is None else classless,
        expires=expires,
        path=path,
        client=_client(path, "dhclient"),
    )
    return interface, lease


def _comma_list(words: list[str]) -> list[str]:
    return " ".join(words).replace(",", " ").split()


def _option_bytes(words: list[str]) -> bytes | None:
    """An array of bytes as dhclient prints it: "24,10,0,0,10,0,0,1" or hex "18:a:0:0:a:0:0:1"."""
    items = _comma_list(words)
    try:
        if len(items) == 1 and ":" in items[0]:
            return bytes(int(octet, 16) for octet in items[0].split(":"))
        return bytes(int(item) for item in items)
    except ValueError:
        return None


def _dhclient_time(words: list[str]) -> float | None:
    """``2 2026/11/24 12:00:00`` (UTC), ``epoch 1795521600`` or ``never`` (None)."""
    match words:
        case ["never"]:
            return None
        case ["epoch", seconds]:
            return float(int(seconds))
        case [_, day, clock] | [day, clock]:  # the weekday is redundant
            import calendar  # here: a start with no dhclient lease does without it

            parsed = time.strptime(f"{day} {clock}", "%Y/%m/%d %H:%M:%S")
            return float(calendar.timegm(parsed))
    raise ValueError(f"not a dhclient time: {words!r}")


# --- dhcpcd: the raw DHCP message ---------------------------------------------------------------


def is_dhcp_message(data: bytes) -> bool:
    return data[COOKIE] == MAGIC_COOKIE


def parse_dhcpcd_lease(data: bytes, interface: str, path: str, mtime: float) -> Lease | None:
    """A dhcpcd lease: the DHCPACK as received. dhcpcd rewrites the file on every bind, so the
    lease started at the file's ``mtime`` (dhcpcd itself reads it back that way)."""
    if not is_dhcp_message(data):
        return None
    options = _dhcp_options(data)
    if options.get(OPT_MESSAGE_TYPE, bytes([DHCPACK])) != bytes([DHCPACK]):
        return None  # a NAK or an offer is no lease; BOOTP replies carry no type at all
    lease_time = options.get(OPT_LEASE_TIME, b"")
    classless = options.get(OPT_CLASSLESS_ROUTES)
    classless_defaults = None if classless is None else _classless_defaults(classless)
    routers_raw = options.get(OPT_ROUTERS, b"")
    routers = _routers(
        socket.inet_ntoa(routers_raw[i : i + 4]) for i in range(0, len(routers_raw) - 3, 4)
    )
    return Lease(
        interface=interface,
        address=_packed_address(data[YIADDR]) or _packed_address(data[CIADDR]),
        routers=routers if classless_defaults is None else classless_defaults,
        expires=_expiry(mtime, int.from_bytes(lease_time, "big") if len(lease_time) == 4 else None),
        path=path,
        client=_client(path, "dhcpcd"),
    )


def _packed_address(raw: bytes) -> str | None:
    address = socket.inet_ntoa(raw)
    return None if address == "0.0.0.0" else address


def _dhcp_options(data: bytes) -> dict[int, bytes]:
    options: dict[int, bytes] = {}
    _read_options(data[BOOTP_HEADER_SIZE + 4 :], options)
    overload = options.get(OPT_OVERLOAD, b"\0")[:1] or b"\0"
    # RFC 2131 §4.1: options continue in the file field, then in the sname field.
    if overload[0] & 1:
        _read_options(data[FILE], options)
    if overload[0] & 2:
        _read_options(data[SNAME], options)
    return options


def _read_options(area: bytes, into: dict[int, bytes]) -> None:
    pos = 0
    while pos < len(area):
        code = area[pos]
        if code == OPT_END:
            return
        if code == OPT_PAD:
            pos += 1
            continue
        if pos + 1 >= len(area):
            return
        end = pos + 2 + area[pos + 1]
        if end > len(area):
            return  # truncated file
        into[code] = into.get(code, b"") + area[pos + 2 : end]  # RFC 3396: parts concatenate
        pos = end


# --- choosing and finding ----------------------------------------------------------------------


def select_lease(leases: Iterable[Lease], now: float) -> Lease | None:
    """The unexpired lease with a router that lasts longest (an unknown or infinite expiry
    counts as the latest); among equals the first one given."""
    usable = [lease for lease in leases if lease.routers and lease.valid_at(now)]
    return max(
        usable,
        key=lambda lease: float("inf") if lease.expires is None else lease.expires,
        default=None,
    )


def find_lease(
    interface: str,
    ifindex: int,
    patterns: Sequence[str],
    now: float,
    files: LeaseFiles | None = None,
) -> Lease | None:
    """The lease to take ``interface``'s gateway from, searched in the files ``patterns`` match.

    A file found through a pattern with ``{ifname}`` or ``{ifindex}`` belongs to the interface;
    other files count only through dhclient blocks that name it.
    """
    return select_lease(_interface_leases(interface, ifindex, patterns, _Memo(files)), now)


def lease_gateways(
    interfaces: Mapping[str, int],
    patterns: Sequence[str],
    now: float,
    files: LeaseFiles | None = None,
) -> dict[str, Lease]:
    """Interface name -> usable lease, for the interfaces (name -> ifindex) that have one.

    ``now`` decides which leases have expired; ``files``, when given, keeps directory
    listings and parsed files from one search to the next."""
    found: dict[str, Lease] = {}
    memo = _Memo(files)  # files shared by every interface (dhclient*.leases) are read once
    for name, ifindex in interfaces.items():
        lease = select_lease(_interface_leases(name, ifindex, patterns, memo), now)
        if lease is not None:
            found[name] = lease
    return found


def lease_findings(
    interfaces: Mapping[str, int],
    patterns: Sequence[str],
    now: float,
    files: LeaseFiles | None = None,
) -> dict[str, LeaseFindings]:
    """Interface name -> its usable leases (the one ``select_lease`` picks first) and the lease
    files refused for it, for the interfaces that have either. Which router of which lease is
    fit to be the gateway is decided in ``polroutd.core.desired``, which knows the addresses."""
    found: dict[str, LeaseFindings] = {}
    memo = _Memo(files)
    for name, ifindex in interfaces.items():
        refused: list[str] = []
        usable = [
            lease for lease in _interface_leases(name, ifindex, patterns, memo, refused)
            if lease.routers and lease.valid_at(now)
        ]
        # select_lease's order: longest-lasting first, ties in the order found (sort is stable).
        usable.sort(key=lambda lease: -(float("inf") if lease.expires is None else lease.expires))
        if usable or refused:
            offers = tuple(LeaseOffer(lease.routers, lease.address, lease.path, lease.expires)
                           for lease in usable)
            found[name] = LeaseFindings(offers, tuple(refused))
    return found


_PLACEHOLDER = re.compile(r"\{(ifname|ifindex)\}")


class _Memo:
    """What one search shares between interfaces: glob results and file contents (both the
    same for every interface as long as the search lasts)."""

    def __init__(self, files: LeaseFiles | None = None) -> None:
        self._files = files
        self.globs: dict[str, list[str]] = {}
        self.listings: dict[str, list[str] | None] = {}
        self.absent: set[str] = set()  # listed directories that are not there (or no directory)
        self.files: dict[str, _ParsedFile | None] = {}

    def names(self, directory: str) -> list[str] | None:
        """One listing per directory per search: every interface's patterns share it."""
        if directory not in self.listings:
            try:
                found: list[str] | None = (os.listdir(directory) if self._files is None
                                           else self._files.listing(directory))
            except OSError as exc:
                if is_starved(exc):  # out of descriptors: the directory is unknown, not empty
                    raise
                found = None
                if exc.errno in (errno.ENOENT, errno.ENOTDIR) or isinstance(
                        exc, NotADirectoryError):
                    self.absent.add(directory)
            self.listings[directory] = found
        return self.listings[directory]

    def glob(self, pattern: str) -> list[str]:
        found = self.globs.get(pattern)
        if found is None:
            files = self._files
            found = self.globs[pattern] = (_glob(pattern, self.names) if files is None
                                           else files.glob(pattern, self.names))
        return found

    def parsed(self, path: str) -> _ParsedFile | None:
        if path not in self.files:
            files = self._files
            self.files[path] = _parse_path(path) if files is None else files.parsed(path)
        return self.files[path]


class LeaseFiles:
    """Directory listings and parsed lease files, reused between searches while ``stat`` shows
    them unchanged; the engine owns one. A reconcile looks for every managed interface's lease
    in every pattern's directory, most of them rarely change, and a large dhclient file takes
    a second to parse. A refused file is warned about once per reason."""

    def __init__(self, clock: Callable[[], float],
                 warn: Callable[[str], None] = warn_through_logging) -> None:
        self._warn = warn
        self._listings = SettledFileCache(_list_settled_directory, clock=clock)
        self._parsed = SettledFileCache(_load_parsed, clock=clock)
        self._warned: dict[str, str] = {}  # path -> the refusal last warned about
        # expanded pattern -> the listing it was matched in, and the paths it matched
        self._matches: dict[str, tuple[list[str], list[str]]] = {}

    def names(self, directory: str) -> list[str] | None:
        """The entries of ``directory``; None when it is no readable directory."""
        try:
            return self.listing(directory)
        except OSError as exc:
            if is_starved(exc):  # out of descriptors: the directory is unknown, not empty
                raise
            return None

    def listing(self, directory: str) -> list[str]:
        """The entries of ``directory`` (the same list object while it is unchanged and
        settled); OSError when it is no readable directory."""
        return self._listings.get(directory)

    def glob(self, pattern: str, names_in: Callable[[str], list[str] | None]) -> list[str]:
        """``_glob(pattern, names_in)``, kept with the listing it was matched in: while that
        listing is the same object (the directory unchanged, see ``SettledFileCache``), the
        names are not matched again. Answers that ask the path itself are never kept."""
        directory, base, listed, wildcard = _glob_shape(pattern)
        names = names_in(directory) if listed else None
        if names is None or (not wildcard and base in (os.curdir, os.pardir)):
            return _glob(pattern, names_in)
        kept = self._matches.get(pattern)
        if kept is not None and kept[0] is names:
            return kept[1]
        found = _glob(pattern, lambda _: names)
        if len(self._matches) >= MAX_KEPT_MATCHES:
            self._matches.clear()
        self._matches[pattern] = (names, found)
        return found

    def parsed(self, path: str) -> _ParsedFile | None:
        """None for a file that is gone (a glob raced its removal): nothing to say about it."""
        try:
            parsed = self._parsed.get(path)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                self._warned.pop(path, None)
                return None
            if is_starved(exc):  # out of descriptors or memory: says nothing about the lease
                raise
            parsed = _ParsedFile("refused", refused=_unreadable(exc))
        if parsed.refused is None:
            self._warned.pop(path, None)
        elif self._warned.get(path) != parsed.refused:
            self._warned[path] = parsed.refused
            self._warn(f"lease file {path} {parsed.refused}; no gateway is taken from it")
        return parsed


def _list_settled_directory(directory: str, info: os.stat_result) -> list[str]:
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(directory)
    return os.listdir(directory)


def _list_directory(directory: str) -> list[str] | None:
    try:
        return os.listdir(directory)
    except OSError as exc:
        if is_starved(exc):
            raise
        return None


def _glob(
    pattern: str, names_in: Callable[[str], list[str] | None] = _list_directory
) -> list[str]:
    """``sorted(glob.glob(pattern))``; from a directory listing (``names_in``) when the last
    component of an absolute pattern is all that may hold wildcards (every default lease
    path), with ``glob``'s own rules: ``fnmatch`` on the names, hidden names only for a
    pattern that starts with a dot, a name without wildcards found when it exists (a dangling
    symlink included)."""
    directory, base, listed, wildcard = _glob_shape(pattern)
    if not listed:
        return sorted(glob.glob(pattern))
    names = names_in(directory)
    if not wildcard:
        if names is None or base in (os.curdir, os.pardir):  # not in any listing: ask the path
            return [pattern] if os.path.lexists(pattern) else []
        return [pattern] if base in names else []
    if not names:
        return []
    if not base.startswith("."):
        names = [name for name in names if not name.startswith(".")]
    return sorted(os.path.join(directory, name) for name in fnmatch.filter(names, base))


@functools.lru_cache(maxsize=4096)
def _glob_shape(pattern: str) -> tuple[str, str, bool, bool]:
    """``pattern``'s directory and last component, whether it can be matched from the
    directory's listing, and whether its last component has wildcards. Cached: every full
    decision expands the same few patterns for every managed interface (at 64 interfaces,
    the string work alone cost a millisecond or two a decision)."""
    directory, base = os.path.split(pattern)
    listed = os.path.isabs(pattern) and bool(base) and not glob.has_magic(directory)
    return directory, base, listed, glob.has_magic(base)


def _lease_files(
    interface: str, ifindex: int, patterns: Sequence[str], memo: _Memo | None = None
) -> dict[str, bool]:
    """Path -> whether it is named after the interface, in pattern order.

    A pattern whose placeholders are all in its last component, in a fixed directory, matches
    nothing in a directory that is empty or absent (a wildcard one, nothing in an unreadable
    one either): it is not filled in for each interface then (at 64 interfaces, most default
    lease directories absent or empty, filling in and splitting the patterns was most of the
    search)."""
    memo = memo or _Memo()
    patterns = tuple(patterns)
    files: dict[str, bool] = {}
    expanded: tuple[tuple[str, bool], ...] | None = None
    # A "/" in the name would split the filled-in pattern elsewhere (no kernel name has one).
    fixed_ok = "/" not in interface
    for index, shape in enumerate(_pattern_shapes(patterns)):
        if shape is None:  # no placeholder: the same for every interface
            for path in memo.glob(patterns[index]):
                files.setdefault(path, False)
            continue
        directory, literal_magic, has_ifname = shape
        if directory is not None and fixed_ok:
            names = memo.names(directory)
            if names is not None:
                if not names:
                    continue
            elif (literal_magic or (has_ifname and glob.has_magic(interface))
                    or directory in memo.absent):
                continue
        if expanded is None:
            expanded = _expanded_patterns(interface, ifindex, patterns)
        for path in memo.glob(expanded[index][0]):
            files[path] = True
    return files


@functools.lru_cache(maxsize=64)
def _pattern_shapes(
    patterns: tuple[str, ...],
) -> tuple[tuple[str | None, bool, bool] | None, ...]:
    """Per pattern: None when it has no placeholder; else the directory every interface's
    expansion lists (None when that depends on the interface, is relative or has wildcards,
    or when an expansion's last component might be empty, "." or ".."), whether the last
    component has wildcards besides the interface name, and whether it holds ``{ifname}``."""
    shapes: list[tuple[str | None, bool, bool] | None] = []
    for pattern in patterns:
        if _PLACEHOLDER.search(pattern) is None:
            shapes.append(None)
            continue
        directory, base = os.path.split(pattern)
        literal = _PLACEHOLDER.sub("", base)
        # An index is digits: only a name (or nothing) fills a component in to "" or dots.
        dots_only = literal.strip(".") == "" and "{ifindex}" not in base
        fixed = (os.path.isabs(pattern) and _PLACEHOLDER.search(directory) is None
                 and not glob.has_magic(directory) and not dots_only)
        shapes.append((directory if fixed else None, glob.has_magic(literal),
                       "{ifname}" in base))
    return tuple(shapes)


@functools.lru_cache(maxsize=4096)
def _expanded_patterns(
    interface: str, ifindex: int, patterns: tuple[str, ...]
) -> tuple[tuple[str, bool], ...]:
    """Each pattern with the interface's name and index filled in, and whether it names the
    interface (cached like ``_glob_shape``: the same for every decision)."""
    fill = {"ifname": glob.escape(interface), "ifindex": str(ifindex)}
    return tuple((_PLACEHOLDER.sub(lambda match: fill[match[1]], pattern),
                  _PLACEHOLDER.search(pattern) is not None) for pattern in patterns)


def _interface_leases(
    interface: str,
    ifindex: int,
    patterns: Sequence[str],
    memo: _Memo,
    refused: list[str] | None = None,
) -> Iterator[Lease]:
    """The leases of ``interface``; ``refused`` collects "PATH REASON" for files not read."""
    for path, named in _lease_files(interface, ifindex, patterns, memo).items():
        parsed = memo.parsed(path)
        if parsed is None:
            continue
        if parsed.refused is not None:
            if refused is not None:  # named or not: it may have held this lease
                refused.append(f"lease file {path} {parsed.refused}")
            continue
        if parsed.kind == "dhclient":  # blocks that name the interface, or none (if named)
            keys = ("", interface) if named else (interface,)
            found = tuple(lease for _, lease in sorted(
                (item for key in keys for item in parsed.by_interface.get(key, ())),
                key=lambda item: item[0],
            ))
        else:
            found = parsed.leases if named else ()
        for lease in found:
            yield replace(lease, interface=interface)


@record
class _ParsedFile:
    """What one lease file holds, for every interface (``interface`` is filled in per use);
    or, when it was not read, why (``refused``)."""

    kind: Literal["dhcpcd", "dhclient", "networkd", "refused"]
    leases: tuple[Lease, ...] = ()
    refused: str | None = None
    # dhclient: the leases by the interface their block names ("" for none); a file shared by
    # thousands of interfaces is then not walked once per interface and reconcile
    # (with each lease's position in the file, which breaks ties between leases)
    by_interface: Mapping[str, tuple[tuple[int, Lease], ...]] = field(default_factory=dict)


def _parse_file(data: bytes, path: str, mtime: float) -> _ParsedFile:
    if is_dhcp_message(data):
        lease = parse_dhcpcd_lease(data, "", path, mtime)
        return _ParsedFile("dhcpcd", (lease,) if lease else ())
    text = data.decode("utf-8", errors="replace")
    if _DHCLIENT_LEASE_BLOCK.search(text):
        by_interface: dict[str, tuple[tuple[int, Lease], ...]] = {}
        for position, lease in enumerate(parse_dhclient_leases(text, path)):
            by_interface[lease.interface] = (*by_interface.get(lease.interface, ()),
                                             (position, lease))
        return _ParsedFile("dhclient", by_interface=by_interface)
    lease = parse_networkd_lease(text, "", path, mtime)
    return _ParsedFile("networkd", (lease,) if lease else ())


def _load_parsed(path: str, _info: os.stat_result) -> _ParsedFile:
    """A lease file parsed, or why it was refused (no regular file, too large)."""
    try:
        data, opened = read_regular_file(path, MAX_LEASE_FILE_SIZE)
    except FileRefused as exc:
        return _ParsedFile("refused", refused=str(exc))
    return _parse_file(data, path, opened.st_mtime)


def _parse_path(path: str) -> _ParsedFile | None:
    """``_load_parsed`` without a cache or warnings, for one-off searches."""
    try:
        return _load_parsed(path, os.stat(path))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        if is_starved(exc):
            raise
        return _ParsedFile("refused", refused=_unreadable(exc))


def _unreadable(exc: OSError) -> str:
    """Why a lease file was not read; a permission problem says where the way out is written
    (Debian's dhcpcd writes its leases 0640 root:root, unreadable to the hardened unit)."""
    why = why_unreadable(exc)
    if exc.errno in (errno.EACCES, errno.EPERM):
        why += ' (see README.md, "Works with", for giving polroutd read access)'
    return why

