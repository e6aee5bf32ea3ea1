"""Configuration: finding the file, parsing it, and every validation rule of
docs/behaviour.md §4.1."""

from __future__ import annotations

import ipaddress
import json
import tomllib
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polroutd.config.parse import load_config, parse_config, resolve_config_path
from polroutd.config.tomllines import key_lines, line_of
from polroutd.core import record
from polroutd.core.errors import ConfigError
from polroutd.core.globs import overlap_witness
from polroutd.core.limits import MAX_PROTOCOL, RESERVED_PROTOCOLS
from polroutd.core.settings import DEFAULT_EXCLUDE, Config, DaemonSettings, InterfaceSpec, RouteSpec

EXAMPLE = Path(__file__).resolve().parents[2] / "contrib" / "polroutd.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "polroutd.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- the example and the defaults -----------------------------------------------------------


def test_the_spec_example_parses_to_its_values() -> None:
    config = load_config(EXAMPLE)

    assert config.source == str(EXAMPLE)
    assert config.daemon == DaemonSettings()  # the example spells out the defaults
    assert config.interfaces == (
        InterfaceSpec(name="ens192", table="mgt", gateway="auto", gateway6="auto", priority=30000),
        InterfaceSpec(
            name="ens224",
            table="data",
            routes=(RouteSpec(to="10.225.144.0/24", via="10.225.176.1", table="main"),),
        ),
    )


def test_the_example_is_the_one_in_the_spec_but_for_the_protocol_range() -> None:
    spec = (Path("/work/shared/spec/polroutd.md"))
    if not spec.exists():
        pytest.skip("the spec is not beside this checkout")
    block = spec.read_text().split("```toml\n", 1)[1].split("```", 1)[0]
    # One documented difference: numbers 1..4 are reserved for the kernel and other tools, so
    # the example states the range the validation accepts.
    spec_range = "# name in rt_protos(.d) or a number 1..255"
    assert spec_range in block
    assert EXAMPLE.read_text() == block.replace(spec_range, spec_range.replace("1..", "5.."))


def test_the_examples_protocol_comment_states_what_the_code_accepts(tmp_path: Path) -> None:
    lowest, highest = max(RESERVED_PROTOCOLS) + 1, MAX_PROTOCOL
    line = next(x for x in EXAMPLE.read_text().splitlines() if x.startswith("protocol ="))
    assert line.endswith(f"or a number {lowest}..{highest}"), line
    for number, valid in ((lowest - 1, False), (lowest, True), (highest, True),
                          (highest + 1, False)):
        path = write(tmp_path, f"[daemon]\nprotocol = {number}\n")
        if valid:
            assert load_config(path).daemon.protocol == number
        else:
            with pytest.raises(ConfigError):
                load_config(path)


def test_no_file_means_the_defaults() -> None:
    config = load_config(None)

    assert config == Config()
    assert config.daemon.rule_priority == 30000
    assert config.daemon.table_range == (30000, 30999)
    assert config.daemon.exclude == DEFAULT_EXCLUDE
    assert config.interfaces == ()


def test_an_empty_file_means_the_defaults_from_that_file(tmp_path: Path) -> None:
    path = write(tmp_path, "# nothing here\n")
    assert load_config(path) == Config(source=str(path))


def test_every_daemon_setting_has_a_parser() -> None:
    every_key = {f.name for f in record.fields(DaemonSettings)}
    text = "[daemon]\n" + "".join(f"{key} = {_toml_value(v)}\n" for key, v in _SAMPLE.items())
    assert set(_SAMPLE) == every_key
    daemon = parse_config(_parse_toml(text), "x.toml", text).daemon
    assert daemon.protocol == 200
    assert daemon.table_range == (100, 199)
    assert daemon.dhcp_lease_paths == ("/var/lib/x/{ifname}.lease",)


_SAMPLE: dict[str, Any] = {
    "http_listen": "[::1]:8080", "resync_interval": 5, "debounce": 0, "max_delay": 1.5,
    "protocol": 200, "mode": "main-first", "rule_priority": 2, "table_range": [100, 199],
    "rt_tables_file": "", "exclude": [], "cleanup_on_exit": True, "log_format": "json",
    "log_level": "debug", "dhcp_lease_paths": ["/var/lib/x/{ifname}.lease"],
    "uplinks": "off", "uplink_table": "up", "uplink_priority": 32000,
}


