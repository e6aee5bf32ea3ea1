"""A real ``polroutd run`` inside a lab namespace (``polroutd.lab.daemon``), with what the
tests add: waiting with assertion messages, counters, signals."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from polroutd.lab.daemon import LabDaemon
from polroutd.lab.lab import Lab

HTTP_PORT = 19641


class RunningDaemon(LabDaemon):
    def __init__(self, lab: Lab, config: Path, tmp: Path, *, watchdog_usec: int = 200_000,
                 extra_env: dict[str, str] | None = None) -> None:
        super().__init__(lab, config, http_listen=f"127.0.0.1:{HTTP_PORT}", directory=tmp,
                         watchdog_usec=watchdog_usec, extra_env=extra_env)

    def wait_for(self, cond: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.log_text()[-3000:]}")
            time.sleep(0.02)

    def counters(self) -> dict[str, int]:
        counters: dict[str, int] = self.state()["counters"]
        return counters

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)
