"""A real ``polroutd run`` inside a lab namespace, with a real NOTIFY_SOCKET and HTTP probes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from polroutd.lab import Lab
from polroutd.notify_listener import NotifyListener

HTTP_PORT = 19641

_HTTP_GET = r"""
import sys, urllib.request, urllib.error
req = urllib.request.Request("http://127.0.0.1:%s" % sys.argv[1] + sys.argv[2], method=sys.argv[3])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(req, timeout=3) as r:
        print(r.status); sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); sys.stdout.write(e.read().decode())
"""


class RunningDaemon:
    def __init__(self, lab: Lab, config: Path, tmp: Path, *, watchdog_usec: int = 200_000,
                 extra_env: dict[str, str] | None = None) -> None:
        self.lab = lab
        self.config = config
        self.notify = NotifyListener(tmp / f"notify-{time.monotonic_ns()}.sock")
        env = dict(os.environ, NOTIFY_SOCKET=str(self.notify.path),
                   WATCHDOG_USEC=str(watchdog_usec), **(extra_env or {}))
        env.pop("WATCHDOG_PID", None)
        self.log_path = tmp / f"daemon-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("w")
        self.proc = lab.popen(lab.server, sys.executable, "-m", "polroutd", "run", "--config",
                              str(config), env=env, stdout=self._log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL)

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, cond: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.log()[-3000:]}")
            time.sleep(0.02)

    def wait_ready(self) -> None:
        self.wait_for(lambda: bool(self.notify.seen("READY=1")), what="READY=1")

    def http(self, path: str, method: str = "GET") -> tuple[int, str]:
        out = self.lab.run(self.lab.server, sys.executable, "-c", _HTTP_GET, str(HTTP_PORT), path,
                           method).stdout
        status, _, body = out.partition("\n")
        return int(status), body

    def state(self) -> dict[str, Any]:
        status, body = self.http("/state")
        assert status == 200, body
        doc: dict[str, Any] = json.loads(body)
        return doc

    def counters(self) -> dict[str, int]:
        counters: dict[str, int] = self.state()["counters"]
        return counters

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 5.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.notify.close()
            self._log.close()
