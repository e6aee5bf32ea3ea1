"""Real DHCP on the lab's data network: a server in the router namespace, ISC dhclient on the
server's ``ens224``. Used through :class:`polroutd.lab.lab.Lab` (``start_dhcp_server`` and friends).

Servers (both bound to the router's data-side interface only):

* **dnsmasq** for leases of 2 minutes or more (its minimum). It serves only a fixed reservation
  for ens224's MAC (``static`` range) and sends a short renewal time T1 (option 58, at least
  3 s: dnsmasq sends no shorter one), so the client renews every few seconds. After
  :meth:`DhcpServer.change_reservation` (hosts file rewritten, SIGHUP) the next renewal is, on
  the wire::

      client → DHCPREQUEST for the old address (unicast RENEW)
      server → DHCPNAK "address not available"     client script: EXPIRE, old address removed
      client → DHCPDISCOVER                        client script: PREINIT
      server → DHCPOFFER of the new address
      client → DHCPREQUEST, server → DHCPACK       client script: BOUND, new address added

* **busybox udhcpd** for shorter leases (seconds), to let a lease *expire*: stop the server and
  the client's renewals and rebinds go unanswered; at expiry its script gets EXPIRE and removes
  the address. udhcpd reads its reservation only at start, so ``change_reservation`` restarts it;
  it does not answer (nor NAK) a renewal of an address that is no longer reserved, so the client
  moves to the new address only when the old lease expires (EXPIRE, DISCOVER ... BOUND).

The client runs in the foreground with its own ``-cf`` configuration, ``-sf`` script, ``-lf``
lease file and ``-pf`` pid file, all in the lab's temporary directory. The script only adds and
removes the leased IPv4 address: it never touches ``resolv.conf``, the hostname or any route, so
the server keeps the article's single default route via the management network (polroutd learns
the data gateway from the lease file). Every script run is appended to an events file
(``<unix time> <reason> <old address|-> <new address|-> <exit status>``), read back as
:class:`DhcpEvent`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from polroutd.lab.netns import LabError, stop_process


class Lab(Protocol):
    """What the DHCP server and client need of the lab (``polroutd.lab.lab.Lab``)."""

    router: str
    server: str

    def run(
        self, ns: str, *argv: str, check: bool = True, timeout: float = 10
    ) -> subprocess.CompletedProcess[str]: ...

    def popen(self, ns: str, *argv: str, **kwargs: Any) -> subprocess.Popen[str]: ...

__all__ = [
    "BOUND_REASONS",
    "DNSMASQ_MIN_LEASE",
    "DNSMASQ_MIN_RENEW",
    "DhcpClient",
    "DhcpError",
    "DhcpEvent",
    "DhcpServer",
    "parse_events",
]

DNSMASQ_MIN_LEASE = 120  # dnsmasq raises anything shorter to 2 minutes
DNSMASQ_MIN_RENEW = 3  # dnsmasq sends no shorter T1 (it sends 3 for 2, and lease/2 for 1)
#: Script reasons after which the client holds a lease (``new`` is its address).
BOUND_REASONS = frozenset({"BOUND", "RENEW", "REBIND", "REBOOT"})
_DHCP_SERVER_PORT = 67

ServerKind = Literal["dnsmasq", "udhcpd"]


class DhcpError(LabError):
    """A DHCP process could not be started or did not do what was expected in time."""


@dataclass(frozen=True)
class DhcpEvent:
    """One run of the client's script."""

    at: float  # unix time at which the script had finished its work
    reason: str  # dhclient's $reason: PREINIT, BOUND, RENEW, REBIND, EXPIRE, ...
    old: str | None
    new: str | None
    status: int  # the script's exit status (non-zero on BOUND makes dhclient DECLINE)

    @property
    def bound(self) -> bool:
        return self.reason in BOUND_REASONS


def parse_events(text: str) -> list[DhcpEvent]:
    """The events file, oldest first; a half-written last line is skipped."""
    events = []
    for line in text.splitlines():
        words = line.split()
        if len(words) != 5:
            continue
        at, reason, old, new, status = words
        try:
            events.append(DhcpEvent(float(at), reason, None if old == "-" else old,
                                    None if new == "-" else new, int(status)))
        except ValueError:
            continue
    return events


# --------------------------------------------------------------------------------------------
# The client's files


