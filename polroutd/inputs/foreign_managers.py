"""Start-up check for network managers that would delete polroutd's rules and routes.

systemd-networkd removes every routing policy rule and route it did not configure itself
(``ManageForeignRoutingPolicyRules=yes`` and ``ManageForeignRoutes=yes`` are the defaults;
systemd #19106, #22077, #27052). polroutd repairs that drift, but the two fight forever unless
networkd is told to leave foreign objects alone. NetworkManager, by default, only prunes the
main table; it syncs a whole table only when a global ``ipv4.route-table``/``ipv6.route-table``
default turns its policy routing on.

Only files are read here (no D-Bus, no processes), so the check is cheap and testable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from polroutd.config.files import read_regular_file

NETWORKD_DROP_IN = "contrib/systemd-networkd/10-polroutd-foreign.conf"
NETWORKD_SETTINGS = ("ManageForeignRoutingPolicyRules", "ManageForeignRoutes")
NM_DROP_IN = "contrib/NetworkManager/90-polroutd.conf"
NM_ROUTE_TABLE_KEYS = ("ipv4.route-table", "ipv6.route-table")

# parse_boolean() of systemd's basic/parse-util.c.
_TRUE = frozenset({"1", "yes", "y", "true", "t", "on"})
_FALSE = frozenset({"0", "no", "n", "false", "f", "off"})
_SECTION = re.compile(r"^\[(?P<name>[^\]]+)\]$")


def _ini_assignments(text: str) -> Iterable[tuple[str, str, str]]:
    """(section, key, value) for each assignment of a systemd/GLib style ini file."""
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        header = _SECTION.match(line)
        if header:
            section = header["name"].strip()
            continue
        key, sep, value = line.partition("=")
        if sep:
            yield section, key.strip(), value.strip()


MAX_CONF_SIZE = 1 << 20


def _read(path: Path) -> str:
    try:
        return read_regular_file(path, MAX_CONF_SIZE)[0].decode("utf-8", errors="replace")
    except OSError:  # absent, unreadable, a directory, /dev/null, a FIFO: nothing to read
        return ""


def _drop_ins(directories: Iterable[Path]) -> list[Path]:
    """``*.conf`` files of the directories (highest priority first) in systemd's order:
    sorted by file name, and for one name only the file of the highest-priority directory
    (so /etc/.../x.conf masks /usr/lib/.../x.conf; a /dev/null symlink masks it entirely)."""
    chosen: dict[str, Path] = {}
    for directory in directories:
        try:
            candidates = sorted(directory.glob("*.conf"))
        except OSError:
            continue
        for path in candidates:
            chosen.setdefault(path.name, path)
    return [chosen[name] for name in sorted(chosen)]


def networkd_config_files(etc: Path, run: Path, lib: Path) -> list[Path]:
    """networkd.conf then its drop-ins, in the order systemd-networkd reads them (later ones
    override earlier ones). The main file is the first found of /etc, /run, /usr/lib."""
    mains = [d / "systemd" / "networkd.conf" for d in (etc, run, lib)]
    main = next((p for p in mains if p.is_file()), None)
    drop_in_dirs = [d / "systemd" / "networkd.conf.d" for d in (etc, run, lib)]
    return [*([main] if main else []), *_drop_ins(drop_in_dirs)]


def networkd_settings(files: Iterable[Path]) -> dict[str, bool]:
    """The effective value of each of NETWORKD_SETTINGS; invalid values are ignored, as
    networkd does (it logs them and keeps the previous value)."""
    effective = dict.fromkeys(NETWORKD_SETTINGS, True)
    for path in files:
        for section, key, value in _ini_assignments(_read(path)):
            if section != "Network" or key not in effective:
                continue
            if value.lower() in _TRUE:
                effective[key] = True
            elif value.lower() in _FALSE:
                effective[key] = False
    return effective


def networkd_warning(
    etc: Path = Path("/etc"), run: Path = Path("/run"), lib: Path = Path("/usr/lib")
) -> str | None:
    """One line for the log when a running systemd-networkd would delete polroutd's objects,
    else None."""
    if not (run / "systemd" / "netif" / "state").exists():
        return None  # networkd keeps that file while it runs
    settings = networkd_settings(networkd_config_files(etc, run, lib))
    still_on = [name for name in NETWORKD_SETTINGS if settings[name]]
    if not still_on:
        return None
    return (
        f"systemd-networkd is running with {' and '.join(f'{n}=yes' for n in still_on)}: it "
        "deletes rules and routes it did not create, polroutd's included, which polroutd then "
        f"has to repair; install {NETWORKD_DROP_IN} as "
        f"{etc}/systemd/networkd.conf.d/10-polroutd-foreign.conf and restart systemd-networkd"
    )


def networkmanager_route_tables(etc: Path, run: Path, lib: Path) -> dict[str, str]:
    """Global ``ipv4.route-table``/``ipv6.route-table`` defaults other than 0 in any
    ``[connection*]`` section of NetworkManager's configuration (a later file overrides a key
    of the same section). Any such section may match some device, so each is worth a
    warning."""
    # NetworkManager.conf(5): /usr/lib and /run snippets first, then NetworkManager.conf,
    # then /etc snippets; an /etc snippet shadows one of the same name elsewhere.
    snippets = _drop_ins(d / "NetworkManager" / "conf.d" for d in (etc, run, lib))
    etc_snippets = [p for p in snippets if p.parent == etc / "NetworkManager" / "conf.d"]
    early = [p for p in snippets if p not in etc_snippets]
    files = [*early, etc / "NetworkManager" / "NetworkManager.conf", *etc_snippets]
    values: dict[tuple[str, str], str] = {}
    for path in files:
        for section, key, value in _ini_assignments(_read(path)):
            if section.startswith("connection") and key in NM_ROUTE_TABLE_KEYS:
                values[section, key] = value
    return {
        f"[{section}] {key}": value
        for (section, key), value in sorted(values.items())
        if value not in ("", "0")
    }


def networkmanager_warning(
    etc: Path = Path("/etc"), run: Path = Path("/run"), lib: Path = Path("/usr/lib")
) -> str | None:
    """One line when a running NetworkManager has policy routing switched on globally (it
    then deletes every route it did not add from the tables it uses), else None."""
    if not (run / "NetworkManager").is_dir():
        return None  # NetworkManager creates its runtime directory when it starts
    tables = networkmanager_route_tables(etc, run, lib)
    if not tables:
        return None
    settings = ", ".join(f"{key}={value}" for key, value in tables.items())
    return (
        f"NetworkManager's configuration sets {settings}: NetworkManager removes every route "
        "it did not add from such a table; make sure polroutd's tables differ, or install "
        f"{NM_DROP_IN}"
    )


def foreign_manager_warnings(
    etc: Path = Path("/etc"), run: Path = Path("/run"), lib: Path = Path("/usr/lib")
) -> list[str]:
    """Every warning about network managers that would fight polroutd."""
    checks = (networkd_warning(etc, run, lib), networkmanager_warning(etc, run, lib))
    return [warning for warning in checks if warning]
