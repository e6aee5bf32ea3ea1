"""The daemon's wake-up flag: set before any loop runs, awaited on it, with a time limit."""

from __future__ import annotations

import asyncio

from polroutd.daemon.flag import Flag


async def test_wait_at_most_returns_when_set_from_the_loop() -> None:
    flag = Flag()
    loop = asyncio.get_running_loop()
    loop.call_later(0.01, flag.set)
    started = loop.time()
    assert await flag.wait_at_most(30.0) is True
    assert loop.time() - started < 30.0
    assert not flag._sleepers  # nothing left behind


async def test_wait_at_most_gives_up_after_its_time_unset() -> None:
    flag = Flag()
    assert await flag.wait_at_most(0.01) is False
    assert not flag.is_set()
    assert not flag._sleepers


async def test_a_flag_set_before_the_wait_returns_at_once() -> None:
    flag = Flag()
    flag.set()  # as a signal handler does before the loop runs
    assert await flag.wait_at_most(30.0) is True
    assert await flag.wait() is True


async def test_one_set_wakes_every_waiter_and_clear_makes_them_wait_again() -> None:
    flag = Flag()
    waiters = [asyncio.create_task(flag.wait_at_most(30.0)) for _ in range(3)]
    plain = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    flag.set()
    assert await asyncio.gather(*waiters, plain) == [True, True, True, True]
    flag.clear()
    assert await flag.wait_at_most(0.01) is False


async def test_a_cancelled_wait_leaves_no_sleeper() -> None:
    flag = Flag()
    task = asyncio.create_task(flag.wait_at_most(30.0))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not flag._sleepers
    flag.set()  # nothing waits: nothing to wake
