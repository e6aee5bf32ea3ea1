"""A throwaway network-namespace lab reproducing figure 3 of the policy-routing article.

Used by the test suite (real-kernel tests) and by ``polroutd demo``. Everything happens inside
network namespaces created here; nothing is ever added to, changed in or deleted from the root
network namespace::

                      10.225.160.0/24 (mgmt)                 10.225.128.0/24 (client zone)
    server  ens192 ──────────────────── to-mgmt   router   to-client ──────────────── eth0  client
            ens224 ──────────────────── to-data   (strict rp_filter,
                      10.225.176.0/24 (data)        forwarding on)

The server has a single default route, via the management gateway, exactly like the article.
A request from the client to the data address therefore arrives on ``to-data`` and is answered
through ``to-mgmt``; the router's strict reverse-path filter drops that asymmetric reply. With
``with_data_client=True`` the router's data side is a bridge ``br-data`` whose ports are
``to-data`` (server) and ``to-dataclient`` (a data-network client at 10.225.176.50).

IPv6 is configured alongside (``2001:db8:<net>::/64``, router link-local ``fe80::1`` on the
server-facing links). There is no IPv6 reverse-path filter on the router: neither nft nor
ip6tables is available on the machines this runs on, and IPv6 has no ``rp_filter`` sysctl, so
asymmetric IPv6 replies are *forwarded* (they can still be observed with
``lab.probes.link_counters``).

With ``dhcp_data=True`` the server's ens224 gets no static IPv4 address: it is leased by real
DHCP (:meth:`Lab.start_dhcp_server` in the router namespace, :meth:`Lab.start_dhcp_client` runs
ISC dhclient on ens224; see :mod:`polroutd.lab.dhcp` for the servers used and what a renewal
with a new address looks like on the wire). The DHCP client never touches ``resolv.conf``, the
hostname or routes; its lease file, pid file, script and logs live in the lab's temporary
directory (:attr:`Lab.temp_dir`), which teardown removes.

Namespaces are named ``<prefix>-<6 hex>-<role>``, role one of ``server``, ``router``,
``client``, ``dataclient``. Teardown terminates every process the lab (or anyone) started inside
them, deletes them and removes ``/etc/netns/<namespace>`` if it exists; it is idempotent, runs on
``__exit__``, when :meth:`Lab.build` fails (including on ``KeyboardInterrupt``) and at
interpreter exit for labs still alive, and defers ``SIGINT`` until it has finished.

Around this module: :mod:`polroutd.lab.netns` (namespace naming, deletion, leftovers),
:mod:`polroutd.lab.topology` (the figure as data: names, addresses, the wiring's ``ip`` lines),
:mod:`polroutd.lab.probes` (``lab.probes``: what tests and the demo observe: round trips,
counters, captures, notifications), :mod:`polroutd.lab.dhcp` (the DHCP server and client) and
:mod:`polroutd.lab.scripts` (the small programs run inside the namespaces).
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import logging
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from polroutd.lab import topology
from polroutd.lab.dhcp import DhcpClient, DhcpEvent, DhcpServer
from polroutd.lab.netns import (
    ETC_NETNS_MARK,
    NETNS_ETC_DIR,
    NETNS_RUN_DIR,
    OWNER_FILE,
    ROLES,
    LabCommandError,
    LabError,
    check_prefix,
    checked,
    delete_netns,
    netns_names_with_prefix,
    process_start,
    remove_etc_dir,
    remove_stale,
    run_command,
    sigint_deferred,
)
from polroutd.lab.probes import Monitor, MonitorEvent, PacketCount, Probes
from polroutd.lab.scripts import PING
from polroutd.lab.topology import (
    ADDR,
    CLIENT_IF,
    ROUTER_BRIDGE_DATA_IF,
    ROUTER_CLIENT_IF,
    ROUTER_DATA_IF,
    ROUTER_DATACLIENT_IF,
    ROUTER_MGMT_IF,
    SERVER_DATA_IF,
    SERVER_MGMT_IF,
    LabAddresses,
)

__all__ = [
    "ADDR",
    "CLIENT_IF",
    "DEFAULT_PREFIX",
    "ROLES",
    "ROUTER_BRIDGE_DATA_IF",
    "ROUTER_CLIENT_IF",
    "ROUTER_DATACLIENT_IF",
    "ROUTER_DATA_IF",
    "ROUTER_MGMT_IF",
    "SERVER_DATA_IF",
    "SERVER_MGMT_IF",
    "Lab",
    "LabAddresses",
    "LabCommandError",
    "LabError",
    "Monitor",
    "MonitorEvent",
    "PacketCount",
    "created_namespaces",
    "delete_netns",
    "netns_names_with_prefix",
    "remove_stale",
    "sigint_deferred",
]

log = logging.getLogger("polroutd.lab")

DEFAULT_PREFIX = "polroutd-lab"

# --------------------------------------------------------------------------------------------
# Module-level bookkeeping: what this process created, and labs still alive at exit.

_created_lock = threading.Lock()
_created: set[str] = set()
_live_labs: weakref.WeakSet[Lab] = weakref.WeakSet()


def created_namespaces() -> frozenset[str]:
    """Names of every namespace a :class:`Lab` in this process has created (alive or not)."""
    with _created_lock:
        return frozenset(_created)


def _teardown_live_labs() -> None:
    for lab in list(_live_labs):
        with contextlib.suppress(Exception):
            lab.teardown()


atexit.register(_teardown_live_labs)


class Lab:
    """Figure 3 of the article in network namespaces: server, router, client (+ data client).

    Use as a context manager (``with Lab() as lab: ...``) or call :meth:`build` and
    :meth:`teardown` yourself. Attributes ``server``, ``router``, ``client`` and
    ``data_client`` are the namespace names (known before the lab is built).

    ``narrate``, when given, is called with a shell rendering of every command that builds or
    tears down the lab, so a demo can show the operator exactly what happens.
    ``server_rp_filter`` is the server's ``net.ipv4.conf.all.rp_filter`` (default 2, loose, the
    Ubuntu default), so that the asymmetric reply is emitted by the server and visibly dropped
    by the router; use 1 to make the server itself drop the request instead.
    ``dhcp_data=True`` leaves ens224 without a static IPv4 address, for real DHCP.
    """

    def __init__(
        self,
        prefix: str = DEFAULT_PREFIX,
        *,
        with_data_client: bool = False,
        ipv6: bool = True,
        server_rp_filter: int = 2,
        dhcp_data: bool = False,
        narrate: Callable[[str], None] | None = None,
    ) -> None:
        check_prefix(prefix)
        if server_rp_filter not in (0, 1, 2):
            raise ValueError("server_rp_filter must be 0, 1 or 2")
        self.prefix = prefix
        self.token = secrets.token_hex(3)
        self.with_data_client = with_data_client
        self.ipv6 = ipv6
        self.server_rp_filter = server_rp_filter
        self.dhcp_data = dhcp_data
        self.addresses = ADDR
        self.probes = Probes(self)
        self.server = f"{prefix}-{self.token}-server"
        self.router = f"{prefix}-{self.token}-router"
        self.client = f"{prefix}-{self.token}-client"
        self.data_client: str | None = (
            f"{prefix}-{self.token}-dataclient" if with_data_client else None
        )
        #: The namespaces and the options that change how they are wired.
        self.shape = topology.Shape(self.server, self.router, self.client, self.data_client,
                                    ipv6, server_rp_filter, dhcp_data)
        #: The router's layer-3 interface on the data network (``br-data`` with a data client).
        self.router_data_if = self.shape.router_data_if
        self._narrate = narrate
        self._namespaces: list[str] = []  # created and not yet deleted, in creation order
        self._procs: list[subprocess.Popen[str]] = []
        self._lock = threading.RLock()
        self._built = False
        self._tmp: Path | None = None
        self._dhcp_server: DhcpServer | None = None
        self._dhcp_client: DhcpClient | None = None

    # ---------------------------------------------------------------- lifecycle

    @property
    def namespaces(self) -> tuple[str, ...]:
        """All namespace names of this lab (whether or not they exist right now)."""
        names = [self.server, self.router, self.client]
        if self.data_client is not None:
            names.append(self.data_client)
        return tuple(names)

    def detach(self) -> None:
        """Leave the lab up after this process exits (``polroutd demo --keep``): no teardown at
        interpreter exit, and the processes it started keep running. :func:`remove_stale`
        with the lab's prefix removes it later; :meth:`teardown` still works meanwhile."""
        _live_labs.discard(self)

    @property
    def built(self) -> bool:
        """True between a successful :meth:`build` and :meth:`teardown`."""
        return self._built

    def __enter__(self) -> Lab:
        self.build()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.teardown()
            return
        try:
            self.teardown()
        except Exception:  # never mask the body's exception
            log.exception("lab teardown failed while handling %r", exc)

    def build(self) -> None:
        """Create and configure every namespace. On any failure (KeyboardInterrupt included)
        everything made so far is torn down and the exception re-raised."""
        if self._built or self._namespaces:
            raise LabError("lab already built; tear it down first")
        _live_labs.add(self)
        started = time.monotonic()
        try:
            self._tmp = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-{self.token}-"))
            (self._tmp / OWNER_FILE).write_text(f"{os.getpid()} {process_start(os.getpid())}\n")
            for ns in self.namespaces:
                self._add_netns(ns)
            shape = self.shape
            for ns, settings in topology.sysctls(shape):
                self._sysctl(ns, *settings)
            self._batch(self.router, topology.router_lines(shape))
            self._sysctl(self.router, *topology.router_rp_filters(shape))
            self._batch(self.server, topology.server_lines(shape))
            for ns, lines in topology.clients(shape):
                self._batch(ns, lines)
            self._warm_neighbours()
        except BaseException:
            try:
                self.teardown()
            except Exception:
                log.exception("teardown after failed build also failed")
            raise
        self._built = True
        log.debug("lab %s built in %.3f s", self.token, time.monotonic() - started)

    def teardown(self) -> None:
        """Terminate lab processes, delete the namespaces and ``/etc/netns`` entries.

        Idempotent. SIGINT is deferred until teardown is complete. Raises :class:`LabError` if
        a namespace of this lab still exists afterwards.
        """
        with sigint_deferred(), self._lock:
            self._built = False
            self._stop_processes()
            self._dhcp_server = self._dhcp_client = None
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None
            for ns in reversed(self.namespaces):
                if ns in self._namespaces or (NETNS_RUN_DIR / ns).exists():
                    self._say(f"ip netns del {ns}")
                    delete_netns(ns)
                else:
                    remove_etc_dir(ns)
            self._namespaces = [ns for ns in self._namespaces if (NETNS_RUN_DIR / ns).exists()]
            _live_labs.discard(self)
            if self._namespaces:
                raise LabError(f"namespaces left after teardown: {self._namespaces}")

    # ---------------------------------------------------------------- build steps

    def _say(self, text: str) -> None:
        log.debug("%s", text)
        if self._narrate is not None:
            self._narrate(text)

    def _host(self, *argv: str) -> None:
        self._say(shlex.join(argv))
        checked(run_command(argv), argv)

    def _add_netns(self, ns: str) -> None:
        if (NETNS_RUN_DIR / ns).exists():
            raise LabError(f"namespace {ns} already exists")
        self._host("ip", "netns", "add", ns)
        with _created_lock:
            _created.add(ns)
        self._namespaces.append(ns)

    def _sysctl(self, ns: str, *settings: str) -> None:
        self._in_ns(ns, "sysctl", "-q", "-w", *settings)

    def _in_ns(self, ns: str, *argv: str) -> None:
        full = ("ip", "netns", "exec", ns, *argv)
        self._say(shlex.join(full))
        checked(run_command(full), full)

    def _batch(self, ns: str, lines: Sequence[str]) -> None:
        argv = ("ip", "netns", "exec", ns, "ip", "-batch", "-")
        script = "".join(f"{line}\n" for line in lines)
        self._say(f"{shlex.join(argv)} <<EOF\n{script}EOF")
        proc = subprocess.run(
            list(argv),
            input=script,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            start_new_session=True,
        )
        checked(proc, argv)

    def _warm_neighbours(self) -> None:
        # A real server talks through its default gateway all the time, so the router's MAC
        # is in its neighbour table. Without that, the asymmetric reply never even leaves the
        # server: its ARP request for 10.225.160.1 carries the data address as sender, and the
        # router (strict rp_filter also applies to ARP) does not answer. Resolve it up front so
        # the asymmetric reply really reaches the router and is dropped there (and counted in
        # TcpExt.IPReversePathFilter).
        argv = [sys.executable, "-c", PING, ADDR.router_mgmt4, "1", "2"]
        self._say(f"ip netns exec {self.server} ping -c 1 {ADDR.router_mgmt4}")
        self.run(self.server, *argv, timeout=10)

    # ---------------------------------------------------------------- using the lab

    def _check_ns(self, ns: str) -> None:
        if ns not in self.namespaces:
            raise LabError(f"{ns!r} is not a namespace of this lab ({', '.join(self.namespaces)})")

    def run(
        self, ns: str, *argv: str, check: bool = True, timeout: float = 10
    ) -> subprocess.CompletedProcess[str]:
        """Run ``ip netns exec ns argv...`` and return its text output.

        Raises :class:`LabCommandError` (a ``CalledProcessError``) on failure when ``check``.
        """
        self._check_ns(ns)
        full = ("ip", "netns", "exec", ns, *argv)
        proc = run_command(full, timeout=timeout)
        return checked(proc, full) if check else proc

    def ip_json(self, ns: str, *argv: str) -> Any:
        """Run ``ip -j argv...`` in ``ns`` and return the parsed JSON (``[]`` for no output)."""
        out = self.run(ns, "ip", "-j", *argv).stdout.strip()
        return json.loads(out) if out else []

    def popen(self, ns: str, *argv: str, **kwargs: Any) -> subprocess.Popen[str]:
        """Start ``argv`` inside ``ns``; tracked and terminated at teardown.

        Text mode and a new session are the defaults (so a terminal Ctrl-C reaches only the
        Python process, which then tears the lab down in order); other keyword arguments go to
        :class:`subprocess.Popen`.
        """
        self._check_ns(ns)
        kwargs.setdefault("start_new_session", True)
        kwargs["text"] = True
        with self._lock:
            if not self._built:
                raise LabError("lab is not built")
            proc: subprocess.Popen[str] = subprocess.Popen(
                ["ip", "netns", "exec", ns, *argv], **kwargs
            )
            self._procs.append(proc)
        return proc

    def _stop_processes(self, grace: float = 1.0) -> None:
        procs, self._procs = self._procs, []
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=1)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()

    def etc_dir(self, ns: str) -> Path:
        """Create (if needed) and return ``/etc/netns/<ns>``: files there are bind-mounted over
        ``/etc/<file>`` for processes started with ``ip netns exec`` (e.g. a ``resolv.conf`` for
        a DHCP client). Removed at teardown."""
        self._check_ns(ns)
        path = NETNS_ETC_DIR / ns
        for _ in range(3):  # another lab process may remove /etc/netns in between
            try:
                NETNS_ETC_DIR.mkdir(mode=0o755)
                (NETNS_ETC_DIR / ETC_NETNS_MARK).touch()
            except FileExistsError:
                pass
            try:
                path.mkdir(exist_ok=True)
                return path
            except FileNotFoundError:
                continue
        raise LabError(f"could not create {path}")

    # ---------------------------------------------------------------- temp files and DHCP

    @property
    def temp_dir(self) -> Path:
        """The lab's own temporary directory (mode 0700): DHCP files and logs, and whatever a
        caller wants gone with the lab (the demo's polroutd configuration). Removed at
        teardown."""
        if self._tmp is None:
            raise LabError("lab is not built")
        return self._tmp

    @property
    def data_mac(self) -> str:
        """The MAC address of the server's ens224 (the DHCP reservation's key)."""
        links = self.ip_json(self.server, "link", "show", "dev", SERVER_DATA_IF)
        return str(links[0]["address"])

    def data_address4(self) -> str | None:
        """The IPv4 address ens224 has right now (with ``dhcp_data``: the leased one)."""
        for entry in self.ip_json(self.server, "-4", "addr", "show", "dev", SERVER_DATA_IF):
            for info in entry.get("addr_info", []):
                if info.get("scope") == "global":
                    return str(info["local"])
        return None

    def start_dhcp_server(
        self, lease_seconds: int = 600, reserve: str = ADDR.server_data4, renew_seconds: int = 3
    ) -> None:
        """Serve 10.225.176.0/24 from the router's data-side interface (only there): the
        router option is 10.225.176.1 and ``reserve`` is the fixed address of ens224's MAC.

        ``lease_seconds`` of 120 or more: dnsmasq, telling the client to renew every
        ``renew_seconds`` (T1), so :meth:`renew` is quick. Shorter leases (to let one expire
        within seconds): busybox udhcpd; the client then renews at half the lease.
        """

        self._check_data_address(reserve)
        if self._dhcp_server is not None and self._dhcp_server.running:
            raise LabError("a DHCP server is already running; stop_dhcp_server() first")
        server = DhcpServer(
            self, self.temp_dir, interface=self.router_data_if, mac=self.data_mac,
            reserve=reserve, router=ADDR.router_data4, netmask=_netmask(ADDR.prefixlen4),
            lease_seconds=lease_seconds, renew_seconds=renew_seconds,
        )
        self._say(shlex.join(("ip", "netns", "exec", self.router, *server.argv())))
        server.start()
        self._dhcp_server = server

    def stop_dhcp_server(self) -> None:
        """Stop the DHCP server. The client keeps its lease until it expires. Idempotent."""
        if self._dhcp_server is not None:
            self._dhcp_server.stop()

    def change_reservation(self, new_address: str) -> None:
        """Reserve ``new_address`` for ens224 from now on; the client moves to it at its next
        renewal (:meth:`renew`)."""
        self._check_data_address(new_address)
        if self._dhcp_server is None:
            raise LabError("no DHCP server was started")
        self._dhcp_server.change_reservation(new_address)

    def start_dhcp_client(self, timeout: float = 10.0) -> str:
        """Run dhclient on ens224 (server namespace) and wait until the lease is bound and its
        address is on the interface; returns that address."""
        address = self._dhcp().start(timeout)
        self._say(shlex.join(("ip", "netns", "exec", self.server, *self._dhcp().argv())))
        return address

    def stop_dhcp_client(self) -> None:
        """Stop dhclient without releasing its lease (the address stays). Idempotent."""
        if self._dhcp_client is not None:
            self._dhcp_client.stop()

    @property
    def lease_path(self) -> Path:
        """dhclient's lease file (``-lf``): what polroutd's ``dhcp_lease_paths`` should name."""
        return self._dhcp().lease_path

    @property
    def dhcp_server_kind(self) -> str | None:
        """``"dnsmasq"``, ``"udhcpd"`` or None (no server started yet)."""
        return self._dhcp_server.kind if self._dhcp_server is not None else None

    def renew(self, timeout: float | None = None) -> str:
        """Wait for the client's next renewal to complete and return the address it holds
        afterwards. After :meth:`change_reservation` that is the new address (with dnsmasq: the
        renewal is NAKed and the client rediscovers at once; with udhcpd: the old lease has to
        expire first). The default timeout covers either."""
        server = self._dhcp_server
        if timeout is None:
            if server is None:
                timeout = 10.0
            elif server.kind == "dnsmasq":
                timeout = 10.0 + 2 * server.renew_seconds
            else:
                timeout = 10.0 + server.lease_seconds
        client = self._dhcp()
        event = client.wait_bound(len(client.events()), timeout)
        return event.new or ""

    def dhcp_events(self) -> list[DhcpEvent]:
        """Every run of the client's script so far (oldest first)."""
        return self._dhcp().events()

    def wait_dhcp_event(self, reason: str, timeout: float = 10.0, after: int = 0) -> DhcpEvent:
        """The first client script run with ``reason`` (e.g. ``"EXPIRE"``) among the events
        from index ``after`` on, waiting up to ``timeout`` seconds for it."""
        return self._dhcp().wait_event(after, lambda e: e.reason == reason, timeout)

    def dhcp_log(self, which: str = "client") -> str:
        """The DHCP client's (``"client"``) or server's (``"server"``) log so far."""
        if which == "client":
            path = self._dhcp().log_path
        elif which == "server" and self._dhcp_server is not None:
            path = self._dhcp_server.log_path
        else:
            raise LabError(f"no DHCP {which} log")
        try:
            return path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _dhcp(self) -> DhcpClient:

        if self._dhcp_client is None:
            self._dhcp_client = DhcpClient(self, self.temp_dir, SERVER_DATA_IF)
        return self._dhcp_client

    def _check_data_address(self, address: str) -> None:
        net = ipaddress.IPv4Network(ADDR.data_net4)
        ip = ipaddress.IPv4Address(address)
        taken = {ADDR.router_data4, ADDR.data_client4}
        if ip not in net or ip in (net.network_address, net.broadcast_address) or address in taken:
            raise ValueError(f"{address} is not a free host address of {ADDR.data_net4}")


def _netmask(prefixlen: int) -> str:
    return str(ipaddress.IPv4Network(f"0.0.0.0/{prefixlen}").netmask)
