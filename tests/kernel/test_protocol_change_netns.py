"""Issue 11: a reload from protocol 218 to 219 takes polroutd's objects over in the real kernel:
afterwards nothing has 218, everything of polroutd's has 219, foreign objects are untouched,
and ``ip monitor`` shows every rule added with 219 before its 218 copy was deleted."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from polroutd.lab.lab import ADDR, Lab
from tests.support.lab_tools import (
    HTTP_PORT,
    foreign,
    owned,
    routes,
    rules,
    start_daemon,
    write_config,
    write_lease,
)

DAEMON = f'http_listen = "127.0.0.1:{HTTP_PORT}"\nresync_interval = 3600'


def _protocols(items: list[dict[str, object]]) -> set[str]:
    return {str(i.get("protocol")) for i in items}


def test_reload_to_another_protocol_replaces_every_object(lab: Lab, tmp_path: Path) -> None:
    config = write_config(tmp_path, daemon_extra=DAEMON + "\nprotocol = 218")
    write_lease(tmp_path, "ens224", ADDR.server_data4, "10.225.176.1")
    d = start_daemon(lab, config, tmp_path)
    monitor: subprocess.Popen[str] | None = None
    try:
        d.wait_ready()
        d.wait_for(lambda: d.state()["in_sync"], what="in sync with 218")
        before_rules, before_routes = owned(rules(lab, lab.server)), owned(routes(lab, lab.server))
        assert before_rules and before_routes
        foreign_before = (foreign(rules(lab, lab.server)), foreign(routes(lab, lab.server)))
        monitor = lab.popen(lab.server, "ip", "-o", "monitor", "rule",
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(0.3)  # the monitor is subscribed
        config.write_text(config.read_text().replace("protocol = 218", "protocol = 219"))
        d.signal(signal.SIGHUP)
        d.wait_for(lambda: d.state()["in_sync"] and d.counters()["config_reloads_ok"] == 1,
                   what="in sync after the reload")
        time.sleep(0.3)
        all_rules, all_routes = rules(lab, lab.server), routes(lab, lab.server)
        assert "218" not in _protocols(all_rules) | _protocols(all_routes)
        mine_rules = [r for r in all_rules if str(r.get("protocol")) == "219"]
        mine_routes = [r for r in all_routes if str(r.get("protocol")) == "219"]
        assert len(mine_rules) == len(before_rules) and len(mine_routes) == len(before_routes)
        # foreign() counts 218 as ours: with it gone, the rest is what was foreign before
        assert (foreign([r for r in all_rules if r not in mine_rules]),
                foreign([r for r in all_routes if r not in mine_routes])) == foreign_before
        assert d.counters()["drift"] == 0
    finally:
        if monitor is not None:
            monitor.terminate()
        d.stop()
    assert monitor is not None
    out = monitor.communicate(timeout=10)[0]
    events = [line for line in out.splitlines() if "from " in line and "lookup" in line]
    added: set[str] = set()
    checked = 0
    for line in events:
        selector = line.split("proto")[0].replace("Deleted ", "").split()
        key = " ".join(selector)
        if line.startswith("Deleted") and "proto 218" in line:
            assert key in added, f"{line!r} deleted before its 219 copy was added:\n{out}"
            checked += 1
        elif "proto 219" in line:
            added.add(key)
    assert checked == len(before_rules), out
