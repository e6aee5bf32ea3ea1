"""Probes of an uplink's path, on the asyncio loop: ICMP echo through an unprivileged ping
socket, or a TCP connect. No capability needed (docs/uplinks.md).

Each probe leaves from the interface's own address (the socket is bound to it), so polroutd's
own ``from ADDRESS lookup TABLE`` rule sends it through that interface's gateway, whichever
uplink carries the host's other traffic.
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

ICMP_ECHO_REQUEST = 8
ICMPV6_ECHO_REQUEST = 128
PING_GROUP_RANGE = Path("/proc/sys/net/ipv4/ping_group_range")
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


class IcmpProber:
    """Echo requests from one source address through one ping socket, kept open: replies are
    matched to their request by sequence number in a reader callback and timeouts are timer
    handles, so a probe costs a sendto and a recv, not a socket and a task of its own (four
    uplinks probed five times a second stay far below 1 % of a core).

    Raises OSError (PermissionError: ``net.ipv4.ping_group_range``) when the socket cannot be
    made or bound."""

    def __init__(self, source: str, family: int, ifindex: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.source, self.family, self.ifindex = source, family, ifindex
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self._kind = ICMPV6_ECHO_REQUEST if family == socket.AF_INET6 else ICMP_ECHO_REQUEST
        self._sock = icmp_socket(family)
        try:
            self._sock.bind((source, 0, 0, 0) if family == socket.AF_INET6 else (source, 0))
        except OSError:
            self._sock.close()
            raise
        self._pending: dict[int, tuple[asyncio.Future[ProbeResult], float,
                                       asyncio.TimerHandle]] = {}
        self._loop.add_reader(self._sock.fileno(), self._on_readable)

    def probe(self, target: str, timeout: float) -> asyncio.Future[ProbeResult]:
        """The result of one echo request to ``target``: success on a reply within
        ``timeout``."""
        future: asyncio.Future[ProbeResult] = self._loop.create_future()
        started = self._clock()
        seq = next(_sequence) & 0xFFFF
        # The kernel puts the socket's own identifier and the checksum in.
        packet = struct.pack("!BBHHH", self._kind, 0, 0, 0, seq) + b"polroutd-probe"
        try:
            self._sock.sendto(packet, _destination(target, self.ifindex))
        except OSError as exc:
            future.set_result(_failed(self._clock, exc, started))
            return future
        handle = self._loop.call_at(self._loop.time() + timeout, self._expire, seq)
        self._pending[seq] = (future, started, handle)
        return future

    def _expire(self, seq: int) -> None:
        future, started, _handle = self._pending.pop(seq, (None, 0.0, None))
        if future is not None and not future.done():
            future.set_result(ProbeResult(self._clock(), False, None, "timeout", started))

    def _on_readable(self) -> None:
        while True:
            try:
                reply = self._sock.recv(2048)
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
            future, started, handle = pending
            handle.cancel()
            if not future.done():
                now = self._clock()
                future.set_result(ProbeResult(now, True, now - started, None, started))

    def close(self) -> None:
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        for future, _started, handle in self._pending.values():
            handle.cancel()
            if not future.done():
                future.cancel()
        self._pending.clear()


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
