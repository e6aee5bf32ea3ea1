"""A burst of addresses while the daemon runs, against the in-memory kernel: the events are
applied to the view and the decision is made while the debounce waits, yet nothing reaches
the kernel (or /state) before the quiet period ends; then one reconcile applies all of it,
from the view (no read), and the next full read finds the view exactly right."""

from __future__ import annotations

import asyncio

import pytest

from polroutd.core.limits import AF_INET, RT_SCOPE_LINK, RT_TABLE_MAIN
from polroutd.core.model import Address, KernelState, Link, Route
from polroutd.core.settings import Config, DaemonSettings
from polroutd.daemon.flag import Flag
from tests.support.fakes import FakeKernel
from tests.support.harness import Harness

PROTO = 218
LO = Link(1, "lo", up=True, carrier=True, loopback=True)
LINKS = tuple(Link(10 + i, f"bn{i}", up=True, carrier=True, kind="veth") for i in range(8))
# Every interface with a global address is managed (the bench's host): a long debounce, so
# that the test can look at the kernel while the daemon waits for quiet.
QUIET = 0.4
CONFIG = Config(daemon=DaemonSettings(rt_tables_file="", debounce=QUIET, max_delay=10.0,
                                      resync_interval=3600, protocol=PROTO))


def _bare() -> FakeKernel:
    return FakeKernel(KernelState(links=(LO, *LINKS)))


def _add(kernel: FakeKernel, i: int, j: int) -> str:
    """Address j of interface i, with the connected route the kernel adds for the first."""
    address = f"10.100.{i}.{10 + j}"
    kernel.add_address(Address(LINKS[i].ifindex, AF_INET, address, 24))
    if j == 0:
        kernel.add_route(Route(AF_INET, RT_TABLE_MAIN, f"10.100.{i}.0", 24, 2,
                               scope=RT_SCOPE_LINK, oif=LINKS[i].ifindex, prefsrc=address))
    return address


def _announce(h: Harness, kernel: FakeKernel) -> None:
    """What the kernel announced since the last call, in one read of the event socket."""
    for event in kernel.events[:-1]:
        h.events.queue.append(event)
    if kernel.events:
        h.events.push_event(kernel.events[-1])
    kernel.events.clear()


def _sources(kernel: FakeKernel) -> set[str]:
    return {r.src for r in kernel.state.rules if r.protocol == PROTO and r.src is not None}


def _reconciles(h: Harness) -> int:
    return h.counter("reconciles_ok") + h.counter("reconciles_error")


def _divergences(h: Harness) -> float:
    return sum(s.value for f in h.daemon.tally.metrics.cache_divergence.collect()
               for s in f.samples if s.name.endswith("_total"))


async def _resync(h: Harness) -> None:
    done = _reconciles(h)
    h.daemon.schedule.next_resync = 0.0  # the periodic full read is due now
    h.daemon._wake.set()
    await h.until(lambda: _reconciles(h) > done and h.daemon.status.last is not None
                  and h.daemon.status.last.reason == "resync")


async def _first_handled(h: Harness, kernel: FakeKernel) -> set[str]:
    """The burst's first address, reconciled at once (the leading edge)."""
    done = _reconciles(h)
    first = {_add(kernel, 0, 0)}
    _announce(h, kernel)
    await h.until(lambda: _reconciles(h) > done and _sources(kernel) == first)
    return first


