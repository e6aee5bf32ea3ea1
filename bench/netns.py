"""Throwaway network namespaces for the benchmarks, and code that runs inside them.

Namespaces are named ``polroutd-bench-<6 hex>-<role>``. Everything this process creates is
remembered and removed by :func:`teardown_all`, which the runner calls in ``finally`` (SIGTERM
is turned into an exception so that ``finally`` runs; SIGINT is held back while tearing down).

Sockets are opened inside a namespace by a short-lived thread that enters it with ``setns(2)``
and exits: a socket stays in the namespace it was created in, while this process (and every
other thread of it) stays in the root namespace, which nothing here ever changes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import secrets
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TypeVar

from polroutd.lab.lab import delete_netns, sigint_deferred

PREFIX = "polroutd-bench"
NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
_ROLE = re.compile(r"[a-z0-9]{1,12}")

T = TypeVar("T")

_created: list[str] = []
_lock = threading.Lock()
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class BenchError(RuntimeError):
    """A scenario could not be built or did not converge."""


def run(argv: Sequence[str], *, input_text: str | None = None, timeout: float = 60.0,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), input=input_text, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise BenchError(f"{' '.join(argv[:6])} ... failed ({proc.returncode}): "
                         f"{proc.stderr.strip()[:500]}")
    return proc


class Namespaces:
    """The namespaces of one scenario, sharing one random token."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(3)

    def add(self, role: str) -> str:
        if not _ROLE.fullmatch(role):
            raise ValueError(f"bad namespace role {role!r}")
        name = f"{PREFIX}-{self.token}-{role}"
        with _lock:
            _created.append(name)  # before creating: a half-made namespace is cleaned too
        run(["ip", "netns", "add", name])
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name


def delete(name: str) -> None:
    """Kills every process in the namespace and deletes it."""
    with _lock:
        if name in _created:
            _created.remove(name)
    delete_netns(name)


def teardown_all() -> list[str]:
    """Removes every namespace this process created; returns their names."""
    with sigint_deferred():
        with _lock:
            names = list(reversed(_created))
        for name in names:
            with contextlib.suppress(Exception):
                delete(name)
        return names


def leftovers() -> list[str]:
    """Namespaces this process created that still exist (should be none after teardown)."""
    with _lock:
        names = list(_created)
    return [n for n in names if os.path.exists(os.path.join(NETNS_DIR, n))]


class Terminated(BaseException):
    """SIGTERM, raised so that teardown in ``finally`` runs."""


def raise_on_sigterm() -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Terminated(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def in_netns(name: str, func: Callable[[], T]) -> T:
    """``func()`` run by a thread that has entered namespace ``name`` (and then exits).

    Use it to create sockets there; never to run long work. Raises if the namespace cannot be
    entered, so nothing is ever created in the root namespace by mistake.
    """
    if not name.startswith(PREFIX + "-"):
        raise ValueError(f"not a benchmark namespace: {name!r}")
    box: dict[str, object] = {}

    def target() -> None:
        try:
            fd = os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({name}): {os.strerror(err)}")
            finally:
                os.close(fd)
            box["value"] = func()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"netns-{name}", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def batch(ns: str, lines: Sequence[str], *, timeout: float = 120.0) -> None:
    """``ip -n NS -batch -``: many changes for one process start."""
    if lines:
        run(["ip", "-n", ns, "-batch", "-"], input_text="\n".join(lines) + "\n", timeout=timeout)


def sysctl(ns: str, *settings: str) -> None:
    run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *settings])
