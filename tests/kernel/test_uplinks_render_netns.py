"""``polroutd render`` with uplinks, loaded by the real tools in the uplink lab: what each
persistent format recreates equals what ``polroutd apply`` creates, balance's weighted
multipath default included (the pure rendering: tests/unit/test_uplinks_render.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from polroutd.lab.uplinks import UplinkLab, uplink_config
from tests.kernel.test_render_netns import NETWORKD, NETWORKD_SANDBOX
from tests.support.lab_tools import PROTO


@pytest.fixture
def lab(uplink_lab: UplinkLab) -> UplinkLab:
    return uplink_lab


def polroutd(lab: UplinkLab, *args: str) -> str:
    result = lab.spaces.run(lab.host, sys.executable, "-m", "polroutd", *args, check=False,
                            timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def owned(lab: UplinkLab, what: str) -> list[dict[str, Any]]:
    """polroutd's rules or routes (every table), both families, comparable before/after."""
    found = []
    for family in ("-4", "-6"):
        args = ["rule", "show"] if what == "rule" else ["route", "show", "table", "all"]
        for item in json.loads(lab.sh(lab.host, "ip", "-j", family, *args) or "[]"):
            if str(item.get("protocol")) in (str(PROTO), "polroutd"):
                found.append(dict(item, family=family))
    return found


def dump(items: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps({k: v for k, v in i.items() if k != "flags"}, sort_keys=True)
                  for i in items)


def uplink_table_number(tmp_path: Path) -> str:
    recorded = (tmp_path / "rt_tables.d" / "polroutd.conf").read_text().splitlines()
    return next(line.split()[0] for line in recorded if line.endswith(" uplinks"))


def balance_applied_then_flushed(lab: UplinkLab, tmp_path: Path) -> tuple[Path, list[str],
                                                                            list[str]]:
    """``apply`` balance with weights 3:1 (both families), remember polroutd's routes and
    rules, ``flush``."""
    config = uplink_config(tmp_path, mode="balance", weights=(3, 1))
    polroutd(lab, "apply", "--config", str(config))
    routes, rules = dump(owned(lab, "route")), dump(owned(lab, "rule"))
    polroutd(lab, "flush", "--config", str(config))
    assert owned(lab, "route") == [] and owned(lab, "rule") == []
    return config, routes, rules


def assert_weighted_multipath(lab: UplinkLab, table: str) -> None:
    """The uplink table holds one default per family with a next hop per uplink, 3:1."""
    for family, gateways in (("-4", {"wan1": "10.1.0.1", "wan2": "10.2.0.1"}),
                             ("-6", {"wan1": "2001:db8:1::1", "wan2": "2001:db8:2::1"})):
        found = json.loads(lab.sh(lab.host, "ip", "-j", family, "route", "show", "table", table))
        assert [r["dst"] for r in found] == ["default"], found
        hops = {h["dev"]: (h["gateway"], h.get("weight", 1)) for h in found[0]["nexthops"]}
        assert hops == {"wan1": (gateways["wan1"], 3), "wan2": (gateways["wan2"], 1)}, found


def test_ip_batch_recreates_balances_multipath_default_exactly(
    lab: UplinkLab, tmp_path: Path
) -> None:
    config, routes, rules = balance_applied_then_flushed(lab, tmp_path)
    out = tmp_path / "out"
    polroutd(lab, "render", "--format", "ip-batch", "--config", str(config), "--out", str(out))
    batch = (out / "polroutd.ip-batch").read_text()
    assert "health" in batch and "needs the daemon" in batch  # the header says so
    for name, flag in (("polroutd.ip-batch", "-4"), ("polroutd6.ip-batch", "-6")):
        lab.sh(lab.host, "ip", flag, "-batch", str(out / name))
    assert dump(owned(lab, "route")) == routes
    assert dump(owned(lab, "rule")) == rules
    assert_weighted_multipath(lab, uplink_table_number(tmp_path))
    # and the kernel uses it: the host's connections with no chosen source go by the table
    assert "lookup main suppress_prefixlength 0" in lab.sh(lab.host, "ip", "rule")


