"""The demo's uplink steps (docs/uplinks.md): a host with two uplinks, the active one's
upstream dies while its link stays up, new connections move to the other uplink; then it
recovers, but only after ``probe_up`` good probes in a row.

The scene builds its own namespaces with :class:`polroutd.lab.uplinks.UplinkLab`, named with
the demo's prefix and token (``polroutd-demo-<token>-host``, ``-inet``, ``-r1``, ``-r2``), so
the demo's clean-up and ``polroutd demo --cleanup`` find them like the rest;
:meth:`UplinkScene.close` removes them, also on Ctrl-C or a failed step.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from polroutd.cli.demo_narration import Narrator, StepFailed, check
from polroutd.lab.daemon import LabDaemon
from polroutd.lab.netns import NETNS_RUN_DIR, delete_netns, sigint_deferred
from polroutd.lab.uplinks import SERVER, Attempt, UplinkLab, attempts, outage, uplink_config, via

__all__ = ["UPLINK_STEP_TITLES", "UplinkScene"]

UPLINK_STEP_TITLES = (
    "Two uplinks: the active one's upstream dies, new connections move",
    "The upstream comes back; polroutd waits for probe_up good probes",
)

ROLES = ("host", "inet", "r1", "r2")  # the namespaces UplinkLab makes for two uplinks
HTTP_PORT = 9641  # in the host's own namespace
INTERVAL, TIMEOUT, DOWN, UP = 0.2, 0.3, 3, 3
DETECTION = INTERVAL * DOWN + TIMEOUT  # by probes: interval x down + timeout = 0.9 s
TARGET = 1.0  # spec §7.4: with probe_interval = 0.2, new connections move within 1 s
MOVED_WITHIN = 5.0  # seconds after which the step fails: traffic never moved
CLIENT_EVERY, CLIENT_TIMEOUT = 0.02, 0.1  # a new connection every 20 ms, 100 ms to connect
AFTER_MOVE = 0.5  # seconds the client goes on once traffic has moved; then it is stopped
CLIENT_SECONDS = 1.0 + MOVED_WITHIN + AFTER_MOVE  # its own limit, should it not be stopped

TOPOLOGY = """\
             +-- wan1 10.1.0.2 --- 10.1.0.1 r1 ---+
   +------+  |   (metric 100: active)             |    +----------------------+
   | host |--+                                    +----| inet: 198.51.100.1   |
   +------+  |                                    |    | (a TCP server)       |
             +-- wan2 10.2.0.2 --- 10.2.0.1 r2 ---+    +----------------------+
                 (metric 200: standby)"""


class UplinkScene:
    """The uplink lab and its polroutd, shared by the two steps; :meth:`close` is idempotent."""

    def __init__(self, narrator: Narrator, prefix: str, token: str, directory: Path) -> None:
        self.n = narrator
        self.prefix, self.token = prefix, token
        self.directory = directory
        self.lab: UplinkLab | None = None
        self.daemon: LabDaemon | None = None
        self.table = "?"

    # ---------------------------------------------------------------- helpers

    @property
    def built(self) -> UplinkLab:
        assert self.lab is not None
        return self.lab

    @property
    def running(self) -> LabDaemon:
        assert self.daemon is not None
        return self.daemon

    def close(self) -> None:
        """Stop polroutd and the lab's processes, delete the namespaces: by name too, in case
        an interrupt came while the lab was being built."""
        with sigint_deferred():
            if self.daemon is not None:
                self.daemon.stop()
                self.daemon = None
            if self.lab is not None:
                names = ", ".join(self.lab.made)
                self.lab.close()
                self.lab = None
                self.n.line(f"   removed the uplink lab: {names}")
            for role in ROLES:
                name = f"{self.prefix}-{self.token}-{role}"
                if (NETNS_RUN_DIR / name).exists():
                    delete_netns(name)

    def sh(self, role: str, *argv: str, limit: int = 14) -> str:
        """Run ``argv`` in the host (or router ``r1``/``r2``) and show it with its output."""
        lab = self.built
        ns = lab.host if role == "host" else lab.routers[f"wan{role[1:]}"]
        out = lab.sh(ns, *argv)
        self.n.command(role, shlex.join(argv), out, limit)
        return out

    def uplinks(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.running.state()["uplinks"]
        return [u for u in entries if u["family"] == "ipv4"]

    def active(self) -> list[str]:
        return sorted(u["interface"] for u in self.uplinks() if u["active"])

    def wait(self, condition: Callable[[], bool], timeout: float, what: str) -> float:
        started = time.monotonic()
        while not condition():
            self.running.check_alive()
            if time.monotonic() - started > timeout:
                raise StepFailed(f"{what}: not within {timeout:g} s")
            time.sleep(0.02)
        return time.monotonic() - started

    def metrics(self) -> list[str]:
        status, body = self.running.http("/metrics")
        check(status == 200, f"GET /metrics answered {status}")
        return [line for line in body.splitlines()
                if line.startswith(("polroutd_uplink_up", "polroutd_uplink_active",
                                    "polroutd_uplink_transitions_total",
                                    "polroutd_probe_failures_total"))]

    def show_metrics(self, lines: Sequence[str]) -> None:
        self.n.command("host", f"curl -s http://127.0.0.1:{HTTP_PORT}/metrics   (excerpt: "
                       "polroutd_uplink_*, probe failures)", "\n".join(lines), limit=20)

    def show_transition(self, event: str) -> dict[str, Any]:
        records = self.running.log_events(event)
        check(bool(records), f"polroutd logged no {event} line")
        self.n.command("host", f"polroutd's log (JSON), the {event} transition",
                       json.dumps(records[-1], sort_keys=True))
        return records[-1]

    def show_connections(self, tries: Sequence[Attempt], since: float) -> None:
        """The client's connections around ``since``: by uplink, and the failed ones."""
        phases: list[tuple[str, int]] = []  # ("wan1", count) runs, in order
        for attempt in (t for t in tries if t.at >= since - 0.3):
            label = via(attempt.src) if attempt.ok else "failed"
            label = label or "?"
            if phases and phases[-1][0] == label:
                phases[-1] = (label, phases[-1][1] + 1)
            else:
                phases.append((label, 1))
        self.n.command("host", f"a new TCP connection to {SERVER}:8080 every "
                       f"{CLIENT_EVERY * 1000:.0f} ms, no source address chosen   (in order)",
                       "\n".join(f"{count:4d} x {_describe(label)}" for label, count in phases))

    # ---------------------------------------------------------------- the steps

    def step_failover(self) -> str:
        self.n.say("polroutd can also give connections that choose no source address a "
                   "default route through every healthy uplink (uplinks = \"failover\"). A "
                   "second, separate lab: a host with two uplinks to two routers, both "
                   "reaching the same 'internet'. Like most such hosts it has two DHCP-style "
                   "default routes in main; only the lower metric is used.")
        self.n.block(TOPOLOGY, limit=20)
        self.lab = UplinkLab(self.prefix, token=self.token)
        lab = self.built
        self.sh("host", "ip", "route", "show", "default")
        config = uplink_config(self.directory, interval=INTERVAL, timeout=TIMEOUT, down=DOWN,
                               up=UP, http_port=HTTP_PORT, ipv6=False)
        text = config.read_text()
        wan1 = text[: text.index('[[interface]]\nname = "wan2"')]
        shown = "\n".join(line for line in wan1.splitlines()
                          if not line.startswith(("rt_tables_file", "dhcp_lease_paths")))
        shown += '\n# [[interface]] "wan2": the same, with uplink_metric = 200'
        self.n.say(f"polroutd runs in the host with both interfaces as uplinks, probing the "
                   f"internet server from each interface's own address every {INTERVAL:g} s "
                   f"(ICMP); {DOWN} failures in a row take an uplink down, {UP} successes in a "
                   f"row bring it back.")
        self.n.command("host", f"cat {config}", shown, limit=40)
        self.daemon = LabDaemon(lab.spaces, lab.host, config, directory=self.directory,
                                http_listen=f"127.0.0.1:{HTTP_PORT}")
        self.daemon.wait_ready()
        self.wait(lambda: self.active() == ["wan1"]
                  and all(u["up"] for u in self.uplinks()), 10.0,
                  "wan1 and wan2 healthy, wan1 carrying the traffic")
        recorded = (self.directory / "rt_tables.d" / "polroutd.conf").read_text().splitlines()
        self.table = next(line.split()[0] for line in recorded if line.endswith(" uplinks"))
        self.n.say(f"polroutd's table 'uplinks' ({self.table}) holds a default route per healthy "
                   "uplink; its rules send there what main has no specific route for, before "
                   "main's own defaults, which it never touches.")
        self.sh("host", "ip", "rule")
        self.sh("host", "ip", "route", "show", "table", self.table)

        self.n.say("Now r1's upstream dies: r1 silently drops everything for the internet "
                   "(a blackhole route). wan1's link stays up and its gateway still answers "
                   "ARP: no kernel event can tell. polroutd's probes through wan1 stop being "
                   f"answered; after {DOWN} failures wan1 is down (detection within interval "
                   f"x down + timeout = {DETECTION * 1000:.0f} ms), and new connections leave "
                   f"by wan2 (target: within {TARGET:g} s).")
        client = lab.client(CLIENT_SECONDS, every=CLIENT_EVERY, timeout=CLIENT_TIMEOUT)
        try:
            time.sleep(0.5)
            broke = time.monotonic()
            lab.upstream("wan1", False)
            self.n.command("r1", f"ip route replace blackhole {SERVER}/32", "")
            self.wait(lambda: self.active() == ["wan2"], MOVED_WITHIN, "wan2 taking over")
            time.sleep(AFTER_MOVE)  # a few connections by the new way
        finally:
            client.terminate()
        tries = attempts(client)
        self.sh("host", "ip", "-brief", "link", "show", "wan1")
        self.show_connections(tries, broke)
        record = self.show_transition("uplink_down")
        self.sh("host", "ip", "route", "show", "table", self.table)
        lines = self.metrics()
        self.show_metrics(lines)
        moved = outage(tries, broke, "wan2")
        check(moved is not None, "no new connection left by wan2 after the failure")
        assert moved is not None
        check(not any(t.ok and via(t.src) == "wan1" for t in tries if t.at >= broke + moved),
              "connections still left by wan1 after the move")
        check("state UP" in lab.sh(lab.host, "ip", "link", "show", "wan1"),
              "wan1's link went down: this was meant to be an upstream failure")
        check(record.get("interface") == "wan1" and record.get("cause") == "probe",
              f"expected uplink_down of wan1 with cause probe, logged {record}")
        check(_value(lines, "polroutd_uplink_up", interface="wan1") == 0
              and _value(lines, "polroutd_uplink_active", interface="wan2") == 1,
              "the metrics do not show wan1 down and wan2 active")
        check(_value(lines, "polroutd_uplink_transitions_total", interface="wan1", to="down",
                     cause="probe") == 1,
              "polroutd_uplink_transitions_total does not count wan1's one transition down")
        # Timing is narrated, not a verdict: on a loaded machine a wake-up can come late.
        verdict = "within" if moved <= TARGET else "OVER (a busy machine?):"
        return (f"new connections left by wan2 {moved * 1000:.0f} ms after r1's upstream died, "
                f"{verdict} the {TARGET:g} s target; wan1's link stayed up")

    def step_recovery(self) -> str:
        self.n.say(f"r1 forwards again. The probes through wan1 are answered, but one answer "
                   f"proves little: polroutd moves traffic back only after {UP} in a row "
                   f"(at least {(UP - 1) * INTERVAL * 1000:.0f} ms), so a flapping upstream "
                   "does not drag connections back and forth.")
        lab = self.built
        client = lab.client(CLIENT_SECONDS, every=CLIENT_EVERY, timeout=CLIENT_TIMEOUT)
        try:
            time.sleep(0.3)
            restored = time.monotonic()
            lab.upstream("wan1", True)
            self.n.command("r1", f"ip route del blackhole {SERVER}/32", "")
            self.wait(lambda: self.active() == ["wan1"], MOVED_WITHIN, "wan1 taking over again")
            time.sleep(AFTER_MOVE)
        finally:
            client.terminate()
        tries = attempts(client)
        self.show_connections(tries, restored)
        record = self.show_transition("uplink_up")
        self.sh("host", "ip", "route", "show", "table", self.table)
        lines = self.metrics()
        self.show_metrics(lines)
        back = outage(tries, restored, "wan1")
        check(back is not None, "no new connection left by wan1 after the repair")
        assert back is not None
        check(back >= (UP - 1) * INTERVAL,
              f"traffic came back after {back * 1000:.0f} ms, before {UP} probes could succeed")
        check(record.get("interface") == "wan1" and record.get("cause") == "probe",
              f"expected uplink_up of wan1 with cause probe, logged {record}")
        check(all(t.ok for t in tries), "a connection failed while traffic moved back")
        check(_value(lines, "polroutd_uplink_up", interface="wan1") == 1
              and _value(lines, "polroutd_uplink_active", interface="wan1") == 1
              and _value(lines, "polroutd_uplink_transitions_total", interface="wan1",
                         to="up", cause="probe") == 1,
              "the metrics do not show wan1 up and active again after one transition up")
        self.close()
        return (f"wan1 carried new connections again {back * 1000:.0f} ms after the repair "
                f"(after {UP} good probes); no connection failed meanwhile")


def _describe(label: str) -> str:
    if label == "failed":
        return f"failed (no answer within {CLIENT_TIMEOUT * 1000:.0f} ms)"
    return f"connected, leaving by {label}" if label != "?" else "connected, by another way"


def _value(lines: Sequence[str], metric: str, **labels: str) -> float | None:
    """The value of the IPv4 series of ``metric`` with these labels (in any order)."""
    wanted = {"family": "ipv4", **labels}
    for line in lines:
        series, _, value = line.rpartition(" ")
        name, _, label_text = series.partition("{")
        pairs = dict(part.split("=", 1) for part in label_text.rstrip("}").split(",") if part)
        if name == metric and {k: v.strip('"') for k, v in pairs.items()} == wanted:
            return float(value)
    return None
