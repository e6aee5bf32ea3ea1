"""systemd integration: the sd_notify client against real sockets, the unit file checked by
systemd's own tools, and a notify service run under a real (private) systemd user manager."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from polroutd.adapters import sdnotify
from polroutd.adapters.sdnotify import Notifier
from tests.support import REPO, UNIT

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
