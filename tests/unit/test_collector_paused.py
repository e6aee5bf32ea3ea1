"""The cyclic collector is held off during a read, a decision or an apply, and only then."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from polroutd.core.model import KernelState, Operation, OpResult
from polroutd.netlink.kernel import collector_paused
from tests.support.article import article_state
from tests.support.fakes import FakeKernel
from tests.support.harness import Harness


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_the_collector_is_off_during_a_pause_and_on_again_after() -> None:
    gc.enable()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_collector_is_on_again_after_a_pause_that_raised() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("the read failed")
    assert gc.isenabled()


def test_a_pause_within_a_pause_leaves_the_collector_off_until_the_outer_one_ends() -> None:
    gc.enable()
    with collector_paused():
        with collector_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_someone_else_turned_off_stays_off() -> None:
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()


class _WatchingKernel(FakeKernel):
    """Notes whether the collector was on at each read and each apply."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.collector_on: list[bool] = []

    def read_state(self) -> KernelState:
        self.collector_on.append(gc.isenabled())
        return super().read_state()

    def apply(self, operations: Sequence[Operation]) -> list[OpResult]:
        self.collector_on.append(gc.isenabled())
        return super().apply(operations)


async def test_the_daemon_reconciles_with_the_collector_off_and_turns_it_on_after() -> None:
    gc.enable()
    kernel = _WatchingKernel(article_state(), failing_reads=1)
    h = Harness(kernel)
    await h.start()  # a failed read, then a read and an apply
    assert len(kernel.collector_on) >= 3 and not any(kernel.collector_on)
    assert gc.isenabled()
    assert await h.stop() == 0
    assert gc.isenabled()
