"""Figure 3 of the article as data: the lab's interface names, addresses, and the ``ip -batch``
lines and sysctls that wire each namespace. Pure: :class:`polroutd.lab.lab.Lab` runs them."""

from __future__ import annotations

from dataclasses import dataclass

SERVER_MGMT_IF = "ens192"
SERVER_DATA_IF = "ens224"
CLIENT_IF = "eth0"
ROUTER_MGMT_IF = "to-mgmt"
ROUTER_DATA_IF = "to-data"
ROUTER_CLIENT_IF = "to-client"
ROUTER_DATACLIENT_IF = "to-dataclient"
ROUTER_BRIDGE_DATA_IF = "br-data"


@dataclass(frozen=True)
class LabAddresses:
    """Every address of the lab (figure 3 of the article, plus IPv6)."""

    prefixlen4: int = 24
    prefixlen6: int = 64

    mgmt_net4: str = "10.225.160.0/24"
    data_net4: str = "10.225.176.0/24"
    client_net4: str = "10.225.128.0/24"
    mgmt_net6: str = "2001:db8:160::/64"
    data_net6: str = "2001:db8:176::/64"
    client_net6: str = "2001:db8:128::/64"

    server_mgmt4: str = "10.225.160.38"
    server_data4: str = "10.225.176.38"
    server_mgmt6: str = "2001:db8:160::38"
    server_data6: str = "2001:db8:176::38"

    router_mgmt4: str = "10.225.160.1"
    router_data4: str = "10.225.176.1"
    router_client4: str = "10.225.128.1"
    router_mgmt6: str = "2001:db8:160::1"
    router_data6: str = "2001:db8:176::1"
    router_client6: str = "2001:db8:128::1"
    #: The router's link-local address on both server-facing links (the server's IPv6 gateway).
    router_ll6: str = "fe80::1"

    client4: str = "10.225.128.10"
    client6: str = "2001:db8:128::10"
    data_client4: str = "10.225.176.50"
    data_client6: str = "2001:db8:176::50"


#: The lab's addresses; a :class:`Lab` exposes the same object as ``lab.addresses``.
ADDR = LabAddresses()


@dataclass(frozen=True)
class Shape:
    """The namespaces of one lab and the options that change its wiring."""

    server: str
    router: str
    client: str
    data_client: str | None
    ipv6: bool
    server_rp_filter: int
    dhcp_data: bool

    @property
    def router_data_if(self) -> str:
        """The router's layer-3 interface on the data network (``br-data`` with a data client)."""
        return ROUTER_BRIDGE_DATA_IF if self.data_client is not None else ROUTER_DATA_IF


_COMMON_SYSCTLS = (
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
    "net.ipv6.conf.all.accept_ra=0",
    "net.ipv6.conf.default.accept_ra=0",
)


def sysctls(shape: Shape) -> list[tuple[str, tuple[str, ...]]]:
    """(namespace, settings) to apply before any link exists or is moved in: links take the
    namespace's "default" settings."""
    out = [
        (shape.router, (*_COMMON_SYSCTLS, "net.ipv4.ip_forward=1",
                        "net.ipv6.conf.all.forwarding=1", "net.ipv4.conf.all.rp_filter=1",
                        "net.ipv4.conf.default.rp_filter=1")),
        (shape.server, (*_COMMON_SYSCTLS,
                        f"net.ipv4.conf.all.rp_filter={shape.server_rp_filter}",
                        f"net.ipv4.conf.default.rp_filter={shape.server_rp_filter}")),
    ]
    out += [(ns, _COMMON_SYSCTLS) for ns in (shape.client, shape.data_client) if ns is not None]
    return out


