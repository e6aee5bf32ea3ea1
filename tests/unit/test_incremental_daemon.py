"""The daemon's incremental reconciles (issue 13) against the in-memory kernel: events that carry
their objects are decided from the view; an overrun, an interrupted dump and a reload each make
the next reconcile read everything again; inputs no event announces (DHCP lease files, the
recorded-tables file) are still looked at on every reconcile."""

from __future__ import annotations

from pathlib import Path

from polroutd.core.errors import DumpInterrupted
from polroutd.core.limits import AF_INET
from polroutd.core.model import Address, KernelState, LeaseFindings, Route
from polroutd.core.record import replace
from polroutd.core.settings import Config, InterfaceSpec
from polroutd.daemon.loop import INCREMENTAL_EVENT_LIMIT
from tests.support.article import PROTO, article_decision, lease_of
from tests.support.fakes import FakeKernel
from tests.support.harness import CONFIG, Harness

MGMT, DATA = 2, 3  # ens192's and ens224's indexes in the article's state


class InterruptingKernel(FakeKernel):
    """A kernel whose next ``interrupt`` dumps keep changing under the reader."""

    interrupt: int = 0

    def read_state(self) -> KernelState:
        if self.interrupt:
            self.interrupt -= 1
            self.reads += 1
            raise DumpInterrupted("dump 18 kept changing under us (injected)")
        return super().read_state()


def _converged(kernel_type: type[FakeKernel] = FakeKernel) -> FakeKernel:
    return kernel_type(article_decision().state)


def _reconciles(h: Harness, mode: str) -> float:
    """How many reconciles of this mode polroutd_reconcile_duration_seconds counted."""
    for family in h.daemon.tally.metrics.reconcile_duration.collect():
        for sample in family.samples:
            if sample.name.endswith("_count") and sample.labels.get("mode") == mode:
                return sample.value
    return 0.0


def _divergences(h: Harness) -> float:
    return sum(s.value for f in h.daemon.tally.metrics.cache_divergence.collect()
               for s in f.samples if s.name.endswith("_total"))


def _announce(h: Harness, kernel: FakeKernel) -> None:
    """Hands the daemon what the kernel announced of the changes made by 'someone else'."""
    for event in kernel.events:
        h.events.push_event(event)
    kernel.events.clear()


async def _settle(h: Harness, done: int) -> None:
    await h.until(lambda: h.counter("reconciles_ok") > done and h.daemon.status.in_sync
                  and not h.events.queue)


def _default_via(kernel: FakeKernel, table: int) -> str | None:
    return next((r.gateway for r in kernel.state.routes
                 if r.table == table and r.family == AF_INET and r.is_default), None)


async def test_an_announced_address_is_decided_from_the_view_without_a_read() -> None:
    kernel = _converged()
    h = Harness(kernel, lease_reader=lambda _: {"ens224": lease_of("10.225.176.1")})
    await h.start()
    reads, done = kernel.reads, h.counter("reconciles_ok")
    kernel.add_address(Address(MGMT, AF_INET, "10.225.160.99", 24))
    _announce(h, kernel)
    await _settle(h, done)
    assert any(r.src == "10.225.160.99" and r.protocol == PROTO for r in kernel.state.rules)
    assert kernel.reads == reads  # nothing read again
    assert h.daemon.status.last is not None and h.daemon.status.last.mode == "incremental"
    assert _reconciles(h, "incremental") == 1
    assert _divergences(h) == 0
    assert await h.stop() == 0


