"""systemd integration: the sd_notify client against real sockets, the unit file checked by
systemd's own tools, and a notify service run under a real (private) systemd user manager."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from polroutd import sdnotify
from polroutd.lab import Lab
from polroutd.lab_netns import delete_netns
from polroutd.sdnotify import Notifier
from tests import systemd_user

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "polroutd.service"
SYSUSERS = REPO / "systemd" / "polroutd.sysusers"
TMPFILES = REPO / "systemd" / "polroutd.tmpfiles"
MAX_EXPOSURE = 3.0  # systemd-analyze security: up to 3.9 is "OK"


# --- sd_notify -----------------------------------------------------------------------------


class Listener:
    """A bound AF_UNIX datagram socket standing in for systemd's notification socket."""

    def __init__(self, sock: socket.socket, notify_socket: str) -> None:
        self.sock = sock
        self.notify_socket = notify_socket

    def receive(self, timeout: float = 2.0) -> str:
        self.sock.settimeout(timeout)
        return self.sock.recv(4096).decode()

    def nothing_pending(self) -> bool:
        self.sock.settimeout(0.2)
        try:
            self.sock.recv(4096)
        except TimeoutError:
            return True
        return False


def _bind(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    return sock


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    path = tmp_path / "notify"
    sock = _bind(str(path))
    yield Listener(sock, str(path))
    sock.close()


@pytest.fixture
def abstract_listener() -> Iterator[Listener]:
    name = f"polroutd-test-{secrets.token_hex(6)}"
    sock = _bind(b"\0" + name.encode())
    yield Listener(sock, "@" + name)
    sock.close()


def _libsystemd_notify() -> Callable[[str], bool] | None:
    return sdnotify._load_libsystemd_notify()


@pytest.fixture(params=["libsystemd", "datagram"])
def sender(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Runs a test once through libsystemd's sd_notify() and once through the fallback that
    sends the datagram itself (as when systemd-python is not installed). Returns the list of
    messages that went through libsystemd."""
    through_libsystemd: list[str] = []
    if request.param == "datagram":
        monkeypatch.setattr(sdnotify, "_load_libsystemd_notify", lambda: None)
        return through_libsystemd
    real = _libsystemd_notify()
    if real is None:
        pytest.skip("systemd-python is not installed")

    def spy(message: str) -> bool:
        through_libsystemd.append(message)
        return real(message)

    monkeypatch.setattr(sdnotify, "_load_libsystemd_notify", lambda: spy)
    return through_libsystemd


def _notifier(listener: Listener, monkeypatch: pytest.MonkeyPatch, **extra: str) -> Notifier:
    # systemd-python reads the process environment; the Notifier reads what it is given.
    monkeypatch.setenv("NOTIFY_SOCKET", listener.notify_socket)
    return Notifier({"NOTIFY_SOCKET": listener.notify_socket, **extra})


def test_each_state_change_arrives(
    listener: Listener,
    sender: list[str],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    notifier = _notifier(listener, monkeypatch, WATCHDOG_USEC="30000000")
    assert notifier.enabled

    notifier.ready()
    assert listener.receive() == "READY=1"
    notifier.status("3 interfaces, 6 rules, last reconcile 0.004 s ago")
    assert listener.receive() == "STATUS=3 interfaces, 6 rules, last reconcile 0.004 s ago"
    notifier.watchdog()
    assert listener.receive() == "WATCHDOG=1"
    notifier.stopping()
    assert listener.receive() == "STOPPING=1"
    through_libsystemd = request.node.callspec.params["sender"] == "libsystemd"
    assert sender == (
        ["READY=1", "STATUS=3 interfaces, 6 rules, last reconcile 0.004 s ago", "WATCHDOG=1",
         "STOPPING=1"]
        if through_libsystemd else []
    )


def test_reloading_carries_the_monotonic_clock(
    listener: Listener, sender: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    notifier = _notifier(listener, monkeypatch)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    fields = dict(line.split("=", 1) for line in listener.receive().splitlines())
    assert fields["RELOADING"] == "1"
    assert before <= int(fields["MONOTONIC_USEC"]) <= after


def test_status_text_stays_one_assignment(
    listener: Listener, sender: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    notifier = _notifier(listener, monkeypatch)
    notifier.status("reload failed:\nREADY=1")
    assert listener.receive() == "STATUS=reload failed: READY=1"


def test_abstract_socket_address(
    abstract_listener: Listener, sender: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    notifier = _notifier(abstract_listener, monkeypatch)
    notifier.ready()
    assert abstract_listener.receive() == "READY=1"


def test_the_given_environment_wins_over_the_process_one(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NOTIFY_SOCKET in os.environ but not in the mapping given: nothing is sent."""
    monkeypatch.setenv("NOTIFY_SOCKET", listener.notify_socket)
    notifier = Notifier({})
    assert not notifier.enabled
    notifier.ready()
    notifier.reloading()
    notifier.status("x")
    notifier.watchdog()
    notifier.stopping()
    assert listener.nothing_pending()


def test_a_different_socket_in_the_mapping_is_used_even_with_libsystemd(
    listener: Listener, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sd_notify() would use os.environ's socket; the Notifier must use the one it was given."""
    decoy = _bind(str(tmp_path / "decoy"))
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "decoy"))
        Notifier({"NOTIFY_SOCKET": listener.notify_socket}).ready()
        assert listener.receive() == "READY=1"
        assert Listener(decoy, "").nothing_pending()
    finally:
        decoy.close()


def test_without_systemd_nothing_is_sent_and_nothing_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    assert notifier.watchdog_interval() is None
    for call in (notifier.ready, notifier.reloading, notifier.stopping, notifier.watchdog):
        call()
    notifier.status("idle")


def test_a_send_failure_does_not_raise(
    tmp_path: Path, sender: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = str(tmp_path / "nobody-listens-here")
    monkeypatch.setenv("NOTIFY_SOCKET", missing)
    notifier = Notifier({"NOTIFY_SOCKET": missing})
    assert notifier.enabled
    notifier.ready()
    notifier.reloading()
    notifier.status("still fine")
    notifier.watchdog()
    notifier.stopping()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "500000"}, 0.25),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": "/run/systemd/notify", **environ})
    assert notifier.watchdog_interval() == expected


