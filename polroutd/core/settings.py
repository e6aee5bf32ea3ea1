"""The configuration's values: frozen, typed, with the built-in defaults (docs/behaviour.md §4).

Pure data that every layer may read; ``polroutd.config`` builds it from a file and validates it.
"""

from __future__ import annotations

from typing import Literal

from polroutd.core.record import field, record

DEFAULT_EXCLUDE = (
    "lo", "docker*", "veth*", "br-*", "virbr*", "cni*", "cali*", "flannel*", "tun*", "tap*",
    "wg*", "tailscale*",
)

# Where the common DHCP clients keep their leases. "{ifname}" and "{ifindex}" are filled in per
# interface; files without them are searched for the interface name they mention.
DEFAULT_LEASE_PATHS = (
    "/run/systemd/netif/leases/{ifindex}",
    "/var/lib/NetworkManager/internal-*-{ifname}.lease",
    "/var/lib/NetworkManager/dhclient-*-{ifname}.lease",
    "/var/lib/dhcp/dhclient*.leases",
    "/var/lib/dhclient/*.lease",
    "/var/lib/dhclient/*.leases",
    "/var/lib/dhcpcd/{ifname}.lease",
    "/var/lib/dhcpcd/dhcpcd-{ifname}.lease",
    "/var/lib/dhcpcd5/dhcpcd-{ifname}.lease",
)
LEASE_PATH_PLACEHOLDERS = frozenset({"ifname", "ifindex"})

MODES = ("strict", "main-first")
LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")
GATEWAY_WORDS = ("auto", "none", "unreachable")
# Route types an extra route may have (rtm_type), as ``ip route`` names them.
ROUTE_TYPES = ("unicast", "unreachable", "blackhole", "prohibit")
UPLINK_MODES = ("off", "failover", "balance")
PROBE_KINDS = ("none", "icmp")  # besides "tcp:HOST:PORT"


Mode = Literal["strict", "main-first"]
UplinkMode = Literal["off", "failover", "balance"]
GatewaySetting = str  # "auto", "none", "unreachable", or an address of the right family


@record
class RouteSpec:
    """An extra route from ``[[interface]] routes``."""

    to: str  # a network in canonical "addr/len" form ("default" is "0.0.0.0/0" or "::/0")
    via: str | None = None
    table: str | int | None = None  # None: the interface's own table; "main" or a number or name
    metric: int | None = None
    type: str = "unicast"  # one of ROUTE_TYPES; the other types take no via


@record
class InterfaceSpec:
    name: str  # exact name or shell glob
    table: str | int | None = None  # None: a table named after the interface
    gateway: GatewaySetting = "auto"
    gateway6: GatewaySetting = "auto"
    priority: int | None = None
    routes: tuple[RouteSpec, ...] = ()
    uplink: UplinkSpec | None = None  # None: this interface is no uplink


@record
class ProbeSpec:
    """How an uplink's path beyond its gateway is checked: ``none``, ``icmp`` or ``tcp``."""

    kind: Literal["none", "icmp", "tcp"] = "none"
    host: str | None = None  # tcp: the host to connect to
    port: int | None = None  # tcp: the port
    targets: tuple[str, ...] = ()  # icmp: addresses to ping; empty: the gateway itself


@record
class UplinkSpec:
    """An interface whose gateway may carry traffic that chose no source address."""

    metric: int = 100  # failover order, lower wins
    weight: int = 1  # balance: share of new flows
    probe: ProbeSpec = field(default_factory=ProbeSpec)
    interval: float = 0.5
    timeout: float = 1.0
    down: int = 3  # consecutive failures to call it down
    up: int = 3  # consecutive successes to call it up again


@record
class DaemonSettings:
    http_listen: str = "127.0.0.1:9641"  # "" disables HTTP
    resync_interval: float = 60.0
    debounce: float = 0.02
    max_delay: float = 0.25
    protocol: str | int = "polroutd"
    mode: Mode = "strict"
    rule_priority: int = 30000
    table_range: tuple[int, int] = (30000, 30999)
    rt_tables_file: str = "/etc/iproute2/rt_tables.d/polroutd.conf"  # "" = don't write
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    cleanup_on_exit: bool = False
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "info"
    dhcp_lease_paths: tuple[str, ...] = DEFAULT_LEASE_PATHS
    uplinks: UplinkMode = "off"
    uplink_table: str | int = "uplinks"
    uplink_priority: int = 32760


@record
class Config:
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    interfaces: tuple[InterfaceSpec, ...] = ()
    source: str = "<defaults>"  # the file it came from, for messages