async def test_a_storm_of_events_is_decided_from_one_full_read() -> None:
    kernel = _converged()
    h = Harness(kernel, lease_reader=lambda _: {"ens224": lease_of("10.225.176.1")})
    await h.start()
    full, reads, done = _reconciles(h, "full"), kernel.reads, h.counter("reconciles_ok")
    added = {f"10.225.{161 + n // 250}.{n % 250 + 2}"
             for n in range(INCREMENTAL_EVENT_LIMIT + 1)}  # more than the view is worth applying
    for address in sorted(added):
        kernel.add_address(Address(MGMT, AF_INET, address, 16))
    for event in kernel.events:  # all of it in the queue before the daemon looks
        h.events.queue.append(event)
    kernel.events.clear()
    h.events.push_event(h.events.queue.pop())
    await _settle(h, done)
    assert _reconciles(h, "full") == full + 1 and kernel.reads > reads
    assert {r.src for r in kernel.state.rules if r.protocol == PROTO} >= added
    assert _divergences(h) == 0  # the view was dropped, not compared
    assert await h.stop() == 0


async def test_an_overrun_makes_the_next_reconcile_a_full_read() -> None:
    kernel = _converged()
    h = Harness(kernel)
    await h.start()
    full, reads, done = _reconciles(h, "full"), kernel.reads, h.counter("reconciles_ok")
    kernel.add_address(Address(MGMT, AF_INET, "10.225.160.99", 24))
    kernel.events.clear()  # the announcement is lost with the overrun
    h.events.push(overrun=True)
    await _settle(h, done)
    assert _reconciles(h, "full") == full + 1 and kernel.reads > reads
    assert _reconciles(h, "incremental") == 0
    assert any(r.src == "10.225.160.99" for r in kernel.state.rules)
    assert _divergences(h) == 0  # no view to compare: lost events are no divergence
    assert await h.stop() == 0


async def test_after_an_interrupted_dump_the_view_is_not_trusted() -> None:
    kernel = _converged(InterruptingKernel)
    assert isinstance(kernel, InterruptingKernel)
    h = Harness(kernel)
    await h.start()
    full, failed = _reconciles(h, "full"), h.counter("reconciles_error")
    kernel.interrupt = 1
    h.daemon.schedule.next_resync = 0.0  # the periodic full read is due now
    h.events.push()  # (wakes the loop)
    await h.until(lambda: h.counter("reconciles_error") > failed)
    # While it waits to retry, an announced change arrives: it is not decided from the view
    # (whose last comparison with the kernel failed) but from a new full read.
    done = h.counter("reconciles_ok")
    kernel.add_address(Address(MGMT, AF_INET, "10.225.160.99", 24))
    _announce(h, kernel)
    await _settle(h, done)
    assert _reconciles(h, "full") >= full + 2  # the interrupted one, then the one that read
    assert _reconciles(h, "incremental") == 0
    assert any(r.src == "10.225.160.99" for r in kernel.state.rules)
    # Once read again, events are decided from the view again.
    done = h.counter("reconciles_ok")
    kernel.add_address(Address(MGMT, AF_INET, "10.225.160.98", 24))
    _announce(h, kernel)
    await _settle(h, done)
    assert _reconciles(h, "incremental") == 1
    assert _divergences(h) == 0
    assert await h.stop() == 0


async def test_a_reload_reads_everything_again() -> None:
    kernel = _converged()
    h = Harness(kernel)
    await h.start()
    full, reads = _reconciles(h, "full"), kernel.reads
    reloads = h.counter("config_reloads_ok")
    h.daemon.request_reload()
    await h.until(lambda: h.counter("config_reloads_ok") > reloads
                  and _reconciles(h, "full") > full)
    assert kernel.reads > reads and _reconciles(h, "incremental") == 0
    assert h.daemon.status.last is not None and h.daemon.status.last.reason == "reload"
    assert await h.stop() == 0