def test_values_are_canonicalised() -> None:
    data = {
        "daemon": {"protocol": "218", "resync_interval": 2},
        "interface": [
            {"name": "eth0", "table": "100", "gateway6": "2001:DB8:0:0::1",
             "routes": [{"to": "2001:db8:0::/48", "via": "fe80::0001"},
                        {"to": "default", "via": "10.0.0.1", "table": 254},
                        {"to": "10.1.2.3", "metric": 5}]},
        ],
    }
    config = parse_config(data, "x.toml")
    interface = config.interfaces[0]
    assert config.daemon.protocol == 218
    assert isinstance(config.daemon.resync_interval, float)
    assert interface.table == 100
    assert interface.gateway6 == "2001:db8::1"
    assert interface.routes == (
        RouteSpec(to="2001:db8::/48", via="fe80::1"),
        RouteSpec(to="0.0.0.0/0", via="10.0.0.1", table="main"),
        RouteSpec(to="10.1.2.3/32", metric=5),
    )


def test_a_glob_entry_gets_no_table() -> None:
    config = parse_config({"interface": [{"name": "ens*"}, {"name": "eth0", "table": 7}]}, "x")
    assert config.interfaces[0] == InterfaceSpec(name="ens*")
    assert config.interfaces[1].table == 7


# --- finding the file -----------------------------------------------------------------------


def test_config_argument_wins(tmp_path: Path) -> None:
    given, from_env = tmp_path / "given.toml", tmp_path / "env.toml"
    given.touch()
    from_env.touch()
    environ = {"POLROUTD_CONFIG": str(from_env)}
    assert resolve_config_path(str(given), environ, default=tmp_path / "d.toml") == given


def test_environment_comes_next(tmp_path: Path) -> None:
    from_env, default = tmp_path / "env.toml", tmp_path / "default.toml"
    from_env.touch()
    default.touch()
    environ = {"POLROUTD_CONFIG": str(from_env)}
    assert resolve_config_path(None, environ, default=default) == from_env


def test_default_file_when_present_else_none(tmp_path: Path) -> None:
    default = tmp_path / "polroutd.toml"
    assert resolve_config_path(None, {}, default=default) is None
    assert resolve_config_path(None, {"POLROUTD_CONFIG": ""}, default=default) is None
    default.touch()
    assert resolve_config_path(None, {}, default=default) == default


@pytest.mark.parametrize("via", ["--config", "POLROUTD_CONFIG"])
def test_an_explicit_missing_file_is_an_error(tmp_path: Path, via: str) -> None:
    missing = tmp_path / "missing.toml"
    cli = str(missing) if via == "--config" else None
    environ = {"POLROUTD_CONFIG": str(missing)} if via != "--config" else {}

    with pytest.raises(ConfigError, match="file not found") as caught:
        resolve_config_path(cli, environ, default=tmp_path / "default.toml")
    assert str(missing) in str(caught.value)
    assert via in str(caught.value)


# --- reading errors -------------------------------------------------------------------------


def test_a_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[daemon]\nmode = 'strict'\ndebounce = \n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.line == 3
    assert caught.value.key == "syntax"
    assert str(caught.value).startswith(f"{path}:3: syntax: ")


def test_an_unreadable_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path)  # a directory
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"# caf\xe9\n")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(path)


# --- invalid configurations -----------------------------------------------------------------

D = "[daemon]\n"
I1 = '[[interface]]\nname = "eth0"\n'
I2 = '[[interface]]\nname = "eth1"\n'

