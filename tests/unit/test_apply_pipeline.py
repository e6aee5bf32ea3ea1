"""``Netlink.apply`` pipelined (a thread sends each batch while the caller encodes the next)
gives what the batch by batch loop gives: every operation's own outcome, in order, the same
requests sent in the same order, the same errors raised, and no thread left behind.

The kernel is a fake socket that answers as rtnetlink does: an error message for each request
that fails (none for those that succeed: they ask for no acknowledgement), an acknowledgement
for the barrier, the answers of one sendmsg spread over datagrams."""

from __future__ import annotations

import _thread
import errno
import socket
import struct
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polroutd.core.errors import KernelError, NoNetAdmin
from polroutd.core.limits import AF_INET, AF_INET6
from polroutd.core.model import Operation, OpResult, Route, RouteOp, Rule, RuleOp
from polroutd.netlink import codec as rtnl
from polroutd.netlink import kernel
from polroutd.netlink.kernel import BATCH, FIRST_BATCH, Netlink

_HEADER = struct.Struct("=IHHII")


def _error_message(code: int, seq: int, text: str | None) -> bytes:
    """An NLMSG_ERROR as the kernel sends it with NETLINK_CAP_ACK and NETLINK_EXT_ACK."""
    flags = rtnl.NLM_F_CAPPED
    body = struct.pack("=i", -code) + _HEADER.pack(16, 0, 0, seq, 0)
    if text is not None:
        flags |= rtnl.NLM_F_ACK_TLVS
        value = text.encode() + b"\0"
        body += struct.pack("=HH", 4 + len(value), rtnl.NLMSGERR_ATTR_MSG) + value
        body += b"\0" * (-len(body) & 3)
    return _HEADER.pack(16 + len(body), rtnl.NLMSG_ERROR, flags, seq, 0) + body


class FakeRouteSocket:
    """Answers each request by its body (the operation, whatever its sequence number)."""

    def __init__(self, outcomes: dict[bytes, int], per_datagram: int = 3,
                 fail_send: int | None = None) -> None:
        self.outcomes = outcomes
        self.per_datagram = per_datagram
        self.fail_send = fail_send  # the send (counted from 0) that fails with ENOBUFS
        self.sent: list[bytes] = []  # each request's body, in the order sent
        self.senders: set[int] = set()
        self._pending: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.senders.add(threading.get_ident())
        if self.fail_send is not None and len(self._sends()) == self.fail_send:
            raise OSError(errno.ENOBUFS, "No buffer space available")
        answers = []
        for mtype, _flags, seq, _pid, payload in rtnl.iter_messages(data):
            if mtype == rtnl.NLMSG_NOOP:
                answers.append(_error_message(0, seq, None))
                self.sent.append(b"barrier")
                continue
            self.sent.append(payload)
            code = self.outcomes.get(payload, 0)
            if code:
                answers.append(_error_message(code, seq, f"failure {code}" if code % 2 else None))
        for start in range(0, len(answers), self.per_datagram):
            self._pending.append(b"".join(answers[start : start + self.per_datagram]))
        return len(data)

    def _sends(self) -> list[int]:
        return [i for i, body in enumerate(self.sent) if body == b"barrier"]

    def recv_into(self, buffer: bytearray, nbytes: int = 0, flags: int = 0) -> int:
        if not self._pending:
            if flags & socket.MSG_DONTWAIT:
                raise BlockingIOError
            raise AssertionError("a receive that would wait forever")
        datagram = self._pending.pop(0)
        buffer[: len(datagram)] = datagram
        return len(datagram)

    def close(self) -> None:
        pass


def _operation(index: int) -> Operation:
    """A different operation for each index, of every kind and family."""
    host = f"10.{index // 250 % 250}.{index % 250}.1"
    rule = Rule(AF_INET, 30000 + index % 7, 100 + index % 5, 218, src=host, src_len=32)
    route = Route(AF_INET6 if index % 2 else AF_INET, 100 + index % 5,
                  f"2001:db8::{index:x}" if index % 2 else host,
                  128 if index % 2 else 32, 218, oif=2 + index % 3)
    return [RuleOp("add", rule), RuleOp("delete", rule), RouteOp("add", route),
            RouteOp("replace", route), RouteOp("delete", route)][index % 5]


def _body(operation: Operation) -> bytes:
    return kernel.encode_operation(operation, 0)[16:]


def _apply(operations: list[Operation], failures: dict[int, int], *, pipelined: bool,
           per_datagram: int = 3, fail_send: int | None = None,
           ) -> tuple[list[OpResult] | type[Exception], FakeRouteSocket]:
    outcomes = {_body(operations[i]): code for i, code in failures.items()}
    fake = FakeRouteSocket(outcomes, per_datagram, fail_send)
    netlink = _netlink(fake, pipelined)
    try:
        return netlink.apply(operations), fake
    except (NoNetAdmin, KernelError) as exc:
        return type(exc), fake


