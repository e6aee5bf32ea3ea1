"""The lab's namespaces on their own: naming, running commands, deleting, finding leftovers.

Lab namespaces are named ``<prefix>-<6 hex>-<role>``. Deleting one first terminates every
process inside it and removes its ``/etc/netns/<name>`` directory. Nothing here touches the
root network namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

ROLES = ("server", "router", "client", "dataclient")
NETNS_RUN_DIR = Path("/run/netns")
NETNS_ETC_DIR = Path("/etc/netns")
# In /etc/netns when a lab created that directory, so that whichever lab process removes the
# last entry (labs of several processes may share it) also removes the directory. ip ignores it.
ETC_NETNS_MARK = ".made-by-polroutd-lab"
OWNER_FILE = "owner"  # in a lab's temporary directory: "<pid> <start time>" of its builder

_PREFIX_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")

log = logging.getLogger("polroutd.lab")


class LabError(RuntimeError):
    """The lab could not be built, used or torn down as asked."""


class LabCommandError(subprocess.CalledProcessError):
    """A command run by the lab failed; unlike the base class, ``str()`` includes stderr."""

    def __str__(self) -> str:
        text = super().__str__()
        err = self.stderr.strip() if isinstance(self.stderr, str) else ""
        return f"{text}: {err}" if err else text


def check_prefix(prefix: str) -> None:
    if not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(
            f"invalid lab prefix {prefix!r}: lower-case letters, digits and '-', at most 40"
        )


def _name_re(prefix: str) -> re.Pattern[str]:
    roles = "|".join(ROLES)
    return re.compile(rf"{re.escape(prefix)}-[0-9a-f]{{6}}-(?:{roles})")


def run_command(argv: Sequence[str], *, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    # A new session: a Ctrl-C at the terminal must not kill half-done setup/teardown commands;
    # the Python side decides what to do with the interrupt.
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        start_new_session=True,
    )


def checked(
    proc: subprocess.CompletedProcess[str], argv: Sequence[str]
) -> subprocess.CompletedProcess[str]:
    if proc.returncode != 0:
        raise LabCommandError(proc.returncode, list(argv), proc.stdout, proc.stderr)
    return proc


def netns_names_with_prefix(prefix: str) -> list[str]:
    """Existing namespaces that look like lab namespaces made with ``prefix`` (sorted).

    Only names of the exact form ``<prefix>-<6 hex>-<role>`` match, so a prefix never catches
    namespaces that merely start with the same letters.
    """
    check_prefix(prefix)
    pattern = _name_re(prefix)
    try:
        names = os.listdir(NETNS_RUN_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if pattern.fullmatch(n))


def _kill_netns_processes(ns: str, grace: float = 1.0) -> None:
    """Terminate (then kill) every process whose network namespace is ``ns``."""

    def pids() -> list[int]:
        proc = run_command(["ip", "netns", "pids", ns])
        return [int(p) for p in proc.stdout.split() if p.isdigit() and int(p) != os.getpid()]

    found = pids()
    if not found:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            found = pids()
            if not found:
                return
            time.sleep(0.02)
    if found:
        log.warning("processes %s survived SIGKILL in namespace %s", found, ns)


def delete_netns(ns: str) -> None:
    """Kill every process in namespace ``ns``, delete it and its ``/etc/netns/<ns>`` directory.

    Never raises for kernel/process failures (they are logged); check ``/run/netns/<ns>``
    afterwards if it matters. Raises ``ValueError`` for a name that is not a plain file name.
    """
    if not ns or "/" in ns or ns in (".", ".."):
        raise ValueError(f"invalid namespace name {ns!r}")
    try:
        _kill_netns_processes(ns)
    except Exception as exc:  # keep going: deleting the namespace matters most
        log.warning("could not list/kill processes in %s: %s", ns, exc)
    if (NETNS_RUN_DIR / ns).exists():
        proc = run_command(["ip", "netns", "del", ns])
        if proc.returncode != 0:
            log.warning("ip netns del %s failed: %s", ns, proc.stderr.strip())
    remove_etc_dir(ns)


def remove_etc_dir(ns: str) -> None:
    etc = NETNS_ETC_DIR / ns
    if etc.is_dir() and not etc.is_symlink():
        shutil.rmtree(etc, ignore_errors=True)
    _remove_etc_netns_if_ours()


def _remove_etc_netns_if_ours() -> None:
    """Remove /etc/netns when a lab created it and nothing but our mark is left in it."""
    with contextlib.suppress(OSError):  # gone, or another entry appeared meanwhile: fine
        if os.listdir(NETNS_ETC_DIR) == [ETC_NETNS_MARK]:
            (NETNS_ETC_DIR / ETC_NETNS_MARK).unlink()
            NETNS_ETC_DIR.rmdir()


def remove_stale(prefix: str) -> list[str]:
    """Remove leftover lab namespaces made with ``prefix``: of a crashed demo, or one left up
    with ``--keep``.

    A lab is left over when the process that built it is gone (or is the calling process);
    a lab that another live process is using, such as a demo running in another terminal, is
    left alone. Processes inside removed namespaces are terminated first; their
    ``/etc/netns/<name>`` directories and the labs' temporary directories are removed too.
    Returns the namespace names that were removed.
    """
    by_token: dict[str, list[str]] = {}
    for ns in netns_names_with_prefix(prefix):
        by_token.setdefault(ns[len(prefix) + 1 :].split("-")[0], []).append(ns)
    removed: list[str] = []
    for token, names in sorted(by_token.items()):
        temp_dirs = [
            path for path in Path(tempfile.gettempdir()).glob(f"{prefix}-{token}-*")
            if path.is_dir() and not path.is_symlink() and path.stat().st_uid == os.geteuid()
        ]
        if any(_owner_alive_elsewhere(path) for path in temp_dirs):
            continue
        for ns in names:
            delete_netns(ns)
            removed.append(ns)
        for path in temp_dirs:
            shutil.rmtree(path, ignore_errors=True)
    return removed


def process_start(pid: int) -> str | None:
    """The start time of ``pid`` (clock ticks since boot), which tells a PID reused by another
    process from the original; None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def _owner_alive_elsewhere(temp_dir: Path) -> bool:
    """True when the process that built the lab of ``temp_dir`` still runs and is not us."""
    try:
        pid_text, start = (temp_dir / OWNER_FILE).read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return False
    return pid != os.getpid() and process_start(pid) == start


