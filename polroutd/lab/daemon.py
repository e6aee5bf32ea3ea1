"""``polroutd run`` in the lab's server namespace, started the way systemd starts it: a real
``NOTIFY_SOCKET`` (and ``WATCHDOG_USEC`` when asked for), its JSON log in a file, its HTTP API
asked from inside the namespace. Shared by ``polroutd demo`` and the real-kernel tests."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polroutd
from polroutd.lab.lab import Lab
from polroutd.lab.netns import LabError, stop_process
from polroutd.lab.notify_listener import NotifyListener

_instances = itertools.count(1)


class LabDaemon:
    """One ``polroutd run --config CONFIG`` in ``lab.server``; files in ``directory``."""

    def __init__(
        self,
        lab: Lab,
        config: Path,
        *,
        http_listen: str,
        directory: Path | None = None,
        watchdog_usec: int | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.lab = lab
        self.config = config
        self.http_listen = http_listen
        where = directory or lab.temp_dir
        n = next(_instances)
        self.log_path = where / f"polroutd-{n}.log"
        self.notify = NotifyListener(where / f"notify-{n}.sock")
        env = dict(os.environ, NOTIFY_SOCKET=str(self.notify.path), **(extra_env or {}))
        for name in ("WATCHDOG_USEC", "WATCHDOG_PID", "POLROUTD_CONFIG"):
            env.pop(name, None)
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        # The daemon must import this very polroutd, installed or run from a source tree.
        source_root = str(Path(polroutd.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
        self.started = time.monotonic()
        with self.log_path.open("w") as log:
            self.proc = lab.popen(
                lab.server, sys.executable, "-m", "polroutd", "run", "--config", str(config),
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 20.0) -> float:
        """Seconds from the start until READY=1; LabError if it exits or never gets there."""
        deadline = time.monotonic() + timeout
        while not self.notify.seen("READY=1"):
            if self.proc.poll() is not None:
                raise LabError(f"polroutd exited with {self.proc.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise LabError(f"no READY=1 within {timeout:g} s: {self.log_tail()}")
            time.sleep(0.01)
        ready_at = next(t for t, m in self.notify.messages if m == "READY=1")
        return ready_at - self.started

    def http(self, path: str, method: str = "GET") -> tuple[int, str]:
        """(status, body) of a request to the daemon's HTTP API."""
        return self.lab.http_get(self.lab.server, f"http://{self.http_listen}{path}", method)

    def state(self) -> dict[str, Any]:
        status, body = self.http("/state")
        if status != 200:
            raise LabError(f"GET /state answered {status}: {body[:200]}")
        doc: dict[str, Any] = json.loads(body)
        return doc

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
