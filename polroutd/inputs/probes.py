"""Probes of an uplink's path, on the asyncio loop: ICMP echo through an unprivileged ping
socket, or a TCP connect. No capability needed (docs/uplinks.md).

Each probe leaves from the interface's own address (the socket is bound to it, or the address
comes with each IPv4 request), so polroutd's own ``from ADDRESS lookup TABLE`` rule sends it
through that interface's gateway, whichever uplink carries the host's other traffic.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import itertools
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

from polroutd.core.health import ProbeResult

OnResult = Callable[[ProbeResult], None]

ICMP_ECHO_REQUEST = 8
ICMPV6_ECHO_REQUEST = 128
PING_GROUP_RANGE = Path("/proc/sys/net/ipv4/ping_group_range")
IP_PKTINFO = 8  # linux/in.h; Python's socket module does not export it
_sequence = itertools.count(1)

_REASONS = {
    errno.ECONNREFUSED: "refused",
    errno.EHOSTUNREACH: "unreachable",
    errno.ENETUNREACH: "unreachable",
    errno.EADDRNOTAVAIL: "no-source-address",
    errno.ENETDOWN: "link-down",
    errno.EACCES: "not-permitted",
    errno.EPERM: "not-permitted",
}


def _family(address: str) -> int:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def _destination(target: str, ifindex: int) -> tuple[str, int] | tuple[str, int, int, int]:
    if _family(target) == socket.AF_INET6:
        scope = ifindex if ipaddress.ip_address(target).is_link_local else 0
        return (target, 0, 0, scope)
    return (target, 0)


def icmp_socket(family: int) -> socket.socket:
    """An unprivileged ping socket; PermissionError when ``net.ipv4.ping_group_range`` leaves
    out this process's group."""
    proto = socket.IPPROTO_ICMPV6 if family == socket.AF_INET6 else socket.IPPROTO_ICMP
    sock = socket.socket(family, socket.SOCK_DGRAM, proto)
    sock.setblocking(False)
    return sock


def icmp_unavailable() -> str | None:
    """Why ICMP probes cannot run here, in one line; None when they can."""
    try:
        icmp_socket(socket.AF_INET).close()
    except OSError as exc:
        try:
            groups = PING_GROUP_RANGE.read_text().split()
        except OSError:
            groups = ["?", "?"]
        return (
            f"ICMP probes need an unprivileged ping socket ({exc.strerror}); "
            f"net.ipv4.ping_group_range is {' '.join(groups)}: allow polroutd's group, e.g. "
            "sysctl -w net.ipv4.ping_group_range='0 2147483647', or use probe = \"tcp:HOST:PORT\""
        )
    return None