def stop_process(proc: subprocess.Popen[Any], timeout: float) -> int | None:
    """SIGTERM, as systemd would stop a service, then SIGKILL after ``timeout`` seconds; the
    exit code, None when it had to be killed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
        return None


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold back SIGINT while the body runs; deliver it afterwards (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        pending.append(signum)

    try:
        previous = signal.signal(signal.SIGINT, hold)
    except ValueError:  # not the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pending:
            if callable(previous):
                previous(signal.SIGINT, None)
            elif previous == signal.SIG_DFL:
                raise KeyboardInterrupt


# --------------------------------------------------------------------------------------------
# Loose namespaces: the benchmarks' hosts and the tests' bare namespaces, without a Lab.

CLONE_NEWNET = 0x40000000
_ROLE_RE = re.compile(r"[a-z0-9]{1,12}")
_loose_lock = threading.Lock()
_loose: list[str] = []  # created by Namespaces in this process and not yet deleted
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

T = TypeVar("T")


class Terminated(BaseException):
    """SIGTERM, raised so that teardown in ``finally`` runs (see :func:`raise_on_sigterm`)."""


def raise_on_sigterm() -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Terminated(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def run_checked(argv: Sequence[str], *, input_text: str | None = None,
                timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``argv``, its text output; :class:`LabError` naming the command when it fails."""
    proc = subprocess.run(list(argv), input=input_text, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        raise LabError(f"{' '.join(argv[:6])} ... failed ({proc.returncode}): "
                       f"{proc.stderr.strip()[:500]}")
    return proc


class Namespaces:
    """Namespaces ``<prefix>-<token>-<role>`` sharing one random token, each with ``lo`` up.
    Every one this process creates is remembered until deleted, and :func:`teardown_all`
    removes what is left (the benchmarks call it in ``finally``)."""

    def __init__(self, prefix: str) -> None:
        check_prefix(prefix)
        self.prefix = prefix
        self.token = secrets.token_hex(3)

    def add(self, role: str) -> str:
        if not _ROLE_RE.fullmatch(role):
            raise ValueError(f"bad namespace role {role!r}")
        name = f"{self.prefix}-{self.token}-{role}"
        with _loose_lock:
            _loose.append(name)  # before creating: a half-made namespace is cleaned too
        run_checked(["ip", "netns", "add", name])
        run_checked(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def run(
        self, ns: str, *argv: str, check: bool = True, timeout: float = 10
    ) -> subprocess.CompletedProcess[str]:
        full = ("ip", "netns", "exec", _ours(ns), *argv)
        proc = run_command(full, timeout=timeout)
        return checked(proc, full) if check else proc

    def popen(self, ns: str, *argv: str, **kwargs: Any) -> subprocess.Popen[str]:
        """Start ``argv`` inside ``ns`` in a new session (text mode)."""
        kwargs.setdefault("start_new_session", True)
        kwargs["text"] = True
        return subprocess.Popen(["ip", "netns", "exec", _ours(ns), *argv], **kwargs)


def _ours(name: str) -> str:
    with _loose_lock:
        if name not in _loose:
            raise ValueError(f"not a namespace made by this process: {name!r}")
    return name


def delete(name: str) -> None:
    """Kills every process in namespace ``name`` (one of :class:`Namespaces`) and deletes it."""
    with _loose_lock:
        if name in _loose:
            _loose.remove(name)
    delete_netns(name)


def teardown_all() -> list[str]:
    """Removes every namespace :class:`Namespaces` made in this process; returns their names."""
    with sigint_deferred():
        with _loose_lock:
            names = list(reversed(_loose))
        for name in names:
            with contextlib.suppress(Exception):
                delete(name)
        return names


def leftovers() -> list[str]:
    """Namespaces this process made that still exist (should be none after teardown)."""
    with _loose_lock:
        names = list(_loose)
    return [n for n in names if (NETNS_RUN_DIR / n).exists()]


def in_netns(name: str, func: Callable[[], T]) -> T:
    """``func()`` run by a thread that has entered namespace ``name`` (and then exits).

    A socket stays in the namespace it was created in, while this process (and every other
    thread of it) stays in the root namespace. Use it to create sockets there; never to run
    long work. Only namespaces :class:`Namespaces` made in this process are entered; raises if
    the namespace cannot be entered, so nothing is ever created in the root namespace by
    mistake.
    """
    _ours(name)
    box: dict[str, object] = {}

    def target() -> None:
        try:
            fd = os.open(NETNS_RUN_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
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
        run_checked(["ip", "-n", ns, "-batch", "-"], input_text="\n".join(lines) + "\n",
                    timeout=timeout)


def sysctl(ns: str, *settings: str) -> None:
    run_checked(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *settings])


@contextlib.contextmanager
def bare_namespace(prefix: str) -> Iterator[str]:
    """A namespace ``<prefix>-<6 hex>-bare`` with ``eth0`` (10.1.0.2/24, 2001:db8:1::2/64, its
    veth peer left in the same namespace) and a default route, deleted afterwards with
    whatever runs inside it."""
    spaces = Namespaces(prefix)
    ns = spaces.add("bare")
    try:
        batch(ns, [
            "link add eth0 type veth peer name peer0",
            "link set eth0 up",
            "link set peer0 up",
            "addr add 10.1.0.2/24 dev eth0",
            "addr add 2001:db8:1::2/64 dev eth0 nodad",
            "route add default via 10.1.0.1 dev eth0",
        ])
        yield ns
    finally:
        delete(ns)