# (TOML text, the key the error names, the line it names or None when not asserted)
INVALID: list[tuple[str, str, int | None]] = [
    ("foo = 1\n", "foo", 1),
    ("[deamon]\ndebounce = 1\n", "deamon", 1),
    ("daemon = 5\n", "daemon", 1),
    ("interface = 5\n", "interface", 1),
    (D + "resync = 5\n", "daemon.resync", 2),
    (I1 + 'gw = "10.0.0.1"\n', "interface[1].gw", 3),
    (I1 + 'routes = [ { to = "10.0.0.0/8", dev = "eth0" } ]\n', "interface[1].routes[1].dev", 3),
    (D + "rule_priority = 40000\n", "daemon.rule_priority", 2),
    (D + "rule_priority = 32766\n", "daemon.rule_priority", 2),
    (D + "rule_priority = 0\n", "daemon.rule_priority", 2),
    (D + "rule_priority = true\n", "daemon.rule_priority", 2),
    (D + "rule_priority = 3.0e4\n", "daemon.rule_priority", 2),
    (D + 'mode = "main-first"\nrule_priority = 1\n', "daemon.rule_priority", 3),
    (D + 'mode = "main-first"\n' + I1 + "priority = 1\n", "interface[1].priority", 5),
    (I1 + "priority = 32766\n", "interface[1].priority", 3),
    (D + "resync_interval = 0\n", "daemon.resync_interval", 2),
    (D + 'resync_interval = "60"\n', "daemon.resync_interval", 2),
    (D + "resync_interval = nan\n", "daemon.resync_interval", 2),
    (D + "debounce = -0.5\n", "daemon.debounce", 2),
    (D + "debounce = 1\n", "daemon.debounce", 2),
    (D + "debounce = 0.5\nmax_delay = 0.1\n", "daemon.max_delay", 3),
    (D + "max_delay = 0\n", "daemon.max_delay", 2),
    (D + "protocol = 0\n", "daemon.protocol", 2),
    (D + "protocol = 4\n", "daemon.protocol", 2),
    (D + 'protocol = "static"\n', "daemon.protocol", 2),
    (D + "protocol = 256\n", "daemon.protocol", 2),
    (D + 'protocol = "no spaces"\n', "daemon.protocol", 2),
    (D + "protocol = false\n", "daemon.protocol", 2),
    (D + 'mode = "loose"\n', "daemon.mode", 2),
    (D + 'log_format = "xml"\n', "daemon.log_format", 2),
    (D + 'log_level = "verbose"\n', "daemon.log_level", 2),
    (D + "table_range = [30000]\n", "daemon.table_range", 2),
    (D + "table_range = [2000, 1000]\n", "daemon.table_range", 2),
    (D + "table_range = [200, 300]\n", "daemon.table_range", 2),
    (D + "table_range = [0, 10]\n", "daemon.table_range", 2),
    (D + "table_range = [1000, 4294967296]\n", "daemon.table_range", 2),
    (D + 'table_range = ["a", "b"]\n', "daemon.table_range", 2),
    (D + 'rt_tables_file = "rt_tables.d/polroutd.conf"\n', "daemon.rt_tables_file", 2),
    (D + 'exclude = "lo"\n', "daemon.exclude", 2),
    (D + 'exclude = [\n  "lo",\n  3,\n]\n', "daemon.exclude[2]", 4),
    (D + 'dhcp_lease_paths = ["leases/x"]\n', "daemon.dhcp_lease_paths[1]", 2),
    (D + 'dhcp_lease_paths = ["/x/{name}.lease"]\n', "daemon.dhcp_lease_paths[1]", 2),
    (D + 'cleanup_on_exit = "yes"\n', "daemon.cleanup_on_exit", 2),
    (D + 'http_listen = "localhost:9641"\n', "daemon.http_listen", 2),
    (D + 'http_listen = "127.0.0.1"\n', "daemon.http_listen", 2),
    (D + 'http_listen = "127.0.0.1:0"\n', "daemon.http_listen", 2),
    (D + 'http_listen = "::1:9641"\n', "daemon.http_listen", 2),
    (D + 'http_listen = "[::1]:70000"\n', "daemon.http_listen", 2),
    (D + 'http_listen = "[10.0.0.1]:80"\n', "daemon.http_listen", 2),
    ('[[interface]]\ntable = "mgt"\n', "interface[1].name", 1),
    ('[[interface]]\nname = ""\n', "interface[1].name", 2),
    ('[[interface]]\nname = "averyveryverylongname"\n', "interface[1].name", 2),
    ('[[interface]]\nname = "eth/0"\n', "interface[1].name", 2),
    ('[[interface]]\nname = "main"\n', "interface[1].table", 1),
    (I1 + 'table = "main"\n', "interface[1].table", 3),
    (I1 + 'table = "local"\n', "interface[1].table", 3),
    (I1 + "table = 254\n", "interface[1].table", 3),
    (I1 + "table = 0\n", "interface[1].table", 3),
    (I1 + "table = 4294967296\n", "interface[1].table", 3),
    (I1 + 'table = "1st"\n', "interface[1].table", 3),
    (I1 + "table = true\n", "interface[1].table", 3),
    ('[[interface]]\nname = "eth*"\ntable = "data"\n', "interface[1].table", 3),
    (I1 + 'table = "data"\n' + I2 + 'table = "data"\n', "interface[2].table", 6),
    (I1 + "table = 100\n" + I2 + 'table = "100"\n', "interface[2].table", 6),
    (I1 + I2 + 'table = "eth0"\n', "interface[2].table", 5),
    (I1 + 'gateway = "2001:db8::1"\n', "interface[1].gateway", 3),
    (I1 + 'gateway6 = "10.0.0.1"\n', "interface[1].gateway6", 3),
    (I1 + 'gateway = "the router"\n', "interface[1].gateway", 3),
    (I1 + "gateway = 1\n", "interface[1].gateway", 3),
    ('[[interface]]\nname = "eth*"\n[[interface]]\nname = "eth0"\n', "interface[2].name", 4),
    ('[[interface]]\nname = "e*"\n[[interface]]\nname = "*0"\n', "interface[2].name", 4),
    ('[[interface]]\nname = "eth0"\n[[interface]]\nname = "eth0"\n', "interface[2].name", 4),
    (I1 + 'routes = "10.0.0.0/8"\n', "interface[1].routes", 3),
    (I1 + 'routes = [ { via = "10.0.0.1" } ]\n', "interface[1].routes[1].to", 3),
    (I1 + 'routes = [ { to = "10.0.0.1/24" } ]\n', "interface[1].routes[1].to", 3),
    (I1 + 'routes = [ { to = "10.0.0.0/33" } ]\n', "interface[1].routes[1].to", 3),
    (I1 + 'routes = [ { to = "default" } ]\n', "interface[1].routes[1].to", 3),
    (I1 + 'routes = [ { to = "10.0.0.0/8", via = "fe80::1" } ]\n',
     "interface[1].routes[1].via", 3),
    (I1 + 'routes = [ { to = "10.0.0.0/8", via = "gw" } ]\n', "interface[1].routes[1].via", 3),
    (I1 + 'routes = [ { to = "10.0.0.0/8", metric = -1 } ]\n',
     "interface[1].routes[1].metric", 3),
    (I1 + 'routes = [ { to = "10.0.0.0/8", table = "local" } ]\n',
     "interface[1].routes[1].table", 3),
    (I1 + 'routes = [ { to = "10.0.0.0/8", table = 0 } ]\n', "interface[1].routes[1].table", 3),
    (I1 + 'routes = [\n  { to = "10.0.0.0/8" },\n  { to = "10.1.0.0/16", via = "::1" },\n]\n',
     "interface[1].routes[2].via", 5),
    (I1 + '[[interface.routes]]\nto = "10.0.0.0/8"\n[[interface.routes]]\nto = "1.2.3.4/8"\n',
     "interface[1].routes[2].to", 6),
]


