"""The namespace lab itself reproduces the article's problem and its by-hand fix (no polroutd).

Real kernel, throwaway namespaces (see ``conftest.py``); needs root.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest

from polroutd.lab import (
    ADDR,
    ROUTER_BRIDGE_DATA_IF,
    ROUTER_CLIENT_IF,
    ROUTER_DATA_IF,
    ROUTER_DATACLIENT_IF,
    ROUTER_MGMT_IF,
    SERVER_DATA_IF,
    SERVER_MGMT_IF,
    Lab,
    netns_names_with_prefix,
    remove_stale,
)

pytestmark = pytest.mark.netns

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
    assert lab.ping(lab.client, ADDR.router_client4)
    assert lab.ping(lab.server, ADDR.router_ll6 + "%" + SERVER_MGMT_IF)


def test_client_reaches_management_address(lab: Lab) -> None:
    lab.start_tcp_server(lab.server)
    assert lab.tcp_request(lab.client, ADDR.server_mgmt4) == (
        f"polroutd-lab reached-at {ADDR.server_mgmt4} from {ADDR.client4}"
    )
    assert lab.tcp_connect(lab.client, ADDR.server_mgmt6)
    assert lab.ping(lab.client, ADDR.server_mgmt4)
    assert lab.ping(lab.client, ADDR.server_mgmt6)


def test_data_address_fails_asymmetric_reply_dropped(lab: Lab) -> None:
    lab.start_tcp_server(lab.server)
    data_tx0 = lab.link_counters(lab.router, ROUTER_DATA_IF)[1]
    mgmt_rx0 = lab.link_counters(lab.router, ROUTER_MGMT_IF)[0]
    ens224_rx0 = lab.link_counters(lab.server, SERVER_DATA_IF)[0]
    drops0 = lab.rp_filter_drops(lab.router)

    assert not lab.tcp_connect(lab.client, ADDR.server_data4, timeout=FAIL_TIMEOUT)

    # The request went out of the router's data side and reached the server's ens224 ...
    assert lab.link_counters(lab.router, ROUTER_DATA_IF)[1] > data_tx0
    assert lab.link_counters(lab.server, SERVER_DATA_IF)[0] > ens224_rx0
    # ... the reply came back on the management side, where strict rp_filter dropped it.
    assert lab.link_counters(lab.router, ROUTER_MGMT_IF)[0] > mgmt_rx0
    assert lab.rp_filter_drops(lab.router) > drops0


def test_ipv6_asymmetric_reply_is_forwarded_no_ipv6_rpfilter(lab: Lab) -> None:
    """No IPv6 reverse-path filter exists in the lab (no nft/ip6tables): the asymmetric IPv6
    reply returns through the management side and is forwarded. The counters show it."""
    lab.start_tcp_server(lab.server)
    mgmt_rx0 = lab.link_counters(lab.router, ROUTER_MGMT_IF)[0]
    assert lab.tcp_request(lab.client, ADDR.server_data6) == (
        f"polroutd-lab reached-at {ADDR.server_data6} from {ADDR.client6}"
    )
    assert lab.link_counters(lab.router, ROUTER_MGMT_IF)[0] > mgmt_rx0


def test_manual_policy_routing_fixes_data_address(lab: Lab) -> None:
    lab.start_tcp_server(lab.server)
    _article_fix(lab)
    data_rx0 = lab.link_counters(lab.router, ROUTER_DATA_IF)[0]
    drops0 = lab.rp_filter_drops(lab.router)

    assert lab.tcp_request(lab.client, ADDR.server_data4) == (
        f"polroutd-lab reached-at {ADDR.server_data4} from {ADDR.client4}"
    )
    assert lab.ping(lab.client, ADDR.server_data4)
    assert lab.tcp_connect(lab.client, ADDR.server_mgmt4)
    assert lab.tcp_connect(lab.client, ADDR.server_data6)
    assert lab.tcp_connect(lab.client, ADDR.server_mgmt6)
    # Replies from the data address now leave through the data side: symmetric, no drops.
    assert lab.link_counters(lab.router, ROUTER_DATA_IF)[0] > data_rx0
    assert lab.rp_filter_drops(lab.router) == drops0


def test_teardown_removes_everything_even_if_body_raises(require_netadmin: None) -> None:
    lab = Lab(prefix=PREFIX)
    with pytest.raises(RuntimeError, match="boom"), lab:
        names = lab.namespaces
        assert all(_exists(ns) for ns in names)
        lab.start_tcp_server(lab.server)
        tracked = lab.popen(lab.client, "sleep", "60")
        # A process the lab did not start (e.g. a daemon that forked away) is also ended.
        untracked = subprocess.Popen(["ip", "netns", "exec", lab.router, "sleep", "60"])
        (lab.etc_dir(lab.server) / "resolv.conf").write_text("nameserver 192.0.2.53\n")
        raise RuntimeError("boom")
    try:
        assert not any(_exists(ns) for ns in names)
        assert not any(Path("/etc/netns", ns).exists() for ns in names)
        assert tracked.poll() is not None
        assert untracked.wait(timeout=5) is not None
        assert not _pid_alive(tracked.pid)
        assert not lab.built
        lab.teardown()  # idempotent
    finally:
        untracked.kill()
        untracked.wait()


def test_interrupted_build_cleans_up(
    require_netadmin: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: Lab) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Lab, "_configure_server", interrupted)
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
        lab.start_tcp_server(lab.server)
        assert lab.tcp_request(lab.data_client, ADDR.server_data4) == (
            f"polroutd-lab reached-at {ADDR.server_data4} from {ADDR.data_client4}"
        )
        assert lab.tcp_connect(lab.data_client, ADDR.server_data6)
        assert lab.ping(lab.data_client, ADDR.router_data4)
        # The router-zone client still sees the article's problem with a bridged data side.
        assert lab.tcp_connect(lab.client, ADDR.server_mgmt4)
        assert not lab.tcp_connect(lab.client, ADDR.server_data4, timeout=FAIL_TIMEOUT)
    assert not any(_exists(ns) for ns in lab.namespaces)


def test_ipv4_only_lab(require_netadmin: None) -> None:
    with Lab(prefix=PREFIX, ipv6=False) as lab:
        addrs = lab.ip_json(lab.server, "-6", "addr", "show", "scope", "global")
        assert all(not entry.get("addr_info") for entry in addrs)
        lab.start_tcp_server(lab.server)
        assert lab.tcp_connect(lab.client, ADDR.server_mgmt4)