async def test_a_burst_is_applied_once_after_the_quiet_period_from_the_view() -> None:
    kernel = _bare()
    h = Harness(kernel, CONFIG)
    await h.start()
    expected = await _first_handled(h, kernel)
    reads, done = kernel.reads, _reconciles(h)
    # the rest in several reads of the socket, each within the debounce of the last
    for i in range(len(LINKS)):
        expected |= {_add(kernel, i, j) for j in range(1 if i == 0 else 0, 12)}
        _announce(h, kernel)
        await asyncio.sleep(0.01)
    await asyncio.sleep(QUIET / 2)  # past the moment the daemon decides ahead
    assert _sources(kernel) == {"10.100.0.10"}  # nothing applied before the quiet period ends
    assert _reconciles(h) == done
    await h.until(lambda: _sources(kernel) == expected)
    await asyncio.sleep(0.05)
    assert _reconciles(h) == done + 1
    assert kernel.reads == reads  # decided from the view, not from a read
    last = h.daemon.status.last
    assert last is not None and last.mode == "incremental" and last.result == "ok"
    assert h.daemon.status.in_sync
    assert {i.name for i in h.daemon.status.decision.desired.interfaces} == {  # type: ignore[union-attr]
        link.name for link in LINKS}
    await _resync(h)
    assert h.daemon.state()["last_full_read"]["divergence"] == []
    assert _divergences(h) == 0
    assert _sources(kernel) == expected
    assert await h.stop() == 0


async def test_an_event_after_the_decision_made_ahead_is_decided_with_the_rest() -> None:
    """An address removed and one added while the daemon waits for quiet, after it decided
    ahead: the reconcile does not apply the decision made ahead but one that includes them."""
    kernel = _bare()
    h = Harness(kernel, CONFIG)
    await h.start()
    expected = await _first_handled(h, kernel)
    for i in range(4):
        expected |= {_add(kernel, i, j) for j in range(1 if i == 0 else 0, 6)}
    _announce(h, kernel)
    await asyncio.sleep(QUIET / 2)  # decided ahead by now
    assert _sources(kernel) == {"10.100.0.10"}
    gone = next(a for a in kernel.state.addresses if a.address == "10.100.1.12")
    kernel.remove_address(gone)
    expected = (expected - {gone.address}) | {_add(kernel, 5, 0)}
    _announce(h, kernel)
    await h.until(lambda: _sources(kernel) == expected)
    await _resync(h)
    assert h.daemon.state()["last_full_read"]["divergence"] == []
    assert _divergences(h) == 0
    assert _sources(kernel) == expected
    assert h.daemon.status.in_sync
    assert await h.stop() == 0


async def test_a_decision_made_ahead_is_not_reported_before_it_is_applied() -> None:
    kernel = _bare()
    h = Harness(kernel, CONFIG)
    await h.start()
    await _first_handled(h, kernel)
    version, decision = h.daemon.state_version(), h.daemon.status.decision
    for j in range(1, 5):
        _add(kernel, 3, j)
    _announce(h, kernel)
    await asyncio.sleep(QUIET / 2)
    assert h.daemon.status.decision is decision
    assert h.daemon.state_version() == version
    assert [i["name"] for i in h.daemon.state()["interfaces"]] == ["bn0"]
    assert await h.stop() == 0


async def test_reads_during_the_quiet_period_do_not_wake_the_reconcile_loop_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each read of a burst only puts off the decision and the reconcile the loop sleeps
    for: it is not woken for each (a task and a timer each time, more than reading cost);
    it wakes when its moment comes, and the burst is applied all the same."""
    kernel = _bare()
    h = Harness(kernel, CONFIG)
    await h.start()
    expected = await _first_handled(h, kernel)
    wakes = 0
    wake = Flag.set

    def counted(flag: Flag) -> None:
        nonlocal wakes
        wakes += flag is h.daemon._wake
        wake(flag)

    monkeypatch.setattr(Flag, "set", counted)
    reads = 0
    for i in range(len(LINKS)):
        for j in range(1 if i == 0 else 0, 3):
            expected.add(_add(kernel, i, j))
            _announce(h, kernel)
            reads += 1
            await asyncio.sleep(0.001)  # one read of the socket each
    assert reads >= 20
    assert wakes <= 3  # the first read after the leading edge's reconcile, at most two more
    await h.until(lambda: _sources(kernel) == expected)
    assert await h.stop() == 0