@pytest.mark.parametrize(("text", "key", "line"), INVALID, ids=[k for _, k, _ in INVALID])
def test_invalid_configurations_name_file_key_and_line(
    tmp_path: Path, text: str, key: str, line: int | None
) -> None:
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    error = caught.value
    message = str(error)
    assert error.key == key
    assert "\n" not in message
    assert message.startswith(f"{path}:{error.line}: {key}: " if error.line else f"{path}: {key}")
    assert error.problem
    if line is not None:
        assert error.line == line


def test_there_are_enough_invalid_cases() -> None:
    assert len({key for _, key, _ in INVALID}) >= 20


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (D + "rule_priority = 40000\n", ["below 32766", "40000"]),
        (D + "protocol = 3\n", ["reserved", "boot"]),
        (I1 + 'table = "main"\n', ["reserved table 254"]),
        (I1 + 'gateway = "2001:db8::1"\n', ["IPv4", "IPv6 address 2001:db8::1", "gateway6"]),
        (I1 + 'routes = [ { to = "10.0.0.1/24" } ]\n', ["host bits", "10.0.0.0/24"]),
        (D + "table_range = [200, 300]\n", ["reserved table 253"]),
        (D + "rule_priority = true\n", ["integer", "boolean true"]),
        ('[[interface]]\nname = "e*"\n[[interface]]\nname = "*0"\n', ["overlaps", '"e0"']),
    ],
)
def test_problems_say_what_is_expected_and_what_was_found(text: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_parse_toml(text), "x.toml", text)
    for word in words:
        assert word in caught.value.problem


def test_errors_without_text_have_no_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"daemon": {"mode": "x"}}, "x.toml")
    assert caught.value.line is None
    assert str(caught.value).startswith("x.toml: daemon.mode: ")


# --- where keys are ---------------------------------------------------------------------------


