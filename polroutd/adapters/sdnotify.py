"""The sd_notify(3) protocol: tell systemd when polroutd is ready, reloading, stopping, alive.

This is the only module that imports ``systemd.daemon``. Every method is a no-op when the
process was not started by systemd (no ``$NOTIFY_SOCKET``), and none ever raises: a lost
notification must not take the daemon down (systemd will notice on its own, e.g. through the
watchdog).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

from polroutd.adapters.logs import get_logger

log = get_logger("polroutd.sdnotify")

_Sender = Callable[[str], None]


def _load_libsystemd_notify() -> Callable[[str], bool] | None:
    try:
        from systemd import daemon
    except ImportError:
        return None
    notify: Callable[[str], bool] = daemon.notify
    return notify


def socket_address(notify_socket: str) -> str | bytes:
    """The sockaddr for a ``$NOTIFY_SOCKET`` value; a leading '@' means the abstract namespace."""
    if notify_socket.startswith("@"):
        return b"\0" + notify_socket[1:].encode()
    return notify_socket


def _datagram_sender(notify_socket: str) -> _Sender:
    address = socket_address(notify_socket)

    def send(message: str) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())

    return send


def _libsystemd_sender(notify: Callable[[str], bool]) -> _Sender:
    def send(message: str) -> None:
        if not notify(message):
            raise OSError(f"sd_notify({message!r}) reported failure")

    return send


def _choose_sender(notify_socket: str) -> _Sender:
    # libsystemd's sd_notify() reads $NOTIFY_SOCKET from the process environment itself; it is
    # only the right tool when that is the socket we were asked to use.
    libsystemd_notify = _load_libsystemd_notify()
    if libsystemd_notify is not None and os.environ.get("NOTIFY_SOCKET") == notify_socket:
        return _libsystemd_sender(libsystemd_notify)
    return _datagram_sender(notify_socket)


def _watchdog_usec(environ: Mapping[str, str]) -> int | None:
    watchdog_pid = environ.get("WATCHDOG_PID")
    if watchdog_pid is not None and watchdog_pid.strip() != str(os.getpid()):
        return None  # inherited from the watched process: the watchdog is not ours
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec if usec > 0 else None


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """Sends service state changes to the service manager, when there is one."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        notify_socket = env.get("NOTIFY_SOCKET", "")
        self.enabled: bool = bool(notify_socket)
        self._send: _Sender | None = _choose_sender(notify_socket) if self.enabled else None
        self._watchdog_usec = _watchdog_usec(env)

    def ready(self) -> None:
        self._notify("READY=1")

    def reloading(self) -> None:
        # systemd >= 253 wants MONOTONIC_USEC to tell this reload from an earlier one; older
        # managers ignore unknown fields.
        self._notify(f"RELOADING=1\nMONOTONIC_USEC={monotonic_usec()}")

    def stopping(self) -> None:
        self._notify("STOPPING=1")

    def status(self, text: str) -> None:
        # A newline would end the STATUS= assignment and start another one (READY=1, say).
        self._notify("STATUS=" + " ".join(text.splitlines()))

    def watchdog(self) -> None:
        self._notify("WATCHDOG=1")

    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings (half the timeout, as sd_watchdog_enabled(3) advises);
        None when systemd does not watch this process."""
        if not self.enabled or self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def _notify(self, message: str) -> None:
        if self._send is None:
            return
        try:
            self._send(message)
        except OSError as exc:
            log.debug("sd_notify failed", message=message, error=str(exc))