def router_lines(shape: Shape) -> list[str]:
    """The router's links (veth pairs whose other ends move to the other namespaces, the data
    bridge with a data client) and addresses."""
    a = ADDR
    lines = [
        "link set lo up",
        f"link add {ROUTER_MGMT_IF} type veth peer name {SERVER_MGMT_IF}",
        f"link set {SERVER_MGMT_IF} netns {shape.server}",
        f"link add {ROUTER_DATA_IF} type veth peer name {SERVER_DATA_IF}",
        f"link set {SERVER_DATA_IF} netns {shape.server}",
        f"link add {ROUTER_CLIENT_IF} type veth peer name {CLIENT_IF}",
        f"link set {CLIENT_IF} netns {shape.client}",
    ]
    up = [ROUTER_MGMT_IF, ROUTER_DATA_IF, ROUTER_CLIENT_IF]
    if shape.data_client is not None:
        lines += [
            f"link add {ROUTER_DATACLIENT_IF} type veth peer name {CLIENT_IF}",
            f"link set {CLIENT_IF} netns {shape.data_client}",
            f"link add {ROUTER_BRIDGE_DATA_IF} type bridge stp_state 0 mcast_snooping 0",
            f"link set {ROUTER_DATA_IF} master {ROUTER_BRIDGE_DATA_IF}",
            f"link set {ROUTER_DATACLIENT_IF} master {ROUTER_BRIDGE_DATA_IF}",
        ]
        up += [ROUTER_DATACLIENT_IF, ROUTER_BRIDGE_DATA_IF]
    lines += [f"link set {ifname} up" for ifname in up]
    data_if = shape.router_data_if
    lines += [
        f"addr add {a.router_mgmt4}/{a.prefixlen4} dev {ROUTER_MGMT_IF}",
        f"addr add {a.router_data4}/{a.prefixlen4} dev {data_if}",
        f"addr add {a.router_client4}/{a.prefixlen4} dev {ROUTER_CLIENT_IF}",
    ]
    if shape.ipv6:
        lines += [
            f"addr add {a.router_mgmt6}/{a.prefixlen6} dev {ROUTER_MGMT_IF} nodad",
            f"addr add {a.router_ll6}/64 dev {ROUTER_MGMT_IF} nodad",
            f"addr add {a.router_data6}/{a.prefixlen6} dev {data_if} nodad",
            f"addr add {a.router_ll6}/64 dev {data_if} nodad",
            f"addr add {a.router_client6}/{a.prefixlen6} dev {ROUTER_CLIENT_IF} nodad",
        ]
    return lines


def router_rp_filters(shape: Shape) -> list[str]:
    """Explicit per-interface strict rp_filter (the kernel uses max(all, interface))."""
    l3_ifs = [ROUTER_MGMT_IF, shape.router_data_if, ROUTER_CLIENT_IF]
    return [f"net.ipv4.conf.{i}.rp_filter=1" for i in l3_ifs]


def server_lines(shape: Shape) -> list[str]:
    """The server: both interfaces up, one default route via the management gateway (the
    article's starting point); ens224's IPv4 address only without DHCP."""
    a = ADDR
    lines = [
        "link set lo up",
        f"link set {SERVER_MGMT_IF} up",
        f"link set {SERVER_DATA_IF} up",
        f"addr add {a.server_mgmt4}/{a.prefixlen4} dev {SERVER_MGMT_IF}",
        f"route add default via {a.router_mgmt4} dev {SERVER_MGMT_IF}",
    ]
    if not shape.dhcp_data:
        lines.insert(4, f"addr add {a.server_data4}/{a.prefixlen4} dev {SERVER_DATA_IF}")
    if shape.ipv6:
        lines += [
            f"addr add {a.server_mgmt6}/{a.prefixlen6} dev {SERVER_MGMT_IF} nodad",
            f"addr add {a.server_data6}/{a.prefixlen6} dev {SERVER_DATA_IF} nodad",
            f"route add ::/0 via {a.router_ll6} dev {SERVER_MGMT_IF}",
        ]
    return lines


def client_lines(shape: Shape, addr4: str, gw4: str, addr6: str, gw6: str) -> list[str]:
    a = ADDR
    lines = [
        "link set lo up",
        f"link set {CLIENT_IF} up",
        f"addr add {addr4}/{a.prefixlen4} dev {CLIENT_IF}",
        f"route add default via {gw4} dev {CLIENT_IF}",
    ]
    if shape.ipv6:
        lines += [
            f"addr add {addr6}/{a.prefixlen6} dev {CLIENT_IF} nodad",
            f"route add ::/0 via {gw6} dev {CLIENT_IF}",
        ]
    return lines


def clients(shape: Shape) -> list[tuple[str, list[str]]]:
    """(namespace, batch lines) of the client and, when there is one, the data client."""
    out = [(shape.client, client_lines(shape, ADDR.client4, ADDR.router_client4, ADDR.client6,
                                       ADDR.router_client6))]
    if shape.data_client is not None:
        out.append((shape.data_client, client_lines(shape, ADDR.data_client4, ADDR.router_data4,
                                                    ADDR.data_client6, ADDR.router_ll6)))
    return out
