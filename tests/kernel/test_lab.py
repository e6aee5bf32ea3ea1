"""The namespace lab itself reproduces the article's problem and its by-hand fix (no polroutd).

Real kernel, throwaway namespaces (see ``conftest.py``); needs root.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from polroutd.lab import topology
from polroutd.lab.dhcp import DhcpEvent, parse_events
from polroutd.lab.lab import (
    ADDR,
    ROUTER_BRIDGE_DATA_IF,
    ROUTER_CLIENT_IF,
    ROUTER_DATA_IF,
    ROUTER_DATACLIENT_IF,
    ROUTER_MGMT_IF,
    SERVER_DATA_IF,
    SERVER_MGMT_IF,
    Lab,
    LabError,
    netns_names_with_prefix,
    remove_stale,
)

PREFIX = "polroutd-t"
FAIL_TIMEOUT = 1.0  # the asymmetric case waits this long; keep the file fast


def _exists(ns: str) -> bool:
    return Path("/run/netns", ns).exists()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _sysctl(lab: Lab, ns: str, key: str) -> str:
    return lab.run(ns, "sysctl", "-n", key).stdout.strip()


def _article_fix(lab: Lab) -> None:
    """The article's tables 1 and 2 and their rules, typed by hand in the server namespace."""
    a = ADDR
    script4 = [
        f"route add default via {a.router_mgmt4} dev {SERVER_MGMT_IF} table 1",
        f"route add default via {a.router_data4} dev {SERVER_DATA_IF} table 2",
        f"rule add from {a.server_mgmt4} table 1",
        f"rule add from {a.server_data4} table 2",
    ]
    script6 = [
        f"route add default via {a.router_ll6} dev {SERVER_MGMT_IF} table 1",
        f"route add default via {a.router_ll6} dev {SERVER_DATA_IF} table 2",
        f"rule add from {a.server_mgmt6} table 1",
        f"rule add from {a.server_data6} table 2",
    ]
    for family, lines in (("-4", script4), ("-6", script6)):
        subprocess.run(
            ["ip", "netns", "exec", lab.server, "ip", family, "-batch", "-"],
            input="".join(f"{line}\n" for line in lines),
            text=True,
            check=True,
            capture_output=True,
            timeout=10,
        )


def test_topology_matches_figure_3(lab: Lab) -> None:
    server_links = {link["ifname"] for link in lab.ip_json(lab.server, "link", "show")}
    assert server_links == {"lo", SERVER_MGMT_IF, SERVER_DATA_IF}
    routes = lab.ip_json(lab.server, "-4", "route", "show", "table", "main")
    defaults = [r for r in routes if r["dst"] == "default"]
    assert defaults == [
        {"dst": "default", "gateway": ADDR.router_mgmt4, "dev": SERVER_MGMT_IF, "flags": []}
    ]
    defaults6 = [r for r in lab.ip_json(lab.server, "-6", "route") if r["dst"] == "default"]
    assert [(r["gateway"], r["dev"]) for r in defaults6] == [(ADDR.router_ll6, SERVER_MGMT_IF)]
    router_links = {link["ifname"] for link in lab.ip_json(lab.router, "link", "show")}
    assert {ROUTER_MGMT_IF, ROUTER_DATA_IF, ROUTER_CLIENT_IF} <= router_links
    assert _sysctl(lab, lab.router, "net.ipv4.conf.all.rp_filter") == "1"
    for ifname in (ROUTER_MGMT_IF, ROUTER_DATA_IF, ROUTER_CLIENT_IF):
        assert _sysctl(lab, lab.router, f"net.ipv4.conf.{ifname}.rp_filter") == "1"
    assert _sysctl(lab, lab.router, "net.ipv4.ip_forward") == "1"
    assert _sysctl(lab, lab.router, "net.ipv6.conf.all.forwarding") == "1"
    assert lab.probes.ping(lab.client, ADDR.router_client4)
    assert lab.probes.ping(lab.server, ADDR.router_ll6 + "%" + SERVER_MGMT_IF)


def test_client_reaches_management_address(lab: Lab) -> None:
    lab.probes.start_tcp_server(lab.server)
    assert lab.probes.tcp_request(lab.client, ADDR.server_mgmt4) == (
        f"polroutd-lab reached-at {ADDR.server_mgmt4} from {ADDR.client4}"
    )
    assert lab.probes.tcp_connect(lab.client, ADDR.server_mgmt6)
    assert lab.probes.ping(lab.client, ADDR.server_mgmt4)
    assert lab.probes.ping(lab.client, ADDR.server_mgmt6)


