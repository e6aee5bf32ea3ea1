"""IPv6 router advertisements from radvd, for real against polroutd (issue 10).

radvd in the router namespace advertises 2001:db8:1761::/64 on the data network; the server's
ens224 configures a SLAAC address (with duplicate address detection: tentative for about a
second) and privacy addresses. polroutd must give the SLAAC address its rule, its prefix copy
and ``default via fe80::… dev ens224`` in the table without counting an error while DAD runs,
give temporary addresses rules and remove them when they expire, and drop the table's default
when the router lifetime goes to 0, saying why in ``/state``.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from polroutd.lab import clients
from polroutd.lab.daemon import LabDaemon
from polroutd.lab.lab import ADDR, SERVER_DATA_IF, Lab
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

PREFIX = "2001:db8:1761::/64"
NET = ipaddress.IPv6Network(PREFIX)


@pytest.fixture(autouse=True)
def host_files_untouched() -> Iterator[None]:
    before = clients.host_files_snapshot()
    yield
    assert clients.host_files_snapshot() == before, "radvd or a client wrote the host's files"


@pytest.fixture
def lab(require_netadmin: None) -> Iterator[Lab]:
    built = Lab(prefix=LAB_PREFIX)
    built.build()
    try:
        # The router routes the advertised prefix to the data network.
        built.run(built.router, "ip", "addr", "add", "2001:db8:1761::1/64", "dev",
                  built.router_data_if, "nodad")
        built.probes.start_tcp_server(built.server, TCP_PORT)
        yield built
    finally:
        built.teardown()


def accept_ra(lab: Lab, *, privacy: bool = False) -> None:
    """ens224 takes router advertisements and autoconfigures, with DAD (the lab turns both off
    for its static addresses); with ``privacy``, temporary addresses of 8 s (preferred 5 s)."""
    settings = ["accept_ra=1", "autoconf=1", "accept_dad=1", "dad_transmits=1"]
    if privacy:
        settings += ["use_tempaddr=2", "temp_valid_lft=8", "temp_prefered_lft=5",
                     "max_desync_factor=0"]
    lab.run(lab.server, "sysctl", "-q", "-w",
            *(f"net.ipv6.conf.{SERVER_DATA_IF}.{s}" for s in settings))


def slaac(lab: Lab) -> list[dict[str, Any]]:
    """ens224's addresses in the advertised prefix, as ``ip -j`` describes them."""
    found = []
    for entry in lab.ip_json(lab.server, "-6", "addr", "show", "dev", SERVER_DATA_IF):
        for info in entry.get("addr_info", []):
            if ipaddress.IPv6Address(info["local"]) in NET:
                found.append(info)
    return found


def ready(info: dict[str, Any]) -> bool:
    return not info.get("tentative") and not info.get("dadfailed")


def sources6(lab: Lab) -> dict[str, int]:
    return {r["src"]: int(r["table"]) for r in owned(rules(lab, lab.server))
            if r["family"] == "-6" and "src" in r}


def table6(lab: Lab) -> list[dict[str, Any]]:
    return [r for r in owned(routes(lab, lab.server))
            if r["family"] == "-6" and int(r.get("table", 0)) == DATA_TABLE]


def start(lab: Lab, tmp_path: Path, *, privacy: bool = False) -> tuple[LabDaemon,
                                                                       clients.Radvd]:
    """polroutd first, then radvd (its first advertisement goes out at once)."""
    daemon = start_daemon(lab, write(tmp_path, config_text(tmp_path, [])), tmp_path)
    daemon.wait_ready()
    accept_ra(lab, privacy=privacy)
    radvd = clients.Radvd(lab, lab.temp_dir, lab.router_data_if, PREFIX)
    radvd.start()
    return daemon, radvd