def test_key_lines_follow_tables_arrays_and_inline_tables() -> None:
    text = (
        '# top\n'
        '[daemon]\n'
        'http_listen = "a # not a comment"  # comment\n'
        'exclude = [\n'
        '  "lo",  # first\n'
        '  """x\n'
        'y""",\n'
        ']\n'
        '\n'
        '[[interface]]\n'
        "name = 'e]th0'\n"
        '[[interface]]\n'
        'name = "eth1"\n'
        'routes = [\n'
        '  { to = "10.0.0.0/8" },\n'
        '  { to = "::/0", via = "::1" },\n'
        ']\n'
        'gateway = "auto"\n'
    )
    lines = key_lines(text)
    assert lines["daemon"] == 2
    assert lines["daemon.http_listen"] == 3
    assert lines["daemon.exclude[1]"] == 5
    assert lines["daemon.exclude[2]"] == 6
    assert lines["interface[1].name"] == 11
    assert lines["interface[2]"] == 12
    assert lines["interface[2].routes[2].via"] == 16
    assert lines["interface[2].gateway"] == 18
    assert line_of(lines, "interface[2].routes[2].metric") == 16
    assert line_of(lines, "interface[1].table") == 10
    assert line_of(lines, "nowhere") is None


def test_key_lines_give_up_quietly_on_text_they_do_not_follow() -> None:
    assert key_lines("a = 1\n= = =\n") == {"a": 1}


# --- overlapping patterns -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("eth0", "eth0"), ("eth*", "eth0"), ("eth0", "eth*"), ("eth*", "*0"), ("e*", "*0"),
        ("wg?", "wg*"), ("[ab]x*", "a*"), ("*eth*", "*wlan*"), ("en?1*", "ens*"),
        ("*", "lo"), ("ens[0-9]", "ens1"), ("eth[!0]", "eth?"),
    ],
)
def test_patterns_that_overlap(a: str, b: str) -> None:
    witness = overlap_witness(a, b)
    assert witness is not None
    assert fnmatchcase(witness, a)
    assert fnmatchcase(witness, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("eth0", "eth1"), ("eth*", "en*"), ("eth*", "ens1"), ("*0", "*1"), ("wg?", "wg10"),
        ("ens[0-4]", "ens[5-9]"), ("a*b", "b*a"), ("eth[!0]", "eth0"),
        ("en?s*", "ens1*"), ("*[0-4]", "*[5-9]"),
    ],
)
def test_patterns_that_do_not_overlap(a: str, b: str) -> None:
    assert overlap_witness(a, b) is None


def test_non_overlapping_entries_are_fine() -> None:
    entries = [{"name": "ens1*"}, {"name": "ens2*"}, {"name": "eth0", "table": "data"}]
    assert len(parse_config({"interface": entries}, "x").interfaces) == 3


_GLOB = st.text(alphabet="ab*?", min_size=1, max_size=4)


def _brute_force_overlap(a: str, b: str) -> bool:
    # A shortest common name is at most len(a) + len(b) long (each character advances at least
    # one of the patterns), and "x" stands for every character neither pattern names.
    names = [""]
    for _ in range(len(a) + len(b)):
        names = [name + c for name in names for c in "abx"]
        if any(fnmatchcase(name, a) and fnmatchcase(name, b) for name in names):
            return True
    return False


@settings(max_examples=300, deadline=None)
@given(_GLOB, _GLOB)
def test_overlap_is_exact_against_brute_force(a: str, b: str) -> None:
    witness = overlap_witness(a, b)
    if witness is not None:
        assert witness
        assert fnmatchcase(witness, a)
        assert fnmatchcase(witness, b)
    assert (witness is not None) == (a == b or _brute_force_overlap(a, b))
    assert (witness is None) == (overlap_witness(b, a) is None)


# --- generated valid configurations ---------------------------------------------------------

_NAMES = st.from_regex(r"[a-z][a-z0-9]{0,9}", fullmatch=True)
_V4 = st.ip_addresses(v=4).map(str)
_V6 = st.ip_addresses(v=6).map(str)


@st.composite
def _routes(draw: st.DrawFn) -> dict[str, Any]:
    address = draw(st.ip_addresses(v=draw(st.sampled_from([4, 6]))))
    gateways = _V4 if address.version == 4 else _V6
    prefix = draw(st.integers(0, 32 if address.version == 4 else 128))
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    route: dict[str, Any] = {"to": draw(st.sampled_from([str(network), "default"]))}
    if route["to"] == "default" or draw(st.booleans()):
        route["via"] = draw(gateways)
    if draw(st.booleans()):
        route["table"] = draw(st.sampled_from(["main", 254, 1000, "other"]))
    if draw(st.booleans()):
        route["metric"] = draw(st.integers(0, 2**32 - 1))
    return route