def test_data_address_fails_asymmetric_reply_dropped(lab: Lab) -> None:
    lab.probes.start_tcp_server(lab.server)
    data_tx0 = lab.probes.link_counters(lab.router, ROUTER_DATA_IF)[1]
    mgmt_rx0 = lab.probes.link_counters(lab.router, ROUTER_MGMT_IF)[0]
    ens224_rx0 = lab.probes.link_counters(lab.server, SERVER_DATA_IF)[0]
    drops0 = lab.probes.rp_filter_drops(lab.router)

    assert not lab.probes.tcp_connect(lab.client, ADDR.server_data4, timeout=FAIL_TIMEOUT)

    # The request went out of the router's data side and reached the server's ens224 ...
    assert lab.probes.link_counters(lab.router, ROUTER_DATA_IF)[1] > data_tx0
    assert lab.probes.link_counters(lab.server, SERVER_DATA_IF)[0] > ens224_rx0
    # ... the reply came back on the management side, where strict rp_filter dropped it.
    assert lab.probes.link_counters(lab.router, ROUTER_MGMT_IF)[0] > mgmt_rx0
    assert lab.probes.rp_filter_drops(lab.router) > drops0


def test_ipv6_asymmetric_reply_is_forwarded_no_ipv6_rpfilter(lab: Lab) -> None:
    """No IPv6 reverse-path filter exists in the lab (no nft/ip6tables): the asymmetric IPv6
    reply returns through the management side and is forwarded. The counters show it."""
    lab.probes.start_tcp_server(lab.server)
    mgmt_rx0 = lab.probes.link_counters(lab.router, ROUTER_MGMT_IF)[0]
    assert lab.probes.tcp_request(lab.client, ADDR.server_data6) == (
        f"polroutd-lab reached-at {ADDR.server_data6} from {ADDR.client6}"
    )
    assert lab.probes.link_counters(lab.router, ROUTER_MGMT_IF)[0] > mgmt_rx0


def test_manual_policy_routing_fixes_data_address(lab: Lab) -> None:
    lab.probes.start_tcp_server(lab.server)
    _article_fix(lab)
    data_rx0 = lab.probes.link_counters(lab.router, ROUTER_DATA_IF)[0]
    drops0 = lab.probes.rp_filter_drops(lab.router)

    assert lab.probes.tcp_request(lab.client, ADDR.server_data4) == (
        f"polroutd-lab reached-at {ADDR.server_data4} from {ADDR.client4}"
    )
    assert lab.probes.ping(lab.client, ADDR.server_data4)
    assert lab.probes.tcp_connect(lab.client, ADDR.server_mgmt4)
    assert lab.probes.tcp_connect(lab.client, ADDR.server_data6)
    assert lab.probes.tcp_connect(lab.client, ADDR.server_mgmt6)
    # Replies from the data address now leave through the data side: symmetric, no drops.
    assert lab.probes.link_counters(lab.router, ROUTER_DATA_IF)[0] > data_rx0
    assert lab.probes.rp_filter_drops(lab.router) == drops0


def test_teardown_removes_everything_even_if_body_raises(require_netadmin: None) -> None:
    lab = Lab(prefix=PREFIX)
    with pytest.raises(RuntimeError, match="boom"), lab:
        names = lab.namespaces
        assert all(_exists(ns) for ns in names)
        lab.probes.start_tcp_server(lab.server)
        tracked = lab.popen(lab.client, "sleep", "60")
        # A process the lab did not start (e.g. a daemon that forked away) is also ended.
        untracked = subprocess.Popen(["ip", "netns", "exec", lab.router, "sleep", "60"])
        (lab.etc_dir(lab.server) / "resolv.conf").write_text("nameserver 192.0.2.53\n")
        raise RuntimeError("boom")
    try:
        assert not any(_exists(ns) for ns in names)
        assert not any(Path("/etc/netns", ns).exists() for ns in names)
        assert tracked.poll() is not None
        untracked.wait(timeout=5)  # raises TimeoutExpired if teardown left it running
        assert not _pid_alive(tracked.pid)
        assert not lab.built
        lab.teardown()  # idempotent
    finally:
        untracked.kill()
        untracked.wait()