def _netlink(fake: FakeRouteSocket, pipelined: bool) -> Netlink:
    real = kernel._netlink_socket
    kernel._netlink_socket = lambda rcvbuf: fake  # type: ignore[assignment,return-value]
    try:
        return Netlink(pipelined=pipelined)
    finally:
        kernel._netlink_socket = real


def _threads() -> int:
    count: int = _thread._count()  # type: ignore[attr-defined]  # (the sender is a _thread)
    return count


def _no_sender_left(before: int) -> bool:
    """As many threads as ``before``: the sender ended (it may take a moment after it said so:
    waited for, up to 5 s)."""
    for _ in range(500):
        if _threads() == before:
            return True
        time.sleep(0.01)
    return False


def _requests_only(sent: list[bytes]) -> list[bytes]:
    return [body for body in sent if body != b"barrier"]


ERRNOS = st.sampled_from([errno.EEXIST, errno.ENOENT, errno.ESRCH, errno.ENETUNREACH,
                          errno.ENODEV, errno.EINVAL])


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(0, 3 * BATCH + 10),
    failures=st.dictionaries(st.integers(0, 3 * BATCH + 9), ERRNOS, max_size=40),
    per_datagram=st.integers(1, 50),
)
def test_pipelined_outcomes_are_the_batch_loops(
    count: int, failures: dict[int, int], per_datagram: int
) -> None:
    before = _threads()
    operations = [_operation(i) for i in range(count)]
    failures = {i: code for i, code in failures.items() if i < count}

    pipelined, sent_pipelined = _apply(operations, failures, pipelined=True,
                                       per_datagram=per_datagram)
    looped, sent_looped = _apply(operations, failures, pipelined=False,
                                 per_datagram=per_datagram)

    assert pipelined == looped
    assert isinstance(pipelined, list)
    assert [r.operation for r in pipelined] == operations
    idempotent = {i for i, code in failures.items()
                  if kernel.IDEMPOTENT.get((operations[i].kind, operations[i].op)) == code}
    assert {i: r.errno for i, r in enumerate(pipelined) if r.errno} == {
        i: code for i, code in failures.items() if i not in idempotent}
    assert _requests_only(sent_pipelined.sent) == _requests_only(sent_looped.sent)
    assert _no_sender_left(before)


def test_a_multi_batch_apply_is_sent_from_a_thread_of_its_own() -> None:
    before = _threads()
    operations = [_operation(i) for i in range(BATCH + 1)]
    _results, fake = _apply(operations, {}, pipelined=True)
    assert len(fake.senders) == 1 and threading.get_ident() not in fake.senders
    assert fake.sent.count(b"barrier") == 2
    assert fake.sent.index(b"barrier") == FIRST_BATCH  # a small first batch: the kernel begins
    _results, fake = _apply(operations[:BATCH], {}, pipelined=True)
    assert fake.senders == {threading.get_ident()}  # one batch: no thread
    assert _no_sender_left(before)


@pytest.mark.parametrize("pipelined", [True, False])
def test_eperm_raises_no_net_admin_and_sends_no_later_batch(pipelined: bool) -> None:
    before = _threads()
    operations = [_operation(i) for i in range(3 * BATCH)]
    refused = BATCH + 3  # in the second batch, both ways
    outcome, fake = _apply(operations, {refused: errno.EPERM}, pipelined=pipelined)
    assert outcome is NoNetAdmin
    assert fake.sent.count(b"barrier") == 2
    assert _no_sender_left(before)


@pytest.mark.parametrize("pipelined", [True, False])
def test_a_failed_send_raises_kernel_error_and_sends_no_more(pipelined: bool) -> None:
    before = _threads()
    operations = [_operation(i) for i in range(3 * BATCH)]
    outcome, fake = _apply(operations, {}, pipelined=pipelined, fail_send=1)
    assert outcome is KernelError
    assert fake.sent.count(b"barrier") == 1
    assert _no_sender_left(before)


def test_a_failure_to_encode_raises_after_the_batches_before_it_were_sent() -> None:
    before = _threads()
    operations: list[Operation] = [_operation(i) for i in range(2 * BATCH)]
    broken = RuleOp("add", Rule(AF_INET, 1, 100, 218, src="not an address", src_len=32))
    operations.insert(BATCH + 5, broken)  # in the second batch, both ways
    for pipelined, first_batch in ((True, FIRST_BATCH), (False, BATCH)):
        fake = FakeRouteSocket({})
        with pytest.raises(OSError):
            _netlink(fake, pipelined).apply(operations)
        assert fake.sent == [*(_body(op) for op in operations[:first_batch]), b"barrier"]
        assert _no_sender_left(before)


def test_without_a_thread_the_batches_go_one_after_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_thread(*args: object) -> int:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(_thread, "start_new_thread", no_thread)
    operations = [_operation(i) for i in range(2 * BATCH)]
    results, fake = _apply(operations, {7: errno.ENODEV}, pipelined=True)
    assert isinstance(results, list) and [r.errno for r in results].count(errno.ENODEV) == 1
    assert fake.senders == {threading.get_ident()}
    assert fake.sent.index(b"barrier") == BATCH
