"""systemd's own tools and a real (private) systemd user manager: sysusers/tmpfiles applied to a
throwaway root, a notify service and the real daemon supervised by systemd (the unit file's
static checks and the notifier: tests/unit/test_systemd.py).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from polroutd.lab.lab import Lab
from polroutd.lab.netns import delete_netns
from tests.support import REPO, SYSUSERS, TMPFILES, UNIT, systemd_user


def test_sysusers_and_tmpfiles_give_polroutd_the_rt_tables_directory(tmp_path: Path) -> None:
    """systemd's own tools apply both files to a throwaway root: the user exists and the
    directory is root:polroutd, group-writable and sticky."""
    for tool in ("systemd-sysusers", "systemd-tmpfiles"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles --root needs root to set ownership")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    subprocess.run(
        ["systemd-sysusers", f"--root={root}", str(SYSUSERS)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    subprocess.run(
        ["systemd-tmpfiles", f"--root={root}", "--create", str(TMPFILES)],
        check=True,
        capture_output=True,
        timeout=60,
    )

    passwd = {
        line.split(":")[0]: line.split(":")
        for line in (root / "etc" / "passwd").read_text().splitlines()
    }
    group = {
        line.split(":")[0]: line.split(":")
        for line in (root / "etc" / "group").read_text().splitlines()
    }
    assert passwd["polroutd"][6].endswith("nologin")
    directory = (root / "etc" / "iproute2" / "rt_tables.d").stat()
    assert directory.st_uid == 0
    assert directory.st_gid == int(group["polroutd"][2])
    assert directory.st_mode & 0o7777 == 0o1775


# --- a notify service under a real systemd -----------------------------------------------

TINY_SERVICE = textwrap.dedent("""\
    import os, signal, sys, time
    from pathlib import Path
    from polroutd.adapters.sdnotify import Notifier

    workdir = Path(sys.argv[1])
    notifier = Notifier()
    reloads = 0

    def reload(signum, frame):
        global reloads
        notifier.reloading()
        reloads += 1
        with open(workdir / "events", "a") as events:
            events.write("HUP\\n")
        notifier.status(f"reloaded {reloads}")
        notifier.ready()

    def stop(signum, frame):
        notifier.stopping()
        sys.exit(0)

    signal.signal(signal.SIGHUP, reload)
    signal.signal(signal.SIGTERM, stop)
    # Ready only when the test says so: "activating" until then.
    while not (workdir / "go").exists():
        time.sleep(0.05)
    notifier.ready()
    notifier.status("up")
    interval = notifier.watchdog_interval()
    with open(workdir / "events", "a") as events:
        events.write(f"READY interval={interval}\\n")
    while True:
        time.sleep(interval or 1)
        if not (workdir / "hang").exists():  # "hang": stop pinging, like a stuck loop
            notifier.watchdog()
