"""What the lab's tests and the demo observe: TCP and ICMP round trips, packet and kernel
counters, HTTP answers, netlink notifications. A :class:`polroutd.lab.lab.Lab` has one as
``lab.probes``; it runs its commands inside the lab's namespaces through the lab."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from polroutd.lab.netns import LabError
from polroutd.lab.scripts import HTTP_GET, PING, SNIFF, TCP_CLIENT, TCP_SERVER


class Runner(Protocol):
    """Runs commands inside namespaces (a lab, or the benchmarks' namespaces)."""

    def run(
        self, ns: str, *argv: str, check: bool = True, timeout: float = 10
    ) -> subprocess.CompletedProcess[str]: ...


class CommandRunner(Runner, Protocol):
    """What the probes need of the lab: commands run inside its namespaces."""

    def popen(self, ns: str, *argv: str, **kwargs: Any) -> subprocess.Popen[str]: ...

    def ip_json(self, ns: str, *argv: str) -> Any: ...


def http_get(runner: Runner, ns: str, url: str, method: str = "GET") -> tuple[int, str]:
    """``(status, body)`` of an HTTP request made from inside ``ns`` through ``runner``."""
    proc = runner.run(ns, sys.executable, "-c", HTTP_GET, url, method, check=False)
    if proc.returncode != 0:
        raise LabError(f"no HTTP answer from {url} in {ns}: {proc.stderr.strip()}")
    status, _, body = proc.stdout.partition("\n")
    return int(status), body


class Probes:
    """Observations made from inside the lab's namespaces."""

    def __init__(self, lab: CommandRunner) -> None:
        self.lab = lab

    def start_tcp_server(self, ns: str, port: int = 8080) -> None:
        """Start a TCP server on ``[::]:port`` (dual-stack) inside ``ns`` and wait until it
        listens. Each connection is answered with one line
        ``polroutd-lab reached-at <local address> from <peer address>``. It runs until
        teardown."""
        proc = self.lab.popen(
            ns,
            sys.executable,
            "-c",
            TCP_SERVER,
            str(port),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 10.0)
        line = proc.stdout.readline() if ready else ""
        if line.strip() != "LISTENING":
            proc.kill()
            _, err = proc.communicate(timeout=2)
            raise LabError(f"TCP server in {ns} on port {port} did not start: {err.strip()}")

    def tcp_request(
        self, ns: str, address: str, port: int = 8080, timeout: float = 2.0
    ) -> str | None:
        """Connect from ``ns`` to ``address``, send a line and return the server's answer, or
        ``None`` when no full round trip happened within ``timeout`` seconds."""
        proc = self.lab.run(
            ns,
            sys.executable,
            "-c",
            TCP_CLIENT,
            address,
            str(port),
            str(timeout),
            check=False,
            timeout=timeout + 10,
        )
        return proc.stdout.strip() if proc.returncode == 0 else None

    def tcp_connect(self, ns: str, address: str, port: int = 8080, timeout: float = 2.0) -> bool:
        """True when a full TCP request/response round trip from ``ns`` to ``address``
        succeeds within ``timeout`` seconds."""
        return self.tcp_request(ns, address, port, timeout) is not None

    def ping(self, ns: str, address: str, count: int = 1, timeout: float = 2.0) -> bool:
        """Send ``count`` ICMP(v6) echo requests from ``ns``; True when any was answered within
        ``timeout`` seconds (per request)."""
        proc = self.lab.run(
            ns,
            sys.executable,
            "-c",
            PING,
            address,
            str(count),
            str(timeout),
            check=False,
            timeout=count * timeout + 10,
        )
        return proc.returncode == 0

    def link_counters(self, ns: str, ifname: str) -> tuple[int, int]:
        """``(rx_packets, tx_packets)`` of ``ifname`` in ``ns``."""
        links = self.lab.ip_json(ns, "-s", "link", "show", "dev", ifname)
        if not links:
            raise LabError(f"no link {ifname} in {ns}")
        stats = links[0]["stats64"]
        return int(stats["rx"]["packets"]), int(stats["tx"]["packets"])

    def netstat(self, ns: str) -> dict[str, int]:
        """The kernel's ``/proc/net/netstat`` and ``/proc/net/snmp`` counters of ``ns``, keyed
        ``"<Group>.<Name>"`` (e.g. ``"TcpExt.IPReversePathFilter"``)."""
        counters: dict[str, int] = {}
        for path in ("/proc/net/netstat", "/proc/net/snmp"):
            lines = self.lab.run(ns, "cat", path).stdout.splitlines()
            for head, values in zip(lines[::2], lines[1::2], strict=False):
                group, _, names = head.partition(":")
                for name, value in zip(
                    names.split(), values.partition(":")[2].split(), strict=False
                ):
                    with contextlib.suppress(ValueError):
                        counters[f"{group}.{name}"] = int(value)
        return counters

    def rp_filter_drops(self, ns: str) -> int:
        """IPv4 packets dropped so far by the reverse-path filter in ``ns``
        (``TcpExt.IPReversePathFilter``)."""
        return self.netstat(ns).get("TcpExt.IPReversePathFilter", 0)

    def http_get(self, ns: str, url: str, method: str = "GET") -> tuple[int, str]:
        """``(status, body)`` of an HTTP request made from inside ``ns`` (e.g. to a daemon's
        ``http://127.0.0.1:9641/state``). Raises :class:`LabError` when nothing answered."""
        return http_get(self.lab, ns, url, method)

    @contextlib.contextmanager
    def count_packets(
        self, ns: str, ifnames: Sequence[str], *, source: str, port: int = 0
    ) -> Iterator[PacketCount]:
        """Count, per interface of ``ns``, the received frames carrying TCP from
        ``source``:``port`` (``port=0``: any) while the ``with`` block runs. The counts are in
        the yielded :class:`PacketCount` once the block has ended::

            with lab.count_packets(lab.router, ["to-mgmt", "to-data"],
                                   source="10.225.176.38", port=8080) as replies:
                lab.tcp_request(lab.client, "10.225.176.38")
            replies.by_interface  # {"to-mgmt": 0, "to-data": 5}: the reply came back on data
        """
        proc = self.lab.popen(ns, sys.executable, "-c", SNIFF, ",".join(ifnames), source, str(port),
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 10.0)
        if not ready or proc.stdout.readline().strip() != "READY":
            proc.kill()
            _, err = proc.communicate(timeout=5)
            raise LabError(f"packet counter in {ns} did not start: {err.strip()}")
        result = PacketCount()
        try:
            yield result
        finally:
            try:  # communicate() closes stdin first: the counter's cue to report
                out, err = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate(timeout=5)
        if proc.returncode != 0:
            raise LabError(f"packet counter in {ns} failed: {err.strip()}")
        result.by_interface.update({k: int(v) for k, v in json.loads(out).items()})

    @contextlib.contextmanager
    def monitor(self, ns: str, *objects: str) -> Iterator[Monitor]:
        """Record ``ip -o -ts monitor objects...`` (e.g. ``"address", "rule"``) in ``ns`` while
        the ``with`` block runs: every kernel notification with the time ``ip`` printed it."""
        proc = self.lab.popen(ns, "ip", "-o", "-ts", "monitor", *objects, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        result = Monitor()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                event = Monitor.parse(line)
                if event is not None:
                    result.events.append(event)

        reader = threading.Thread(target=read, name=f"monitor-{ns}", daemon=True)
        reader.start()
        try:
            self._wait_subscribed(proc, ("ip", "-o", "-ts", "monitor"))
            yield result
        finally:
            time.sleep(0.05)  # the last notifications of the block are still on their way
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            reader.join(timeout=5)

    @staticmethod
    def _wait_subscribed(proc: subprocess.Popen[str], argv: Sequence[str]) -> None:
        """Wait until ``ip netns exec`` has become ``argv`` and opened its netlink socket: its
        multicast subscription follows within microseconds, so nothing later is missed."""
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LabError(f"{shlex.join(argv)} exited with {proc.returncode}")
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{proc.pid}/cmdline").read_text().split("\0")
                fds = Path(f"/proc/{proc.pid}/fd")
                if cmdline[: len(argv)] == list(argv) and any(
                    os.readlink(fd).startswith("socket:") for fd in fds.iterdir()
                ):
                    time.sleep(0.02)
                    return
            time.sleep(0.005)
        raise LabError(f"{shlex.join(argv)} did not start listening")


@dataclass
class PacketCount:
    """What :meth:`Lab.count_packets` saw: interface name -> frames received."""

    by_interface: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class MonitorEvent:
    at: float  # unix time ``ip monitor`` printed it
    text: str  # one line, e.g. "Deleted 30000: from 10.225.176.38 lookup data proto polroutd"


@dataclass
class Monitor:
    """Notifications collected by :meth:`Lab.monitor`, oldest first."""

    events: list[MonitorEvent] = field(default_factory=list)

    _LINE = re.compile(r"\[(?P<ts>[0-9T:.-]+)\]\s*(?P<text>.*)")

    @classmethod
    def parse(cls, line: str) -> MonitorEvent | None:
        match = cls._LINE.match(line.strip())
        if match is None:
            return None
        # -o puts an object's continuation lines after a backslash; the first line says it all.
        text = " ".join(match["text"].split("\\")[0].split())
        return MonitorEvent(datetime.fromisoformat(match["ts"]).timestamp(), text)

    def first(self, *words: str) -> MonitorEvent | None:
        """The first notification whose text contains every one of ``words``."""
        return next((e for e in self.events if all(w in e.text for w in words)), None)
