"""render with uplinks: the uplink table's rules and routes as a static host can hold them,
and every file's header saying that switching on health needs the daemon."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from polroutd.cli.render import FORMATS, UPLINKS_NOTE, render
from polroutd.core.limits import AF_INET, RT_SCOPE_LINK, RT_TABLE_MAIN
from polroutd.core.model import Address, KernelState, Link, Route
from polroutd.core.settings import Config, DaemonSettings, InterfaceSpec, UplinkSpec
from polroutd.engine import Engine
from tests.support.fakes import FakeKernel

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def decision(mode: str):  # type: ignore[no-untyped-def]
    links, addresses, routes = [], [], []
    for name, index in (("wan1", 2), ("wan2", 3)):
        links.append(Link(index, name, True, True))
        addresses.append(Address(index, AF_INET, f"10.{index}.0.2", 24))
        routes.append(Route(AF_INET, RT_TABLE_MAIN, f"10.{index}.0.0", 24, 2, scope=RT_SCOPE_LINK,
                            oif=index, prefsrc=f"10.{index}.0.2"))
        routes.append(Route(AF_INET, RT_TABLE_MAIN, "0.0.0.0", 0, 16, metric=index, oif=index,
                            gateway=f"10.{index}.0.1"))
    config = Config(
        daemon=DaemonSettings(rt_tables_file="", protocol=218, uplinks=mode,  # type: ignore[arg-type]
                              uplink_table=900),
        interfaces=(InterfaceSpec("wan1", table=101, uplink=UplinkSpec(metric=10, weight=3)),
                    InterfaceSpec("wan2", table=102, uplink=UplinkSpec(metric=20))),
    )
    state = KernelState(links=tuple(links), addresses=tuple(addresses), routes=tuple(routes))
    return Engine(config, FakeKernel(state), lease_reader=lambda _: {}).read_and_decide()


def test_failover_renders_one_default_per_uplink_and_the_two_rules() -> None:
    files = render(decision("failover"), "ip-batch", "218", generated_at=WHEN)
    batch = files["polroutd.ip-batch"]
    assert "route add default via 10.2.0.1 dev wan1 metric 10 table 900 proto 218" in batch
    assert "route add default via 10.3.0.1 dev wan2 metric 20 table 900 proto 218" in batch
    assert "rule add from all lookup main suppress_prefixlength 0 priority 32760" in batch
    assert "rule add from all lookup 900 priority 32761" in batch
    assert "table main" not in batch.split("Tables:")[-1]  # never a default in main


def test_balance_renders_one_multipath_route_with_weights() -> None:
    batch = render(decision("balance"), "ip-batch", "218", generated_at=WHEN)["polroutd.ip-batch"]
    assert ("route add default metric 0 table 900 proto 218 nexthop via 10.2.0.1 dev wan1 weight 3 "
            "nexthop via 10.3.0.1 dev wan2 weight 1") in batch


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_files_header_says_health_switching_needs_the_daemon(fmt: str) -> None:
    for name, text in render(decision("failover"), fmt, "218", generated_at=WHEN).items():
        assert UPLINKS_NOTE[-1] in text.replace("\n# ", "\n"), name


def test_networkd_writes_balances_multipath_default_as_multipathroute_lines() -> None:
    files = render(decision("balance"), "networkd", "218", generated_at=WHEN)
    text = "".join(files.values())
    assert "MultiPathRoute=10.2.0.1@wan1 3\nMultiPathRoute=10.3.0.1@wan2 1\n" in text
    # never a gateway-less default: that would be an on-link default through one device
    sections = text.split("[Route]")
    assert all("Gateway=" in s or "MultiPathRoute=" in s for s in sections
               if "Destination=0.0.0.0/0" in s)


def test_nmcli_lists_the_multipath_default_as_a_comment_not_as_a_route() -> None:
    script = render(decision("balance"), "nmcli", "218", generated_at=WHEN)["polroutd-nmcli.sh"]
    assert ("# not expressible here: default metric 0 table 900 proto 218 nexthop via 10.2.0.1 "
            "dev wan1 weight 3 nexthop via 10.3.0.1 dev wan2 weight 1") in script
    assert "table=900'" not in script