""")


@pytest.fixture(scope="module")
def manager() -> Iterator[systemd_user.UserManager]:
    reason = systemd_user.unavailable_reason()
    if reason is not None:
        pytest.skip(f"no private systemd user manager: {reason}")
    # `ip netns add` makes /run/netns a shared mount point; it must be one before the manager's
    # mount namespace is made, so that namespaces added later propagate into it.
    probe = f"polroutd-t-{secrets.token_hex(3)}-probe"
    try:
        subprocess.run(["ip", "netns", "add", probe], check=True)
    finally:
        delete_netns(probe)
    with systemd_user.user_manager() as running:
        yield running


def test_notify_service_under_a_real_systemd(
    manager: systemd_user.UserManager, tmp_path: Path
) -> None:
    script = tmp_path / "tiny.py"
    script.write_text(TINY_SERVICE)
    events = tmp_path / "events"
    unit_name = f"tiny-{secrets.token_hex(3)}.service"
    manager.install_unit(
        unit_name,
        textwrap.dedent(f"""\
        [Service]
        Type=notify
        NotifyAccess=main
        Environment=PYTHONPATH={REPO}
        ExecStart={sys.executable} {script} {tmp_path}
        ExecReload=/bin/kill -HUP $MAINPID
        WatchdogSec=2s
        """),
    )

    # Not active before READY=1.
    manager.systemctl("start", "--no-block", unit_name)
    manager.wait_until(lambda: manager.active_state(unit_name) == "activating", 10, "activating")
    time.sleep(1.0)
    assert manager.active_state(unit_name) == "activating"

    (tmp_path / "go").touch()
    manager.wait_until(lambda: manager.active_state(unit_name) == "active", 10, "active")
    assert manager.show(unit_name, "StatusText")["StatusText"] == "up"
    assert "READY interval=1.0" in events.read_text()  # WATCHDOG_USEC reached the service

    # systemctl reload delivers SIGHUP; RELOADING=1 ... READY=1 bring it back to active.
    manager.systemctl("reload", unit_name)
    manager.wait_until(lambda: "HUP" in events.read_text(), 10, "SIGHUP")
    manager.wait_until(
        lambda: manager.show(unit_name, "StatusText")["StatusText"] == "reloaded 1",
        10,
        "the status after reload",
    )
    assert manager.active_state(unit_name) == "active"

    # Watchdog pings keep arriving...
    def last_ping() -> int:
        return int(
            manager.show(unit_name, "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"]
        )

    first = last_ping()
    manager.wait_until(lambda: last_ping() > first, 5, "a newer watchdog ping")
    # ... and are what keeps the service alive: without them systemd kills it.
    (tmp_path / "hang").touch()
    manager.wait_until(
        lambda: manager.show(unit_name, "Result")["Result"] == "watchdog",
        10,
        "the watchdog to fire",
    )
    assert manager.active_state(unit_name) in ("failed", "inactive")


# Directives a per-user service manager cannot apply (no user switching, no capability or
# namespace sandboxing for an unprivileged manager); everything else of the shipped unit stays.
_NOT_FOR_USER_MANAGERS = {
    "User",
    "Group",
    "AmbientCapabilities",
    "CapabilityBoundingSet",
    "ProtectSystem",
    "ReadWritePaths",
    "ConfigurationDirectory",
    "RuntimeDirectory",
    "ProtectHome",
    "PrivateTmp",
    "PrivateDevices",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectClock",
    "ProtectHostname",
    "ProtectProc",
    "ProcSubset",
    "RestrictNamespaces",
    "IPAddressDeny",
    "IPAddressAllow",
    "RemoveIPC",
    "ExecStart",
    "SystemCallFilter",
    "SystemCallErrorNumber",
    "MemoryDenyWriteExecute",
}


def user_variant_of_the_shipped_unit(exec_start: str, netns: str, extra: str = "") -> str:
    overridden = {line.split("=", 1)[0] for line in extra.splitlines()}
    kept = []
    for line in UNIT.read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        dropped = _NOT_FOR_USER_MANAGERS | overridden
        if "=" in line and not line.startswith("#") and key in dropped:
            continue
        kept.append(line)
        if line.strip() == "[Service]":
            # `ip netns exec` execs the daemon: the main PID stays the daemon's, as
            # NotifyAccess=main wants (a user manager cannot apply NetworkNamespacePath=).
            kept += [f"ExecStart=/usr/sbin/ip netns exec {netns} {exec_start}", *extra.splitlines()]
    return "\n".join(kept) + "\n"


def test_the_real_daemon_under_a_real_systemd(
    manager: systemd_user.UserManager, lab: Lab, tmp_path: Path
) -> None:
    from tests.support.lab_tools import owned, rules, write_config, write_lease

    config = write_config(tmp_path, daemon_extra='http_listen = ""\nresync_interval = 3600')
    write_lease(tmp_path, "ens224", "10.225.176.38", "10.225.176.1")
    unit_name = f"polroutd-{secrets.token_hex(3)}.service"
    log = tmp_path / "daemon.log"
    manager.install_unit(
        unit_name,
        user_variant_of_the_shipped_unit(
            f"{sys.executable} -m polroutd run --config {config}",
            lab.server,
            f"Environment=PYTHONPATH={REPO}\nStandardOutput=append:{log}\n"
            f"StandardError=append:{log}\nWatchdogSec=2s",
        ),
    )
    try:
        started = manager.systemctl("start", unit_name, check=False)  # waits for READY=1
        assert started.returncode == 0, (
            started.stderr
            + (log.read_text() if log.exists() else "")
            + manager.systemctl("status", unit_name, check=False).stdout
        )
        assert manager.active_state(unit_name) == "active", log.read_text()
        sources = {r.get("src") for r in owned(rules(lab, lab.server))}
        assert {"10.225.160.38", "10.225.176.38"} <= sources  # READY came after the rules
        assert "in sync" in manager.show(unit_name, "StatusText")["StatusText"]

        def last_ping() -> int:
            return int(
                manager.show(unit_name, "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"]
            )

        first = last_ping()
        manager.wait_until(lambda: last_ping() > first, 5, "the watchdog to be fed")

        config.write_text(config.read_text().replace("[daemon]", '[daemon]\nmode = "main-first"'))
        manager.systemctl("reload", unit_name)
        manager.wait_until(
            lambda: any(r.get("suppress_prefixlen") == 0 for r in owned(rules(lab, lab.server))),
            10,
            "the reloaded configuration to apply",
        )
        assert manager.active_state(unit_name) == "active"
    finally:
        manager.systemctl("stop", unit_name, check=False)
    assert manager.active_state(unit_name) in ("inactive", "failed")
    assert "STOPPING" not in log.read_text()  # (logs are structured lines, not notify text)