def test_no_watchdog_interval_without_a_notify_socket() -> None:
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval() is None


# --- the unit file -------------------------------------------------------------------------


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd unit syntax, enough for our file: sections, repeated keys kept in order,
    comments, backslash continuations."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"assignment outside a section: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text())


def test_unit_is_a_watched_notify_service(unit: dict[str, dict[str, list[str]]]) -> None:
    service = unit["Service"]
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert service["ExecStart"] == ["/usr/bin/polroutd run"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service["WatchdogSec"] == ["30s"]
    assert service["Restart"] == ["on-failure"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_unit_orders_itself_among_the_network_managers(
    unit: dict[str, dict[str, list[str]]],
) -> None:
    section = unit["Unit"]
    assert "network-pre.target" in " ".join(section["After"]).split()
    assert "network.target" in " ".join(section["Before"]).split()
    assert "network.target" in " ".join(section["Wants"]).split()


REQUIRED_HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "RemoveIPC": "yes",
    "SystemCallArchitectures": "native",
    "UMask": "0022",
    "ConfigurationDirectory": "polroutd",
    "RuntimeDirectory": "polroutd",
}


@pytest.mark.parametrize(("key", "value"), sorted(REQUIRED_HARDENING.items()))
def test_unit_hardening_directive(
    unit: dict[str, dict[str, list[str]]], key: str, value: str
) -> None:
    assert unit["Service"].get(key) == [value]


def test_unit_runs_unprivileged_with_cap_net_admin_only(
    unit: dict[str, dict[str, list[str]]],
) -> None:
    service = unit["Service"]
    assert service["User"] == ["polroutd"]
    assert "DynamicUser" not in service
    assert service["CapabilityBoundingSet"] == ["CAP_NET_ADMIN"]
    assert service["AmbientCapabilities"] == ["CAP_NET_ADMIN"]


def test_unit_only_rt_tables_d_is_writable(unit: dict[str, dict[str, list[str]]]) -> None:
    paths = " ".join(unit["Service"]["ReadWritePaths"]).split()
    assert [p.lstrip("-") for p in paths] == ["/etc/iproute2/rt_tables.d"]


def test_unit_system_calls_and_address_families(
    unit: dict[str, dict[str, list[str]]],
) -> None:
    service = unit["Service"]
    assert service["SystemCallFilter"][0] == "@system-service"
    denied = [v for v in service["SystemCallFilter"] if v.startswith("~")]
    assert set(" ".join(denied).lstrip("~").split()) == {"@privileged", "@resources"}
    families = set(" ".join(service["RestrictAddressFamilies"]).split())
    assert families == {"AF_NETLINK", "AF_UNIX", "AF_INET", "AF_INET6"}


def _systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    return tool


@pytest.fixture
def runnable_unit(tmp_path: Path) -> Path:
    """The unit with an ExecStart= that exists on this machine (polroutd need not be
    installed for systemd to check everything else)."""
    text = UNIT.read_text().replace("ExecStart=/usr/bin/polroutd run", "ExecStart=/bin/true run")
    assert text != UNIT.read_text()
    path = tmp_path / "polroutd.service"
    path.write_text(text)
    return path


def test_systemd_analyze_verify(runnable_unit: Path) -> None:
    # Documentation= names polroutd's own man pages: offer the generated ones (contrib/man)
    # where man looks for installed pages; the trailing ":" keeps the system's man path.
    manpath = runnable_unit.parent / "man"
    for page in (REPO / "contrib" / "man").iterdir():
        section = manpath / f"man{page.suffix[1:]}"
        section.mkdir(parents=True, exist_ok=True)
        (section / page.name).symlink_to(page)
    done = subprocess.run(
        [_systemd_analyze(), "verify", str(runnable_unit)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=runnable_unit.parent,
        env={**os.environ, "MANPATH": f"{manpath}:"},
    )
    ours = [line for line in (done.stdout + done.stderr).splitlines() if "polroutd.service" in line]
    assert done.returncode == 0, done.stderr
    assert ours == []


def test_systemd_analyze_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a misspelt directive is reported."""
    broken = tmp_path / "polroutd.service"
    broken.write_text(
        UNIT.read_text().replace(
            "ExecStart=/usr/bin/polroutd run", "ExecStart=/bin/true run\nProtectSytem=yes"
        )
    )
    done = subprocess.run(
        [_systemd_analyze(), "verify", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert "ProtectSytem" in done.stderr


def test_systemd_analyze_security_score(
    runnable_unit: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    done = subprocess.run(
        [_systemd_analyze(), "security", "--offline=yes", "--no-pager", str(runnable_unit)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=runnable_unit.parent,
    )
    match = re.search(
        r"Overall exposure level for polroutd\.service: ([0-9.]+) (\w+)", done.stdout + done.stderr
    )
    assert match, done.stdout + done.stderr
    exposure, verdict = float(match[1]), match[2]
    with capsys.disabled():
        print(f"\nsystemd-analyze security polroutd.service: {exposure} {verdict}")
    assert exposure <= MAX_EXPOSURE
    assert verdict in ("SAFE", "OK")


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
    from polroutd.sdnotify import Notifier

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


@pytest.mark.netns
def test_the_real_daemon_under_a_real_systemd(
    manager: systemd_user.UserManager, lab: Lab, tmp_path: Path
) -> None:
    from tests.netns_tools import owned, rules, write_config, write_lease

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
