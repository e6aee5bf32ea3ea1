"""``polroutd demo``: the article's scenario, live and narrated, in throwaway namespaces
(docs/behaviour.md §6).

Every step says why it matters, shows real command output as evidence, and checks what it
claims: a step that does not behave as narrated prints ✗ with the reason, everything is torn
down and the exit code is 1. Namespaces are named ``polroutd-demo-<6 hex>-<role>``; nothing is
ever done in the root network namespace. Ctrl-C (or SIGTERM) tears everything down too.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from polroutd.cli.demo_narration import Narrator, StepFailed, check
from polroutd.cli.demo_uplinks import UPLINK_STEP_TITLES, UplinkScene
from polroutd.core.errors import UsageError
from polroutd.lab.article import article_config
from polroutd.lab.daemon import LabDaemon
from polroutd.lab.lab import (
    ADDR,
    ROUTER_DATA_IF,
    ROUTER_MGMT_IF,
    SERVER_DATA_IF,
    SERVER_MGMT_IF,
    Lab,
    LabError,
    Monitor,
    netns_names_with_prefix,
    remove_stale,
)

__all__ = ["PREFIX", "STEP_TITLES", "Demo", "StepFailed", "cleanup_demo", "run_demo"]

PREFIX = "polroutd-demo"
HTTP_LISTEN = "127.0.0.1:9641"
TCP_PORT = 8080
NEW_DATA_ADDRESS = "10.225.176.77"
PROTOCOL_NUMBER = 218  # polroutd's built-in number for the protocol name "polroutd"
FAIL_WAIT = 1.5  # seconds the client waits for an answer that is not coming
EXIT_INTERRUPTED = 130

STEP_TITLES = (
    "Clean up after an earlier run",
    "The topology: the article's figure 3",
    "Build the lab; the data address comes from DHCP",
    "The client reaches the management address",
    "The client cannot reach the data address",
    "Start polroutd in the server",
    "The same request to the data address now succeeds",
    "A DHCP renewal brings a new address; polroutd follows",
    "Someone deletes polroutd's rule; it comes back",
    "What the operator sees: /state and /metrics",
    *UPLINK_STEP_TITLES,
    "Tear down (with --keep: leave it running)",
)

TOPOLOGY = """\
                              management 10.225.160.0/24
                       .1 to-mgmt ------------------------- ens192 .38
