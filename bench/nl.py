"""A minimal rtnetlink client for observing and poking a namespace from outside the daemon.

Deliberately independent of ``polroutd.netlink.codec`` (the code under test): it knows just
enough of the wire format to add and delete IPv4 addresses, dump rules, and timestamp rule events.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass

from bench import BenchError
from polroutd.lab.netns import in_netns

SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
SO_RCVBUFFORCE = 33

NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWADDR, RTM_DELADDR = 20, 21
RTM_NEWRULE, RTM_DELRULE, RTM_GETRULE = 32, 33, 34
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP = 0x1, 0x4, 0x200, 0x400, 0x300
RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_RULE = 5, 8
IFA_ADDRESS, IFA_LOCAL = 1, 2
FRA_SRC, FRA_PRIORITY, FRA_TABLE, FRA_PROTOCOL = 2, 6, 15, 21
AF_INET = 2

_HDR = struct.Struct("=IHHII")
_ATTR = struct.Struct("=HH")
_FIB = struct.Struct("=BBBBBBBBI")
_IFA = struct.Struct("=BBBBI")
_U32 = struct.Struct("=I")


@dataclass(frozen=True, slots=True)
class RuleInfo:
    src: str | None
    table: int
    priority: int
    protocol: int


def _messages(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, seq, payload) of every message in a datagram."""
    offset = 0
    while offset + 16 <= len(data):
        length, mtype, _flags, seq, _pid = _HDR.unpack_from(data, offset)
        if length < 16:
            return
        yield mtype, seq, data[offset + 16 : offset + length]
        offset += (length + 3) & ~3


def parse_rule(payload: bytes) -> RuleInfo:
    family, _dl, src_len, _tos, table, _r1, _r2, _action, _flags = _FIB.unpack_from(payload)
    src: str | None = None
    priority = protocol = 0
    offset = _FIB.size
    while offset + 4 <= len(payload):
        length, atype = _ATTR.unpack_from(payload, offset)
        if length < 4:
            break
        value = payload[offset + 4 : offset + length]
        atype &= 0x3FFF
        if atype == FRA_SRC and family == AF_INET and src_len:
            src = socket.inet_ntop(AF_INET, value)
        elif atype == FRA_TABLE:
            (table,) = _U32.unpack_from(value)
        elif atype == FRA_PRIORITY:
            (priority,) = _U32.unpack_from(value)
        elif atype == FRA_PROTOCOL:
            protocol = value[0]
        offset += (length + 3) & ~3
    return RuleInfo(src, table, priority, protocol)


def _attr(atype: int, value: bytes) -> bytes:
    return _ATTR.pack(4 + len(value), atype) + value + b"\0" * ((-len(value)) & 3)


