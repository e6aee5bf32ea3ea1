"""``polroutd run`` in a lab namespace, started the way systemd starts it: a real
``NOTIFY_SOCKET`` (and ``WATCHDOG_USEC`` when asked for), its JSON log in a file, its HTTP API
asked from inside the namespace. The one daemon runner of ``polroutd demo``, the real-kernel
tests and the benchmarks."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import polroutd
from polroutd.lab.netns import LabError, stop_process
from polroutd.lab.notify_listener import NotifyListener
from polroutd.lab.probes import http_get

_instances = itertools.count(1)
CLK_TCK = os.sysconf("SC_CLK_TCK")


class DaemonHost(Protocol):
    """Where the daemon runs: a :class:`polroutd.lab.lab.Lab` or a
    :class:`polroutd.lab.netns.Namespaces` (the benchmarks')."""

    def run(
        self, ns: str, *argv: str, check: bool = True, timeout: float = 10
    ) -> subprocess.CompletedProcess[str]: ...

    def popen(self, ns: str, *argv: str, **kwargs: Any) -> subprocess.Popen[str]: ...


def polroutd_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a polroutd child: none of systemd's variables or a
    configuration path inherited by accident, and this very polroutd importable (installed or
    run from a source tree)."""
    env = dict(os.environ)
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "POLROUTD_CONFIG"):
        env.pop(name, None)
    source_root = str(Path(polroutd.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


class LabDaemon:
    """One ``polroutd run --config CONFIG`` in namespace ``ns`` of ``host``; its files in
    ``directory``. ``clock`` times READY=1 and the notifications (the benchmarks use
    ``time.perf_counter``)."""

    def __init__(
        self,
        host: DaemonHost,
        ns: str,
        config: Path,
        *,
        directory: Path,
        http_listen: str | None = None,
        watchdog_usec: int | None = None,
        extra_env: dict[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.ns = ns
        self.config = config
        self.http_listen = http_listen
        self.clock = clock
        n = next(_instances)
        self.log_path = directory / f"polroutd-{n}.log"
        self.notify = NotifyListener(directory / f"notify-{n}.sock", clock=clock)
        env = polroutd_env({"NOTIFY_SOCKET": str(self.notify.path), **(extra_env or {})})
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        self.started = clock()
        # ``ip netns exec`` execs: the Popen's pid is the daemon's (read in /proc below).
        with self.log_path.open("w") as log:
            self.proc = host.popen(
                ns, sys.executable, "-m", "polroutd", "run", "--config", str(config),
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 20.0) -> float:
        """Seconds from the start until READY=1; LabError if it exits or never gets there."""
        deadline = time.monotonic() + timeout
        while not self.notify.seen("READY=1"):
            self.check_alive()
            if time.monotonic() > deadline:
                raise LabError(f"no READY=1 within {timeout:g} s: {self.log_tail()}")
            time.sleep(0.01)
        ready_at = next(t for t, m in self.notify.messages if m == "READY=1")
        return ready_at - self.started

    def starting_to_ready(self, timeout: float = 60.0) -> float:
        """Seconds from the daemon's first STATUS (sent just before its first reconcile) to
        READY=1, both as they arrived here: the start-up without the interpreter and imports."""
        ready = self.wait_ready(timeout) + self.started
        starting = self.notify.first("STATUS=starting", 0)
        if starting is None:
            raise LabError("daemon sent READY=1 without a STATUS=starting before it")
        return ready - starting

    def check_alive(self) -> None:
        """LabError (with the end of its log) when the daemon has exited."""
        if self.proc.poll() is not None:
            raise LabError(f"polroutd exited with {self.proc.returncode}: {self.log_tail()}")

    def wait_for(self, cond: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
        """Until ``cond()``; AssertionError with the daemon's log when it exits or time runs
        out (for tests)."""
        deadline = time.monotonic() + timeout
        while not cond():
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.log_text()[-3000:]}")
            time.sleep(0.02)

    def http(self, path: str, method: str = "GET") -> tuple[int, str]:
        """(status, body) of a request to the daemon's HTTP API. The daemon's READY=1 may come
        just before its HTTP server listens: a refused connection is retried for a while."""
        if self.http_listen is None:
            raise LabError("daemon runs without HTTP")
        deadline = time.monotonic() + 5.0
        while True:
            try:
                return http_get(self.host, self.ns, f"http://{self.http_listen}{path}", method)
            except LabError:
                self.check_alive()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def state(self) -> dict[str, Any]:
        status, body = self.http("/state")
        if status != 200:
            raise LabError(f"GET /state answered {status}: {body[:200]}")
        doc: dict[str, Any] = json.loads(body)
        return doc

    def counters(self) -> dict[str, int]:
        counters: dict[str, int] = self.state()["counters"]
        return counters

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    # --- /proc ----------------------------------------------------------------------------

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise LabError("no VmRSS")

    # --- the log --------------------------------------------------------------------------

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_events(self, event: str) -> list[dict[str, Any]]:
        """The daemon's JSON log records with this ``event`` name."""
        records = []
        for line in self.log_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("event") == event:
                records.append(record)
        return records

    def log_tail(self, lines: int = 5) -> str:
        return " | ".join(self.log_text().strip().splitlines()[-lines:]) or "(no output)"

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, as systemd would; the exit code (None if it had to be killed)."""
        try:
            return stop_process(self.proc, timeout)
        finally:
            self.notify.close()