+---------------+     +------------------+              +---------------------------+
| client        |     | router           |              | server                    |
| 10.225.128.10 |-----| strict rp_filter |              | one default route:        |
+---------------+     | DHCP server      |              |   via 10.225.160.1 (mgmt) |
  eth0    to-client   +------------------+              +---------------------------+
   10.225.128.0/24     .1 to-data ------------------------- ens224 by DHCP
                                data 10.225.176.0/24"""


def lab_config(http_listen: str, rt_tables: Path, lease_path: Path) -> str:
    """The article's example configuration (:mod:`polroutd.lab.article`) as the demo runs it:
    used by the demo and by the end-to-end suite, so both exercise the same thing."""
    return "# polroutd demo: the spec's example configuration, adapted to the lab.\n" + (
        article_config(rt_tables_file=str(rt_tables), lease_paths=[str(lease_path)],
                       daemon_lines=[f'http_listen = "{http_listen}"',
                                     "resync_interval = 3600     # an hour: every repair shown "
                                     "comes from a kernel event",
                                     'log_format = "json"'])
    )


# --------------------------------------------------------------------------------------------


@dataclass
class Tables:
    mgt: str  # the table as `ip` shows it: its name when visible, else its number
    data: str


class Demo:
    def __init__(self, narrator: Narrator, keep: bool) -> None:
        self.n = narrator
        self.keep = keep
        self.lab: Lab | None = None
        self.daemon: LabDaemon | None = None
        self.data_address = ADDR.server_data4
        self.tables = Tables("mgt", "data")
        self.names_visible = False
        self.steps: list[Callable[[], str]] = [
            self.step_cleanup, self.step_topology, self.step_build, self.step_mgmt_reachable,
            self.step_data_fails, self.step_start_polroutd, self.step_data_works,
            self.step_renewal, self.step_drift, self.step_operator_view,
            self.step_uplink_failover, self.step_uplink_recovery, self.step_teardown,
        ]
        self.uplinks: UplinkScene | None = None

    # ---------------------------------------------------------------- running

    def run(self) -> int:
        results: list[tuple[int, str, bool]] = []
        started = time.monotonic()
        try:
            for number, (title, step) in enumerate(zip(STEP_TITLES, self.steps, strict=True)):
                self.n.heading(number, title)
                try:
                    detail = step()
                except StepFailed as exc:
                    self.n.failed(str(exc))
                    results.append((number, title, False))
                    break
                except (LabError, OSError, subprocess.SubprocessError, ValueError) as exc:
                    self.n.failed(f"{type(exc).__name__}: {exc}")
                    results.append((number, title, False))
                    break
                self.n.passed(detail)
                results.append((number, title, True))
        except KeyboardInterrupt:
            self.n.line()
            self.n.failed("interrupted: tearing everything down")
            return EXIT_INTERRUPTED
        finally:
            self.teardown()  # after --keep's last step there is nothing left to tear down
        self.n.summary(results)
        ok = len(results) == len(self.steps) and all(r[2] for r in results)
        elapsed = time.monotonic() - started
        self.n.line(f"   {'every step behaved as narrated' if ok else 'the demo FAILED'} "
                    f"({elapsed:.1f} s)")
        return 0 if ok else 1

    def teardown(self) -> None:
        """Stop polroutd and every lab process, delete the namespaces. Idempotent."""
        if self.uplinks is not None:
            self.uplinks.close()
            self.uplinks = None
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None
        if self.lab is not None:
            names = ", ".join(self.lab.namespaces)
            try:
                self.lab.teardown()
                self.n.line(f"   removed the lab: {names}")
            except LabError as exc:
                self.n.failed(f"teardown: {exc}")
            self.lab = None

    # ---------------------------------------------------------------- helpers

    @property
    def built(self) -> Lab:
        assert self.lab is not None
        return self.lab

    def ns(self, role: str) -> str:
        return {"server": self.built.server, "router": self.built.router,
                "client": self.built.client}[role]

    def get(self, path: str) -> str:
        """A page of the daemon's HTTP API; the step fails unless it answers 200."""
        assert self.daemon is not None
        status, body = self.daemon.http(path)
        if status != 200:
            raise StepFailed(f"GET {path} answered {status}: {body[:200]}")
        return body

    def sh(self, role: str, *argv: str, show: bool = True, limit: int = 14) -> str:
        """Run ``argv`` in a lab namespace and show it as ``role# command`` plus its output."""
        out = self.built.run(self.ns(role), *argv).stdout
        if show:
            self.n.command(role, shlex.join(argv), out, limit)
        return out

    def request(self, address: str, timeout: float = 2.0) -> str | None:
        answer = self.built.probes.tcp_request(self.built.client, address, TCP_PORT, timeout)
        shown = answer if answer is not None else f"no answer within {timeout:g} s"
        self.n.command("client", f"connect {address} port {TCP_PORT}", f"-> {shown}")
        return answer

    @contextmanager
    def replies_and_drops(self, source: str) -> Iterator[dict[str, int]]:
        """Count, at the router, the TCP replies from ``source`` arriving on the management and
        on the data side, and the rp_filter drops, while the block runs."""
        lab = self.built
        counts: dict[str, int] = {}
        drops = lab.probes.rp_filter_drops(lab.router)
        with lab.probes.count_packets(lab.router, [ROUTER_MGMT_IF, ROUTER_DATA_IF], source=source,
                               port=TCP_PORT) as replies:
            yield counts
        counts.update(replies.by_interface)
        counts["drops"] = lab.probes.rp_filter_drops(lab.router) - drops
        self.n.command("router", f"count TCP replies from {source}:{TCP_PORT}, per interface",
                       f"arrived on {ROUTER_MGMT_IF} (management side): {counts[ROUTER_MGMT_IF]}\n"
                       f"arrived on {ROUTER_DATA_IF} (data side):       {counts[ROUTER_DATA_IF]}\n"
                       f"dropped by rp_filter (TcpExt.IPReversePathFilter): +{counts['drops']}")

    def owned_rules(self) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = self.built.ip_json(self.built.server, "-4", "rule", "show")
        return [r for r in rules if str(r.get("protocol")) in ("polroutd", str(PROTOCOL_NUMBER))]

    def rule_for(self, address: str) -> dict[str, Any] | None:
        return next((r for r in self.owned_rules() if r.get("src") == address), None)

    def wait(self, condition: Callable[[], bool], timeout: float, what: str) -> float:
        started = time.monotonic()
        while not condition():
            if time.monotonic() - started > timeout:
                raise StepFailed(f"{what}: not within {timeout:g} s")
            time.sleep(0.01)
        return time.monotonic() - started

    def show_monitor(self, monitor: Monitor, command: str, keep: Callable[[str], bool]) -> None:
        events = [e for e in monitor.events if keep(e.text)]
        if not events:
            return
        start = events[0].at
        self.n.command("server", f"{command}   (kernel notifications, as they happened)",
                       "\n".join(f"+{(e.at - start) * 1000:7.1f} ms  {e.text}" for e in events))

    # ---------------------------------------------------------------- the steps

    def step_cleanup(self) -> str:
        self.n.say("A demo that crashed (or was left running with --keep) may have left "
                   f"namespaces named {PREFIX}-*. They are removed first, so this run starts "
                   "from nothing. (Those of a demo still running elsewhere are left alone.)")
        removed = remove_stale(PREFIX)
        for ns in removed:
            self.n.block(f"ip netns del {ns}")
        still_there = [ns for ns in removed if Path("/run/netns", ns).exists()]
        check(not still_there, f"could not remove {', '.join(still_there)}")
        return f"removed {len(removed)} stale namespace(s)" if removed else "nothing left over"

    def step_topology(self) -> str:
        self.n.say("A server with two networks, as in the article: a slow management network on "
                   "ens192 and a fast data network on ens224, whose address comes from DHCP. "
                   "Like most servers it has ONE default route, via the management gateway. A "
                   "client in another zone reaches both server addresses through a router that "
                   "drops packets arriving on the 'wrong' interface (strict reverse-path "
                   "filtering, rp_filter=1), as many routers and firewalls do. Each box is a "
                   "network namespace on this machine; nothing outside them is touched.")
        self.n.block(TOPOLOGY, limit=20)
        missing = [tool for tool in ("ip", "dnsmasq", "dhclient") if shutil.which(tool) is None]
        check(os.geteuid() == 0, "the demo creates network namespaces: run it as root")
        check(not missing, f"missing programs: {', '.join(missing)} (Debian packages: iproute2, "
                           "dnsmasq-base, isc-dhcp-client)")
        return "root, ip, dnsmasq and dhclient are available"

    def step_build(self) -> str:
        self.n.say("Three namespaces are wired as in the picture. A real DHCP server (dnsmasq) "
                   "runs on the router's data side with a reservation for the server's ens224, "
                   "and a real DHCP client (dhclient, with a script of its own that only sets "
                   "the address) leases it.")
        self.lab = Lab(prefix=PREFIX, dhcp_data=True)
        lab = self.lab
        lab.build()
        self.n.line(f"   (server# means: ip netns exec {lab.server} ...; likewise router# and "
                    "client#)")
        lab.start_dhcp_server()
        self.data_address = lab.start_dhcp_client()
        lease = lab.lease_path.read_text()
        wanted = ("fixed-address", "option routers", "option dhcp-lease-time",
                  "option dhcp-renewal-time", "expire")
        self.n.command("server", f"cat {lab.lease_path}",
                       "\n".join(line.strip() for line in lease.splitlines()
                                 if line.strip().startswith(wanted)))
        self.sh("server", "ip", "-4", "-brief", "address", "show")
        self.sh("server", "ip", "route")
        defaults = [r for r in lab.ip_json(lab.server, "-4", "route", "show", "table", "main")
                    if r["dst"] == "default"]
        check(self.data_address == ADDR.server_data4,
              f"ens224 leased {self.data_address}, not {ADDR.server_data4}")
        check([(r.get("gateway"), r.get("dev")) for r in defaults]
              == [(ADDR.router_mgmt4, SERVER_MGMT_IF)],
              f"expected one default route via {ADDR.router_mgmt4}, found {defaults}")
        return (f"ens224 leased {self.data_address} from {ADDR.router_data4}; the only default "
                f"route goes via the management gateway {ADDR.router_mgmt4}")

    def step_mgmt_reachable(self) -> str:
        self.n.say("The client opens a TCP connection to the management address. Request and "
                   "reply both travel over the management network: nothing unusual.")
        lab = self.built
        lab.probes.start_tcp_server(lab.server, TCP_PORT)
        answer = self.request(ADDR.server_mgmt4)
        expected = f"polroutd-lab reached-at {ADDR.server_mgmt4} from {ADDR.client4}"
        check(answer == expected, f"expected {expected!r}, got {answer!r}")
        return f"{ADDR.client4} reached {ADDR.server_mgmt4}:{TCP_PORT}"

    def step_data_fails(self) -> str:
        self.n.say("Now the same request to the data address. The request arrives on ens224, "
                   "but the server picks the reply's route by destination only: the default "
                   "route, via the management gateway. The router receives a packet from a data "
                   "address on its management side, which its strict rp_filter treats as "
                   "spoofed, and drops it. The connection never completes.")
        data = self.data_address
        with self.replies_and_drops(data) as seen:
            answer = self.request(data, timeout=FAIL_WAIT)
        route = self.sh("server", "ip", "route", "get", ADDR.client4, "from", data)
        check(answer is None, f"the request unexpectedly succeeded: {answer!r}")
        check(f"dev {SERVER_MGMT_IF}" in route, "the reply route does not use ens192")
        check(seen[ROUTER_MGMT_IF] > 0 and seen[ROUTER_DATA_IF] == 0,
              f"replies were expected on {ROUTER_MGMT_IF} only, saw {seen}")
        check(seen["drops"] > 0, "the router's rp_filter drop counter did not rise")
        return (f"no answer: {seen[ROUTER_MGMT_IF]} reply packet(s) came back on the management "
                f"side and {seen['drops']} were dropped by rp_filter")

    def step_start_polroutd(self) -> str:
        self.n.say("polroutd runs in the server, configured like the spec's example: table 'mgt' "
                   "for ens192 and 'data' for ens224. It finds ens224's gateway in dhclient's "
                   "lease file. It is started the way systemd starts it (Type=notify): it says "
                   "READY=1 only once the rules and routes are in place. Its periodic full "
                   "resync is set to an hour, so every repair below comes from a kernel event.")
        lab = self.built
        config = self.write_config()
        self.n.command("server", f"cat {config}", config.read_text(), limit=20)
        self.daemon = LabDaemon(lab, lab.server, config, directory=lab.temp_dir,
                                http_listen=HTTP_LISTEN)
        ready_after = self.daemon.wait_ready()
        self.n.command("server", shlex.join(["polroutd", "run", "--config", str(config)]),
                       f"NOTIFY_SOCKET got READY=1 after {ready_after:.2f} s")
        state = self.daemon.state()
        by_name = {i["name"]: i for i in state["interfaces"]}
        check({SERVER_MGMT_IF, SERVER_DATA_IF} <= set(by_name),
              f"/state manages {sorted(by_name)}, not ens192 and ens224")
        if not self.names_visible:
            self.tables = Tables(str(by_name[SERVER_MGMT_IF]["table"]["id"]),
                                 str(by_name[SERVER_DATA_IF]["table"]["id"]))
        self.sh("server", "ip", "rule")
        routes = self.sh("server", "ip", "route", "show", "table", self.tables.data)
        rule = self.rule_for(self.data_address)
        check(rule is not None and str(rule.get("table")) == self.tables.data,
              f"no rule 'from {self.data_address} lookup {self.tables.data}'")
        check(f"default via {ADDR.router_data4} dev {SERVER_DATA_IF}" in routes,
              f"table {self.tables.data} has no default route via {ADDR.router_data4}")
        return (f"ready in {ready_after:.2f} s: from {self.data_address} lookup "
                f"{self.tables.data}, whose default route is via {ADDR.router_data4}")

    def write_config(self) -> Path:
        lab = self.built
        rt_tables = lab.temp_dir / "iproute2" / "rt_tables.d" / "polroutd.conf"
        if Path("/etc/iproute2").is_dir():
            # Processes started with `ip netns exec` see /etc/netns/<ns>/iproute2 as
            # /etc/iproute2: there the table names polroutd registers and the protocol name
            # are visible to `ip`, without touching the host's files.
            etc = lab.etc_dir(lab.server) / "iproute2"
            shutil.copytree("/etc/iproute2", etc, symlinks=True, dirs_exist_ok=True)
            (etc / "rt_protos.d").mkdir(exist_ok=True)
            (etc / "rt_protos.d" / "polroutd.conf").write_text(f"{PROTOCOL_NUMBER}\tpolroutd\n")
            (etc / "rt_tables.d").mkdir(exist_ok=True)
            rt_tables = etc / "rt_tables.d" / "polroutd.conf"
            self.names_visible = True
        rt_tables.parent.mkdir(parents=True, exist_ok=True)
        config = lab.temp_dir / "polroutd.toml"
        config.write_text(lab_config(HTTP_LISTEN, rt_tables, lab.lease_path))
        return config

    def step_data_works(self) -> str:
        self.n.say("The same request again. The reply now comes from a data address, so "
                   "polroutd's rule sends it to the 'data' table, whose default route is the "
                   "data gateway: it leaves through ens224, the interface the request came in "
                   "on, and the router accepts it.")
        data = self.data_address
        with self.replies_and_drops(data) as seen:
            answer = self.request(data)
        route = self.sh("server", "ip", "route", "get", ADDR.client4, "from", data)
        expected = f"polroutd-lab reached-at {data} from {ADDR.client4}"
        check(answer == expected, f"expected {expected!r}, got {answer!r}")
        check(f"dev {SERVER_DATA_IF}" in route, "the reply route does not use ens224")
        check(seen[ROUTER_DATA_IF] > 0 and seen[ROUTER_MGMT_IF] == 0,
              f"replies were expected on {ROUTER_DATA_IF} only, saw {seen}")
        check(seen["drops"] == 0, f"rp_filter dropped {seen['drops']} packet(s)")
        return (f"{ADDR.client4} reached {data}:{TCP_PORT}; all {seen[ROUTER_DATA_IF]} reply "
                f"packets came back on the data side, none dropped")

    def step_renewal(self) -> str:
        self.n.say(f"DHCP addresses change. The DHCP administrator moves the server's "
                   f"reservation to {NEW_DATA_ADDRESS}. At its next renewal the client asks to "
                   f"keep {self.data_address}; the server refuses (DHCPNAK), the client "
                   f"rediscovers and is given {NEW_DATA_ADDRESS}. A hand-written 'ip rule' "
                   f"would now be stale. polroutd sees the address events and follows.")
        lab = self.built
        old, new = self.data_address, NEW_DATA_ADDRESS
        rules_before = self.sh("server", "ip", "rule", show=False)
        log_mark = len(lab.dhcp_log("client"))
        with lab.probes.monitor(lab.server, "address", "rule") as monitor:
            lab.change_reservation(new)
            got = lab.renew()
            self.wait(lambda: self.rule_for(new) is not None and self.rule_for(old) is None,
                      5.0, f"polroutd's rules did not follow the move to {new}")
        self.data_address = got
        wire = [line for line in lab.dhcp_log("client")[log_mark:].splitlines()
                if line.startswith(("DHCPREQUEST", "DHCPNAK", "DHCPDISCOVER", "DHCPOFFER",
                                    "DHCPACK", "bound to"))]
        self.n.command("server", "dhclient's log (the exchange on the wire)", "\n".join(wire))
        self.show_monitor(monitor, "ip -ts monitor address rule",
                          lambda text: ("inet " in text and SERVER_DATA_IF in text)
                          or ("from " in text and " lookup " in text))
        self.n.command("server", "ip rule   (before)", rules_before)
        self.sh("server", "ip", "rule")
        check(got == new, f"the renewal brought {got}, not {new}")
        added = _first(monitor, f"inet {new}/", deleted=False)
        ruled = _first(monitor, f"from {new} ", deleted=False)
        removed = _first(monitor, f"inet {old}/", deleted=True)
        unruled = _first(monitor, f"from {old} ", deleted=True)
        check(None not in (added, ruled, removed, unruled),
              "the kernel notifications for the addresses and rules were not all seen")
        assert added and ruled and removed and unruled
        follow_ms = (ruled - added) * 1000
        drop_ms = (unruled - removed) * 1000
        answer = self.request(new)
        check(answer == f"polroutd-lab reached-at {new} from {ADDR.client4}",
              f"the client could not reach {new}: {answer!r}")
        return (f"the rule for {new} appeared {follow_ms:.1f} ms after the address, the rule "
                f"for {old} went {drop_ms:.1f} ms after its address; {new} is reachable")

    def step_drift(self) -> str:
        self.n.say("Someone 'cleans up' by hand and deletes polroutd's rule. That is drift: the "
                   "kernel no longer matches a desired state that did not change. polroutd "
                   "hears the rule event and puts the rule back at once, and counts both the "
                   "drift and the repair.")
        lab = self.built
        assert self.daemon is not None
        address = self.data_address
        rule = self.rule_for(address)
        check(rule is not None, f"no rule for {address} to delete")
        assert rule is not None
        before = self.daemon.state()["counters"]
        with lab.probes.monitor(lab.server, "rule") as monitor:
            self.sh("server", "ip", "rule", "del", "from", address, "lookup",
                    str(rule["table"]), "priority", str(rule["priority"]))
            self.wait(lambda: self.rule_for(address) is not None, 5.0,
                      f"the rule for {address} did not come back")
        self.show_monitor(monitor, "ip -ts monitor rule", lambda text: f"from {address} " in text)
        self.wait(lambda: self.daemon is not None
                  and self.daemon.state()["counters"]["repairs"] > before["repairs"],
                  5.0, "the repair was not counted")
        after = self.daemon.state()["counters"]
        repairs = [r for r in self.daemon.log_events("applied") if r.get("cause") == "drift"]
        if repairs:
            self.n.command("server", "polroutd's log (JSON), the repair",
                           json.dumps(repairs[-1], sort_keys=True))
        self.n.command("server", "curl -s http://127.0.0.1:9641/state   (counters)",
                       f"drift   {before['drift']} -> {after['drift']}\n"
                       f"repairs {before['repairs']} -> {after['repairs']}\n"
                       f"changes {before['changes']} -> {after['changes']}")
        deleted = _first(monitor, f"from {address} ", deleted=True)
        back = _first(monitor, f"from {address} ", deleted=False, after=deleted)
        check(deleted is not None and back is not None, "the delete and re-add were not seen")
        assert deleted is not None and back is not None
        check(after["drift"] == before["drift"] + 1, "the drift was not counted once")
        check(after["repairs"] == before["repairs"] + 1, "the repair was not counted once")
        check(after["changes"] == before["changes"], "the repair was counted as a change")
        return (f"the rule was back {(back - deleted) * 1000:.1f} ms after its deletion; "
                "drift and repairs +1, changes unchanged")

    def step_operator_view(self) -> str:
        self.n.say("Everything an operator (or Prometheus) needs is on polroutd's read-only "
                   "HTTP endpoint: whether the kernel matches the desired state, where each "
                   "gateway came from, and counters that tell DHCP-driven changes apart from "
                   "drift.")
        assert self.daemon is not None
        state = self.daemon.state()
        excerpt = {
            "in_sync": state["in_sync"],
            "interfaces": [
                {"name": i["name"], "addresses": i["addresses"], "table": i["table"],
                 "gateway": {"ipv4": i["gateway"]["ipv4"]}}
                for i in state["interfaces"]
            ],
            "counters": {k: v for k, v in state["counters"].items()
                         if k in ("changes", "drift", "repairs", "reconciles_ok",
                                  "reconciles_error", "operation_errors")},
        }
        self.n.command("server", f"curl -s http://{HTTP_LISTEN}/state   (excerpt)",
                       _compact_json(excerpt), limit=30)
        metrics = self.get("/metrics")
        wanted = ("polroutd_in_sync", "polroutd_drift_detected_total",
                  "polroutd_repairs_total", "polroutd_changes_total",
                  "polroutd_reconciles_total", "polroutd_interface_gateway_present")
        lines = [line for line in metrics.splitlines() if line.startswith(wanted)]
        # Series still at zero say little here; the gauges are shown whatever their value.
        shown = [line for line in lines if not line.endswith(" 0.0")
                 or line.startswith(("polroutd_in_sync", "polroutd_interface_gateway"))]
        self.n.command("server", f"curl -s http://{HTTP_LISTEN}/metrics   (excerpt: "
                       "non-zero counters)", "\n".join(shown), limit=30)
        data = next((i for i in state["interfaces"] if i["name"] == SERVER_DATA_IF), None)
        check(state["in_sync"] is True, "/state says the kernel is not in sync")
        check(data is not None and data["gateway"]["ipv4"]["address"] == ADDR.router_data4
              and data["gateway"]["ipv4"]["source"] == "dhcp-lease",
              "ens224's IPv4 gateway is not the router from the DHCP lease")
        values = _metric_values(lines)
        check(values.get('polroutd_repairs_total{kind="rule",op="add"}', 0) >= 1,
              "polroutd_repairs_total shows no rule repair")
        check(values.get('polroutd_changes_total{kind="rule",op="add"}', 0) >= 1,
              "polroutd_changes_total shows no rule added for the renewal")
        return "in sync; ens224's gateway comes from the DHCP lease; drift and changes counted"

    def step_uplink_failover(self) -> str:
        directory = self.built.temp_dir / "uplinks"  # removed with the lab
        directory.mkdir(exist_ok=True)
        self.uplinks = UplinkScene(self.n, PREFIX, self.built.token, directory)
        return self.uplinks.step_failover()

    def step_uplink_recovery(self) -> str:
        assert self.uplinks is not None
        return self.uplinks.step_recovery()

    def step_teardown(self) -> str:
        lab = self.built
        if self.keep:
            return self.keep_running()
        self.n.say("polroutd is stopped with SIGTERM (it leaves its rules in place by design, "
                   "so a restart causes no outage); then the namespaces are deleted with "
                   "everything in them.")
        assert self.daemon is not None
        code = self.daemon.stop()
        stopping = bool(self.daemon.notify.seen("STOPPING=1"))
        self.daemon = None
        names = list(lab.namespaces)
        lab.teardown()
        self.lab = None
        for ns in names:
            self.n.block(f"ip netns del {ns}")
        left = [ns for ns in names if Path("/run/netns", ns).exists()]
        check(code == 0, f"polroutd exited with {code}")
        check(stopping, "polroutd did not send STOPPING=1")
        check(not left, f"namespaces left: {left}")
        return "polroutd stopped cleanly (exit 0, STOPPING=1); none of the lab's namespaces is left"

    def keep_running(self) -> str:
        lab = self.built
        assert self.daemon is not None
        lab.detach()
        server, pid = lab.server, self.daemon.proc.pid
        self.n.say("--keep: the lab and polroutd stay up. Explore with:")
        self.n.block("\n".join([
            f"ip netns exec {server} ip rule",
            f"ip netns exec {server} ip route show table {self.tables.data}",
            f"ip netns exec {server} curl -s http://{HTTP_LISTEN}/state",
            f"ip netns exec {server} polroutd status --url http://{HTTP_LISTEN}",
            f"ip netns exec {server} ip rule del from {self.data_address}"
            f"   # watch it come back",
            f"less {self.daemon.log_path}   # polroutd's log",
            f"kill {pid}   # stop polroutd (SIGTERM; its rules stay)",
            "polroutd demo --cleanup   # or:",
            *(f"ip netns del {ns}" for ns in lab.namespaces),
            f"rm -rf {lab.temp_dir} /etc/netns/{server}",
        ]), limit=30)
        self.daemon = None
        self.lab = None
        return f"left running: namespaces {', '.join(lab.namespaces)}"


