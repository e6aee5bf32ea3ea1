"""Sharp edges a first deployment ran into (docs/guide.md), each pinned by a test."""

from __future__ import annotations

import asyncio
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from polroutd.cli import status as status_cli
from polroutd.cli.main import main
from polroutd.config.parse import parse_config
from polroutd.core.advice import interface_warnings
from polroutd.core.desired import Inputs, desired_state
from polroutd.core.errors import ConfigError
from polroutd.core.limits import AF_INET6, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN
from polroutd.core.model import Link, Route, RouteOp
from polroutd.core.plan import make_plan
from polroutd.core.record import replace
from polroutd.core.settings import Config, DaemonSettings, InterfaceSpec
from polroutd.core.tables import TableRef
from polroutd.netlink import codec as rtnl
from polroutd.netlink.kernel import encode_operation
from tests.support.article import DATA, MGMT, PROTO, article_state
from tests.support.fakes import FakeKernel
from tests.support.harness import CONFIG, Harness

VETH = Link(5, "vethctr", up=True, carrier=True, kind="veth")


def _link_local(oif: int) -> Route:
    return Route(AF_INET6, RT_TABLE_MAIN, "fe80::", 64, 2, metric=256, oif=oif)


def _state_with_two_link_local_prefixes() -> Any:
    state = article_state()
    return replace(state, links=(*state.links, VETH),
                   routes=(*state.routes, _link_local(4), _link_local(5)))


def _inputs(config: Config) -> Inputs:
    return Inputs(config=config, protocol=PROTO,
                  tables={"ens192": TableRef(30000, "mgt"), "ens224": TableRef(30001, "data")},
                  named_tables={}, leases={})


# ------------------------------------------------------------------ copies keyed with the device


def test_copies_through_two_devices_to_one_prefix_are_both_copied() -> None:
    state = _state_with_two_link_local_prefixes()
    desired = desired_state(state, _inputs(CONFIG_STRICT))
    for table in (30000, 30001):
        copies = {r.oif for r in desired.routes if r.table == table and r.dst == "fe80::"}
        assert copies == {4, 5}, table


def test_both_copies_are_added_beside_each_other_and_then_in_sync() -> None:
    state = _state_with_two_link_local_prefixes()
    kernel = FakeKernel(state)
    desired = desired_state(state, _inputs(CONFIG_STRICT))
    plan = make_plan(desired, state, PROTO)
    assert all(r.ok for r in kernel.apply(plan.operations))
    after = kernel.read_state()
    assert make_plan(desired_state(after, _inputs(CONFIG_STRICT)), after, PROTO).empty


def test_an_ipv6_device_route_is_added_without_excl_and_replaced_by_delete_then_add() -> None:
    copy = _link_local(5)._replace(table=30000, protocol=PROTO)
    flags = rtnl.iter_messages(encode_operation(RouteOp("add", copy), 1))
    assert not next(flags)[1] & rtnl.NLM_F_EXCL  # beside docker0's copy at the same place
    gateway_route = copy._replace(gateway="fe80::1")
    assert next(rtnl.iter_messages(
        encode_operation(RouteOp("add", gateway_route), 1)))[1] & rtnl.NLM_F_EXCL
    # A changed copy: the kernel's replace would hit the first device route of any device.
    state = _state_with_two_link_local_prefixes()
    desired = desired_state(state, _inputs(CONFIG_STRICT))
    old = next(r for r in desired.routes if r.table == 30000 and r.oif == 5)
    stale = old._replace(scope=RT_SCOPE_UNIVERSE, prefsrc="2001:db8:176::38")
    kernel_state = replace(state, routes=(*state.routes, stale))
    ops = [op for op in make_plan(desired, kernel_state, PROTO).operations
           if isinstance(op, RouteOp) and op.route.dst == "fe80::" and op.route.table == 30000
           and op.route.oif == 5]
    assert [op.op for op in ops] == ["delete", "add"]


CONFIG_STRICT = Config(interfaces=(InterfaceSpec(name="ens192"), InterfaceSpec(name="ens224")))


# ------------------------------------------------------------------ the gateway gauge


def test_the_gateway_gauge_is_0_or_1_for_every_interface_and_family() -> None:
    config = replace(CONFIG, interfaces=(
        InterfaceSpec(name="ens192", table=101, gateway6="none"),
        InterfaceSpec(name="ens224", table=102, gateway="none"),
    ))

    async def scenario() -> dict[tuple[str, str], float]:
        h = Harness(FakeKernel(article_state()), config)
        await h.start()
        values = {}
        for metric in h.daemon.tally.metrics.registry.collect():
            for sample in metric.samples:
                if sample.name == "polroutd_interface_gateway_present":
                    values[(sample.labels["interface"], sample.labels["family"])] = sample.value
        assert await h.stop() == 0
        return values

    values = asyncio.run(scenario())
    # ens192 has no IPv6 address and gateway6 = "none"; ens224's IPv4 gateway is "none"
    assert values == {("ens192", "ipv4"): 1, ("ens192", "ipv6"): 0,
                      ("ens224", "ipv4"): 0, ("ens224", "ipv6"): 1}


