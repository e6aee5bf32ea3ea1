"""The reconciliation engine against the real kernel, in the article's lab (real packets)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polroutd.lab.lab import ADDR, Lab
from tests.support.lab_tools import (
    foreign,
    owned,
    polroutd,
    recorded_tables,
    routes,
    rules,
    tables,
    write_config,
    write_lease,
)


def test_the_articles_problem_is_fixed_by_apply(lab: Lab, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    write_lease(tmp_path, "ens224", ADDR.server_data4, "10.225.176.1")
    lab.probes.start_tcp_server(lab.server)
    assert lab.probes.tcp_connect(lab.client, ADDR.server_mgmt4)
    assert not lab.probes.tcp_connect(lab.client, ADDR.server_data4)  # asymmetric reply dropped

    result = polroutd(lab, lab.server, "apply", "--config", str(config))
    assert result.returncode == 0, result.stderr

    assert lab.probes.tcp_connect(lab.client, ADDR.server_data4)
    assert lab.probes.tcp_connect(lab.client, ADDR.server_mgmt4)


def test_spec_example_gives_the_articles_tables_and_rules(lab: Lab, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert polroutd(lab, lab.server, "apply", "--config", str(config)).returncode == 0
    numbers = recorded_tables(tmp_path)
    mgt, data = str(numbers["mgt"]), str(numbers["data"])
    assert 30000 <= numbers["mgt"] <= 30999 and numbers["mgt"] != numbers["data"]

    mine = {
        (r["family"], r.get("src"), str(r["table"]), r["priority"])
        for r in owned(rules(lab, lab.server))
    }
    assert mine == {
        ("-4", ADDR.server_mgmt4, mgt, 30000),
        ("-4", ADDR.server_data4, data, 30000),
        ("-6", ADDR.server_mgmt6, mgt, 30000),
        ("-6", ADDR.server_data6, data, 30000),
    }
    by_table = tables(lab, lab.server)
    v4 = {
        t: {(r["dst"], r.get("gateway"), r["dev"]) for r in rs if r["family"] == "-4"}
        for t, rs in by_table.items()
    }
    assert v4[mgt] == {("default", "10.225.160.1", "ens192"), ("10.225.160.0/24", None, "ens192")}
    # the data table has its connected route; no IPv4 gateway is known for ens224 (none in
    # main, no lease), so /state explains that instead of inventing one
    assert v4[data] == {("10.225.176.0/24", None, "ens224")}
    assert ("10.225.144.0/24", "10.225.176.1", "ens224") in v4["main"]
    v6 = {
        t: {(r["dst"], r.get("gateway")) for r in rs if r["family"] == "-6"}
        for t, rs in by_table.items()
    }
    assert ("default", "fe80::1") in v6[mgt]  # the link-local router, copied from main
    assert ("2001:db8:176::/64", None) in v6[data]


def test_apply_is_idempotent_and_never_duplicates(lab: Lab, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    first = polroutd(lab, lab.server, "apply", "--config", str(config))
    assert first.returncode == 0 and "applied 0" not in first.stdout
    second = polroutd(lab, lab.server, "apply", "--config", str(config))
    assert second.returncode == 0 and "applied 0 operation(s), 0 failed" in second.stdout
    plan = polroutd(lab, lab.server, "plan", "--config", str(config))
    assert plan.returncode == 0 and "in sync" in plan.stdout
    before = owned(rules(lab, lab.server))
    loop = (
        "from polroutd.cli.main import main\n"
        f"codes = {{main(['apply', '--config', {str(config)!r}]) for _ in range(100)}}\n"
        "assert codes == {0}, codes\n"
    )
    import sys

    ran = lab.run(lab.server, sys.executable, "-c", loop, check=False, timeout=120)
    assert ran.returncode == 0, ran.stderr
    after = owned(rules(lab, lab.server))
    assert sorted(map(json.dumps, after)) == sorted(map(json.dumps, before))


def test_plan_shows_pending_changes_and_changes_nothing(lab: Lab, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    before = (rules(lab, lab.server), routes(lab, lab.server))
    plan = polroutd(lab, lab.server, "plan", "--config", str(config))
    assert plan.returncode == 2
    assert f"+ rule from {ADDR.server_data4} lookup data priority 30000" in plan.stdout
    as_json = polroutd(lab, lab.server, "plan", "--json", "--config", str(config))
    doc = json.loads(as_json.stdout)
    assert as_json.returncode == 2 and not doc["in_sync"] and doc["operations"]
    assert (rules(lab, lab.server), routes(lab, lab.server)) == before


def _apply_and_check(lab: Lab, config: Path) -> None:
    result = polroutd(lab, lab.server, "apply", "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    plan = polroutd(lab, lab.server, "plan", "--config", str(config))
    assert plan.returncode == 0, plan.stdout


def _sources(lab: Lab) -> set[str]:
    return {r.get("src", "") for r in owned(rules(lab, lab.server))}


def test_renewal_secondary_address_link_flap_and_removal(lab: Lab, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    _apply_and_check(lab, config)

    # DHCP renewal with a new address: old one removed, new one added
    lab.run(lab.server, "ip", "addr", "del", f"{ADDR.server_data4}/24", "dev", "ens224")
    lab.run(lab.server, "ip", "addr", "add", "10.225.176.77/24", "dev", "ens224")
    _apply_and_check(lab, config)
    assert "10.225.176.77" in _sources(lab) and ADDR.server_data4 not in _sources(lab)

    # a secondary address gets its own rule
    lab.run(lab.server, "ip", "addr", "add", "10.225.176.78/24", "dev", "ens224")
    _apply_and_check(lab, config)
    assert {"10.225.176.77", "10.225.176.78"} <= _sources(lab)

    # link down: the kernel drops IPv4 routes silently; rules stay; up: routes come back
    lab.run(lab.server, "ip", "link", "set", "ens192", "down")
    _apply_and_check(lab, config)
    assert ADDR.server_mgmt4 in _sources(lab)
    lab.run(lab.server, "ip", "link", "set", "ens192", "up")
    lab.run(lab.server, "ip", "route", "replace", "default", "via", "10.225.160.1", "dev", "ens192")
    _apply_and_check(lab, config)
    numbers = recorded_tables(tmp_path)
    mgt = [r for r in tables(lab, lab.server)[str(numbers["mgt"])] if r["family"] == "-4"]
    assert {r["dst"] for r in mgt} == {"default", "10.225.160.0/24"}

    # the interface disappears: its rules and table go
    lab.run(lab.server, "ip", "link", "del", "ens224")
    _apply_and_check(lab, config)
    assert not any(s.startswith("10.225.176.") for s in _sources(lab))
    assert str(numbers["data"]) not in tables(lab, lab.server)


def test_gateway_from_a_dhclient_lease(lab: Lab, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    write_lease(tmp_path, "ens224", ADDR.server_data4, "10.225.176.1")
    _apply_and_check(lab, config)
    data = str(recorded_tables(tmp_path)["data"])
    assert ("default", "10.225.176.1") in {
        (r["dst"], r.get("gateway")) for r in tables(lab, lab.server)[data] if r["family"] == "-4"
    }


def test_flush_removes_every_owned_object_and_nothing_else(lab: Lab, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    foreign_before = (foreign(rules(lab, lab.server)), foreign(routes(lab, lab.server)))
    _apply_and_check(lab, config)
    result = polroutd(lab, lab.server, "flush", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert not owned(rules(lab, lab.server)) and not owned(routes(lab, lab.server))
    assert (foreign(rules(lab, lab.server)), foreign(routes(lab, lab.server))) == foreign_before


def test_main_first_mode_adds_the_suppress_rule(lab: Lab, tmp_path: Path) -> None:
    config = write_config(tmp_path, daemon_extra='mode = "main-first"')
    write_lease(tmp_path, "ens224", ADDR.server_data4, "10.225.176.1")
    _apply_and_check(lab, config)
    suppress = [r for r in owned(rules(lab, lab.server)) if r.get("suppress_prefixlen") == 0]
    assert {(r["family"], r["priority"], r["table"]) for r in suppress} == {
        ("-4", 29999, "main"),
        ("-6", 29999, "main"),
    }
    lab.probes.start_tcp_server(lab.server)
    assert lab.probes.tcp_connect(lab.client, ADDR.server_data4)


BAD_CONFIGS = [
    ("[daemon]\nbogus = 1\n", "daemon.bogus"),
    ("[daemon]\nrule_priority = 40000\n", "daemon.rule_priority"),
    ("[daemon]\nrule_priority = 32766\n", "daemon.rule_priority"),
    ('[daemon]\nrule_priority = "high"\n', "daemon.rule_priority"),
    ("[daemon]\nprotocol = 300\n", "daemon.protocol"),
    ('[daemon]\nprotocol = "nosuchproto"\n', "daemon.protocol"),
    ('[daemon]\nmode = "loose"\n', "daemon.mode"),
    ("[daemon]\ntable_range = [250, 260]\n", "daemon.table_range"),
    ("[daemon]\nresync_interval = -1\n", "daemon.resync_interval"),
    ('[daemon]\nhttp_listen = "nowhere"\n', "daemon.http_listen"),
    ('[[interface]]\nname = "ens224"\ngateway = "2001:db8::1"\n', "interface[1].gateway"),
    ('[[interface]]\nname = "ens224"\ngateway6 = "10.0.0.1"\n', "interface[1].gateway6"),
    ('[[interface]]\nname = "ens224"\ntable = "main"\n', "interface[1].table"),
    ('[[interface]]\nname = "ens224"\ntable = 254\n', "interface[1].table"),
    ('[[interface]]\nname = "ens*"\n\n[[interface]]\nname = "ens224"\n', "interface[2].name"),
    (
        '[[interface]]\nname = "ens224"\nroutes = [ { to = "10.0.0.1/24" } ]\n',
        "interface[1].routes[1].to",
    ),
    ('[[interface]]\nname = "ens224"\ncolour = "blue"\n', "interface[1].colour"),
    ("[daemon\n", None),  # TOML syntax error
]


@pytest.mark.parametrize(("text", "key"), BAD_CONFIGS)
def test_invalid_configuration_exits_2_and_touches_nothing(
    lab: Lab, tmp_path: Path, text: str, key: str | None
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    before = (rules(lab, lab.server), routes(lab, lab.server))
    for command in ("apply", "check-config"):
        result = polroutd(lab, lab.server, command, "--config", str(path))
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert str(path) in lines[0]
        if key is not None:
            assert key in lines[0], lines[0]
    assert (rules(lab, lab.server), routes(lab, lab.server)) == before
