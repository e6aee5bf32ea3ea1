"""The one module that does netlink I/O: consistent reads, batched writes, the event socket.

Everything here runs in the caller's network namespace. Library and socket errors are turned
into this module's typed errors; per-operation failures come back as data, never as exceptions.
"""

from __future__ import annotations

import array
import contextlib
import errno
import gc
import os
import socket
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, TypeVar, cast

from polroutd.core.errors import DumpInterrupted, KernelError, NoNetAdmin, Overrun
from polroutd.core.kernelview import Change, EventKind, KernelObject
from polroutd.core.kernelview import Event as Event  # re-exported: the events it reads
from polroutd.core.limits import RT_TABLE_LOCAL
from polroutd.core.model import (
    Address,
    KernelState,
    Link,
    Operation,
    OpResult,
    Route,
    RouteOp,
    Rule,
    RuleOp,
)
from polroutd.netlink import codec as rtnl
from polroutd.netlink.sender import NoThread, Sender

T = TypeVar("T")

SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
NETLINK_GET_STRICT_CHK = 12
SO_RCVBUFFORCE = 33
SO_ATTACH_FILTER = 26

REQUEST_BUFFER = 8 << 20
EVENT_BUFFER = 32 << 20  # memory is only used while events queue up
DUMP_ATTEMPTS = 5
# Requests per sendmsg: big enough to amortise syscalls, small enough that the error messages
# of one batch (were every operation to fail) always fit the receive buffer.
BATCH = 256
# The first batch of a pipelined apply (see Netlink._apply_pipelined): small, for the kernel to
# start early (encoding a full batch takes ~1 ms).
FIRST_BATCH = 64
# Receive buffer for one datagram: far above the 32 KiB the kernel puts in one dump datagram.
# Received into a preallocated buffer: ``recv(1 MiB)`` allocates (and shrinks) a 1 MiB object
# per datagram, ~35 µs each, which made reading a thousand acknowledgements slower than the
# kernel's work for the operations themselves.
RECV_SIZE = 1 << 20
# Dumps of one type always use one sequence number (its type added), far from the operations'
# (which count up from 1): an unchanged dump then comes back byte for byte (see Netlink._read).
_DUMP_SEQ = 0xFFFF0000

# Outcomes that mean "already as asked": the kernel state is what the operation wanted.
IDEMPOTENT = {
    ("rule", "add"): errno.EEXIST,
    ("rule", "delete"): errno.ENOENT,
    ("route", "delete"): errno.ESRCH,
}
_SUCCESS: tuple[int, str | None] = (0, None)
_DUMP_INTR = rtnl.NLM_F_DUMP_INTR
_LAST_CONTROL = max(rtnl.NLMSG_DONE, rtnl.NLMSG_ERROR)  # no rtnetlink message type is this low
_UNKNOWN = object()  # a message not seen in the last dump (None: seen, and decoded to nothing)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector held off while thousands of objects are built (a dump
    decoded, a state decided, a plan applied). They hold no cycles, so a collection meanwhile
    finds nothing, yet walks every one of them still alive: at 1,024 rules that was 3-8 ms
    of a cold reconcile. Deferred, not skipped: collections resume at the next allocation
    after, with whatever cycles were made meanwhile. Nested uses leave it to the outermost."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _Receiver:
    """Reads one datagram at a time into a buffer allocated once."""

    def __init__(self) -> None:
        self.buffer = bytearray(RECV_SIZE)
        self._view = memoryview(self.buffer)

    def recv(self, sock: socket.socket) -> bytes:
        size = sock.recv_into(self.buffer)
        return bytes(self._view[:size])


def _netlink_socket(rcvbuf: int) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    for option in (NETLINK_EXT_ACK, NETLINK_CAP_ACK, NETLINK_GET_STRICT_CHK):
        with contextlib.suppress(OSError):  # older kernels: lose the nicety, keep working
            sock.setsockopt(SOL_NETLINK, option, 1)
    sock.bind((0, 0))
    return sock


NO_NET_ADMIN = (
    "the kernel refuses changes to routes and rules (EPERM): polroutd needs CAP_NET_ADMIN "
    "in this network namespace; run it as root or grant the capability"
)
CAP_NET_ADMIN = 12  # linux/capability.h