# ------------------------------------------------------------------ messages


def test_the_reason_for_gateway6_none_names_gateway6() -> None:
    config = Config(interfaces=(InterfaceSpec(name="ens224", gateway6="none"),
                                InterfaceSpec(name="ens192", gateway="none")))
    desired = desired_state(article_state(), _inputs(config))
    by_name = {i.name: i for i in desired.interfaces}
    assert by_name["ens224"].gateway6.reason == 'disabled in the configuration (gateway6 = "none")'
    assert by_name["ens192"].gateway4.reason == 'disabled in the configuration (gateway = "none")'


@pytest.mark.parametrize(("text", "key", "suggestion"), [
    ('[[interface]]\nname = "x"\ngatway = "auto"\n', "interface[1].gatway", "'gateway'"),
    ('[[interface]]\nname = "x"\ngateway_6 = "auto"\n', "interface[1].gateway_6", "'gateway6'"),
    ('[daemon]\nrule_prority = 1\n', "daemon.rule_prority", "'rule_priority'"),
])
def test_an_unknown_key_suggests_the_closest_one(text: str, key: str, suggestion: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(tomllib.loads(text), "t.toml", text)
    assert caught.value.key == key
    assert f"did you mean {suggestion}?" in str(caught.value)
    assert "expected one of:" in str(caught.value)


def test_an_unknown_key_far_from_every_key_suggests_nothing() -> None:
    text = '[[interface]]\nname = "x"\nzzzz = 1\n'
    with pytest.raises(ConfigError) as caught:
        parse_config(tomllib.loads(text), "t.toml", text)
    assert "did you mean" not in str(caught.value)


# ------------------------------------------------------------------ status exit codes


@pytest.mark.parametrize(("extra", "code"), [
    ({}, 0),
    ({"in_sync": False}, 2),
    ({"config_error": "t.toml:3: interface[1].gatway: unknown key"}, 2),
    ({"conflicts": [{"kind": "route", "message": "foreign route in table 30000",
                     "text": "foreign route in table 30000: 10.0.0.0/8 dev x table 30000"}]}, 2),
])
def test_status_exits_2_when_a_config_error_or_conflict_is_pending(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], extra: dict[str, Any],
    code: int,
) -> None:
    doc = {"in_sync": True, "config_error": None, "conflicts": [], "counters": {},
           "interfaces": [], "rules": [], "routes": [], "pending": [], **extra}
    monkeypatch.setattr(status_cli, "fetch_state", lambda url: json.loads(json.dumps(doc)))
    assert status_cli.status_command("127.0.0.1:9") == code
    assert capsys.readouterr().out.startswith("polroutd: in sync" if doc["in_sync"] else
                                              "polroutd: NOT in sync")


# ------------------------------------------------------------------ exclude versus [[interface]]


def test_an_entry_matching_an_exclude_pattern_is_warned_about() -> None:
    config = Config(interfaces=(InterfaceSpec(name="eno1"), InterfaceSpec(name="d*")))
    (warning,) = interface_warnings(config)
    assert warning.startswith("interface[2].name 'd*' matches names the exclude pattern "
                              "'docker*' leaves alone (such as 'docker")
    assert "exclude no longer applies" in warning


def test_an_entry_matching_a_bridge_in_the_kernel_is_warned_about() -> None:
    config = Config(daemon=DaemonSettings(exclude=()),
                    interfaces=(InterfaceSpec(name="eno*"), InterfaceSpec(name="lan*")))
    links = (MGMT, DATA, Link(7, "lanbr0", up=True, carrier=True, kind="bridge"),
             Link(8, "lan1", up=True, carrier=True, kind="veth"))
    assert interface_warnings(config, links) == [
        "interface[2].name 'lan*' matches the bridge lanbr0: with [[interface]] entries "
        "exclude no longer applies, so it would get a managed table and its routes would no "
        "longer be copied into the other tables (containers behind it unreachable from the "
        "other addresses); name the interfaces exactly if that is not meant"]
    assert interface_warnings(Config(interfaces=(InterfaceSpec(name="eno1"),)), links) == []


def test_check_config_warns_on_stderr_and_still_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "polroutd.toml"
    path.write_text('[daemon]\nrt_tables_file = ""\n\n[[interface]]\nname = "eno1"\n\n'
                    '[[interface]]\nname = "docker0"\ntable = "dock"\n')
    assert main(["check-config", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "configuration is valid" in out
    assert err.startswith(f"polroutd: warning: {path}: interface[2].name 'docker0' matches ")
    assert err.count("\n") == 1
