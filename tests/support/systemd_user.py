"""A private, throwaway systemd user manager, for running units under a real service manager on
machines where systemd is not PID 1 (containers, CI, these build VMs).

``systemd --user`` runs as root inside new mount, PID and cgroup namespaces:

* the mount namespace gets a cgroup2 file system on /sys/fs/cgroup (systemd needs the unified
  hierarchy to track services) and a tmpfs on /run/systemd holding an empty ``system``
  directory (``sd_booted()``: without it systemd refuses to run a user instance);
* the cgroup namespace is rooted at a fresh child cgroup made for this manager alone, so the
  cgroups it creates live below that one and are removed with it;
* the PID namespace makes teardown total: killing its first process kills every service.

``systemctl --user`` is run inside the same mount and PID namespaces (outside, it would
see no /run/systemd/system and its D-Bus peer credentials would not translate).
Nothing outside the temporary directories and the one child cgroup is changed.

    with user_manager() as manager:
        manager.install_unit("tiny.service", text)
        manager.systemctl("start", "tiny.service")
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

SYSTEMD_BINARY = Path("/lib/systemd/systemd")

# Runs as the new PID namespace's first process: set up the view systemd needs, then keep
# systemd as a child (a user instance refuses to be PID 1).
_NAMESPACE_INIT = """
set -e
mount -t cgroup2 none /sys/fs/cgroup
mount -t tmpfs -o mode=0755 tmpfs /run/systemd
mkdir /run/systemd/system
"$1" --user &
wait
"""


class UserManagerError(RuntimeError):
    pass


def _cgroup2_mount() -> Path | None:
    """Where the unified cgroup hierarchy is mounted here (pure or hybrid layout)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[:1] == ["cgroup2"]:
            return Path(left.split()[4])
    return None


def _own_cgroup2_path() -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    return "/"