async def test_a_lease_renewal_no_event_announces_is_seen_at_the_next_reconcile() -> None:
    """Only ens224's lease file changes (a renewal with a new router); the next reconcile,
    caused by an event on ens192, must see it, as a full read would."""
    kernel = _converged()
    leases: dict[str, LeaseFindings] = {"ens224": lease_of("10.225.176.1")}
    h = Harness(kernel, lease_reader=lambda _: dict(leases))
    await h.start()
    assert _default_via(kernel, 102) == "10.225.176.1"
    leases["ens224"] = lease_of("10.225.176.254")
    done = h.counter("reconciles_ok")
    kernel.add_address(Address(MGMT, AF_INET, "10.225.160.99", 24))
    _announce(h, kernel)
    await _settle(h, done)
    assert h.daemon.status.last is not None and h.daemon.status.last.mode == "incremental"
    assert _default_via(kernel, 102) == "10.225.176.254"
    # And a lease that disappears takes its default route with it.
    leases.clear()
    done = h.counter("reconciles_ok")
    kernel.add_address(Address(MGMT, AF_INET, "10.225.160.98", 24))
    _announce(h, kernel)
    await _settle(h, done)
    assert _default_via(kernel, 102) is None
    assert _divergences(h) == 0
    assert await h.stop() == 0


async def test_a_recorded_table_number_changed_by_hand_is_seen_at_the_next_reconcile(
    tmp_path: Path,
) -> None:
    recorded = tmp_path / "polroutd.conf"
    config = Config(
        daemon=replace(CONFIG.daemon, rt_tables_file=str(recorded), table_range=(30000, 30099)),
        interfaces=(InterfaceSpec(name="ens192"), InterfaceSpec(name="ens224")),
    )
    kernel = _converged()
    h = Harness(kernel, config=config)
    await h.start()
    text = recorded.read_text()
    number = next(int(line.split()[0]) for line in text.splitlines()
                  if line.split()[1:2] == ["ens224"])
    recorded.write_text(text.replace(f"{number} ens224", "30077 ens224"))
    done = h.counter("reconciles_ok")
    kernel.add_address(Address(MGMT, AF_INET, "10.225.160.99", 24))
    _announce(h, kernel)
    await _settle(h, done)
    tables = {r.table for r in kernel.state.rules if r.src == "10.225.176.38"}
    assert tables == {30077}
    assert not any(isinstance(r, Route) and r.table == number for r in kernel.state.routes)
    assert _divergences(h) == 0
    assert await h.stop() == 0



async def test_a_names_file_changed_by_hand_is_decided_in_full_after_the_next_event(
    tmp_path: Path,
) -> None:
    """The names files are looked at after an event's operations are applied (their stats
    would delay it): a table renumbered there is followed by a full decision right after."""
    names = tmp_path / "iproute2" / "rt_tables.d"
    names.mkdir(parents=True)
    (names / "isp.conf").write_text("205 isp\n")
    config = Config(
        daemon=replace(CONFIG.daemon, rt_tables_file=str(names / "polroutd.conf")),
        interfaces=(InterfaceSpec(name="ens192"), InterfaceSpec(name="ens224", table="isp")),
    )
    kernel = _converged()
    h = Harness(kernel, config=config)
    await h.start()

    def tables_of_ens224() -> set[int]:
        return {r.table for r in kernel.state.rules if r.src == "10.225.176.38"}

    assert tables_of_ens224() == {205}
    (names / "isp.conf").write_text("206 isp\n")
    done = h.counter("reconciles_ok")
    kernel.add_address(Address(MGMT, AF_INET, "10.225.160.99", 24))
    _announce(h, kernel)
    await h.until(lambda: h.counter("reconciles_ok") > done + 1 and h.daemon.status.in_sync)
    assert tables_of_ens224() == {206}
    assert not any(r.table == 205 for r in kernel.state.routes)
    assert h.daemon.status.last is not None and h.daemon.status.last.reason == "names"
    assert _divergences(h) == 0
    assert await h.stop() == 0


def _gauge(h: Harness, name: str) -> dict[tuple[str, ...], float]:
    metric = getattr(h.daemon.tally.metrics, name)
    return {tuple(s.labels.values()): s.value for f in metric.collect() for s in f.samples}


