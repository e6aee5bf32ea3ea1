"""``polroutd render``: loading each format must recreate exactly what ``apply`` creates.

ip-batch, ifcfg and interfaces are loaded for real in the lab's server namespace and compared
with the owned objects ``apply`` made; networkd and nmcli are checked against golden files
and their documented syntax (NetworkManager is not installed here; nmcli is a recording stub).
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from polroutd.cli.render import FORMATS, concatenate, ip_protocol_name, nm_route, render
from polroutd.core.decision import Decision
from polroutd.core.limits import RTN_UNICAST
from polroutd.core.settings import Config, DaemonSettings, InterfaceSpec, RouteSpec
from tests.support.article import PROTO, SPEC_EXAMPLE, article_decision, body_lines

GOLDEN = Path(__file__).parent / "golden"
WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CONFIG_FILE = "/etc/polroutd/polroutd.toml"
HEADER_MARKERS = ("STATIC SNAPSHOT", "does NOT follow DHCP renewals", "How to load it")


# ------------------------------------------------------------------ a pure decision (no kernel)


# The spec's example plus routes of every type but unicast (an IPv6 one is stored on lo).
RENDER_EXAMPLE = Config(interfaces=(
    InterfaceSpec(name="ens192", table="mgt", routes=(
        RouteSpec(to="192.0.2.0/24", type="blackhole"),
        RouteSpec(to="198.51.100.0/24", type="prohibit", metric=10),
    )),
    InterfaceSpec(name="ens224", table="data", routes=(
        *SPEC_EXAMPLE.interfaces[1].routes,
        RouteSpec(to="2001:db8:66::/48", type="unreachable"),
    )),
))


def main_first_decision() -> Decision:
    return article_decision(Config(daemon=DaemonSettings(mode="main-first"),
                                   interfaces=RENDER_EXAMPLE.interfaces))


def rendered(fmt: str, decision: Decision | None = None) -> dict[str, str]:
    return render(decision or article_decision(RENDER_EXAMPLE), fmt, "polroutd",
                  generated_at=WHEN, config_file=CONFIG_FILE)


# ------------------------------------------------------------------ pure checks


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_file_starts_with_the_snapshot_header(fmt: str) -> None:
    files = rendered(fmt)
    assert files
    for name, content in files.items():
        head = content.removeprefix("#!/bin/sh\n").split("\n\n")[0]
        assert all(line.startswith("#") for line in head.splitlines()), name
        text = content[:2000]
        for marker in HEADER_MARKERS:
            assert marker in text, (name, marker)
        assert "2024-05-01T12:00:00+00:00" in text and CONFIG_FILE in text, name


@pytest.mark.parametrize("fmt", FORMATS)
def test_output_matches_the_golden_files(fmt: str) -> None:
    """Golden files, line by line; POLROUTD_UPDATE_GOLDEN=1 rewrites them (review the diff)."""
    files = rendered(fmt)
    directory = GOLDEN / fmt
    if os.environ.get("POLROUTD_UPDATE_GOLDEN"):
        for name, content in files.items():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            (directory / name).write_text(content)
        pytest.skip("golden files rewritten: review the diff")
    expected = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
    assert sorted(files) == expected
    for name, content in files.items():
        golden = (directory / name).read_text().splitlines()
        for number, (got, want) in enumerate(zip(content.splitlines(), golden, strict=True), 1):
            assert got == want, f"{fmt}/{name}:{number}"


def test_stdout_form_marks_each_file() -> None:
    files = rendered("ifcfg")
    text = concatenate(files)
    assert [line[6:-4] for line in text.splitlines() if line.startswith("# ==> ")] == list(files)


def test_numeric_tables_leave_no_names() -> None:
    files = render(article_decision(), "ifcfg", "218", numeric_tables=True, generated_at=WHEN)
    lines = [line for content in files.values() for line in body_lines(content)]
    assert lines and not any(re.search(r"\b(lookup|table) (mgt|data)\b", line) for line in lines)
    assert "rt_tables.d/polroutd.conf" not in files
    assert any("table 30001 proto 218" in line for line in lines)


def test_ifcfg_has_the_articles_shape() -> None:
    files = rendered("ifcfg")
    assert set(files) == {"route-ens192", "rule-ens192", "route-ens224", "route6-ens224",
                          "rule-ens224", "rule6-ens224", "rt_tables.d/polroutd.conf"}
    route_ens224 = body_lines(files["route-ens224"])
    # the extra main-table route goes with its device, without `table`
    assert "10.225.144.0/24 via 10.225.176.1 dev ens224 metric 0 proto polroutd" in route_ens224
    assert ("default via 10.225.176.1 dev ens224 metric 0 table data proto polroutd"
            in route_ens224)
    assert body_lines(files["rule-ens192"]) == [
        "from 10.225.160.38 lookup mgt priority 30000 protocol polroutd"]
    assert body_lines(files["rt_tables.d/polroutd.conf"]) == ["30000 mgt", "30001 data"]


def test_ip_protocol_name() -> None:
    known = {"kernel": 2, "polroutd": 218, "bird": 12}
    assert ip_protocol_name("polroutd", 218, known) == "polroutd"
    assert ip_protocol_name("polroutd", 218, {"kernel": 2}) == "218"  # ip would not know it
    assert ip_protocol_name(12, 12, known) == "bird"
    assert ip_protocol_name(77, 77, known) == "77"


# ------------------------------------------------------------------ networkd: documented syntax

# systemd.network(5) and networkd.conf(5), systemd 252 (the installed man pages).
NETWORKD_ROUTE_KEYS = {
    "Gateway", "GatewayOnLink", "Destination", "Source", "Metric", "IPv6Preference", "Scope",
    "PreferredSource", "Table", "Protocol", "Type", "InitialCongestionWindow",
    "InitialAdvertisedReceiveWindow", "QuickAck", "FastOpenNoCookie", "TTLPropagate",
    "MTUBytes", "TCPAdvertisedMaximumSegmentSize", "TCPCongestionControlAlgorithm",
    "MultiPathRoute", "NextHop",
}
NETWORKD_RULE_KEYS = {
    "TypeOfService", "From", "To", "FirewallMark", "Table", "Priority", "IncomingInterface",
    "OutgoingInterface", "SourcePort", "DestinationPort", "IPProtocol", "InvertRule", "Family",
    "User", "SuppressPrefixLength", "SuppressInterfaceGroup", "Type",
}
NETWORKD_CONF_NETWORK_KEYS = {"SpeedMeter", "SpeedMeterIntervalSec",
                              "ManageForeignRoutingPolicyRules", "ManageForeignRoutes",
                              "RouteTable"}


def _sections(content: str) -> list[tuple[str, dict[str, str]]]:
    """systemd unit-file syntax; repeated sections kept apart (configparser merges them)."""
    out: list[tuple[str, dict[str, str]]] = []
    for line in content.splitlines():
        if not line.strip() or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            assert line.endswith("]"), line
            out.append((line[1:-1], {}))
            continue
        key, sep, value = line.partition("=")
        assert sep and out, f"not a Key=Value line inside a section: {line!r}"
        assert key not in out[-1][1], f"{key} twice in one [{out[-1][0]}]"
        out[-1][1][key] = value
    return out


def _table_ok(value: str, route_tables: set[str]) -> bool:
    return value in {"main", "local", "default"} | route_tables or (
        value.isdigit() and 1 <= int(value) <= 4294967295)


def _network_ok(value: str) -> bool:
    try:
        ipaddress.ip_network(value)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("decision", [article_decision(RENDER_EXAMPLE), main_first_decision()],
                         ids=["strict", "main-first"])
def test_networkd_files_use_only_documented_keys_and_values(decision: Decision) -> None:
    files = rendered("networkd", decision)
    conf = _sections(files.pop("networkd.conf.d/polroutd-tables.conf"))
    assert [name for name, _ in conf] == ["Network"]
    network = conf[0][1]
    assert set(network) <= NETWORKD_CONF_NETWORK_KEYS
    assert network["ManageForeignRoutingPolicyRules"] == "no"
    assert network["ManageForeignRoutes"] == "no"
    route_tables = {pair.split(":")[0] for pair in network["RouteTable"].split()}
    assert network["RouteTable"] == "mgt:30000 data:30001"
    assert set(files) == {"ens192.network.d/polroutd.conf", "ens224.network.d/polroutd.conf"}
    routes_seen = rules_seen = 0
    for content in files.values():
        for name, keys in _sections(content):
            assert name in {"Route", "RoutingPolicyRule"}
            if name == "Route":
                routes_seen += 1
                assert set(keys) <= NETWORKD_ROUTE_KEYS, keys
                assert _network_ok(keys["Destination"])
                if "Gateway" in keys:
                    ipaddress.ip_address(keys["Gateway"])
                if "PreferredSource" in keys:
                    ipaddress.ip_address(keys["PreferredSource"])
                assert keys.get("Scope", "global") in {"global", "site", "link", "host",
                                                       "nowhere"}
                assert _table_ok(keys["Table"], route_tables)
                assert 0 <= int(keys["Metric"]) <= 4294967295
                assert keys["Protocol"] == str(PROTO)  # routes keep polroutd's protocol
            else:
                rules_seen += 1
                assert set(keys) <= NETWORKD_RULE_KEYS, keys
                assert _table_ok(keys["Table"], route_tables)
                assert 0 <= int(keys["Priority"]) <= 4294967295
                if "From" in keys:
                    assert _network_ok(keys["From"])
                else:  # without From= networkd would take the rule for IPv4
                    assert keys["Family"] in {"ipv4", "ipv6"}
                if "SuppressPrefixLength" in keys:
                    assert 0 <= int(keys["SuppressPrefixLength"]) <= 128
    expressible = [r for r in decision.desired.routes  # not docker0's
                   if r.oif in (2, 3) or r.type != RTN_UNICAST]
    assert routes_seen == len(expressible)
    assert rules_seen == len(decision.desired.rules)


def test_networkd_main_first_rule_names_its_family() -> None:
    files = rendered("networkd", main_first_decision())
    rules_ = [keys for content in files.values() for name, keys in _sections(content)
              if name == "RoutingPolicyRule" and "SuppressPrefixLength" in keys]
    assert rules_ == [
        {"Table": "main", "Priority": "29999", "Family": "ipv4", "SuppressPrefixLength": "0"},
        {"Table": "main", "Priority": "29999", "Family": "ipv6", "SuppressPrefixLength": "0"},
    ]


# ------------------------------------------------------------------ nmcli: run against a stub

# nm-settings-nmcli(5), ipv4.routes: "ip[/prefix] [next-hop] [metric] [attribute=val]..."
NM_ROUTE_ATTRIBUTES = {
    "advmss", "cwnd", "initcwnd", "initrwnd", "lock-advmss", "lock-cwnd", "lock-initcwnd",
    "lock-initrwnd", "lock-mtu", "lock-window", "mtu", "onlink", "quickack", "rto_min", "scope",
    "src", "table", "tos", "type", "weight", "window", "from",
}
NM_STUB = """#!/bin/sh
printf '%s\\0' "$@" >> "$NMCLI_LOG"
printf '\\n' >> "$NMCLI_LOG"
if [ "$1" = "-g" ] && [ "$2" = "GENERAL.CONNECTION" ]; then
    echo "Wired connection $5"
