"""A lab with two uplinks (docs/uplinks.md): a host with ``wan1`` and ``wan2`` to two routers,
both of which reach an "internet" namespace with a TCP server.

::

    host wan1 10.1.0.2 ── 10.1.0.1 r1 10.91.0.1 ── 10.91.0.2 ┐
                                                            inet 198.51.100.1 (server)
    host wan2 10.2.0.2 ── 10.2.0.1 r2 10.92.0.1 ── 10.92.0.2 ┘      2001:db8:100::1

    (IPv6 alike: 2001:db8:K::/64 between host and router K, 2001:db8:9K::/64 beyond.)

The host's main table holds one default route per uplink and family as DHCP clients and
router advertisements install them (protocols dhcp and ra, metrics 100, 200, ...): foreign,
never touched. The failure kinds the tests and the benchmark
inject: carrier loss (the router's side of the link down), an upstream blackhole on the router
(the link stays up), and a gateway that stops answering ARP.

The host runs client loops (``CLIENT``): new TCP connections with no bound source, each line
saying when it was tried, whether it connected and from which address, so an outage can be
measured to the millisecond from the outside.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polroutd.lab.daemon import LabDaemon
from polroutd.lab.netns import Namespaces, checked, delete, run_command

SERVER = "198.51.100.1"
SERVER6 = "2001:db8:100::1"
PORT = 8080
MAX_UPLINKS = 8


def uplinks(count: int = 2) -> dict[str, tuple[str, str, str]]:
    """Uplink name -> (its /24, its router's upstream /24, the router's role)."""
    if not 1 <= count <= MAX_UPLINKS:
        raise ValueError(f"the lab has 1 to {MAX_UPLINKS} uplinks, not {count}")
    return {f"wan{k}": (f"10.{k}.0", f"10.9{k}.0", f"r{k}") for k in range(1, count + 1)}



# The "internet": accepts, echoes, and keeps every connection open until the peer closes.
ECHO_SERVER = r"""
import asyncio, sys
async def handle(reader, writer):
    try:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    writer.close()
async def main():
    hosts = sys.argv[1].split(",")
    server = await asyncio.start_server(handle, hosts, int(sys.argv[2]), backlog=1024)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""

# New connections, no bound source: one JSON line per attempt (monotonic time is shared by
# every namespace, so the test compares it with the moment it injected a failure).
CLIENT = r"""
import json, socket, sys, time
host, port, every, timeout, until = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), \
    float(sys.argv[4]), float(sys.argv[5])
while time.monotonic() < until:
    started = time.monotonic()
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        line = {"at": started, "ok": True, "src": s.getsockname()[0]}
    except OSError as exc:
        line = {"at": started, "ok": False, "error": type(exc).__name__}
    finally:
        s.close()
    print(json.dumps(line), flush=True)
    time.sleep(max(0.0, every - (time.monotonic() - started)))
"""

# A long-lived connection from a given source: echoes a byte every 10 ms, reports the longest
# gap and whether it ever broke.
LONG_LIVED = r"""
import json, socket, sys, time
src, host, port, until = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
s = socket.create_connection((host, port), timeout=2, source_address=(src, 0))
s.settimeout(2)
last, worst, broken = time.monotonic(), 0.0, None
try:
    while time.monotonic() < until:
        s.sendall(b"x")
        if s.recv(1) != b"x":
            broken = "closed"
            break
        now = time.monotonic()
        worst, last = max(worst, now - last), now
        time.sleep(0.01)
except OSError as exc:
    broken = type(exc).__name__
print(json.dumps({"worst_gap": worst, "broken": broken}), flush=True)
"""


@dataclass
class Attempt:
    at: float
    ok: bool
    src: str | None


def via(src: str | None) -> str | None:
    """Which uplink a connection left by, from its source address."""
    for n, (name, (net, _up, _router)) in enumerate(uplinks(MAX_UPLINKS).items(), 1):
        if src and (src.startswith(net + ".") or src.startswith(f"2001:db8:{n}::")):
            return name
    return None