def _first(monitor: Monitor, needle: str, *, deleted: bool,
           after: float | None = None) -> float | None:
    """When the first (``Deleted``) notification containing ``needle`` was printed."""
    for event in monitor.events:
        if (needle in event.text and event.text.startswith("Deleted") == deleted
                and (after is None or event.at >= after)):
            return event.at
    return None


def _compact_json(doc: dict[str, Any]) -> str:
    """JSON with one line per list item: readable, and still what curl returns."""
    lines = ["{"]
    for n, (key, value) in enumerate(doc.items()):
        comma = "," if n < len(doc) - 1 else ""
        if isinstance(value, list):
            lines.append(f'  "{key}": [')
            lines += [f"    {json.dumps(item)}{',' if m < len(value) - 1 else ''}"
                      for m, item in enumerate(value)]
            lines.append(f"  ]{comma}")
        else:
            lines.append(f'  "{key}": {json.dumps(value)}{comma}')
    lines.append("}")
    return "\n".join(lines)


def _metric_values(lines: Sequence[str]) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in lines:
        name, _, value = line.rpartition(" ")
        try:
            values[name] = float(value)
        except ValueError:
            continue
    return values


@contextmanager
def _signals_as_interrupt() -> Iterator[None]:
    """SIGTERM tears down like Ctrl-C instead of leaving namespaces behind; and SIGINT does so
    even when the demo was started with it ignored (as a background job of a script is)."""

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = {sig: signal.signal(sig, handler) for sig, handler in (
            (signal.SIGTERM, interrupt), (signal.SIGINT, signal.default_int_handler))}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_demo(keep: bool = False, out: TextIO | None = None) -> int:
    """Run the narrated demo; 0 when every step behaved as narrated, 1 otherwise, 130 when
    interrupted. ``keep`` leaves the lab and polroutd running at the end."""
    stream = out or sys.stdout
    narrator = Narrator(stream, color=stream.isatty() and os.environ.get("NO_COLOR") is None)
    with _signals_as_interrupt():
        return Demo(narrator, keep).run()


def cleanup_demo() -> int:
    """Remove what ``polroutd demo --keep`` (or a crashed demo) left: polroutd and the DHCP
    processes, the namespaces, their /etc/netns entries and temporary directories."""
    removed = remove_stale(PREFIX)
    for ns in removed:
        print(f"removed {ns}")
    for ns in netns_names_with_prefix(PREFIX):
        print(f"left alone (a demo still running uses it): {ns}")
    if not removed:
        print("nothing to clean up")
    return 1 if any(Path("/run/netns", ns).exists() for ns in removed) else 0


def command(args: argparse.Namespace) -> int:
    if args.cleanup and args.keep:
        raise UsageError("demo: --keep and --cleanup exclude each other (--cleanup removes "
                         "what a --keep run left)")
    return cleanup_demo() if args.cleanup else run_demo(keep=args.keep)
