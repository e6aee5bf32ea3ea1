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


async def icmp_probe(
    source: str, target: str, ifindex: int, timeout: float,
    clock: Callable[[], float] = time.monotonic,
) -> ProbeResult:
    """One echo request from ``source`` to ``target``; a reply within ``timeout`` is success."""
    loop = asyncio.get_running_loop()
    started = clock()
    family = _family(target)
    kind = ICMPV6_ECHO_REQUEST if family == socket.AF_INET6 else ICMP_ECHO_REQUEST
    seq = next(_sequence) & 0xFFFF
    # The kernel puts the socket's own identifier and the checksum in.
    packet = struct.pack("!BBHHH", kind, 0, 0, 0, seq) + b"polroutd-probe"
    try:
        sock = icmp_socket(family)
    except OSError as exc:
        return _failed(started, clock, exc)
    with sock:
        try:
            sock.bind((source, 0, 0, 0) if family == socket.AF_INET6 else (source, 0))
            await loop.sock_sendto(sock, packet, _destination(target, ifindex))
            deadline = started + timeout
            while True:
                left = deadline - clock()
                if left <= 0:
                    raise TimeoutError
                reply = await asyncio.wait_for(loop.sock_recv(sock, 2048), left)
                if len(reply) >= 8 and struct.unpack_from("!H", reply, 6)[0] == seq:
                    return ProbeResult(clock(), True, clock() - started)
        except TimeoutError:
            return ProbeResult(clock(), False, None, "timeout")
        except OSError as exc:
            return _failed(started, clock, exc)


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
            return ProbeResult(clock(), False, None, "timeout")
        except OSError as exc:
            return _failed(started, clock, exc)
        return ProbeResult(clock(), True, clock() - started)


def _failed(started: float, clock: Callable[[], float], exc: OSError) -> ProbeResult:
    reason = _REASONS.get(exc.errno or 0, errno.errorcode.get(exc.errno or 0, "error").lower())
    return ProbeResult(clock(), False, None, reason)