def test_interrupted_build_cleans_up(
    require_netadmin: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(shape: topology.Shape) -> list[str]:
        raise KeyboardInterrupt  # while configuring the server: the router is wired already

    monkeypatch.setattr(topology, "server_lines", interrupted)
    lab = Lab(prefix=PREFIX)
    with pytest.raises(KeyboardInterrupt):
        lab.build()
    assert not any(_exists(ns) for ns in lab.namespaces)


def test_remove_stale_and_prefix_matching(require_netadmin: None) -> None:
    prefix = f"polroutd-ts{secrets.token_hex(2)}"
    lab = Lab(prefix=prefix)
    try:
        lab.build()
        lab.popen(lab.server, "sleep", "60")
        assert netns_names_with_prefix(prefix) == sorted(lab.namespaces)
        assert netns_names_with_prefix(prefix[:-1]) == []  # a prefix never matches loosely
        assert sorted(remove_stale(prefix)) == sorted(lab.namespaces)
        assert netns_names_with_prefix(prefix) == []
    finally:
        lab.teardown()
    assert not any(_exists(ns) for ns in lab.namespaces)


def test_data_client_reaches_data_address_directly(require_netadmin: None) -> None:
    with Lab(prefix=PREFIX, with_data_client=True) as lab:
        assert lab.data_client is not None
        assert lab.router_data_if == ROUTER_BRIDGE_DATA_IF
        ports = {
            link["ifname"]
            for link in lab.ip_json(lab.router, "link", "show", "master", ROUTER_BRIDGE_DATA_IF)
        }
        assert ports == {ROUTER_DATA_IF, ROUTER_DATACLIENT_IF}
        lab.probes.start_tcp_server(lab.server)
        assert lab.probes.tcp_request(lab.data_client, ADDR.server_data4) == (
            f"polroutd-lab reached-at {ADDR.server_data4} from {ADDR.data_client4}"
        )
        assert lab.probes.tcp_connect(lab.data_client, ADDR.server_data6)
        assert lab.probes.ping(lab.data_client, ADDR.router_data4)
        # The router-zone client still sees the article's problem with a bridged data side.
        assert lab.probes.tcp_connect(lab.client, ADDR.server_mgmt4)
        assert not lab.probes.tcp_connect(lab.client, ADDR.server_data4, timeout=FAIL_TIMEOUT)
    assert not any(_exists(ns) for ns in lab.namespaces)


def test_ipv4_only_lab(require_netadmin: None) -> None:
    with Lab(prefix=PREFIX, ipv6=False) as lab:
        addrs = lab.ip_json(lab.server, "-6", "addr", "show", "scope", "global")
        assert all(not entry.get("addr_info") for entry in addrs)
        lab.probes.start_tcp_server(lab.server)
        assert lab.probes.tcp_connect(lab.client, ADDR.server_mgmt4)


# --------------------------------------------------------------------------------------------
# Real DHCP on the data network (dhcp_data=True)


def _resolv_conf() -> tuple[bytes, int] | None:
    try:
        return Path("/etc/resolv.conf").read_bytes(), Path("/etc/resolv.conf").stat().st_mtime_ns
    except FileNotFoundError:
        return None


def test_parse_events_skips_garbage() -> None:
    text = (
        "1700000000.5 BOUND - 10.225.176.38 0\n"
        "garbage\n"
        "1700000001.0 EXPIRE 10.225.176.38 - 0\n"
        "1700000002 RENEW 10.225.176.38 10.225.176.38 x\n"  # bad status
        "1700000003.0 PREINIT - -"  # half-written
    )
    assert parse_events(text) == [
        DhcpEvent(1700000000.5, "BOUND", None, ADDR.server_data4, 0),
        DhcpEvent(1700000001.0, "EXPIRE", ADDR.server_data4, None, 0),
    ]


def test_dhcp_leases_the_data_address_and_touches_nothing_else(require_netadmin: None) -> None:
    resolv_before = _resolv_conf()
    with Lab(prefix=PREFIX, dhcp_data=True) as lab:
        tmp = lab.temp_dir
        assert lab.data_address4() is None  # no static IPv4 address on ens224
        lab.start_dhcp_server()
        assert lab.dhcp_server_kind == "dnsmasq"
        assert lab.start_dhcp_client() == ADDR.server_data4
        assert lab.data_address4() == ADDR.server_data4
        lease = lab.lease_path.read_text()
        assert lab.lease_path.parent == tmp
        assert f"fixed-address {ADDR.server_data4};" in lease
        assert f"option routers {ADDR.router_data4};" in lease
        assert [e.reason for e in lab.dhcp_events()] == ["PREINIT", "BOUND"]
        # The client script sets the address only: the article's single default route stays.
        defaults = [r for r in lab.ip_json(lab.server, "-4", "route") if r["dst"] == "default"]
        assert [(r["gateway"], r["dev"]) for r in defaults] == [
            (ADDR.router_mgmt4, SERVER_MGMT_IF)
        ]
        assert not Path("/etc/netns", lab.server).exists()  # no resolv.conf for the namespace
        # The server answers on the router's data side only.
        assert "DHCPACK(to-data)" in lab.dhcp_log("server")
        lab.probes.start_tcp_server(lab.server)
        assert lab.probes.tcp_connect(lab.client, ADDR.server_mgmt4)
    assert not tmp.exists()
    assert _resolv_conf() == resolv_before


def test_changed_reservation_is_naked_at_renewal_and_client_moves(
    require_netadmin: None,
) -> None:
    with Lab(prefix=PREFIX, dhcp_data=True) as lab:
        lab.start_dhcp_server()
        lab.start_dhcp_client()
        mark = len(lab.dhcp_events())
        lab.change_reservation("10.225.176.77")
        assert lab.renew() == "10.225.176.77"
        assert lab.data_address4() == "10.225.176.77"
        addresses = lab.ip_json(lab.server, "-4", "addr", "show", "dev", SERVER_DATA_IF)
        assert [a["local"] for a in addresses[0]["addr_info"]] == ["10.225.176.77"]
        reasons = [(e.reason, e.old, e.new) for e in lab.dhcp_events()[mark:]]
        assert reasons == [
            ("EXPIRE", ADDR.server_data4, None),
            ("PREINIT", None, None),
            ("BOUND", None, "10.225.176.77"),
        ]
        server_log = lab.dhcp_log("server")
        assert f"DHCPNAK(to-data) {ADDR.server_data4}" in server_log
        assert "DHCPACK(to-data) 10.225.176.77" in server_log
        # An unchanged reservation: the next renewal keeps the address.
        assert lab.renew() == "10.225.176.77"
        assert lab.dhcp_events()[-1].reason == "RENEW"
        with pytest.raises(ValueError):
            lab.change_reservation(ADDR.router_data4)


def test_short_lease_server_moves_the_client_after_expiry(require_netadmin: None) -> None:
    with Lab(prefix=PREFIX, dhcp_data=True, with_data_client=True) as lab:
        lab.start_dhcp_server(lease_seconds=4)
        assert lab.dhcp_server_kind == "udhcpd"
        assert lab.start_dhcp_client() == ADDR.server_data4
        # udhcpd does not answer a renewal for an address no longer reserved: the client
        # moves once the old lease has expired.
        lab.change_reservation("10.225.176.90")
        assert lab.renew() == "10.225.176.90"
        assert lab.data_address4() == "10.225.176.90"
        assert "EXPIRE" in [e.reason for e in lab.dhcp_events()]
        # (Expiry with polroutd watching, and rediscovery: tests/test_e2e.py.)


def test_count_packets_and_monitor(lab: Lab) -> None:
    lab.probes.start_tcp_server(lab.server)
    with lab.probes.count_packets(lab.router, [ROUTER_MGMT_IF, ROUTER_DATA_IF],
                           source=ADDR.server_mgmt4, port=8080) as replies:
        assert lab.probes.tcp_connect(lab.client, ADDR.server_mgmt4)
    assert replies.by_interface[ROUTER_MGMT_IF] >= 3  # SYN-ACK, answer, FIN at least
    assert replies.by_interface[ROUTER_DATA_IF] == 0
    with lab.probes.count_packets(lab.router, [ROUTER_MGMT_IF], source=ADDR.server_mgmt4,
                           port=9) as other:
        assert lab.probes.tcp_connect(lab.client, ADDR.server_mgmt4)
    assert other.by_interface == {ROUTER_MGMT_IF: 0}  # another source port is not counted

    with lab.probes.monitor(lab.server, "address", "rule") as events:
        lab.run(lab.server, "ip", "addr", "add", "10.225.176.99/24", "dev", SERVER_DATA_IF)
        lab.run(lab.server, "ip", "rule", "add", "from", "10.225.176.99", "lookup", "100")
        lab.run(lab.server, "ip", "addr", "del", "10.225.176.99/24", "dev", SERVER_DATA_IF)
    added = events.first("inet 10.225.176.99/24")
    ruled = events.first("from 10.225.176.99 lookup 100")
    deleted = events.first("Deleted", "inet 10.225.176.99/24")
    assert added is not None and ruled is not None and deleted is not None
    assert added.at <= ruled.at <= deleted.at
    assert not added.text.startswith("Deleted")
    assert abs(time.time() - deleted.at) < 5


def test_http_get_inside_a_namespace(lab: Lab) -> None:
    server = lab.popen(lab.server, sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                       "18080", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            status, body = lab.probes.http_get(lab.server, "http://127.0.0.1:18080/")
            break
        except LabError:
            assert server.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    assert status == 200 and "Directory listing" in body
    assert lab.probes.http_get(lab.server, "http://127.0.0.1:18080/nope")[0] == 404
    with pytest.raises(LabError):  # nothing listens there in the client namespace
        lab.probes.http_get(lab.client, "http://127.0.0.1:18080/")


def test_remove_stale_removes_dhcp_processes_and_temp_dir(require_netadmin: None) -> None:
    prefix = f"polroutd-ts{secrets.token_hex(2)}"
    lab = Lab(prefix=prefix, dhcp_data=True)
    try:
        lab.build()
        lab.start_dhcp_server()
        lab.start_dhcp_client()
        tmp = lab.temp_dir
        pids = [int(p) for ns in lab.namespaces
                for p in subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                                        text=True, check=True).stdout.split()]
        assert pids
        lab.detach()  # as `polroutd demo --keep` leaves it
        assert sorted(remove_stale(prefix)) == sorted(lab.namespaces)
        assert not tmp.exists()
        # Killed processes leave the namespace a moment before they are fully dead.
        deadline = time.monotonic() + 5
        while any(_running(pid) for pid in pids):
            assert time.monotonic() < deadline, [p for p in pids if _running(p)]
            time.sleep(0.02)
    finally:
        lab.teardown()


def _running(pid: int) -> bool:
    """Alive and not a zombie (children of this process stay zombies until reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_remove_stale_spares_a_live_lab_of_another_process_but_takes_a_crashed_one(
    require_netadmin: None,
) -> None:
    prefix = f"polroutd-ts{secrets.token_hex(2)}"
    root = Path(__file__).resolve().parents[2]
    builder = (f"import sys\nfrom polroutd.lab.lab import Lab\nlab = Lab(prefix={prefix!r})\n"
               "lab.build()\nprint(lab.token, flush=True)\nsys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", builder], cwd=root, text=True,
                            env=dict(os.environ, PYTHONPATH=str(root)),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        token = proc.stdout.readline().strip()
        assert token
        assert remove_stale(prefix) == []  # e.g. a demo running in another terminal
        assert len(netns_names_with_prefix(prefix)) == 3
        proc.kill()  # crashed: no teardown at all
        proc.wait(timeout=10)
        assert len(remove_stale(prefix)) == 3
        assert netns_names_with_prefix(prefix) == []
        assert not list(Path(tempfile.gettempdir()).glob(f"{prefix}-{token}-*"))
    finally:
        proc.kill()
        proc.wait(timeout=10)
        remove_stale(prefix)


def test_etc_netns_goes_with_the_last_lab_that_used_it(require_netadmin: None) -> None:
    etc_netns = Path("/etc/netns")
    existed = etc_netns.exists()
    with Lab(prefix=PREFIX) as first, Lab(prefix=PREFIX) as second:
        (first.etc_dir(first.server) / "hosts").write_text("192.0.2.1 first\n")
        second.etc_dir(second.server)
        first.teardown()
        assert not (etc_netns / first.server).exists()
        assert (etc_netns / second.server).is_dir()  # still in use by the second lab
    assert etc_netns.exists() == existed