def client_script(events: Path) -> str:
    """dhclient's ``-sf`` script: the address, nothing else (see the module docstring)."""
    return f"""#!/bin/sh
# polroutd lab: dhclient -sf script. Adds and removes the leased IPv4 address and nothing else:
# no resolv.conf, no hostname, no routes.
status=0
case "$reason" in
PREINIT)
    ip link set dev "$interface" up || status=$? ;;
BOUND|RENEW|REBIND|REBOOT)
    if [ -n "$old_ip_address" ] && [ "$old_ip_address" != "$new_ip_address" ]; then
        ip -4 addr del "$old_ip_address/$old_subnet_mask" dev "$interface" 2>/dev/null
    fi
    # A renewal of the same address changes nothing in the kernel.
    if [ "$old_ip_address" != "$new_ip_address" ] || [ "$reason" = BOUND ] \\
            || [ "$reason" = REBOOT ]; then
        ip -4 addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" || status=$?
    fi ;;
EXPIRE|FAIL|RELEASE|STOP)
    if [ -n "$old_ip_address" ]; then
        ip -4 addr del "$old_ip_address/$old_subnet_mask" dev "$interface" 2>/dev/null
    fi ;;
TIMEOUT)
    # No server answered: do not fall back to an old lease from the lease file.
    status=1 ;;
esac
printf '%s %s %s %s %s\\n' "$(date +%s.%N)" "$reason" "${{old_ip_address:--}}" \\
    "${{new_ip_address:--}}" "$status" >> {shlex.quote(str(events))}
exit "$status"
"""


CLIENT_CONF = """\
# polroutd lab: dhclient -cf. Ask only for what the lab uses; retry quickly (seconds, not the
# default minutes) so a lab run stays short.
initial-interval 1;
backoff-cutoff 2;
timeout 60;
retry 1;
request subnet-mask, broadcast-address, routers, dhcp-lease-time, dhcp-renewal-time,
        dhcp-rebinding-time;
"""


def _program(*candidates: tuple[str, ...]) -> list[str]:
    for argv in candidates:
        if shutil.which(argv[0]):
            return [shutil.which(argv[0]) or argv[0], *argv[1:]]
    raise DhcpError(f"none of {', '.join(c[0] for c in candidates)} is installed")


def _wait(condition: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --------------------------------------------------------------------------------------------


class DhcpServer:
    """A DHCP server on the router's data side with one reservation (see the module docstring)."""

    def __init__(self, lab: Lab, directory: Path, *, interface: str, mac: str, reserve: str,
                 router: str, netmask: str, lease_seconds: int, renew_seconds: int) -> None:
        if lease_seconds < 2:
            raise ValueError("lease_seconds must be at least 2")
        self.lab = lab
        self.dir = directory
        self.interface = interface
        self.mac = mac
        self.reserved = reserve
        self.router = router
        self.netmask = netmask
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.kind: ServerKind = "dnsmasq" if lease_seconds >= DNSMASQ_MIN_LEASE else "udhcpd"
        # udhcpd sends no T1: its clients renew at half the lease, whatever renew_seconds says.
        if self.kind == "dnsmasq" and not DNSMASQ_MIN_RENEW <= renew_seconds < lease_seconds:
            raise ValueError(f"renew_seconds must be from {DNSMASQ_MIN_RENEW} s (dnsmasq sends "
                             "no shorter renewal time) to below lease_seconds")
        self.log_path = directory / f"{self.kind}.log"
        self._hosts = directory / "dnsmasq.hosts"
        self._conf = directory / "udhcpd.conf"
        self._proc: subprocess.Popen[str] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 5.0) -> None:
        """Start the server and wait until it listens on port 67."""
        if self.running:
            raise DhcpError("the DHCP server is already running")
        self._write_reservation()
        with self.log_path.open("a") as log:
            self._proc = self.lab.popen(self.lab.router, *self.argv(), stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT)
        if not _wait(lambda: self._listening() or not self.running, timeout) or not self.running:
            self.stop()
            raise DhcpError(f"{self.kind} did not start:\n{_tail(self.log_path)}")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server (SIGTERM). Leases it handed out stay with the client until they
        expire. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, timeout)

    def change_reservation(self, address: str) -> None:
        """Reserve ``address`` for the MAC from now on (see the module docstring for what the
        client's next renewal then looks like)."""
        self.reserved = address
        if self.kind == "dnsmasq":
            reads = self._log_count("read ")
            self._write_reservation()
            if self.running:
                assert self._proc is not None
                self._proc.send_signal(signal.SIGHUP)  # dnsmasq re-reads --dhcp-hostsfile
                if not _wait(lambda: self._log_count("read ") > reads, 5.0):
                    raise DhcpError(f"dnsmasq did not re-read its hosts file:\n"
                                    f"{_tail(self.log_path)}")
        elif self.running:
            self.stop()
            self.start()
        else:
            self._write_reservation()

    def argv(self) -> list[str]:
        """The server's command line."""
        return self._dnsmasq_argv() if self.kind == "dnsmasq" else self._udhcpd_argv()

    def _listening(self) -> bool:
        proc = self.lab.run(self.lab.router, "cat", "/proc/net/udp", check=False)
        return f":{_DHCP_SERVER_PORT:04X} " in proc.stdout

    def _log_count(self, text: str) -> int:
        try:
            return self.log_path.read_text(errors="replace").count(text)
        except FileNotFoundError:
            return 0

    def _write_reservation(self) -> None:
        if self.kind == "dnsmasq":
            _replace_file(self._hosts, f"{self.mac},{self.reserved}\n")
        else:
            _replace_file(self._conf, self._udhcpd_conf())

    def _dnsmasq_argv(self) -> list[str]:
        net = ipaddress.IPv4Network(f"{self.router}/{self.netmask}", strict=False)
        rebind = min(self.renew_seconds * 2, self.lease_seconds - 1)
        return [
            *_program(("dnsmasq",)),
            "--keep-in-foreground",
            "--conf-file=/dev/null",  # never the host's /etc/dnsmasq.conf
            "--port=0",  # DHCP only, no DNS
            "--no-resolv",
            "--no-hosts",
            "--log-facility=-",
            f"--interface={self.interface}",
            "--bind-interfaces",
            "--user=root",
            "--group=root",
            f"--pid-file={self.dir / 'dnsmasq.pid'}",
            f"--dhcp-leasefile={self.dir / 'dnsmasq.leases'}",
            f"--dhcp-range={net.network_address},static,{self.netmask},{self.lease_seconds}s",
            f"--dhcp-hostsfile={self._hosts}",
            f"--dhcp-option=option:router,{self.router}",
            f"--dhcp-option=option:T1,{self.renew_seconds}",
            f"--dhcp-option=option:T2,{rebind}",
            "--dhcp-authoritative",  # NAK what it does not know instead of staying silent
        ]

    def _udhcpd_argv(self) -> list[str]:
        return [*_program(("udhcpd",), ("busybox", "udhcpd")), "-f", str(self._conf)]

    def _udhcpd_conf(self) -> str:
        # The pool is the reserved address alone: nothing else can be handed out.
        return (
            f"interface {self.interface}\n"
            f"start {self.reserved}\nend {self.reserved}\nmax_leases 1\n"
            f"static_lease {self.mac} {self.reserved}\n"
            f"lease_file {self.dir / 'udhcpd.leases'}\n"
            f"pidfile {self.dir / 'udhcpd.pid'}\n"
            f"min_lease {self.lease_seconds}\n"
            f"option lease {self.lease_seconds}\n"
            f"option subnet {self.netmask}\n"
            f"option router {self.router}\n"
        )


