"""End to end: the article's scenario with real DHCP, real TCP, real routing, real polroutd.

Each step of ``polroutd demo`` is asserted on its own here, plus what the demo does not show:
a client in the data zone, a lease that expires, several renewals in a row. "The reply left
through the interface the request came in on" is checked by counting, at the router, the TCP
segments from the server's address on each of its server-facing interfaces.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from polroutd.cli.demo import lab_config
from polroutd.lab.daemon import LabDaemon
from polroutd.lab.lab import ADDR, SERVER_DATA_IF, SERVER_MGMT_IF, Lab
from tests.support.lab_tools import (
    HTTP_PORT,
    LAB_PREFIX,
    TCP_PORT,
    answer,
    owned,
    recorded_tables,
    replies,
    routes,
    rules,
    start_daemon,
)

T = TypeVar("T")


def write_config(tmp: Path, lab: Lab) -> Path:
    """The demo's configuration, with this test's HTTP port and table-name file."""
    path = tmp / "polroutd.toml"
    rt_tables = tmp / "iproute2" / "rt_tables.d" / "polroutd.conf"
    path.write_text(lab_config(f"127.0.0.1:{HTTP_PORT}", rt_tables, lab.lease_path))
    return path


def start_lab(lease_seconds: int = 600) -> Lab:
    lab = Lab(prefix=LAB_PREFIX, dhcp_data=True, with_data_client=True)
    lab.build()
    try:
        lab.start_dhcp_server(lease_seconds=lease_seconds)
        lab.start_dhcp_client()
        lab.probes.start_tcp_server(lab.server, TCP_PORT)
    except BaseException:
        lab.teardown()
        raise
    return lab


@pytest.fixture
def dhcp_lab(require_netadmin: None) -> Iterator[Lab]:
    lab = start_lab()
    try:
        yield lab
    finally:
        lab.teardown()


@pytest.fixture
def daemon(dhcp_lab: Lab, tmp_path: Path) -> Iterator[LabDaemon]:
    d = start_daemon(dhcp_lab, write_config(tmp_path, dhcp_lab), tmp_path)
    try:
        d.wait_ready()
        yield d
    finally:
        d.stop()


def owned_sources4(lab: Lab) -> dict[str, str]:
    """Source address -> table of polroutd's IPv4 rules."""
    return {r["src"]: str(r["table"]) for r in owned(rules(lab, lab.server))
            if r["family"] == "-4" and "src" in r}


def table_routes4(lab: Lab, table: int) -> list[dict[str, Any]]:
    return [r for r in routes(lab, lab.server)
            if r["family"] == "-4" and str(r.get("table")) == str(table)]


def reply_route(lab: Lab, to: str, source: str) -> str:
    return lab.run(lab.server, "ip", "route", "get", to, "from", source).stdout


def move_data_address(lab: Lab, daemon: LabDaemon, new: str) -> None:
    lab.change_reservation(new)
    assert lab.renew() == new
    daemon.wait_for(lambda: set(owned_sources4(lab)) == {ADDR.server_mgmt4, new},
                    what=f"rules following the move to {new}")


# --- the demo's steps, one by one ---------------------------------------------------------


def test_step2_data_address_is_leased_and_the_only_default_route_is_management(
    dhcp_lab: Lab,
) -> None:
    lab = dhcp_lab
    assert lab.data_address4() == ADDR.server_data4
    lease = lab.lease_path.read_text()
    assert f"fixed-address {ADDR.server_data4};" in lease
    assert f"option routers {ADDR.router_data4};" in lease
    defaults = [r for r in lab.ip_json(lab.server, "-4", "route") if r["dst"] == "default"]
    assert [(r["gateway"], r["dev"]) for r in defaults] == [(ADDR.router_mgmt4, SERVER_MGMT_IF)]


def test_step3_client_reaches_management_address_over_tcp(dhcp_lab: Lab) -> None:
    got, seen = replies(dhcp_lab, ADDR.server_mgmt4,
                        lambda: dhcp_lab.probes.tcp_request(dhcp_lab.client, ADDR.server_mgmt4))
    assert got == answer(ADDR.server_mgmt4)
    assert seen["mgmt"] > 0 and seen["data"] == 0 and seen["drops"] == 0


def test_step4_data_address_fails_reply_leaves_via_management_and_is_dropped(
    dhcp_lab: Lab,
) -> None:
    got, seen = replies(dhcp_lab, ADDR.server_data4, lambda: dhcp_lab.probes.tcp_request(
        dhcp_lab.client, ADDR.server_data4, timeout=1.0))
    assert got is None
    assert seen["mgmt"] > 0 and seen["data"] == 0  # the asymmetric reply ...
    assert seen["drops"] >= seen["mgmt"]  # ... dropped by the router's strict rp_filter
    assert f"via {ADDR.router_mgmt4} dev {SERVER_MGMT_IF}" in reply_route(
        dhcp_lab, ADDR.client4, ADDR.server_data4)