def has_net_admin(status_file: str = "/proc/self/status") -> bool:
    """Whether this process has CAP_NET_ADMIN in its effective set (True when it cannot tell:
    then the kernel's EPERM will say so)."""
    try:
        with open(status_file, encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    except (OSError, ValueError, IndexError):
        pass
    return True


def _not_local(payload: bytes) -> bool:
    """Whether a route message is of another table than the local one. Its rtm_table byte
    says so at once for a thousand local routes (RT_TABLE_COMPAT: the table is in RTA_TABLE)."""
    return payload[4] != RT_TABLE_LOCAL and rtnl.route_table_of(payload) != RT_TABLE_LOCAL


class Netlink:
    """A request socket: reads the kernel's state and applies operations."""

    def __init__(self, *, pipelined: bool | None = None) -> None:
        """``pipelined``: whether applies of more than one batch overlap the kernel's work with
        Python's (see ``_apply_pipelined``); None: when this process may use several CPUs
        (on one, the thread's hand-overs cost more than they save)."""
        self._sock = _netlink_socket(REQUEST_BUFFER)
        self._pipelined = pipelined
        self._seq = 0
        self._receiver = _Receiver()
        self._memo: dict[int, dict[bytes, object]] = {}  # dump type -> message -> object
        # dump type -> datagram -> (its objects, whether it ended the dump)
        self._datagrams: dict[int, dict[bytes, object]] = {}

    @property
    def portid(self) -> int:
        """This socket's netlink port id: the kernel puts it in the events our requests cause."""
        port: int = self._sock.getsockname()[0]
        return port

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq

    def _send(self, data: bytes) -> None:
        try:
            self._sock.send(data)
        except OSError as exc:
            raise KernelError(f"netlink send failed: {exc.strerror}", exc.errno or 0) from exc

    def _recv(self) -> bytes:
        try:
            return self._receiver.recv(self._sock)
        except OSError as exc:
            raise KernelError(f"netlink receive failed: {exc.strerror}", exc.errno or 0) from exc

    def _discard_stale(self) -> None:
        """Drops whatever an earlier request left unread (a dump abandoned by an exception):
        dumps use one sequence number per type, so a stale answer would look like a fresh one."""
        while True:
            try:
                self._sock.recv_into(self._receiver.buffer, 0, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                raise KernelError(
                    f"netlink receive failed: {exc.strerror}", exc.errno or 0) from exc

    def _read(
        self, mtype: int, decode: Callable[[bytes], T | None],
        keep: Callable[[bytes], bool] | None = None,
    ) -> tuple[T, ...]:
        """One complete, uninterrupted dump, decoded (the payloads ``keep`` accepts).

        In a steady state most of a dump is what the previous one was, byte for byte: each
        type's dump has a sequence number of its own, so an unchanged datagram is identical to
        one of the last dump's, and its objects are taken from there without looking at its
        messages; in a datagram that changed, a message identical to one seen before is not
        decoded again (decoding is a pure function of the bytes). Only the last dump's
        datagrams and messages are kept, so memory stays bounded."""
        seq = _DUMP_SEQ + mtype
        unpack_header = rtnl.NLMSG_HEADER.unpack_from
        for _attempt in range(DUMP_ATTEMPTS):
            self._discard_stale()
            self._send(rtnl.encode_dump(mtype, seq))
            seen = self._datagrams.get(mtype, {})
            # (Any: the memo holds this dump's objects; no cast() call per message.)
            known: dict[bytes, Any] = self._memo.get(mtype, {})
            datagrams: dict[bytes, tuple[tuple[T, ...], bool]] = {}
            payloads: dict[bytes, object] = {}
            out: list[T] = []
            interrupted = done = False
            while not done:
                data = self._recv()
                hit = cast("tuple[tuple[T, ...], bool] | None", seen.get(data))
                if hit is not None:
                    out.extend(hit[0])
                    done = hit[1]
                    datagrams[data] = hit
                    continue
                objects: list[T] = []
                clean = True
                # The messages framed here as rtnl.iter_messages frames them, without a
                # generator and a tuple per message (a read has thousands).
                offset, end = 0, len(data)
                while offset + 16 <= end:
                    length, msg_type, flags, msg_seq, _pid = unpack_header(data, offset)
                    if length < 16 or offset + length > end:
                        raise ValueError(f"truncated netlink message at offset {offset}")
                    payload = data[offset + 16 : offset + length]
                    offset += (length + 3) & ~3
                    if msg_seq != seq:
                        clean = False
                        continue  # not an answer to this dump
                    if flags & _DUMP_INTR:
                        interrupted, clean = True, False
                    if msg_type <= _LAST_CONTROL:  # (names looked up once: a read has thousands)
                        if msg_type == rtnl.NLMSG_DONE:
                            done = True
                            break
                        if msg_type == rtnl.NLMSG_ERROR:
                            code, text = rtnl.decode_error(payload, flags)
                            raise KernelError(
                                f"dump {mtype} failed: {text or os.strerror(code)}", code
                            )
                    if keep is not None and not keep(payload):
                        continue
                    obj = known.get(payload, _UNKNOWN)
                    if obj is _UNKNOWN:
                        obj = decode(payload)
                    payloads[payload] = obj
                    if obj is not None:
                        objects.append(obj)
                out.extend(objects)
                if clean:
                    datagrams[data] = (tuple(objects), done)
            if not interrupted:
                self._datagrams[mtype] = cast("dict[bytes, object]", datagrams)
                # The messages of the datagrams decoded this time, and those kept from before
                # (a datagram taken whole was not looked into) until they outnumber the objects.
                if len(known) + len(payloads) <= 2 * len(out) + 1024:
                    payloads = {**known, **payloads}
                self._memo[mtype] = payloads
                return tuple(out)
        raise DumpInterrupted(f"dump {mtype} kept changing under us ({DUMP_ATTEMPTS} tries)")

    def read_links(self) -> tuple[Link, ...]:
        return self._read(rtnl.RTM_GETLINK, rtnl.decode_link)

    def read_addresses(self) -> tuple[Address, ...]:
        return self._read(rtnl.RTM_GETADDR, rtnl.decode_address)

    def read_rules(self) -> tuple[Rule, ...]:
        return self._read(rtnl.RTM_GETRULE, rtnl.decode_rule)

    def read_routes(self) -> tuple[Route, ...]:
        # The local table holds one route per address: never ours, often the largest by far.
        return self._read(rtnl.RTM_GETROUTE, rtnl.decode_route, keep=_not_local)

    def read_state(self) -> KernelState:
        """Links, addresses, routes and rules; raises rather than return a partial picture."""
        with collector_paused():
            return self._read_state()

    def _read_state(self) -> KernelState:
        return KernelState(
            links=self.read_links(),
            addresses=self.read_addresses(),
            routes=self.read_routes(),
            rules=self.read_rules(),
        )

    def apply(self, operations: Sequence[Operation]) -> list[OpResult]:
        """Sends every operation (many per sendmsg) and collects each one's outcome.

        Raises ``NoNetAdmin`` when the kernel refuses with EPERM: every change would be."""
        with collector_paused():
            return self._apply(operations)

    def _apply(self, operations: Sequence[Operation]) -> list[OpResult]:
        if len(operations) > BATCH and self._pipeline_pays():
            with contextlib.suppress(NoThread):
                return self._apply_pipelined(operations)
        results: list[OpResult] = []
        for start in range(0, len(operations), BATCH):
            batch = self._apply_batch(operations[start : start + BATCH])
            _refuse_without_net_admin(batch)
            results.extend(batch)
        return results

    def _pipeline_pays(self) -> bool:
        if self._pipelined is None:
            return len(os.sched_getaffinity(0)) > 1
        return self._pipelined

    def _apply_batch(self, batch: Sequence[Operation]) -> list[OpResult]:
        """One sendmsg for the whole batch. The requests ask for no acknowledgement (the kernel
        still answers every failure), and a final NOOP that does is the barrier: netlink
        handles one sendmsg's messages in order, so once its ack arrives, an operation without
        an error message succeeded. One datagram to read instead of one per operation."""
        request = self._encode_batch(batch)
        return _outcomes(request, self._exchange(request))

    def _encode_batch(self, batch: Sequence[Operation]) -> _Request:
        by_seq: dict[int, Operation] = {}
        chunks = []
        for operation in batch:
            seq = self._next_seq()
            by_seq[seq] = operation
            chunks.append(encode_operation(operation, seq))
        barrier = self._next_seq()
        chunks.append(rtnl.encode_barrier(barrier))
        return _Request(batch, by_seq, barrier, b"".join(chunks))

    def _exchange(self, request: _Request) -> dict[int, tuple[int, str | None]]:
        """Sends one batch and reads the answers up to its barrier's: sequence -> (errno, text)
        of the operations that failed, and the barrier's own."""
        self._send(request.data)
        by_seq, barrier = request.by_seq, request.barrier
        errors: dict[int, tuple[int, str | None]] = {}
        while barrier not in errors:
            for msg_type, flags, seq, _pid, payload in rtnl.iter_messages(self._recv()):
                if msg_type == rtnl.NLMSG_ERROR and (seq in by_seq or seq == barrier):
                    errors[seq] = rtnl.decode_error(payload, flags)
        return errors

    def _apply_pipelined(self, operations: Sequence[Operation]) -> list[OpResult]:
        """What the batch by batch loop gives, with the kernel's work overlapping Python's: a
        thread sends each batch and reads its answers (the kernel carries out the requests
        inside sendmsg, with the GIL released: at 1,024 rules most of an apply) while this
        one encodes the next batches and makes the results of those answered. The socket is
        the sender's alone meanwhile, and it sends a batch only after reading the answers of
        the one before, as the loop does (so they always fit the receive buffer); after a
        batch refused with EPERM it sends no more."""
        pipe = Sender(self._exchange)
        results: list[OpResult] = []
        try:
            requests = []
            for start, end in _pipeline_batches(len(operations)):
                request = self._encode_batch(operations[start:end])
                pipe.submit(request)
                requests.append(request)
            pipe.submit(None)
            for request in requests:
                batch = _outcomes(request, pipe.answers())
                _refuse_without_net_admin(batch)
                results.extend(batch)
        finally:
            pipe.close()
        return results


def _pipeline_batches(count: int) -> Iterator[tuple[int, int]]:
    """Where the pipeline's batches start and end: the first a small one, so that the kernel
    starts early, then ``BATCH`` operations each."""
    first = min(FIRST_BATCH, count)
    yield 0, first
    for start in range(first, count, BATCH):
        yield start, min(start + BATCH, count)


class _Request(NamedTuple):
    """One batch of operations, encoded: its requests by sequence number, and the barrier's."""

    batch: Sequence[Operation]
    by_seq: dict[int, Operation]
    barrier: int
    data: bytes


def _outcomes(request: _Request, errors: dict[int, tuple[int, str | None]]) -> list[OpResult]:
    if len(errors) == 1:  # the barrier's acknowledgement alone: every operation succeeded
        return [OpResult(operation) for operation in request.batch]
    results = []
    for seq, operation in request.by_seq.items():
        code, text = errors.get(seq, _SUCCESS)
        if code == IDEMPOTENT.get((operation.kind, operation.op)):
            code, text = _SUCCESS
        results.append(OpResult(operation, code, text))
    return results


def _refuse_without_net_admin(batch: list[OpResult]) -> None:
    if any(result.errno == errno.EPERM for result in batch):
        raise NoNetAdmin(NO_NET_ADMIN, errno.EPERM)


# No NLM_F_ACK: only failures are answered (see Netlink._apply_batch).
_CREATE = rtnl.NLM_F_REQUEST | rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL
# Without EXCL: an IPv6 route without next hop beside one through another device at the same
# place (the kernel still answers EEXIST for an identical one).
_CREATE_BESIDE = rtnl.NLM_F_REQUEST | rtnl.NLM_F_CREATE
_REPLACE = rtnl.NLM_F_REQUEST | rtnl.NLM_F_CREATE | rtnl.NLM_F_REPLACE
_DELETE = rtnl.NLM_F_REQUEST


def encode_operation(operation: Operation, seq: int) -> bytes:
    if isinstance(operation, RuleOp):
        if operation.op == "add":
            return rtnl.encode_rule(rtnl.RTM_NEWRULE, _CREATE, seq, operation.rule)
        return rtnl.encode_rule(rtnl.RTM_DELRULE, _DELETE, seq, operation.rule)
    assert isinstance(operation, RouteOp)
    if operation.op == "add":
        flags = _CREATE_BESIDE if operation.route.keyed_by_device else _CREATE
        return rtnl.encode_route(rtnl.RTM_NEWROUTE, flags, seq, operation.route)
    if operation.op == "replace":
        return rtnl.encode_route(rtnl.RTM_NEWROUTE, _REPLACE, seq, operation.route)
    return rtnl.encode_route(rtnl.RTM_DELROUTE, _DELETE, seq, operation.route)


_DECODERS: dict[EventKind, Callable[[bytes], KernelObject | None]] = {
    "link": rtnl.decode_link,
    "address": rtnl.decode_address,
    "route": rtnl.decode_route,
    "rule": rtnl.decode_rule,
}
_DELETES = frozenset({rtnl.RTM_DELLINK, rtnl.RTM_DELADDR, rtnl.RTM_DELROUTE, rtnl.RTM_DELRULE})


def decode_event(message_type: int, flags: int, payload: bytes) -> Event | None:
    """The event with its object, decoded by the codec's dump decoders (an event carries the
    same message a dump does); None for message types that announce no change."""
    kind = rtnl.EVENT_TYPES.get(message_type)
    if kind is None:
        return None
    change: Change = "del" if message_type in _DELETES else "new"
    ifindex = up = None
    if kind == "link":  # which link, and whether up: even when the rest does not decode
        link = rtnl.link_event(payload)
        if link is not None:
            ifindex, up = link[0], link[1] and change == "new"
    try:
        if kind == "route" and rtnl.route_table_of(payload) == RT_TABLE_LOCAL:
            # The local table (a route or two per address: thousands in an address storm) is
            # never read and never ours: the event counts, its route is not decoded.
            return Event(kind, change)
        obj = _DECODERS[kind](payload)
    except (struct.error, ValueError, IndexError, OSError):
        # undecodable: only a hint to read everything again
        return Event(kind, ifindex=ifindex, up=up)
    return Event(kind, change, obj, kind == "route" and bool(flags & rtnl.NLM_F_REPLACE),
                 ifindex, up)


def _attach_filter(sock: socket.socket, program: bytes) -> bool:
    """Attaches the classic BPF ``program`` to ``sock`` (the kernel copies it); False when the
    kernel refuses it (then every message is received, and decoding sorts them as before)."""
    code = array.array("B", program)  # its address, without ctypes (slow to import)
    address, _ = code.buffer_info()
    fprog = struct.pack("@HP", len(program) // 8, address)  # struct sock_fprog
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError:
        return False
    return True


class EventSocket:
    """Joined to link, address, route and rule groups of both families; non-blocking.

    With ``ignore_portid`` (a ``Netlink.portid``), the events that socket's own requests caused
    are dropped: they echo what was just applied, so they are no hint of anything to do.
    """

    def __init__(self, rcvbuf: int = EVENT_BUFFER, *, ignore_portid: int | None = None) -> None:
        self._sock = _netlink_socket(rcvbuf)
        self.filtered = _attach_filter(self._sock, rtnl.local_route_filter())
        for group in rtnl.EVENT_GROUPS:
            self._sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
        self._sock.setblocking(False)
        self._receiver = _Receiver()
        self._ignore = ignore_portid

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        self._sock.close()

    def drain(self) -> list[Event]:
        """Every event queued now. Raises Overrun when the kernel dropped some (ENOBUFS)."""
        events: list[Event] = []
        while True:
            try:
                data = self._receiver.recv(self._sock)
            except BlockingIOError:
                return events
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    raise Overrun("netlink event socket overrun (ENOBUFS)", exc.errno) from exc
                raise KernelError(
                    f"netlink event receive failed: {exc.strerror}", exc.errno or 0
                ) from exc
            for mtype, flags, _seq, pid, payload in rtnl.iter_messages(data):
                if pid and pid == self._ignore:
                    continue  # the echo of one of our own requests: not even decoded
                event = decode_event(mtype, flags, payload)
                if event is not None:
                    events.append(event)