def test_interfaces_post_up_recreates_balance_and_pre_down_removes_it(
    lab: UplinkLab, tmp_path: Path
) -> None:
    config, routes, rules = balance_applied_then_flushed(lab, tmp_path)
    out = tmp_path / "out"
    polroutd(lab, "render", "--format", "interfaces", "--config", str(config), "--out", str(out))
    content = (out / "interfaces.d" / "polroutd").read_text()
    commands = {keyword: [line.split(keyword, 1)[1].strip() for line in content.splitlines()
                          if line.startswith(f"#    {keyword} ")]
                for keyword in ("post-up", "pre-down")}
    assert any("nexthop via" in c and "weight 3" in c for c in commands["post-up"])
    # The table names the lines use are in the rt_tables file polroutd recorded; `ip` sees it
    # as /etc/iproute2 in a private mount namespace (nothing in the real /etc is touched).
    iproute2 = tmp_path / "etc-iproute2"
    (iproute2 / "rt_tables.d").mkdir(parents=True)
    (iproute2 / "rt_tables.d" / "polroutd.conf").write_text(
        (tmp_path / "rt_tables.d" / "polroutd.conf").read_text())
    for keyword, expected_routes, expected_rules in (("post-up", routes, rules),
                                                     ("pre-down", [], [])):
        script = tmp_path / f"{keyword}.sh"
        script.write_text("set -e\n" + "\n".join(commands[keyword]) + "\n")
        result = lab.spaces.run(lab.host, "unshare", "-m", "sh", "-c",
                                'mount --bind "$0" /etc/iproute2 && exec sh "$1"',
                                str(iproute2), str(script), check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert dump(owned(lab, "route")) == expected_routes, keyword
        assert dump(owned(lab, "rule")) == expected_rules, keyword
        if keyword == "post-up":
            assert_weighted_multipath(lab, uplink_table_number(tmp_path))


@pytest.mark.skipif(not NETWORKD.exists(), reason="systemd-networkd is not installed")
def test_systemd_networkd_loads_balances_multipath_default(
    lab: UplinkLab, tmp_path: Path
) -> None:
    config, routes, _rules = balance_applied_then_flushed(lab, tmp_path)
    out = tmp_path / "out"
    polroutd(lab, "render", "--format", "networkd", "--config", str(config), "--out", str(out))
    etc = tmp_path / "etc-systemd"
    for name in ("wan1", "wan2"):
        (etc / "network" / f"10-{name}.network.d").mkdir(parents=True)
        (etc / "network" / f"10-{name}.network").write_text(
            f"[Match]\nName={name}\n\n[Network]\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n"
            "KeepConfiguration=yes\n")
        (etc / "network" / f"10-{name}.network.d" / "polroutd.conf").write_text(
            (out / f"{name}.network.d" / "polroutd.conf").read_text())
    (etc / "networkd.conf.d").mkdir()
    (etc / "networkd.conf.d" / "polroutd-tables.conf").write_text(
        (out / "networkd.conf.d" / "polroutd-tables.conf").read_text())
    networkd = lab.spaces.popen(lab.host, "unshare", "-m", "sh", "-c", NETWORKD_SANDBOX,
                                str(etc), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE,
                                env={**os.environ, "SYSTEMD_LOG_LEVEL": "info"})
    try:
        deadline = time.monotonic() + 15
        while dump(owned(lab, "route")) != routes and time.monotonic() < deadline:
            assert networkd.poll() is None, networkd.stderr.read() if networkd.stderr else ""
            time.sleep(0.2)
        assert dump(owned(lab, "route")) == routes  # routes keep polroutd's protocol
        assert_weighted_multipath(lab, uplink_table_number(tmp_path))
    finally:
        networkd.terminate()
        networkd.wait(10)