def test_slaac_address_gets_rule_prefix_and_default_without_errors_during_dad(
    lab: Lab, tmp_path: Path
) -> None:
    with lab.probes.monitor(lab.server, "address", "rule") as seen:
        daemon, radvd = start(lab, tmp_path)
        try:
            errors = daemon.counters()["reconciles_error"]
            tentative_seen: list[dict[str, Any]] = []

            def configured() -> bool:
                found = slaac(lab)
                tentative_seen.extend(i for i in found if i.get("tentative"))
                return any(map(ready, found))

            daemon.wait_for(configured, timeout=15, what=f"a SLAAC address in {PREFIX}")
            address = next(i["local"] for i in slaac(lab) if ready(i))
            daemon.wait_for(lambda: sources6(lab).get(address) == DATA_TABLE,
                            what=f"the rule for {address}")
        except BaseException:
            radvd.stop()
            daemon.stop()
            raise
    try:
        # DAD really ran (the address was tentative for a while: meanwhile the RA's routes made
        # polroutd reconcile with it in the dump), and its rule came only once DAD completed
        # (the kernel announces the address then).
        assert address in {i["local"] for i in tentative_seen}
        completed = seen.first(address, SERVER_DATA_IF)
        rule = seen.first(f"from {address}", "lookup")
        assert completed is not None and "tentative" not in completed.text
        assert rule is not None and rule.at >= completed.at, [e.text for e in seen.events]
        routes_now = table6(lab)
        prefix = [r for r in routes_now if r["dst"] == PREFIX]
        assert prefix and prefix[0].get("prefsrc") == address and "gateway" not in prefix[0]
        default = [r for r in routes_now if r["dst"] == "default"]
        assert len(default) == 1 and default[0]["gateway"].startswith("fe80::")
        assert default[0]["dev"] == SERVER_DATA_IF
        daemon.wait_for(lambda: daemon.state()["in_sync"], what="in sync")
        assert daemon.counters()["reconciles_error"] == errors
        assert "operation_failed" not in daemon.log_text()
        ens224 = next(i for i in daemon.state()["interfaces"] if i["name"] == SERVER_DATA_IF)
        assert ens224["gateway"]["ipv6"]["source"] == "main-table"

        # A client's request to the SLAAC address is answered through ens224.
        got, through = replies(lab, address, lambda: lab.probes.tcp_request(lab.client, address))
        assert got == answer(address, ADDR.client6)
        assert through["data"] > 0 and through["mgmt"] == 0

        # Router lifetime 0: the kernel drops the RA default, polroutd the table's, with a
        # reason; the address (prefix still valid) keeps its rule.
        radvd.advertise(router_lifetime=0)
        daemon.wait_for(lambda: not [r for r in table6(lab) if r["dst"] == "default"],
                        timeout=10, what="the table's IPv6 default removed")
        ens224 = next(i for i in daemon.state()["interfaces"] if i["name"] == SERVER_DATA_IF)
        gateway6 = ens224["gateway"]["ipv6"]
        assert gateway6["address"] is None
        assert "no ipv6 default route via ens224" in gateway6["reason"]
        assert sources6(lab).get(address) == DATA_TABLE
        assert daemon.counters()["reconciles_error"] == errors
    finally:
        radvd.stop()
        daemon.stop()


def test_privacy_addresses_get_rules_and_lose_them_when_they_expire(
    lab: Lab, tmp_path: Path
) -> None:
    daemon, radvd = start(lab, tmp_path, privacy=True)
    try:
        daemon.wait_for(lambda: any(i.get("temporary") and ready(i) for i in slaac(lab)),
                        timeout=15, what="a temporary address")
        temporary = next(i["local"] for i in slaac(lab) if i.get("temporary") and ready(i))
        daemon.wait_for(lambda: sources6(lab).get(temporary) == DATA_TABLE,
                        what=f"the rule for {temporary}")
        with lab.probes.monitor(lab.server, "address", "rule") as seen:
            daemon.wait_for(lambda: temporary not in {i["local"] for i in slaac(lab)},
                            timeout=15, what=f"{temporary} to expire")
            daemon.wait_for(lambda: temporary not in sources6(lab), timeout=2,
                            what=f"the rule for {temporary} removed")
        gone = seen.first("Deleted", temporary, SERVER_DATA_IF)
        rule_gone = seen.first("Deleted", f"from {temporary}")
        assert gone is not None and rule_gone is not None, seen.events
        print("\nMEASURED " + json.dumps({
            "client": "kernel SLAAC privacy address (radvd "
                      + clients.client_version(["radvd", "--version"]) + ")",
            "expired_address_to_rule_removed_ms": round((rule_gone.at - gone.at) * 1000, 1)}))
        # The temporary addresses alive now all have rules (newer ones replaced the old).
        daemon.wait_for(lambda: {i["local"] for i in slaac(lab) if ready(i)}
                        <= set(sources6(lab)), timeout=3, what="rules for the live addresses")
        assert daemon.counters()["reconciles_error"] == 0
    finally:
        radvd.stop()
        daemon.stop()
