"""The DHCP clients operators run, for real against polroutd (issue 10): ISC dhclient, dhcpcd
(with and without ``nogateway``), busybox udhcpc, systemd-networkd (with and without
``[DHCPv4] RouteTable=``) and NetworkManager 1.42 (when installed or unpacked, see
``polroutd.lab.clients``), each against dnsmasq; plus NetworkManager's way of leaving an
address (``noprefixroute``, prefix route at metric 100) re-enacted with ``ip``.

For each: the leased address gets its rule, the table gets the connected prefix (whoever
installed it, wherever) and ``default via`` the router, ``/state`` names where the gateway came
from, a data-network neighbour is reached directly, a request from the client zone is answered
on the interface it came in on, and a renewal to a new address is followed. The host's DHCP
client files are checked unchanged after every test.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from polroutd.lab import clients
from polroutd.lab.daemon import LabDaemon
from polroutd.lab.lab import ADDR, SERVER_DATA_IF, Lab
from tests.support import REPO
from tests.support.client_lab import DATA_TABLE, config_text, write
from tests.support.lab_tools import (
    LAB_PREFIX,
    TCP_PORT,
    answer,
    owned,
    replies,
    routes,
    rules,
    start_daemon,
)

NETWORKD_TABLE = 100
NEW_ADDRESS = "10.225.176.77"
#: What the tests measured, written by ``-s`` runs for the project's notes.
MEASURED: list[dict[str, Any]] = []


@dataclass
class Client:
    """How one client is started, asked to renew, and where its lease is."""

    name: str
    source: str  # the gateway source /state must name
    start: Callable[[Lab], tuple[Callable[[], None], list[str]]]  # -> (renew, lease paths)
    version: list[str]


def _dhclient(lab: Lab) -> tuple[Callable[[], None], list[str]]:
    lab.start_dhcp_client()
    return (lambda: None), [str(lab.lease_path)]  # renews every T1 (3 s) by itself


def _dhcpcd(gateway: bool) -> Callable[[Lab], tuple[Callable[[], None], list[str]]]:
    def start(lab: Lab) -> tuple[Callable[[], None], list[str]]:
        client = clients.DhcpcdClient(lab, lab.temp_dir, SERVER_DATA_IF, gateway=gateway)
        client.start()
        client.wait_address()
        return (lambda: None), [str(client.state_dir / "{ifname}.lease")]
    return start


def _udhcpc(lab: Lab) -> tuple[Callable[[], None], list[str]]:
    client = clients.UdhcpcClient(lab, lab.temp_dir, SERVER_DATA_IF)
    client.start()
    client.wait_address()
    return client.renew, []


def _networkd(route_table: int | None) -> Callable[[Lab], tuple[Callable[[], None], list[str]]]:
    def start(lab: Lab) -> tuple[Callable[[], None], list[str]]:
        client = clients.NetworkdClient(lab, lab.temp_dir, SERVER_DATA_IF,
                                        route_table=route_table)
        client.start()
        client.wait_address()
        return (lambda: None), [str(client.run_dir / "systemd/netif/leases/{ifindex}")]
    return start


def _networkmanager(lab: Lab) -> tuple[Callable[[], None], list[str]]:
    command = clients.networkmanager_command()
    assert command is not None
    client = clients.NetworkManagerClient(lab, lab.temp_dir, SERVER_DATA_IF, command)
    client.start()
    client.wait_address()
    return (lambda: None), [client.lease_glob()]


NM_COMMAND = clients.networkmanager_command()

CLIENTS = [
    Client("dhclient", "dhcp-lease", _dhclient, ["dhclient", "--version"]),
    Client("dhcpcd", "main-table", _dhcpcd(gateway=True), ["dhcpcd", "--version"]),
    Client("dhcpcd-nogateway", "dhcp-lease", _dhcpcd(gateway=False), ["dhcpcd", "--version"]),
    Client("udhcpc", "main-table", _udhcpc, ["busybox"]),
    Client("networkd", "main-table", _networkd(None), [clients.NETWORKD, "--version"]),
    Client("networkd-routetable", "dhcp-lease", _networkd(NETWORKD_TABLE),
           [clients.NETWORKD, "--version"]),
    Client("networkmanager", "main-table", _networkmanager, [*(NM_COMMAND or []), "--version"]),
]
NO_NM = (f"NetworkManager is neither installed nor unpacked in ${clients.NM_ROOT_VARIABLE} "
         "(see polroutd/lab/clients.py)")


def client_params() -> list[Any]:
    return [pytest.param(c, id=c.name, marks=pytest.mark.skipif(
        c.name == "networkmanager" and NM_COMMAND is None, reason=NO_NM)) for c in CLIENTS]


@pytest.fixture(autouse=True)
def host_files_untouched() -> Iterator[None]:
    before = clients.host_files_snapshot()
    yield
    assert clients.host_files_snapshot() == before, "a DHCP client wrote the host's files"


@pytest.fixture
def lab(require_netadmin: None) -> Iterator[Lab]:
    built = Lab(prefix=LAB_PREFIX, dhcp_data=True, with_data_client=True)
    built.build()
    try:
        built.probes.start_tcp_server(built.server, TCP_PORT)
        yield built
    finally:
        built.teardown()


def sources4(lab: Lab) -> dict[str, int]:
    return {r["src"]: int(r["table"]) for r in owned(rules(lab, lab.server))
            if r["family"] == "-4" and "src" in r}


def table4(lab: Lab, table: int) -> set[tuple[str, str | None, str | None]]:
    return {(r["dst"], r.get("gateway"), r.get("prefsrc")) for r in owned(routes(lab, lab.server))
            if r["family"] == "-4" and int(r.get("table", 0)) == table}


def expect_served(lab: Lab, daemon: LabDaemon, address: str, source: str) -> None:
    """Rule, connected prefix, default route, gateway source, neighbour and client traffic."""
    daemon.wait_for(lambda: sources4(lab).get(address) == DATA_TABLE, what=f"rule for {address}")
    daemon.wait_for(lambda: table4(lab, DATA_TABLE) == {
        ("10.225.176.0/24", None, address), ("default", ADDR.router_data4, None)},
        what="the data table's prefix and default route")
    daemon.wait_for(lambda: daemon.state()["in_sync"], what="in sync")
    ens224 = next(i for i in daemon.state()["interfaces"] if i["name"] == SERVER_DATA_IF)
    assert ens224["gateway"]["ipv4"]["source"] == source
    assert ens224["gateway"]["ipv4"]["address"] == ADDR.router_data4
    # A data-network neighbour is reached directly, not through the router.
    neighbour = lab.run(lab.server, "ip", "route", "get", ADDR.data_client4, "from", address).stdout
    assert "via" not in neighbour and f"dev {SERVER_DATA_IF}" in neighbour, neighbour
    got = lab.probes.tcp_request(lab.data_client or "", address)
    assert got == answer(address, ADDR.data_client4)
    got, seen = replies(lab, address, lambda: lab.probes.tcp_request(lab.client, address))
    assert got == answer(address)
    assert seen["data"] > 0 and seen["mgmt"] == 0 and seen["drops"] == 0


def gauge(daemon: LabDaemon, interface: str, family: str) -> float | None:
    _, text = daemon.http("/metrics")
    wanted = f'polroutd_interface_gateway_present{{family="{family}",interface="{interface}"}}'
    for line in text.splitlines():
        if line.startswith(wanted):
            return float(line.split()[-1])
    return None


@pytest.mark.parametrize("client", client_params())
def test_client_lease_and_renewal_are_followed(client: Client, lab: Lab, tmp_path: Path) -> None:
    lab.start_dhcp_server()
    renew, lease_paths = client.start(lab)
    lease_paths = lease_paths or [str(tmp_path / "no-lease-file-for-this-client")]
    daemon = start_daemon(lab, write(tmp_path, config_text(tmp_path, lease_paths)), tmp_path)
    try:
        daemon.wait_ready()
        expect_served(lab, daemon, ADDR.server_data4, client.source)
        assert gauge(daemon, SERVER_DATA_IF, "ipv4") == 1
        errors = daemon.counters()["reconciles_error"]

        with lab.probes.monitor(lab.server, "address", "rule") as seen:
            lab.change_reservation(NEW_ADDRESS)
            asked = time.time()
            renew()
            daemon.wait_for(lambda: sources4(lab).get(NEW_ADDRESS) == DATA_TABLE, timeout=20,
                            what=f"rule for {NEW_ADDRESS}")
        address = seen.first(NEW_ADDRESS, SERVER_DATA_IF)
        rule = seen.first(f"from {NEW_ADDRESS}", "lookup")
        assert address is not None and rule is not None, seen.events
        expect_served(lab, daemon, NEW_ADDRESS, client.source)
        assert ADDR.server_data4 not in sources4(lab)
        assert daemon.counters()["reconciles_error"] == errors
        MEASURED.append({"client": client.name, "version": clients.client_version(client.version),
                         "renewal_to_new_address_s": round(address.at - asked, 3),
                         "new_address_to_rule_ms": round((rule.at - address.at) * 1000, 1)})
        print(f"\nMEASURED {json.dumps(MEASURED[-1])}")
    finally:
        daemon.stop()


# --- NetworkManager's way, re-enacted (also where NetworkManager cannot run) ----------------


def test_networkmanager_style_noprefixroute_address_with_prefix_route_at_metric_100(
    lab: Lab, tmp_path: Path
) -> None:
    """NetworkManager 1.42 adds the DHCP address ``noprefixroute`` and installs the prefix
    route and the default route itself, at metric 100: the layout alone, with ``ip``, so it is
    tested also where NetworkManager is not available (the ``networkmanager`` case above runs
    the real one)."""
    address = ADDR.server_data4
    for line in (f"addr add {address}/24 dev {SERVER_DATA_IF} noprefixroute",
                 f"route add 10.225.176.0/24 dev {SERVER_DATA_IF} proto dhcp scope link "
                 f"src {address} metric 100",
                 f"route add default via {ADDR.router_data4} dev {SERVER_DATA_IF} proto dhcp "
                 f"src {address} metric 100"):
        lab.run(lab.server, "ip", *line.split())
    daemon = start_daemon(lab, write(tmp_path, config_text(tmp_path, [])), tmp_path)
    try:
        daemon.wait_ready()
        expect_served(lab, daemon, address, "main-table")
        assert daemon.counters()["reconciles_error"] == 0
    finally:
        daemon.stop()


def test_a_configured_gateway_on_a_noprefixroute_subnet_outside_main_is_installed(
    lab: Lab, tmp_path: Path
) -> None:
    """``ip addr add … noprefixroute`` and the prefix route only in another table (networkd's
    ``RouteTable=``): ``default via G`` in polroutd's table used to fail with ENETUNREACH,
    retried forever, /readyz 503 while the gauge said 1."""
    address = ADDR.server_data4
    lab.run(lab.server, "ip", "addr", "add", f"{address}/24", "dev", SERVER_DATA_IF,
            "noprefixroute")
    lab.run(lab.server, "ip", "route", "add", "10.225.176.0/24", "dev", SERVER_DATA_IF,
            "table", str(NETWORKD_TABLE), "proto", "dhcp", "src", address)
    extra = f'gateway = "{ADDR.router_data4}"'
    daemon = start_daemon(lab, write(tmp_path, config_text(tmp_path, [], extra)), tmp_path)
    try:
        daemon.wait_ready(timeout=10)
        expect_served(lab, daemon, address, "config")
        assert daemon.counters()["reconciles_error"] == 0
        assert gauge(daemon, SERVER_DATA_IF, "ipv4") == 1
        status, _ = daemon.http("/readyz")
        assert status == 200
    finally:
        daemon.stop()


# --- dhcpcd's lease file and the hardened unit ---------------------------------------------


HOOK = REPO / "contrib" / "dhcpcd" / "dhcpcd.exit-hook"


def _read_as_nobody(lease_dir: Path) -> dict[str, Any]:
    """``search_leases`` for ens224 run as ``nobody`` with no capabilities (as the unit's
    ``User=polroutd`` reads files; ``nogroup`` stands for the unit's group)."""
    code = ("import json, sys; from polroutd.inputs import leases; "
            "f = leases.lease_findings({'ens224': 4}, [sys.argv[1]], 0.0).get('ens224'); "
            "print(json.dumps({'gateway': f.offers[0].routers[0] if f and f.offers else None, "
            "'unreadable': list(f.refused) if f else []}))")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all",
         "--bounding-set=-all", "/usr/bin/python3", "-c", code, str(lease_dir / "{ifname}.lease")],
        capture_output=True, text=True, check=True, timeout=20, env=env)
    found: dict[str, Any] = json.loads(proc.stdout)
    return found


