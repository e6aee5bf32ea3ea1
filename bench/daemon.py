"""A real ``polroutd run`` in a benchmark namespace: NOTIFY_SOCKET, HTTP, /proc readings."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.netns import BenchError, in_netns
from polroutd.lab.netns import stop_process
from polroutd.lab.notify_listener import NotifyListener

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def polroutd_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), env.get("PYTHONPATH", "")) if p
    )
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "POLROUTD_CONFIG"):
        env.pop(name, None)
    env.update(extra or {})
    return env


def polroutd_argv(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, "-m", "polroutd", *args]


class RunningDaemon:
    """``polroutd run`` inside ``ns``; the Popen pid is the daemon's (``ip netns exec`` execs)."""

    def __init__(self, ns: str, config: Path, workdir: Path, name: str,
                 http_port: int | None = None) -> None:
        self.ns = ns
        self.http_port = http_port
        self.notify = NotifyListener(workdir / f"{name}.notify", clock=time.perf_counter)
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("w")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            polroutd_argv(ns, "run", "--config", str(config)),
            env=polroutd_env({"NOTIFY_SOCKET": str(self.notify.path)}),
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Seconds from start to READY=1."""
        at = self.notify.first("READY=1", timeout)
        self.check_alive()
        if at is None:
            raise BenchError(f"daemon sent no READY=1 within {timeout:.0f} s")
        return at - self.started

    def starting_to_ready(self, timeout: float = 60.0) -> float:
        """Seconds from the daemon's first STATUS (sent just before its first reconcile) to
        READY=1, both as they arrived here: the start-up without the interpreter and imports."""
        ready = self.wait_ready(timeout) + self.started
        starting = self.notify.first("STATUS=starting", 0)
        if starting is None:
            raise BenchError("daemon sent READY=1 without a STATUS=starting before it")
        return ready - starting

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"daemon exited {self.proc.returncode}: "
                             f"{self.log_path.read_text()[-2000:]}")

    # --- /proc ----------------------------------------------------------------------------

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise BenchError("no VmRSS")

    # --- HTTP inside the namespace --------------------------------------------------------

    def http(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        if self.http_port is None:
            raise BenchError("daemon runs without HTTP")
        port = self.http_port

        def connect() -> socket.socket:
            return socket.create_connection(("127.0.0.1", port), timeout=timeout)

        # READY=1 may come before the HTTP server listens (both follow start-up): retry a bit
        deadline = time.monotonic() + timeout
        while True:
            try:
                sock = in_netns(self.ns, connect)
                break
            except ConnectionRefusedError:
                self.check_alive()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        with sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
            chunks = []
            while chunk := sock.recv(1 << 16):
                chunks.append(chunk)
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        return int(head.split()[1]), body

    def state(self) -> dict[str, Any]:
        status, body = self.http("/state")
        if status != 200:
            raise BenchError(f"/state answered {status}")
        doc: dict[str, Any] = json.loads(body)
        return doc

    def reconciles(self) -> int:
        counters = self.state()["counters"]
        return int(counters["reconciles_ok"]) + int(counters["reconciles_error"])

    def stop(self, timeout: float = 10.0) -> int | None:
        try:
            return stop_process(self.proc, timeout)
        finally:
            self.notify.close()
            self._log.close()