def test_step5_polroutd_ready_with_rules_for_the_leased_address(
    dhcp_lab: Lab, daemon: LabDaemon, tmp_path: Path
) -> None:
    lab = dhcp_lab
    assert daemon.notify.seen("READY=1")
    numbers = recorded_tables(tmp_path)
    assert owned_sources4(lab) == {ADDR.server_mgmt4: str(numbers["mgt"]),
                                   ADDR.server_data4: str(numbers["data"])}
    data = {(r["dst"], r.get("gateway"), r.get("prefsrc"))
            for r in table_routes4(lab, numbers["data"])}
    assert data == {("default", ADDR.router_data4, None),  # the router from the DHCP lease
                    ("10.225.176.0/24", None, ADDR.server_data4)}
    ens224 = next(i for i in daemon.state()["interfaces"] if i["name"] == SERVER_DATA_IF)
    assert ens224["gateway"]["ipv4"]["source"] == "dhcp-lease"


def test_step6_tcp_to_both_addresses_replies_return_where_requests_came_in(
    dhcp_lab: Lab, daemon: LabDaemon
) -> None:
    lab = dhcp_lab
    got, seen = replies(lab, ADDR.server_data4,
                        lambda: lab.probes.tcp_request(lab.client, ADDR.server_data4))
    assert got == answer(ADDR.server_data4)
    assert seen["data"] > 0 and seen["mgmt"] == 0 and seen["drops"] == 0
    got, seen = replies(lab, ADDR.server_mgmt4,
                        lambda: lab.probes.tcp_request(lab.client, ADDR.server_mgmt4))
    assert got == answer(ADDR.server_mgmt4)
    assert seen["mgmt"] > 0 and seen["data"] == 0 and seen["drops"] == 0
    route = reply_route(lab, ADDR.client4, ADDR.server_data4)
    assert f"via {ADDR.router_data4} dev {SERVER_DATA_IF}" in route


def test_step7_renewal_with_new_address_rule_follows_and_address_is_reachable(
    dhcp_lab: Lab, daemon: LabDaemon, tmp_path: Path
) -> None:
    lab = dhcp_lab
    before = daemon.counters()
    move_data_address(lab, daemon, "10.225.176.77")
    got, seen = replies(lab, "10.225.176.77", lambda: lab.probes.tcp_request(lab.client,
                                                                       "10.225.176.77"))
    assert got == answer("10.225.176.77")
    assert seen["data"] > 0 and seen["mgmt"] == 0
    daemon.wait_for(lambda: daemon.state()["in_sync"], what="in sync")
    data = table_routes4(lab, recorded_tables(tmp_path)["data"])
    assert {r.get("prefsrc") for r in data} == {"10.225.176.77", None}
    assert daemon.counters()["drift"] == before["drift"]


def test_step8_deleted_rule_is_repaired_and_counted_as_drift(
    dhcp_lab: Lab, daemon: LabDaemon, tmp_path: Path
) -> None:
    lab = dhcp_lab
    before = daemon.counters()
    data = recorded_tables(tmp_path)["data"]
    lab.run(lab.server, "ip", "rule", "del", "from", ADDR.server_data4, "lookup", str(data),
            "priority", "30000")
    daemon.wait_for(lambda: ADDR.server_data4 in owned_sources4(lab), what="rule repaired")
    daemon.wait_for(lambda: daemon.counters()["repairs"] == before["repairs"] + 1,
                    what="repair counted")
    after = daemon.counters()
    assert after["drift"] == before["drift"] + 1
    assert after["changes"] == before["changes"]
    assert lab.probes.tcp_connect(lab.client, ADDR.server_data4)