fi
"""


def _run_nmcli_script(tmp_path: Path, decision: Decision) -> list[list[str]]:
    script = tmp_path / "polroutd-nmcli.sh"
    script.write_text(rendered("nmcli", decision)["polroutd-nmcli.sh"])
    stub_dir = tmp_path / "bin"
    stub_dir.mkdir()
    (stub_dir / "nmcli").write_text(NM_STUB)
    (stub_dir / "nmcli").chmod(0o755)
    log = tmp_path / "nmcli.log"
    env = {"PATH": f"{stub_dir}:/usr/bin:/bin", "NMCLI_LOG": str(log)}
    ran = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True,
                         check=False, timeout=30)
    assert ran.returncode == 0, ran.stderr
    return [line.split("\0")[:-1] for line in log.read_text().splitlines()]


def _check_nm_route(entry: str, family: int) -> None:
    words = entry.split()
    network = ipaddress.ip_network(words[0])
    assert network.version == (4 if family == 4 else 6)
    rest = words[1:]
    if rest and not rest[0].isdigit() and "=" not in rest[0]:
        assert ipaddress.ip_address(rest.pop(0)).version == network.version  # next hop
    assert rest and rest.pop(0).isdigit(), f"explicit metric missing in {entry!r}"
    attributes = dict(word.split("=", 1) for word in rest)
    assert set(attributes) <= NM_ROUTE_ATTRIBUTES
    assert attributes["table"].isdigit()  # NM knows no table names
    if "scope" in attributes:
        assert family == 4 and 0 <= int(attributes["scope"]) <= 255
    if "src" in attributes:
        ipaddress.ip_address(attributes["src"])


def _check_nm_rule(entry: str, family: int) -> None:
    match = re.fullmatch(r"priority (\d+) from (\S+) table (\d+)( suppress_prefixlength \d+)?",
                         entry)
    assert match, entry  # NM needs the priority, and ip-rule keywords otherwise
    assert ipaddress.ip_network(match.group(2)).version == family


@pytest.mark.parametrize("decision", [article_decision(RENDER_EXAMPLE), main_first_decision()],
                         ids=["strict", "main-first"])
def test_nmcli_script_runs_and_uses_documented_syntax(
    tmp_path: Path, decision: Decision
) -> None:
    calls = _run_nmcli_script(tmp_path, decision)
    assert ["-g", "GENERAL.CONNECTION", "device", "show", "ens192"] in calls
    modifies = [c for c in calls if c[:2] == ["connection", "modify"]]
    reapplies = [c for c in calls if c[:2] == ["device", "reapply"]]
    assert [c[2] for c in modifies] == ["Wired connection ens192", "Wired connection ens224"]
    assert reapplies == [["device", "reapply", "ens192"], ["device", "reapply", "ens224"]]
    counted = {"routes": 0, "routing-rules": 0}
    for call in modifies:
        args = call[3:]
        assert len(args) % 2 == 0
        for setting, entry in zip(args[::2], args[1::2], strict=True):
            match = re.fullmatch(r"\+ipv([46])\.(routes|routing-rules)", setting)
            assert match, setting
            family = int(match.group(1))
            counted[match.group(2)] += 1
            if match.group(2) == "routes":
                _check_nm_route(entry, family)
            else:
                _check_nm_rule(entry, family)
    assert counted["routing-rules"] == len(decision.desired.rules)
    assert counted["routes"] == len([r for r in decision.desired.routes
                                     if r.oif in (2, 3) or r.type != RTN_UNICAST])


def test_nmcli_stops_when_an_interface_has_no_connection(tmp_path: Path) -> None:
    script = tmp_path / "polroutd-nmcli.sh"
    script.write_text(rendered("nmcli")["polroutd-nmcli.sh"])
    stub_dir = tmp_path / "bin"
    stub_dir.mkdir()
    (stub_dir / "nmcli").write_text("#!/bin/sh\nexit 0\n")  # no connection on any device
    (stub_dir / "nmcli").chmod(0o755)
    ran = subprocess.run(["sh", str(script)], env={"PATH": f"{stub_dir}:/usr/bin:/bin"},
                         capture_output=True, text=True, check=False, timeout=30)
    assert ran.returncode == 1 and "no active connection on ens192" in ran.stderr


def test_nm_route_entries() -> None:
    decision = article_decision()
    entries = [nm_route(r) for r in decision.desired.routes if r.oif == 3]
    assert "0.0.0.0/0 10.225.176.1 0 table=30001" in entries
    assert "10.225.176.0/24 0 table=30001 scope=253 src=10.225.176.38" in entries
    assert "::/0 fe80::1 1024 table=30001" in entries
    assert "10.225.144.0/24 10.225.176.1 0 table=254" in entries


def test_write_files_makes_directories_and_the_script_executable(tmp_path: Path) -> None:
    from polroutd.cli.render import write_files

    files = {**rendered("nmcli"), **rendered("networkd")}
    written = write_files(tmp_path, files)
    assert sorted(str(p.relative_to(tmp_path)) for p in written) == sorted(files)
    assert os.access(tmp_path / "polroutd-nmcli.sh", os.X_OK)
    assert not os.access(tmp_path / "ens192.network.d" / "polroutd.conf", os.X_OK)
