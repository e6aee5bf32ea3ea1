"""The sender thread of a pipelined apply: the kernel carries out a batch of requests inside
sendmsg, with the GIL released, so while this thread exchanges one batch the caller encodes
the next (see ``Netlink._apply_pipelined``)."""

from __future__ import annotations

import _thread
import errno
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

R = TypeVar("R")  # one encoded batch


class NoThread(Exception):
    """No thread could be started (a limit on tasks): the batches go one after another."""


class Sender(Generic[R]):
    """Exchanges the requests submitted, in order, and hands back each one's answers (or
    what it raised). Stops at a None, at a batch with
    EPERM, or at an exception; ``close`` waits for its end.

    Started with ``_thread``: ``threading.Thread.start`` waits until the new thread runs, which
    on a busy machine is a wait for a CPU (milliseconds) before the first batch is encoded."""

    def __init__(self, exchange: Callable[[R], dict[int, tuple[int, str | None]]]) -> None:
        self._exchange = exchange
        self._requests: queue.SimpleQueue[R | None] = queue.SimpleQueue()
        self._answers: queue.SimpleQueue[dict[int, tuple[int, str | None]] | BaseException] = (
            queue.SimpleQueue())
        self._running = threading.Lock()  # held from here until the thread ends
        self._running.acquire()
        try:
            _thread.start_new_thread(self._run, ())
        except RuntimeError as exc:  # "can't start new thread"
            self._running.release()
            raise NoThread from exc

    def submit(self, request: R | None) -> None:
        self._requests.put(request)
        # The GIL handed over now: the sender takes it only when this thread blocks, or after
        # the switch interval (5 ms, as long as encoding every batch takes).
        time.sleep(0)

    def answers(self) -> dict[int, tuple[int, str | None]]:
        """The next batch's answers, in the order submitted; raises what the exchange raised."""
        answer = self._answers.get()
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def close(self) -> None:
        """Waits for the requests submitted to be exchanged (as the batch by batch loop had
        exchanged those before a failure to encode one) and the thread to end."""
        self._requests.put(None)
        with self._running:
            pass

    def _run(self) -> None:
        try:
            while (request := self._requests.get()) is not None:
                try:
                    answer = self._exchange(request)
                except BaseException as exc:  # handed to answers(), in the caller's thread
                    self._answers.put(exc)
                    return
                self._answers.put(answer)
                if any(code == errno.EPERM for code, _text in answer.values()):
                    return  # every later request would be refused too: _apply raises NoNetAdmin
        finally:
            self._running.release()