def test_step9_state_and_metrics_show_gateway_sources_and_counters(
    dhcp_lab: Lab, daemon: LabDaemon
) -> None:
    lab = dhcp_lab
    lab.run(lab.server, "ip", "rule", "del", "from", ADDR.server_mgmt4, "priority", "30000")
    daemon.wait_for(lambda: daemon.counters()["repairs"] >= 1, what="a repair")
    state = daemon.state()
    assert state["in_sync"] is True
    gateways = {i["name"]: i["gateway"]["ipv4"] for i in state["interfaces"]}
    assert gateways[SERVER_MGMT_IF]["address"] == ADDR.router_mgmt4
    assert gateways[SERVER_MGMT_IF]["source"] == "main-table"
    assert gateways[SERVER_DATA_IF]["address"] == ADDR.router_data4
    assert gateways[SERVER_DATA_IF]["source"] == "dhcp-lease"
    status, body = daemon.http("/metrics")
    assert status == 200
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(body) for s in f.samples}
    assert samples[("polroutd_in_sync", ())] == 1
    assert samples[("polroutd_repairs_total", (("kind", "rule"), ("op", "add")))] == 1
    assert samples[("polroutd_drift_detected_total",
                    (("change", "missing"), ("kind", "rule")))] == 1
    assert samples[("polroutd_changes_total", (("kind", "rule"), ("op", "add")))] >= 2
    assert samples[("polroutd_interface_gateway_present",
                    (("family", "ipv4"), ("interface", SERVER_DATA_IF)))] == 1


# --- beyond the demo ----------------------------------------------------------------------


def test_data_zone_client_reaches_both_addresses(dhcp_lab: Lab, daemon: LabDaemon) -> None:
    lab = dhcp_lab
    data_client = lab.data_client
    assert data_client is not None
    peer = ADDR.data_client4
    # On-link: the data table's connected route keeps replies to the data zone direct.
    assert lab.probes.tcp_request(data_client, ADDR.server_data4) == answer(ADDR.server_data4, peer)
    route = reply_route(lab, peer, ADDR.server_data4)
    assert f"dev {SERVER_DATA_IF}" in route and "via" not in route
    # Through the router, both ways: the management address answers via its own gateway.
    got, seen = replies(lab, ADDR.server_mgmt4,
                        lambda: lab.probes.tcp_request(data_client, ADDR.server_mgmt4))
    assert got == answer(ADDR.server_mgmt4, peer)
    assert seen["mgmt"] > 0 and seen["drops"] == 0


def test_several_renewals_in_a_row_rules_follow_as_changes_without_leftovers(
    dhcp_lab: Lab, daemon: LabDaemon, tmp_path: Path
) -> None:
    lab = dhcp_lab
    before = daemon.counters()
    data = recorded_tables(tmp_path)["data"]
    for new in ("10.225.176.81", "10.225.176.82", "10.225.176.83"):
        move_data_address(lab, daemon, new)
        daemon.wait_for(lambda: daemon.state()["in_sync"], what="in sync")
        sources = {r.get("prefsrc") for r in table_routes4(lab, data)}
        assert sources == {new, None}, sources  # the connected route's, and the default's
        main = [r for r in lab.ip_json(lab.server, "-4", "route", "show", "table", "main")
                if r["dst"] == "10.225.144.0/24"]
        assert len(main) == 1  # the configured main-table route, exactly once
    after = daemon.counters()
    assert after["drift"] == before["drift"], "renewals were counted as drift"
    assert after["repairs"] == before["repairs"]
    assert after["changes"] - before["changes"] >= 3 * 2  # per renewal: one rule out, one in
    state = daemon.state()
    assert all(r["present"] for r in state["rules"] + state["routes"])
    assert lab.probes.tcp_connect(lab.client, "10.225.176.83")


def test_expired_lease_removes_address_and_rule_then_rediscovery_restores_them(
    require_netadmin: None, tmp_path: Path
) -> None:
    lab = start_lab(lease_seconds=4)  # busybox udhcpd: a lease that can expire in seconds
    try:
        d = start_daemon(lab, write_config(tmp_path, lab), tmp_path)
        try:
            d.wait_ready()
            assert ADDR.server_data4 in owned_sources4(lab)
            mark = len(lab.dhcp_events())
            lab.stop_dhcp_server()
            expired = lab.wait_dhcp_event("EXPIRE", timeout=10, after=mark)
            assert expired.old == ADDR.server_data4
            assert lab.data_address4() is None
            d.wait_for(lambda: ADDR.server_data4 not in owned_sources4(lab), what="rule gone")
            assert set(owned_sources4(lab)) == {ADDR.server_mgmt4}
            data = recorded_tables(tmp_path)["data"]
            assert table_routes4(lab, data) == []
            ens224 = next(i for i in d.state()["interfaces"] if i["name"] == SERVER_DATA_IF)
            assert not [a for a in ens224["addresses"] if "." in a]
            lab.start_dhcp_server(lease_seconds=4)
            assert lab.renew() == ADDR.server_data4  # the client rediscovers by itself
            d.wait_for(lambda: ADDR.server_data4 in owned_sources4(lab), what="rule back")
            assert d.counters()["drift"] == 0
        finally:
            d.stop()
    finally:
        lab.teardown()