class IcmpProbes:
    """Every ICMP probe of the daemon, through as few ping sockets as the kernel allows.

    IPv4: one socket for every uplink, each request's source address given with it
    (``IP_PKTINFO``), so routing picks the source's own rule as for a bound socket; the answers
    of a round arrive on that one socket and are read in one wake-up. IPv6: one socket per
    source address, bound to it (``IPV6_PKTINFO`` does not steer a ping socket's route lookup).
    Sockets stay open; replies are matched to their request by sequence number in a reader
    callback, and timeouts are timer handles: a probe costs a sendmsg and a recv, not a socket
    and a task of its own. The result is handed to the caller's callback, in the same
    wake-up as the reply or the timeout.

    ``probe`` raises OSError (PermissionError: ``net.ipv4.ping_group_range``) when the socket
    cannot be made or bound."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self._sockets: dict[tuple[int, str | None], socket.socket] = {}
        self._pending: dict[int, tuple[OnResult, float, asyncio.TimerHandle]] = {}

    def _socket(self, family: int, source: str) -> socket.socket:
        key = (family, None if family == socket.AF_INET else source)
        sock = self._sockets.get(key)
        if sock is None:
            sock = icmp_socket(family)
            if family == socket.AF_INET6:
                try:
                    sock.bind((source, 0, 0, 0))
                except OSError:
                    sock.close()
                    raise
            self._loop.add_reader(sock.fileno(), self._on_readable, sock)
            self._sockets[key] = sock
        return sock

    def probe(self, source: str, target: str, ifindex: int, timeout: float,
              on_result: OnResult) -> None:
        """One echo request from ``source`` to ``target``; ``on_result`` gets success on a
        reply within ``timeout``, else the failure."""
        family = socket.AF_INET6 if ":" in target else socket.AF_INET
        sock = self._socket(family, source)
        started = self._clock()
        seq = next(_sequence) & 0xFFFF
        # The kernel puts the socket's own identifier and the checksum in.
        kind = ICMPV6_ECHO_REQUEST if family == socket.AF_INET6 else ICMP_ECHO_REQUEST
        packet = struct.pack("!BBHHH", kind, 0, 0, 0, seq) + b"polroutd-probe"
        try:
            if family == socket.AF_INET:
                sock.sendmsg([packet], [_pktinfo(source)], 0, (target, 0))
            else:
                sock.sendto(packet, _destination(target, ifindex))
        except OSError as exc:
            on_result(_failed(self._clock, exc, started))
            return
        handle = self._loop.call_at(self._loop.time() + timeout, self._expire, seq)
        self._pending[seq] = (on_result, started, handle)

    def _expire(self, seq: int) -> None:
        pending = self._pending.pop(seq, None)
        if pending is not None:
            on_result, started, _handle = pending
            on_result(ProbeResult(self._clock(), False, None, "timeout", started))

    def _on_readable(self, sock: socket.socket) -> None:
        while True:
            try:
                reply = sock.recv(2048)
            except BlockingIOError:
                return
            except OSError:
                # An ICMP error (unreachable) for some earlier request: its timeout reports it.
                continue
            if len(reply) < 8:
                continue
            (seq,) = struct.unpack_from("!H", reply, 6)
            pending = self._pending.pop(seq, None)
            if pending is None:
                continue  # answered after its timeout
            on_result, started, handle = pending
            handle.cancel()
            now = self._clock()
            on_result(ProbeResult(now, True, now - started, None, started))

    def retain(self, sources: set[str]) -> None:
        """Close the IPv6 sockets of source addresses no longer probed from."""
        for key in [k for k in self._sockets if k[1] is not None and k[1] not in sources]:
            self._close(key)

    def _close(self, key: tuple[int, str | None]) -> None:
        sock = self._sockets.pop(key)
        self._loop.remove_reader(sock.fileno())
        sock.close()

    def close(self) -> None:
        for key in list(self._sockets):
            self._close(key)
        for _on_result, _started, handle in self._pending.values():
            handle.cancel()
        self._pending.clear()


def _pktinfo(source: str) -> tuple[int, int, bytes]:
    """``IP_PKTINFO`` ancillary data that makes ``source`` the request's source address."""
    return (socket.IPPROTO_IP, IP_PKTINFO,
            struct.pack("@i4s4s", 0, socket.inet_aton(source), bytes(4)))


async def tcp_probe(
    source: str, host: str, port: int, ifindex: int, timeout: float,
    clock: Callable[[], float] = time.monotonic,
) -> ProbeResult:
    """A non-blocking connect from ``source``; an established connection is success."""
    loop = asyncio.get_running_loop()
    started = clock()
    family = _family(host)
    sock = socket.socket(family, socket.SOCK_STREAM)
    with sock:
        sock.setblocking(False)
        try:
            sock.bind((source, 0, 0, 0) if family == socket.AF_INET6 else (source, 0))
            destination = _destination(host, ifindex)
            address = (destination[0], port, *destination[2:])
            await asyncio.wait_for(loop.sock_connect(sock, address), timeout)
        except TimeoutError:
            return ProbeResult(clock(), False, None, "timeout", started)
        except OSError as exc:
            return _failed(clock, exc, started)
        now = clock()
        return ProbeResult(now, True, now - started, None, started)


def _failed(clock: Callable[[], float], exc: OSError, sent: float) -> ProbeResult:
    reason = _REASONS.get(exc.errno or 0, errno.errorcode.get(exc.errno or 0, "error").lower())
    return ProbeResult(clock(), False, None, reason, sent)