def unavailable_reason() -> str | None:
    """Why no private user manager can be started here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (mount, PID and cgroup namespaces)"
    for tool in ("unshare", "nsenter", "systemctl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not os.access(SYSTEMD_BINARY, os.X_OK):
        return f"{SYSTEMD_BINARY} is not installed"
    if _cgroup2_mount() is None:
        return "no cgroup2 hierarchy is mounted"
    return None


@dataclass
class UserManager:
    runtime_dir: Path
    unit_dir: Path
    namespace_init_pid: int
    log_path: Path

    def log_text(self) -> str:
        """What the manager printed (its own log goes to the console: there is no journal)."""
        return self.log_path.read_text(errors="replace")

    def environment(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "LANG": "C.UTF-8",
        }

    def systemctl(self, *args: str, check: bool = True,
                  timeout: float = 30) -> subprocess.CompletedProcess[str]:
        command = ["nsenter", "-t", str(self.namespace_init_pid), "-m", "-p", "--",
                   "systemctl", "--user", "--no-pager", *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env=self.environment(), check=False)
        if check and done.returncode != 0:
            raise UserManagerError(f"systemctl {' '.join(args)}: exit {done.returncode}: "
                                   f"{done.stderr.strip()}")
        return done

    def install_unit(self, name: str, text: str) -> Path:
        path = self.unit_dir / name
        path.write_text(text)
        self.systemctl("daemon-reload")
        return path

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        args = [f"--property={p}" for p in properties]
        output = self.systemctl("show", *args, unit).stdout
        return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)

    def active_state(self, unit: str) -> str:
        return self.systemctl("is-active", unit, check=False).stdout.strip()

    def wait_until(self, predicate: Callable[[], bool], timeout: float,
                   what: str, interval: float = 0.1) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise UserManagerError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(interval)


def _namespace_init_pid(unshare: subprocess.Popen[bytes], timeout: float) -> int:
    # unshare --fork: its only child is the PID namespace's first process.
    children = Path(f"/proc/{unshare.pid}/task/{unshare.pid}/children")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if unshare.poll() is not None:
            raise UserManagerError(f"unshare exited early with {unshare.returncode}")
        with contextlib.suppress(OSError):
            pids = children.read_text().split()
            if pids:
                return int(pids[0])
        time.sleep(0.02)
    raise UserManagerError("the namespace's first process did not appear")


def _remove_cgroup_tree(root: Path, timeout: float = 5) -> None:
    """Remove a cgroup and its descendants, deepest first; a cgroup can only go once its
    processes are reaped, which takes a moment after SIGKILL."""
    deadline = time.monotonic() + timeout
    while root.exists():
        for directory in sorted((p for p in root.rglob("*") if p.is_dir()),
                                key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            root.rmdir()
        if root.exists():
            if time.monotonic() > deadline:
                raise UserManagerError(f"could not remove cgroup {root}")
            time.sleep(0.05)


@contextlib.contextmanager
def user_manager(
    startup_timeout: float = 30, log_level: str = "info"
) -> Iterator[UserManager]:
    """A running private ``systemd --user``; stopped, and everything it made removed, on exit.
    Its log (``log_level``: systemd's names, "debug" shows every exec step) is in
    ``UserManager.log_text()``."""
    reason = unavailable_reason()
    if reason is not None:
        raise UserManagerError(reason)
    cgroup2 = _cgroup2_mount()
    assert cgroup2 is not None
    own = _own_cgroup2_path().lstrip("/")
    cgroup = cgroup2 / own / f"polroutd-test-{secrets.token_hex(4)}"
    # A short path: the manager's sockets live below it (sun_path holds 108 bytes).
    workdir = Path(tempfile.mkdtemp(prefix="polroutd-um-"))
    runtime_dir = workdir / "run"
    config_home = workdir / "config"
    unit_dir = config_home / "systemd" / "user"
    runtime_dir.mkdir(mode=0o700)
    unit_dir.mkdir(parents=True)
    cgroup.mkdir()
    unshare: subprocess.Popen[bytes] | None = None
    log_path = workdir / "manager.log"
    log = log_path.open("wb")
    try:
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": str(workdir),
            "XDG_RUNTIME_DIR": str(runtime_dir),
            "XDG_CONFIG_HOME": str(config_home),
            "XDG_DATA_HOME": str(workdir / "data"),
            "LANG": "C.UTF-8",
            "SYSTEMD_LOG_TARGET": "console",
            "SYSTEMD_LOG_LEVEL": log_level,
        }
        # Join the cgroup first, so the new cgroup namespace is rooted at it.
        unshare = subprocess.Popen(
            ["sh", "-c",
             'echo $$ > "$1/cgroup.procs" && shift && exec "$@"', "sh", str(cgroup),
             # slave: network namespaces added later under /run/netns show up inside, and
             # nothing mounted inside leaks out
             "unshare", "--mount", "--propagation", "slave", "--cgroup", "--pid", "--fork",
             "--mount-proc",
             "--kill-child", "sh", "-c", _NAMESPACE_INIT, "init", str(SYSTEMD_BINARY)],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True,
        )
        manager = UserManager(runtime_dir, unit_dir,
                              _namespace_init_pid(unshare, startup_timeout), log_path)
        private_socket = runtime_dir / "systemd" / "private"
        manager.wait_until(private_socket.exists, startup_timeout, "the manager's socket")
        state = manager.systemctl("is-system-running", "--wait", check=False,
                                  timeout=startup_timeout).stdout.strip()
        if state not in ("running", "degraded"):
            raise UserManagerError(f"user manager state is {state!r}")
        yield manager
    except UserManagerError as exc:
        log.flush()
        output = log_path.read_text(errors="replace")[-2000:]
        raise UserManagerError(f"{exc}; manager output:\n{output}") from exc
    finally:
        if unshare is not None:
            # SIGKILL to unshare; --kill-child passes it on to the namespace's first process,
            # and the kernel then kills everything else in the PID namespace.
            with contextlib.suppress(ProcessLookupError):
                unshare.send_signal(signal.SIGKILL)
            unshare.wait(timeout=10)
        log.close()
        _remove_cgroup_tree(cgroup)
        shutil.rmtree(workdir, ignore_errors=True)