class UplinkLab:
    """The namespaces, built; ``close()`` removes them (also when building failed)."""

    def __init__(self, prefix: str, count: int = 2, token: str | None = None) -> None:
        """``token``: share another lab's (the demo's), so that its namespaces are found,
        protected while in use and removed as that lab's."""
        self.uplinks = uplinks(count)
        self.spaces = Namespaces(prefix)
        if token is not None:
            self.spaces.token = token
        self.made: list[str] = []
        self.server: subprocess.Popen[str] | None = None
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _add(self, role: str) -> str:
        ns = self.spaces.add(role)
        self.made.append(ns)
        return ns

    def ip(self, ns: str, *args: str) -> None:
        """``ip -n NS ...``: no ``ip netns exec`` (a fork and a mount namespace fewer), so a
        failure is injected within a few milliseconds of the call."""
        if ns not in self.made:
            raise ValueError(f"not a namespace of this lab: {ns!r}")
        argv = ["ip", "-n", ns, *args]
        checked(run_command(argv), argv)

    def sh(self, ns: str, *argv: str) -> str:
        return self.spaces.run(ns, *argv).stdout

    def _build(self) -> None:
        self.host = self._add("host")
        self.inet = self._add("inet")
        self.routers = {name: self._add(router) for name, (_, _, router) in self.uplinks.items()}
        self.ip(self.inet, "addr", "add", f"{SERVER}/32", "dev", "lo")
        self.ip(self.inet, "addr", "add", f"{SERVER6}/128", "dev", "lo")
        for n, (name, (net, up, _router)) in enumerate(self.uplinks.items(), 1):
            router = self.routers[name]
            self.ip(self.host, "link", "add", name, "type", "veth", "peer", "name", "lan",
                    "netns", router)
            self.ip(router, "link", "add", "out", "type", "veth", "peer", "name", name,
                    "netns", self.inet)
            self.ip(self.host, "addr", "add", f"{net}.2/24", "dev", name)
            self.ip(router, "addr", "add", f"{net}.1/24", "dev", "lan")
            self.ip(router, "addr", "add", f"{up}.1/24", "dev", "out")
            self.ip(self.inet, "addr", "add", f"{up}.2/24", "dev", name)
            net6, up6 = f"2001:db8:{n}::", f"2001:db8:9{n}::"
            for ns, dev, addr in ((self.host, name, f"{net6}2"), (router, "lan", f"{net6}1"),
                                  (router, "out", f"{up6}1"), (self.inet, name, f"{up6}2")):
                self.ip(ns, "addr", "add", f"{addr}/64", "dev", dev, "nodad")
            for ns, dev in ((self.host, name), (router, "lan"), (router, "out"),
                            (self.inet, name)):
                self.ip(ns, "link", "set", dev, "up")
            self.ip(router, "route", "add", "default", "via", f"{up}.2")
            self.ip(self.inet, "route", "add", f"{net}.0/24", "via", f"{up}.1")
            self.ip(router, "-6", "route", "add", "default", "via", f"{up6}2")
            self.ip(self.inet, "-6", "route", "add", f"{net6}/64", "via", f"{up6}1")
            self.sh(router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            self.sh(router, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
            # A short neighbour retransmit time: a gateway that stops answering ARP is FAILED
            # within ~0.3 s instead of 3 s.
            self.sh(self.host, "sysctl", "-qw", f"net.ipv4.neigh.{name}.retrans_time_ms=100")
            # As the DHCP clients would: one default per uplink in main (foreign).
            self.ip(self.host, "route", "add", "default", "via", f"{net}.1", "dev", name,
                    "proto", "dhcp", "metric", str(100 * n))
            self.ip(self.host, "-6", "route", "add", "default", "via", f"{net6}1", "dev", name,
                    "proto", "ra", "metric", str(100 * n))
        # Unprivileged ICMP probes (docs/uplinks.md), and flows spread by ports in balance.
        self.sh(self.host, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
        self.sh(self.host, "sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1")
        self._settle_ipv6()
        self.server = self.spaces.popen(self.inet, sys.executable, "-c", ECHO_SERVER,
                                        f"{SERVER},{SERVER6}", str(PORT), stdout=subprocess.PIPE)
        assert self.server.stdout is not None
        if self.server.stdout.readline().strip() != "listening":
            raise RuntimeError("the lab's echo server did not start")

    def _settle_ipv6(self, timeout: float = 10.0) -> None:
        """Until no address is tentative: link-local addresses still go through duplicate
        address detection, and neighbour discovery waits for them (IPv6 would fail for the
        first second or two, and the daemon would see it as probe failures)."""
        deadline = time.monotonic() + timeout
        for ns in self.made:
            while run_command(["ip", "-n", ns, "-6", "addr", "show", "tentative"]).stdout.strip():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"IPv6 addresses in {ns} stay tentative")
                time.sleep(0.05)

    # --- failures -------------------------------------------------------------------------

    def carrier(self, uplink: str, on: bool) -> None:
        """The router's end of the link up or down: the host's uplink gains or loses carrier."""
        self.ip(self.routers[uplink], "link", "set", "lan", "up" if on else "down")

    def upstream(self, uplink: str, on: bool) -> None:
        """The router forwards to the internet, or blackholes it (its link stays up)."""
        self.ip(self.routers[uplink], "route", "replace" if not on else "del", "blackhole",
                f"{SERVER}/32")

    def arp(self, uplink: str, on: bool) -> None:
        """The gateway answers ARP, or stops (and the host forgets what it had learnt)."""
        self.ip(self.routers[uplink], "link", "set", "lan", "arp", "on" if on else "off")
        if not on:
            self.ip(self.routers[uplink], "neigh", "flush", "dev", "lan")
            self.ip(self.host, "neigh", "flush", "dev", uplink)

    # --- traffic --------------------------------------------------------------------------

    def client(self, seconds: float, every: float = 0.005, timeout: float = 0.03,
               server: str = SERVER) -> subprocess.Popen[str]:
        until = time.monotonic() + seconds
        return self.spaces.popen(self.host, sys.executable, "-c", CLIENT, server, str(PORT),
                                 str(every), str(timeout), str(until), stdout=subprocess.PIPE)

    def long_lived(self, source: str, seconds: float) -> subprocess.Popen[str]:
        until = time.monotonic() + seconds
        return self.spaces.popen(self.host, sys.executable, "-c", LONG_LIVED, source, SERVER,
                                 str(PORT), str(until), stdout=subprocess.PIPE)

    def daemon(self, config: Path, directory: Path, http_port: int) -> LabDaemon:
        return LabDaemon(self.spaces, self.host, config, directory=directory,
                         http_listen=f"127.0.0.1:{http_port}")

    def close(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.kill()
            self.server.wait()
        for ns in reversed(self.made):
            delete(ns)
        self.made.clear()


def attempts(proc: subprocess.Popen[str], timeout: float = 60) -> list[Attempt]:
    """The client's attempts once it has ended (or was stopped: a line it was cut off in the
    middle of is left out)."""
    out, _ = proc.communicate(timeout=timeout)
    lines = [line for line in out.splitlines(keepends=True) if line.endswith("\n")]
    return [Attempt(d["at"], d["ok"], d.get("src")) for d in map(json.loads, lines)]


def outage(tries: list[Attempt], since: float, to: str) -> float | None:
    """Seconds from ``since`` to the first connection after it that left by uplink ``to``."""
    for t in tries:
        if t.at >= since and t.ok and via(t.src) == to:
            return t.at - since
    return None


def uplink_config(directory: Path, *, mode: str = "failover", interval: float = 0.2,
                  timeout: float = 0.3, down: int = 3, up: int = 3, probe: str = "icmp",
                  weights: tuple[int, ...] = (1, 1), http_port: int = 19642,
                  count: int = 2, ipv6: bool = True) -> Path:
    """A configuration for the lab's host: every uplink, probing the server's address
    (IPv4 and IPv6; ``ipv6=False``: ``gateway6 = "none"``, uplinks for IPv4 only)."""
    lines = [
        "[daemon]",
        f'http_listen = "127.0.0.1:{http_port}"',
        f'rt_tables_file = "{directory}/rt_tables.d/polroutd.conf"',
        f'dhcp_lease_paths = ["{directory}/leases/*"]',
        f'uplinks = "{mode}"',
        "debounce = 0.005",
    ]
    for n, name in enumerate(uplinks(count)):
        lines += [
            "[[interface]]", f'name = "{name}"', "uplink = true",
            f"uplink_metric = {100 * (n + 1)}",
            f"uplink_weight = {weights[n] if n < len(weights) else 1}",
            f'probe = "{probe}"',
            f"probe_interval = {interval}", f"probe_timeout = {timeout}",
            f"probe_down = {down}", f"probe_up = {up}",
        ]
        if not ipv6:
            lines.append('gateway6 = "none"')
        if probe == "icmp":
            targets = f'"{SERVER}", "{SERVER6}"' if ipv6 else f'"{SERVER}"'
            lines.append(f"probe_targets = [{targets}]")
    path = directory / "polroutd.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def uplink_state(daemon: LabDaemon, name: str, family: str = "ipv4") -> dict[str, Any]:
    for entry in daemon.state()["uplinks"]:
        if entry["interface"] == name and entry["family"] == family:
            found: dict[str, Any] = entry
            return found
    raise KeyError(name)