class Socket:
    """One NETLINK_ROUTE socket created inside a namespace; optionally joined to groups."""

    def __init__(self, ns: str, groups: tuple[int, ...] = (), rcvbuf: int = 64 << 20) -> None:
        def make() -> socket.socket:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
            sock.bind((0, 0))
            for group in groups:
                sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
            return sock

        self.sock = in_netns(ns, make)
        self.seq = 0
        # recv(n) would allocate (and shrink) an n-byte object per datagram: tens of µs each
        self._buffer = bytearray(1 << 20)
        self._view = memoryview(self._buffer)

    def close(self) -> None:
        self.sock.close()

    def recv(self, timeout: float) -> bytes | None:
        """One datagram, or None after ``timeout`` seconds of nothing."""
        readable, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not readable:
            return None
        size = self.sock.recv_into(self._buffer)
        return bytes(self._view[:size])

    def drain(self) -> int:
        """Discards whatever is queued; returns how many datagrams that was."""
        count = 0
        while self.recv(0) is not None:
            count += 1
        return count

    # --- requests --------------------------------------------------------------------------

    def _request(self, mtype: int, flags: int, body: bytes) -> int:
        self.seq += 1
        self.sock.send(_HDR.pack(16 + len(body), mtype, flags, self.seq, 0) + body)
        return self.seq

    def address(self, op: str, index: int, address: str, prefixlen: int) -> int:
        """Sends an IPv4 address add/delete (acknowledged); returns its sequence number."""
        raw = socket.inet_pton(AF_INET, address)
        body = _IFA.pack(AF_INET, prefixlen, 0, 0, index) + _attr(IFA_LOCAL, raw) + _attr(
            IFA_ADDRESS, raw
        )
        if op == "add":
            return self._request(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE
                                 | NLM_F_EXCL, body)
        return self._request(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, body)

    def wait_ack(self, seq: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            data = self.recv(deadline - time.monotonic())
            if data is None:
                raise BenchError(f"no netlink acknowledgement for request {seq}")
            for mtype, mseq, payload in _messages(data):
                if mtype == NLMSG_ERROR and mseq == seq:
                    (error,) = struct.unpack_from("=i", payload)
                    if error:
                        raise BenchError(f"netlink request {seq} failed: errno {-error}")
                    return

    def rules(self) -> list[RuleInfo]:
        """A dump of the IPv4 rules."""
        seq = self._request(RTM_GETRULE, NLM_F_REQUEST | NLM_F_DUMP, _FIB.pack(AF_INET, *[0] * 8))
        out: list[RuleInfo] = []
        while True:
            data = self.recv(10.0)
            if data is None:
                raise BenchError("rule dump timed out")
            for mtype, mseq, payload in _messages(data):
                if mseq != seq:
                    continue
                if mtype == NLMSG_DONE:
                    return out
                if mtype == NLMSG_ERROR:
                    raise BenchError("rule dump failed")
                out.append(parse_rule(payload))


class RuleWatch:
    """Timestamps IPv4 rule (and optionally address) events as they arrive."""

    def __init__(self, ns: str, *, addresses: bool = False) -> None:
        groups = (RTNLGRP_IPV4_RULE, RTNLGRP_IPV4_IFADDR) if addresses else (RTNLGRP_IPV4_RULE,)
        self.sock = Socket(ns, groups)
        self.last_address_event = 0.0
        self.address_events = 0

    def close(self) -> None:
        self.sock.close()

    def drain(self) -> None:
        self.sock.drain()

    def events(self, timeout: float) -> list[tuple[float, int, RuleInfo]] | None:
        """Rule events of the next datagram: (arrival time, NEWRULE/DELRULE, rule); None when
        nothing arrived within ``timeout`` seconds."""
        data = self.sock.recv(timeout)
        if data is None:
            return None
        now = time.perf_counter()
        out = []
        for mtype, _seq, payload in _messages(data):
            if mtype in (RTM_NEWRULE, RTM_DELRULE):
                out.append((now, mtype, parse_rule(payload)))
            elif mtype in (RTM_NEWADDR, RTM_DELADDR):
                self.address_events += 1
                self.last_address_event = now
        return out

    def wait_for(self, added: set[str], deleted: set[str], timeout: float) -> dict[str, float]:
        """Arrival time of a NEWRULE for each source in ``added`` and a DELRULE for each in
        ``deleted``; raises when they have not all arrived within ``timeout`` seconds."""
        pending_add, pending_del = set(added), set(deleted)
        seen: dict[str, float] = {}
        deadline = time.perf_counter() + timeout
        while pending_add or pending_del:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise BenchError(
                    f"timed out: {len(pending_add)} rule(s) never appeared, "
                    f"{len(pending_del)} never went (e.g. {sorted(pending_add | pending_del)[:3]})"
                )
            for at, mtype, rule in self.events(min(left, 0.5)) or ():
                if rule.src is None:
                    continue
                if mtype == RTM_NEWRULE and rule.src in pending_add:
                    pending_add.discard(rule.src)
                    seen[rule.src] = at
                elif mtype == RTM_DELRULE and rule.src in pending_del:
                    pending_del.discard(rule.src)
                    seen[rule.src] = at
        return seen

    def quiet(self, period: float, timeout: float) -> float:
        """Waits until no rule event came for ``period`` seconds; returns the last event's
        arrival time (0.0 if none came)."""
        deadline = time.perf_counter() + timeout
        last = 0.0
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise BenchError(f"rules still changing after {timeout:.0f} s")
            events = self.events(min(period, left))
            if events is None:
                return last
            if events:
                last = events[-1][0]
