"""Issue 11: a default route taken from a DHCP lease stayed 62 s past the lease's expiry (until
the next resync). The daemon now wakes at the earliest expiry of a lease it uses."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from polroutd.core.desired import earliest_lease_expiry
from polroutd.core.model import Gateway, LeaseFindings, Route
from polroutd.core.record import replace
from polroutd.core.schedule import Schedule
from polroutd.inputs import leases
from polroutd.netlink import codec as rtnl
from tests.support.article import PROTO, article_decision
from tests.support.fakes import FakeKernel
from tests.support.harness import Harness

EXPIRES = 1_900_000_000  # epoch seconds of the lease's "expire" statement
ROUTER = "10.225.176.1"  # on ens224's 10.225.176.0/24 in the article's state


def schedule() -> Schedule:
    s = Schedule(debounce=0.02, max_delay=0.25, resync_interval=60, rng=random.Random(1))
    s.finished(0.0, True)
    return s


def test_the_schedule_wakes_at_the_earliest_time_asked_for() -> None:
    s = schedule()
    s.wake(20.0)
    s.wake(30.0)
    assert s.due(1.0) == (20.0, "lease-expiry")
    s.started(20.0)  # the reconcile asks again if it still needs to wake
    assert s.due(20.0)[1] == "resync"


@given(st.lists(st.floats(0.5, 1000.0), max_size=20), st.floats(1.0, 1000.0))
def test_a_wake_up_never_delays_a_reconcile(wakes: list[float], event: float) -> None:
    s = schedule()
    s.resync_interval = 86400.0
    s.finished(0.0, True)
    for at in wakes:
        s.wake(at)
    s.mark_dirty(event)
    at, reason = s.due(event)
    assert at <= event  # an event after quiet is still handled at once
    assert at == min([event, *wakes]) and (reason == "lease-expiry") == (at < event)


def test_a_failed_reconcile_does_not_wake_again_at_once() -> None:
    s = schedule()
    s.wake(5.0)
    s.started(5.0)
    s.finished(5.01, False)  # nothing decided, so nothing asked for a wake-up
    at, reason = s.due(5.01)
    assert reason == "retry" and at > 5.01


def test_the_earliest_expiry_of_a_lease_in_use() -> None:
    desired = article_decision().desired
    assert earliest_lease_expiry(desired) is None
    interfaces = list(desired.interfaces)
    interfaces[0] = replace(interfaces[0], gateway4=Gateway(ROUTER, "dhcp-lease",
                                                            lease_expires=300.0))
    interfaces[1] = replace(interfaces[1], gateway4=Gateway(ROUTER, "dhcp-lease",
                                                            lease_expires=200.0))
    assert earliest_lease_expiry(replace(desired, interfaces=tuple(interfaces))) == 200.0


def _lease_route(kernel: FakeKernel) -> list[Route]:
    return [r for r in kernel.state.routes
            if r.protocol == PROTO and r.is_default and r.gateway == ROUTER]


async def test_the_default_route_leaves_when_its_lease_expires(tmp_path: Path) -> None:
    lease_file = tmp_path / "dhclient.ens224.leases"
    lease_file.write_text(
        "lease {\n  interface \"ens224\";\n  fixed-address 10.225.176.38;\n"
        f"  option routers {ROUTER};\n  expire epoch {EXPIRES};\n}}\n"
    )
    # The wall clock runs at the real rate from 1.5 s before the lease's end (time enough for
    # the start on a loaded machine).
    shift = EXPIRES - 1.5 - time.time()

    def wallclock() -> float:
        return time.time() + shift

    files = leases.LeaseFiles(wallclock)

    def lease_reader(interfaces: Mapping[str, int]) -> Mapping[str, LeaseFindings]:
        return leases.lease_findings(interfaces, [str(lease_file)], wallclock(), files)

    kernel = FakeKernel(article_decision().state)
    h = Harness(kernel, lease_reader=lease_reader, wallclock=wallclock)  # resync: an hour
    await h.start()
    assert _lease_route(kernel), "the lease's router is the default route of ens224's table"
    h.events.push(rtnl.RTM_NEWADDR)  # a reconcile in between must keep the wake-up
    await h.until(lambda: h.counter("reconciles_ok") >= 2)
    await h.until(lambda: not _lease_route(kernel), timeout=4.0)
    late = wallclock() - EXPIRES
    assert 0 <= late < 0.5, f"the route left {late:.3f} s after the lease expired"
    assert h.daemon.status.last is not None
    assert h.daemon.status.last.reason == "lease-expiry"
    assert await h.stop() == 0
