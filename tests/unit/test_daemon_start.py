"""``polroutd run``'s start (daemon/loop.py ``Daemon.start``): the first reconcile is made before
any event loop exists, with the event socket already open, so that nothing that changes during
it is missed; the loop, started afterwards, reads what arrived meanwhile and acts on a stop
asked for during it."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator, Sequence

import pytest

from polroutd.core.limits import AF_INET
from polroutd.core.model import Address, Operation, OpResult
from tests.support.article import PROTO, article_state
from tests.support.fakes import FakeKernel
from tests.support.harness import Harness

MGMT = 2  # ens192's index in the article's state
LATE = "10.225.160.99"  # an address that comes while the first reconcile applies


class ChangedDuringTheFirstApply(FakeKernel):
    """Someone adds an address to ens192 while the daemon's first apply is under way."""

    harness: Harness | None = None

    def apply(self, operations: Sequence[Operation]) -> list[OpResult]:
        if self.harness is not None and not any(a.address == LATE for a in self.state.addresses):
            self.add_address(Address(MGMT, AF_INET, LATE, 24))
            for event in self.events:  # announced on the daemon's event socket
                self.harness.events.push_event(event)
            self.events.clear()
        return super().apply(operations)


@pytest.fixture(autouse=True)
def _signal_handlers() -> Iterator[None]:
    """``start`` catches SIGTERM, SIGINT and SIGHUP for the loop to come: pytest's are put back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def started() -> tuple[Harness, ChangedDuringTheFirstApply]:
    kernel = ChangedDuringTheFirstApply(article_state())
    h = Harness(kernel)
    kernel.harness = h
    return h, kernel


def owned_sources(kernel: FakeKernel) -> set[str | None]:
    return {r.src for r in kernel.state.rules if r.protocol == PROTO}


def test_the_first_reconcile_needs_no_event_loop() -> None:
    h, kernel = started()
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    h.daemon.start()
    assert h.notifier.sent[0] == "STATUS=starting: first reconcile"
    assert "READY=1" in h.notifier.sent  # converged: the kernel is as desired
    assert h.daemon.first_reconcile.is_set()
    last = h.daemon.status.last
    assert last is not None and (last.reason, last.result) == ("startup", "ok")
    assert owned_sources(kernel) and LATE not in owned_sources(kernel)
    assert h.events.queue  # what changed during it waits for the loop


def test_what_changed_during_the_first_reconcile_is_handled_once_the_loop_runs() -> None:
    h, kernel = started()
    h.daemon.start()

    async def loop() -> int:
        h.task = asyncio.create_task(h.daemon.run())
        await h.until(lambda: LATE in owned_sources(kernel))
        return await h.stop()

    assert asyncio.run(loop()) == 0
    assert h.counter("reconciles_ok") == 2  # no second start-up reconcile: one for the event
    last = h.daemon.status.last
    assert last is not None and last.reason == "event"
    assert h.notifier.sent.count("READY=1") == 1
    assert h.notifier.sent.count("STATUS=starting: first reconcile") == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signalled_during_the_first_reconcile_stops_the_daemon_once_the_loop_runs(
    sig: signal.Signals,
) -> None:
    h, kernel = started()
    apply = kernel.apply

    def signalled_apply(operations: Sequence[Operation]) -> list[OpResult]:
        signal.raise_signal(sig)  # handled at once, by the handler ``start`` installed
        return apply(operations)

    kernel.apply = signalled_apply  # type: ignore[method-assign]
    h.daemon.start()
    assert "READY=1" in h.notifier.sent  # the apply was not cut short

    async def loop() -> int:
        return await asyncio.wait_for(h.daemon.run(), 2.0)

    assert asyncio.run(loop()) == 0
    assert h.notifier.sent[-1] == "STOPPING=1"
    assert h.counter("reconciles_ok") == 1