@st.composite
def valid_configs(draw: st.DrawFn) -> dict[str, Any]:
    daemon: dict[str, Any] = {}
    if draw(st.booleans()):
        daemon["mode"] = draw(st.sampled_from(["strict", "main-first"]))
    if draw(st.booleans()):
        daemon["rule_priority"] = draw(st.integers(2, 32765))
    if draw(st.booleans()):
        low = draw(st.integers(256, 2**32 - 2))
        daemon["table_range"] = [low, draw(st.integers(low, 2**32 - 1))]
    if draw(st.booleans()):
        daemon["debounce"] = draw(st.floats(0, 1))
        daemon["max_delay"] = daemon["debounce"] + draw(st.floats(0.001, 5))
    if draw(st.booleans()):
        daemon["protocol"] = draw(st.one_of(st.integers(5, 255), _NAMES.filter(
            lambda n: n not in ("unspec", "redirect", "kernel", "boot", "static"))))
    if draw(st.booleans()):
        daemon["exclude"] = draw(st.lists(_NAMES.map(lambda n: n + "*"), max_size=4))
    names = draw(st.lists(_NAMES.filter(lambda n: n not in ("main", "local", "default",
                                                             "unspec")),
                          max_size=4, unique=True))
    interfaces = []
    for number, name in enumerate(names, 1):
        entry: dict[str, Any] = {"name": name}
        if draw(st.booleans()):
            entry["table"] = draw(st.sampled_from([f"t-{name}", 1000 + number]))
        if draw(st.booleans()):
            entry["gateway"] = draw(st.one_of(st.sampled_from(["auto", "none"]), _V4))
        if draw(st.booleans()):
            entry["gateway6"] = draw(st.one_of(st.sampled_from(["auto", "none"]), _V6))
        if draw(st.booleans()):
            entry["priority"] = draw(st.integers(2, 32765))
        entry["routes"] = draw(st.lists(_routes(), max_size=3))
        interfaces.append(entry)
    config: dict[str, Any] = {}
    if daemon:
        config["daemon"] = daemon
    if interfaces:
        config["interface"] = interfaces
    return config


@settings(max_examples=150, deadline=None)
@given(valid_configs())
def test_valid_generated_configs_parse_the_same_from_data_and_from_text(
    tmp_path_factory: pytest.TempPathFactory, data: dict[str, Any]
) -> None:
    parsed = parse_config(data, "gen.toml")
    assert parse_config(data, "gen.toml") == parsed  # deterministic
    assert len(parsed.interfaces) == len(data.get("interface", []))

    path = tmp_path_factory.mktemp("gen") / "gen.toml"
    path.write_text(_to_toml(data), encoding="utf-8")
    assert record.replace(load_config(path), source="gen.toml") == parsed


@settings(max_examples=100, deadline=None)
@given(valid_configs(), st.sampled_from(["bogus", "interface"]))
def test_an_unknown_key_in_a_generated_config_is_found_on_its_line(
    data: dict[str, Any], where: str
) -> None:
    if where == "interface" and data.get("interface"):
        data["interface"][-1]["bogus"] = 1
        key = f"interface[{len(data['interface'])}].bogus"
    else:
        data.setdefault("daemon", {})["bogus"] = 1
        key = "daemon.bogus"
    text = _to_toml(data)
    with pytest.raises(ConfigError) as caught:
        parse_config(_parse_toml(text), "gen.toml", text)
    assert caught.value.key == key
    assert caught.value.line is not None
    assert text.splitlines()[caught.value.line - 1].startswith("bogus = ")


# --- a small TOML writer for the tests (tomllib only reads) ---------------------------------


def _parse_toml(text: str) -> dict[str, Any]:

    return tomllib.loads(text)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def _to_toml(data: dict[str, Any]) -> str:
    out = []
    if "daemon" in data:
        out.append("[daemon]\n")
        out += [f"{k} = {_toml_value(v)}\n" for k, v in data["daemon"].items()]
    for entry in data.get("interface", []):
        out.append("\n[[interface]]\n")
        out += [f"{k} = {_toml_value(v)}\n" for k, v in entry.items()]
    return "".join(out)