async def test_the_gauges_after_incremental_reconciles_count_what_the_kernel_holds() -> None:
    """Owned rules and routes and each interface's default route, as counted after each of a
    succession of incremental reconciles (from the view's groups, set only when changed), are
    what the kernel holds: counted here from scratch."""
    import random

    from polroutd.core.model import family_name
    from tests.unit.test_incremental import CONFIG as VIEW_CONFIG
    from tests.unit.test_incremental import PROTO as VIEW_PROTO
    from tests.unit.test_incremental import _do, _start

    kernel = FakeKernel(_start())
    h = Harness(kernel, config=VIEW_CONFIG)
    await h.start()
    rng = random.Random(13)
    kinds = ["addr+", "addr+", "addr-", "down", "up", "rule-", "route-"]
    for _ in range(25):
        done = h.counter("reconciles_ok") + h.counter("reconciles_error")
        _do(kernel, rng.choice(kinds), rng.randrange(3), rng.randrange(10, 15))
        if not kernel.events:
            continue
        _announce(h, kernel)
        await h.until(lambda d=done: h.counter("reconciles_ok") + h.counter("reconciles_error")
                      > d and not h.events.queue)
        state = kernel.state
        assert _gauge(h, "owned_rules") == {(): sum(r.protocol == VIEW_PROTO
                                                    for r in state.rules)}
        assert _gauge(h, "owned_routes") == {(): sum(r.protocol == VIEW_PROTO
                                                     for r in state.routes)}
        desired = h.daemon.status.decision.desired if h.daemon.status.decision else None
        assert desired is not None
        held = {(r.table, r.family) for r in state.routes if r.dst_len == 0 and r in desired.routes}
        expected = {
            (iface.name, family_name(family)): float(
                gateway.present and (iface.table_id, family) in held)
            for iface in desired.interfaces
            for family, gateway in ((2, iface.gateway4), (10, iface.gateway6))
        }
        assert _gauge(h, "gateway_present") == expected
    assert _reconciles(h, "incremental") > 10
    assert _divergences(h) == 0
    assert await h.stop() == 0


async def _resync(h: Harness) -> None:
    done = h.counter("reconciles_ok") + h.counter("reconciles_error")
    h.daemon.schedule.next_resync = 0.0  # the periodic full read is due now
    h.daemon._wake.set()  # (an event would be one more thing for the read to settle)
    await h.until(lambda: h.counter("reconciles_ok") + h.counter("reconciles_error") > done
                  and h.daemon.status.last is not None
                  and h.daemon.status.last.reason == "resync")


async def test_a_resync_that_finds_the_view_right_still_sees_a_lease_renewal() -> None:
    """The periodic read finds the view exactly right: nothing is counted as divergence, and
    what no event announces (here a renewed lease's new router) is still seen."""
    kernel = _converged()
    leases: dict[str, LeaseFindings] = {"ens224": lease_of("10.225.176.1")}
    h = Harness(kernel, lease_reader=lambda _: dict(leases))
    await h.start()
    kernel.add_address(Address(MGMT, AF_INET, "10.225.160.99", 24))
    _announce(h, kernel)
    await _settle(h, h.counter("reconciles_ok"))
    leases["ens224"] = lease_of("10.225.176.254")
    reads = kernel.reads
    await _resync(h)
    assert kernel.reads > reads
    assert h.daemon.state()["last_full_read"]["divergence"] == []
    assert _default_via(kernel, 102) == "10.225.176.254"
    assert h.daemon.status.in_sync
    assert _divergences(h) == 0
    assert await h.stop() == 0


async def test_a_resync_that_finds_the_view_wrong_counts_it_and_repairs_from_the_read() -> None:
    """A change the kernel made without a word (the fake drops a rule unannounced): the
    periodic read counts the divergence and puts the rule back."""
    kernel = _converged()
    h = Harness(kernel, lease_reader=lambda _: {"ens224": lease_of("10.225.176.1")})
    await h.start()
    ours = next(r for r in kernel.state.rules if r.protocol == PROTO and r.src)
    kernel.state = replace(kernel.state, rules=tuple(r for r in kernel.state.rules if r != ours))
    await _resync(h)
    assert h.daemon.state()["last_full_read"]["divergence"] == ["rule"]
    assert _divergences(h) == 1
    assert ours in kernel.state.rules
    assert await h.stop() == 0
