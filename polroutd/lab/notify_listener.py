"""The receiving end of systemd's ``sd_notify`` protocol, for running ``polroutd run`` by hand.

``polroutd demo`` and the real-kernel tests start the daemon with ``NOTIFY_SOCKET`` pointing here,
exactly as systemd would for ``Type=notify``, so "ready" means what it means in production:
``READY=1`` after the first reconcile converged.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["NotifyListener"]


class NotifyListener:
    """A datagram socket at ``path`` recording every notify line with its arrival time (by
    ``clock``: ``time.monotonic`` unless a benchmark wants ``time.perf_counter``). Use as a
    context manager or call :meth:`close`."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._arrived = threading.Condition()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)  # lets the reader thread notice close() promptly
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notify-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            now = self._clock()
            with self._arrived:
                self.messages.extend(
                    (now, line) for line in data.decode(errors="replace").splitlines()
                )
                self._arrived.notify_all()

    def seen(self, prefix: str) -> list[str]:
        """Every message received so far that starts with ``prefix`` (e.g. ``"READY=1"``)."""
        return [m for _, m in list(self.messages) if m.startswith(prefix)]

    def wait_for(self, prefix: str, timeout: float) -> bool:
        """True as soon as a message starting with ``prefix`` has arrived; False after
        ``timeout`` seconds without one."""
        deadline = time.monotonic() + timeout
        while not self.seen(prefix):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def first(self, prefix: str, timeout: float, after: int = 0) -> float | None:
        """Arrival time of the first message starting with ``prefix`` (among those from index
        ``after`` on), waiting up to ``timeout`` seconds; None when none came."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for at, line in self.messages[after:]:
                    if line.startswith(prefix):
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._arrived.wait(left)

    def close(self) -> None:
        """Stop listening and remove the socket file. Idempotent."""
        self._stop.set()
        self._thread.join(1)
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> NotifyListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