def test_dhcpcd_lease_is_unreadable_to_the_service_user_until_the_hook_shares_it(
    lab: Lab,
) -> None:
    lab.start_dhcp_server()
    plain = clients.DhcpcdClient(lab, lab.temp_dir, SERVER_DATA_IF, gateway=False)
    plain.start()
    plain.wait_address()
    lease = plain.lease_path
    os.chmod(lab.temp_dir, 0o755)  # the lab's directory, as /var/lib is: traversable
    mode = os.stat(lease).st_mode & 0o777
    assert (mode, os.stat(lease).st_uid, os.stat(lease).st_gid) == (0o640, 0, 0)
    found = _read_as_nobody(plain.state_dir)
    assert found["gateway"] is None, found
    [refused] = found["unreadable"]
    assert str(lease) in refused and "permission denied" in refused and "Works with" in refused
    plain.stop()

    # The documented fix: contrib/dhcpcd/dhcpcd.exit-hook gives the lease to polroutd's group
    # after each write ("nogroup" standing in for "polroutd" here).
    hook = HOOK.read_text().replace('POLROUTD_GROUP="polroutd"', 'POLROUTD_GROUP="nogroup"')
    hooked = clients.DhcpcdClient(lab, lab.temp_dir, SERVER_DATA_IF, gateway=False,
                                  exit_hook=hook)
    hooked.start()
    lab.change_reservation(NEW_ADDRESS)  # a fresh bind: the lease is written again
    hooked.wait_address(NEW_ADDRESS)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = _read_as_nobody(hooked.state_dir)
        if found["gateway"]:
            break
        time.sleep(0.2)
    assert found == {"gateway": ADDR.router_data4, "unreadable": []}, hooked.log_tail()
    assert os.stat(lease).st_mode & 0o777 == 0o640  # still not world-readable