class DhcpClient:
    """ISC dhclient on ``interface`` in the lab's server namespace."""

    def __init__(self, lab: Lab, directory: Path, interface: str) -> None:
        self.lab = lab
        self.interface = interface
        self.lease_path = directory / f"dhclient.{interface}.leases"
        self.log_path = directory / f"dhclient.{interface}.log"
        self.events_path = directory / f"dhclient.{interface}.events"
        self._script = directory / f"dhclient.{interface}.script"
        self._conf = directory / "dhclient.conf"
        self._pid = directory / f"dhclient.{interface}.pid"
        self._proc: subprocess.Popen[str] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> str:
        """Start dhclient and wait until it has bound a lease; the leased address."""
        if self.running:
            raise DhcpError("the DHCP client is already running")
        _replace_file(self._conf, CLIENT_CONF)
        _replace_file(self._script, client_script(self.events_path), mode=0o700)
        self.events_path.touch()
        with self.log_path.open("a") as log:
            self._proc = self.lab.popen(self.lab.server, *self.argv(), stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT)
        return self.wait_bound(0, timeout).new or ""

    def argv(self) -> list[str]:
        """dhclient's command line: foreground, IPv4, the lab's own files only."""
        return [*_program(("dhclient",)), "-4", "-d", "-cf", str(self._conf),
                "-sf", str(self._script), "-lf", str(self.lease_path), "-pf", str(self._pid),
                self.interface]

    def stop(self, timeout: float = 5.0) -> None:
        """Stop dhclient without releasing (SIGTERM); the address stays. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, timeout)

    def events(self) -> list[DhcpEvent]:
        try:
            return parse_events(self.events_path.read_text())
        except FileNotFoundError:
            return []

    def wait_event(self, after: int, accept: Callable[[DhcpEvent], bool],
                   timeout: float) -> DhcpEvent:
        """The first event with index >= ``after`` that ``accept`` takes."""
        found: list[DhcpEvent] = []

        def arrived() -> bool:
            if self._proc is not None and self._proc.poll() is not None:
                raise DhcpError(f"dhclient exited ({self._proc.returncode}):\n"
                                f"{_tail(self.log_path)}")
            found[:] = [e for e in self.events()[after:] if accept(e)]
            return bool(found)

        if not _wait(arrived, timeout):
            raise DhcpError(f"no matching DHCP client event within {timeout:g} s; last ones: "
                            f"{self.events()[-5:]}\n{_tail(self.log_path)}")
        return found[0]

    def wait_bound(self, after: int, timeout: float) -> DhcpEvent:
        """The first successful BOUND/RENEW/REBIND/REBOOT from event index ``after`` on."""
        return self.wait_event(after, lambda e: e.bound and e.status == 0 and e.new is not None,
                               timeout)


def _replace_file(path: Path, text: str, mode: int = 0o600) -> None:
    """Write atomically: a reader (dnsmasq on SIGHUP, dhclient) never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(path)
