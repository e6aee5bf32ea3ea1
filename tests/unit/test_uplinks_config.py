"""The uplink keys: every one validated like the others (file, key, line, what was expected),
and a valid set parsed into typed values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from polroutd.config.parse import load_config
from polroutd.core.errors import ConfigError
from polroutd.core.settings import ProbeSpec, UplinkSpec

ON = '[daemon]\nuplinks = "failover"\n'
U1 = ON + '[[interface]]\nname = "wan1"\nuplink = true\n'

INVALID = [
    ('[daemon]\nuplinks = "always"\n', "daemon.uplinks", ['"off", "failover" or "balance"']),
    ('[daemon]\nuplink_table = "main"\n', "daemon.uplink_table", ["reserved table 254"]),
    ('[daemon]\nuplink_table = 0\n', "daemon.uplink_table", ["reserved table"]),
    ('[daemon]\nuplink_priority = 32766\n', "daemon.uplink_priority", ["below 32766"]),
    ('[daemon]\nuplink_priority = 32765\n', "daemon.uplink_priority", ["at most 32764"]),
    (ON + '[[interface]]\nname = "wan1"\n', "daemon.uplinks", ["no [[interface]]"]),
    ('[[interface]]\nname = "wan1"\nuplink = true\n', "interface[1].uplink", ['"off"']),
    (ON + '[[interface]]\nname = "wan1"\nuplink = "yes"\n', "interface[1].uplink",
     ["true or false"]),
    (ON + '[[interface]]\nname = "wan1"\nuplink_metric = 5\n', "interface[1].uplink_metric",
     ["uplink = true"]),
    (U1 + "uplink_metric = -1\n", "interface[1].uplink_metric", ["0 to 4294967295"]),
    (U1 + "uplink_weight = 0\n", "interface[1].uplink_weight", ["1 to 256"]),
    (U1 + "uplink_weight = 257\n", "interface[1].uplink_weight", ["1 to 256"]),
    (U1 + 'probe = "arp"\n', "interface[1].probe", ['"tcp:HOST:PORT"', '"arp"']),
    (U1 + 'probe = "tcp:example.com:80"\n', "interface[1].probe", ["IP address"]),
    (U1 + 'probe = "tcp:2001:db8::1:80"\n', "interface[1].probe", ["brackets"]),
    (U1 + 'probe = "tcp:192.0.2.1:0"\n', "interface[1].probe", ["port from 1 to 65535"]),
    (U1 + 'probe = "tcp:192.0.2.1:99999"\n', "interface[1].probe", ["port from 1 to 65535"]),
    (U1 + 'probe_targets = ["192.0.2.1"]\n', "interface[1].probe_targets", ['probe = "icmp"']),
    (U1 + 'probe = "icmp"\nprobe_targets = ["gw"]\n', "interface[1].probe_targets[1]",
     ["IPv4 or IPv6 address"]),
    (U1 + 'probe = "icmp"\nprobe_targets = "192.0.2.1"\n', "interface[1].probe_targets",
     ["array"]),
    (U1 + 'gateway = "none"\nprobe = "icmp"\nprobe_targets = ["192.0.2.1"]\n',
     "interface[1].probe_targets", ["IPv4 target", 'gateway is "none"']),
    (U1 + 'gateway6 = "none"\nprobe = "tcp:[2001:db8::1]:443"\n', "interface[1].probe",
     ["IPv6 target", 'gateway6 is "none"']),
    (U1 + 'gateway = "none"\ngateway6 = "none"\n', "interface[1].uplink", ["needs a gateway"]),
    (U1 + "probe_interval = 0\n", "interface[1].probe_interval", ["from 0.01 to 3600 seconds"]),
    (U1 + "probe_interval = -1\n", "interface[1].probe_interval", ["from 0.01 to 3600 seconds"]),
    (U1 + "probe_timeout = 0\n", "interface[1].probe_timeout", ["from 0.01 to 3600 seconds"]),
    (U1 + 'probe_timeout = "1s"\n', "interface[1].probe_timeout", ["number of seconds"]),
    (U1 + "probe_down = 0\n", "interface[1].probe_down", ["1 to 1000"]),
    (U1 + "probe_up = 0\n", "interface[1].probe_up", ["1 to 1000"]),
    (U1 + "probe_up = 1.5\n", "interface[1].probe_up", ["integer"]),
    (ON + "uplink_priority = 30000\n" + '[[interface]]\nname = "wan1"\nuplink = true\n',
     "daemon.uplink_priority", ["after every per-address rule", "30000"]),
    (ON + 'uplink_table = "wan1"\n[[interface]]\nname = "wan1"\nuplink = true\n',
     "interface[1].name", ["already used by daemon.uplink_table"]),
]


@pytest.mark.parametrize(("text", "key", "words"), INVALID, ids=[k for _, k, _ in INVALID])
def test_invalid_uplink_settings_name_file_key_line_and_expectation(
    tmp_path: Path, text: str, key: str, words: list[str]
) -> None:
    path = tmp_path / "polroutd.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    error = caught.value
    assert error.key == key
    assert "\n" not in str(error)
    for word in words:
        assert word in error.problem
    if (key.startswith("interface[1].") and key != "interface[1].uplink") or key in (
        "daemon.uplinks", "daemon.uplink_table", "daemon.uplink_priority"
    ):
        assert error.line is not None


def test_every_new_key_has_an_invalid_case() -> None:
    keys = {key.split(".")[-1].split("[")[0] for _, key, _ in INVALID}
    assert keys >= {"uplinks", "uplink_table", "uplink_priority", "uplink", "uplink_metric",
                    "uplink_weight", "probe", "probe_targets", "probe_interval",
                    "probe_timeout", "probe_down", "probe_up"}


def test_a_full_uplink_entry_parses_into_typed_values(tmp_path: Path) -> None:
    path = tmp_path / "polroutd.toml"
    path.write_text(
        '[daemon]\nuplinks = "balance"\nuplink_table = 900\nuplink_priority = 32000\n'
        '[[interface]]\nname = "wan1"\nuplink = true\nuplink_metric = 10\nuplink_weight = 3\n'
        'probe = "icmp"\nprobe_targets = ["192.0.2.1", "2001:DB8::1"]\nprobe_interval = 0.2\n'
        "probe_timeout = 1\nprobe_down = 2\nprobe_up = 4\n"
        '[[interface]]\nname = "wan2"\nuplink = true\nprobe = "tcp:[2001:db8::7]:443"\n'
        '[[interface]]\nname = "lan0"\n'
    )
    config = load_config(path)
    assert (config.daemon.uplinks, config.daemon.uplink_table,
            config.daemon.uplink_priority) == ("balance", 900, 32000)
    wan1, wan2, lan = config.interfaces
    assert wan1.uplink == UplinkSpec(
        metric=10, weight=3, probe=ProbeSpec("icmp", targets=("192.0.2.1", "2001:db8::1")),
        interval=0.2, timeout=1.0, down=2, up=4)
    assert wan2.uplink is not None
    assert wan2.uplink.probe == ProbeSpec("tcp", host="2001:db8::7", port=443)
    assert lan.uplink is None


def test_check_config_says_it_in_one_line_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "polroutd.toml"
    path.write_text(U1 + "probe_down = 0\n")
    done = subprocess.run([sys.executable, "-m", "polroutd", "check-config", "--config",
                           str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "interface[1].probe_down" in done.stderr
