"""Round trips on the kernel: what each render format's output recreates, executed in a lab
namespace, equals what polroutd apply creates (the pure rendering: tests/unit/test_render.py).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from polroutd.cli.render import FORMATS
from polroutd.lab.lab import ADDR, Lab
from tests.support.article import body_lines
from tests.support.lab_tools import (
    PROTO,
    foreign,
    owned,
    polroutd,
    recorded_tables,
    routes,
    rules,
    write_config,
    write_lease,
)

# ------------------------------------------------------------------ round trips on the kernel


def owned_dump(lab: Lab) -> list[str]:
    objects = owned(rules(lab, lab.server)) + owned(routes(lab, lab.server))
    return sorted(json.dumps(o, sort_keys=True) for o in objects)


def foreign_dump(lab: Lab) -> tuple[list[str], list[str]]:
    return foreign(rules(lab, lab.server)), foreign(routes(lab, lab.server))


def _ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def round_trip_config(tmp_path: Path, daemon_extra: str = "") -> Path:
    """The lab's configuration plus routes of every type but unicast, in both families, and an
    IPv6 table that ends with "unreachable default"."""
    config = write_config(tmp_path, daemon_extra=daemon_extra)
    text = config.read_text()
    text = text.replace('table = "mgt"\n', 'table = "mgt"\ngateway6 = "unreachable"\n'
                        'routes = [ { to = "192.0.2.0/24", type = "blackhole" },\n'
                        '           { to = "198.51.100.0/24", type = "prohibit", metric = 10 } ]\n',
                        1)
    text = text.replace('table = "main" } ]', 'table = "main" },\n'
                        '           { to = "2001:db8:66::/48", type = "unreachable" } ]')
    config.write_text(text)
    return config


def applied_then_flushed(lab: Lab, tmp_path: Path, daemon_extra: str = "") -> tuple[
        Path, list[str]]:
    """Configure the lab like the article (ens224's gateway from a lease), run ``apply``,
    remember the owned objects, ``flush``; returns the config file and that dump."""
    config = round_trip_config(tmp_path, daemon_extra=daemon_extra)
    write_lease(tmp_path, "ens224", ADDR.server_data4, "10.225.176.1")
    _ok(polroutd(lab, lab.server, "apply", "--config", str(config)))
    applied = owned_dump(lab)
    families = {json.loads(o)["family"] for o in applied}
    assert families == {"-4", "-6"} and len(applied) >= 10, applied
    types = {json.loads(o).get("type") for o in applied}
    assert types >= {"unreachable", "blackhole", "prohibit"}, applied
    assert any(json.loads(o).get("type") == "unreachable" and json.loads(o)["dst"] == "default"
               and json.loads(o)["family"] == "-6" for o in applied), applied
    _ok(polroutd(lab, lab.server, "flush", "--config", str(config)))
    assert owned_dump(lab) == []
    return config, applied


def render_in_lab(lab: Lab, config: Path, fmt: str, out: Path) -> dict[str, str]:
    _ok(polroutd(lab, lab.server, "render", "--format", fmt, "--config", str(config),
                 "--out", str(out)))
    return {str(p.relative_to(out)): p.read_text() for p in out.rglob("*") if p.is_file()}


def register_protocol_name(tmp_path: Path) -> Path:
    """Names polroutd's protocol where polroutd reads names (beside its rt_tables file), and
    returns a private iproute2 directory for ``ip`` with the same name."""
    for directory in (tmp_path / "iproute2", tmp_path / "etc-iproute2"):
        (directory / "rt_protos.d").mkdir(parents=True, exist_ok=True)
        (directory / "rt_protos.d" / "polroutd.conf").write_text(f"{PROTO} polroutd\n")
    return tmp_path / "etc-iproute2"


def run_script(lab: Lab, commands: list[str], tmp_path: Path, iproute2: Path | None = None,
               name: str = "script.sh") -> None:
    """Run shell commands in the server namespace, stopping at the first failure; with
    ``iproute2``, ``ip`` sees that directory as /etc/iproute2 (a private mount namespace:
    nothing in the real /etc is touched)."""
    script = tmp_path / name
    script.write_text("set -e\n" + "\n".join(commands) + "\n")
    if iproute2 is None:
        _ok(lab.run(lab.server, "sh", str(script), check=False))
        return
    mount = 'mount --bind "$0" /etc/iproute2 && exec sh "$1"'
    _ok(lab.run(lab.server, "unshare", "-m", "sh", "-c", mount, str(iproute2), str(script),
                check=False))


@pytest.mark.parametrize("mode", ["strict", "main-first"])
def test_ip_batch_recreates_exactly_what_apply_creates(
    lab: Lab, tmp_path: Path, mode: str
) -> None:
    foreign_before = foreign_dump(lab)
    config, applied = applied_then_flushed(lab, tmp_path, f'mode = "{mode}"')
    files = render_in_lab(lab, config, "ip-batch", tmp_path / "out")
    assert set(files) == {"polroutd.ip-batch", "polroutd6.ip-batch"}
    assert "proto 218" in files["polroutd.ip-batch"]  # no name for it here: the number
    out = tmp_path / "out"
    _ok(lab.run(lab.server, "ip", "-4", "-batch", str(out / "polroutd.ip-batch"), check=False))
    _ok(lab.run(lab.server, "ip", "-6", "-batch", str(out / "polroutd6.ip-batch"), check=False))
    assert owned_dump(lab) == applied
    assert foreign_dump(lab) == foreign_before
    plan = polroutd(lab, lab.server, "plan", "--config", str(config))
    assert plan.returncode == 0, plan.stdout  # polroutd sees its own objects: nothing to do


IFUP_COMMENT = re.compile(r"^[ \t]*(#.*)?$")  # ifup-routes' MATCH: blank or comment lines


def test_ifcfg_files_executed_like_ifup_routes_recreate_the_same(
    lab: Lab, tmp_path: Path
) -> None:
    iproute2 = register_protocol_name(tmp_path)
    config, applied = applied_then_flushed(lab, tmp_path)
    files = render_in_lab(lab, config, "ifcfg", tmp_path / "out")
    assert "table data proto polroutd" in files["route-ens224"]  # names, as in the article
    # ip must resolve the names through the rendered rt_tables lines, nothing else
    (iproute2 / "rt_tables.d").mkdir()
    (iproute2 / "rt_tables.d" / "polroutd.conf").write_text(files["rt_tables.d/polroutd.conf"])
    commands = []
    for interface in ("ens192", "ens224"):
        for prefix, argv in (("route", "ip -4 route add"), ("route6", "ip -6 route add"),
                             ("rule", "ip -4 rule add"), ("rule6", "ip -6 rule add")):
            for line in files.get(f"{prefix}-{interface}", "").splitlines():
                if not IFUP_COMMENT.match(line):
                    commands.append(f"{argv} {line}")  # ifup-routes: ip $proto $type add $line
    run_script(lab, commands, tmp_path, iproute2)
    assert owned_dump(lab) == applied


def _stanza_commands(content: str, keyword: str) -> list[str]:
    """The commented-out ``post-up``/``pre-down`` lines, as ifupdown would run them."""
    found = []
    for line in content.splitlines():
        match = re.fullmatch(rf"#\s+{keyword}\s+(.+)", line)
        if match:
            found.append(match.group(1))
    return found


def test_interfaces_post_up_recreates_and_pre_down_removes(lab: Lab, tmp_path: Path) -> None:
    iproute2 = register_protocol_name(tmp_path)
    foreign_before = foreign_dump(lab)
    config, applied = applied_then_flushed(lab, tmp_path)
    files = render_in_lab(lab, config, "interfaces", tmp_path / "out")
    content = files["interfaces.d/polroutd"]
    assert body_lines(content) == []  # inert if /etc/network/interfaces.d/* is sourced
    (iproute2 / "rt_tables.d").mkdir()
    names = "".join(f"{n} {name}\n" for name, n in recorded_tables(tmp_path).items())
    (iproute2 / "rt_tables.d" / "polroutd.conf").write_text(names)
    post_up = _stanza_commands(content, "post-up")
    assert post_up and all(shlex.split(c)[0] == "ip" for c in post_up)
    run_script(lab, post_up, tmp_path, iproute2, "post-up.sh")
    assert owned_dump(lab) == applied
    pre_down = _stanza_commands(content, "pre-down")
    assert len(pre_down) == len(post_up)
    run_script(lab, pre_down, tmp_path, iproute2, "pre-down.sh")
    assert owned_dump(lab) == []
    assert foreign_dump(lab) == foreign_before


def test_render_to_stdout_and_headers_from_the_cli(lab: Lab, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    for fmt in FORMATS:
        result = _ok(polroutd(lab, lab.server, "render", "--format", fmt, "--config",
                              str(config)))
        chunks = result.stdout.split("# ==> ")[1:]
        assert chunks, fmt
        for chunk in chunks:
            assert "STATIC SNAPSHOT" in chunk and str(config) in chunk, (fmt, chunk[:80])
    nothing = polroutd(lab, lab.server, "plan", "--config", str(config))
    assert nothing.returncode == 2  # rendering changed nothing in the kernel


NETWORKD = Path("/lib/systemd/systemd-networkd")
# In the server namespace, privately: our /etc/systemd, a fresh /run/systemd, and a read-only
# /sys so networkd does not wait for a udev that is not running here.
NETWORKD_SANDBOX = (
    'mount --bind "$0" /etc/systemd && mount -o remount,bind,ro /sys'
    " && mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/netif"
    " && chown systemd-network: /run/systemd/netif && exec " + str(NETWORKD)
)


def _owned_routes(lab: Lab) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in owned(routes(lab, lab.server)))


def _rules_without_protocol(items: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps({k: v for k, v in i.items() if k != "protocol"}, sort_keys=True)
                  for i in items)


@pytest.mark.skipif(not NETWORKD.exists(), reason="systemd-networkd is not installed")
def test_systemd_networkd_loads_the_drop_ins_to_the_same_routes_and_rules(
    lab: Lab, tmp_path: Path
) -> None:
    config = round_trip_config(tmp_path)
    write_lease(tmp_path, "ens224", ADDR.server_data4, "10.225.176.1")
    _ok(polroutd(lab, lab.server, "apply", "--config", str(config)))
    applied_routes = _owned_routes(lab)
    applied_rules = _rules_without_protocol(owned(rules(lab, lab.server)))
    _ok(polroutd(lab, lab.server, "flush", "--config", str(config)))
    files = render_in_lab(lab, config, "networkd", tmp_path / "out")
    etc = tmp_path / "etc-systemd"
    for name, content in files.items():
        if name.endswith(".network.d/polroutd.conf"):  # named after the .network file
            interface = name.split(".")[0]
            name = f"network/10-{interface}.network.d/polroutd.conf"
            (etc / "network").mkdir(parents=True, exist_ok=True)
            (etc / f"network/10-{interface}.network").write_text(
                f"[Match]\nName={interface}\n\n[Network]\nLinkLocalAddressing=no\n"
                "IPv6AcceptRA=no\nKeepConfiguration=yes\n")
        (etc / name).parent.mkdir(parents=True, exist_ok=True)
        (etc / name).write_text(content)
    networkd = lab.popen(lab.server, "unshare", "-m", "sh", "-c", NETWORKD_SANDBOX, str(etc),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env={**os.environ, "SYSTEMD_LOG_LEVEL": "info"})
    deadline = time.monotonic() + 15
    while _owned_routes(lab) != applied_routes and time.monotonic() < deadline:
        assert networkd.poll() is None, networkd.stderr.read() if networkd.stderr else ""
        time.sleep(0.2)
    # routes carry polroutd's protocol (Protocol=): identical to what apply made
    assert _owned_routes(lab) == applied_routes
    # rules get networkd's protocol ("static"), otherwise identical
    networkd_rules = [r for r in rules(lab, lab.server) if r.get("protocol") == "static"]
    assert _rules_without_protocol(networkd_rules) == applied_rules
    # ManageForeignRoutes=no: the main table's default route (not networkd's) is still there
    main = [r for r in routes(lab, lab.server) if r["family"] == "-4" and "table" not in r]
    assert any(r["dst"] == "default" and r.get("gateway") == "10.225.160.1" for r in main)
