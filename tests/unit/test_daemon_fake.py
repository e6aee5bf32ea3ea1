"""The daemon loop against the in-memory kernel, with injected faults."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import pytest

from polroutd.core.errors import ConfigError
from polroutd.core.limits import AF_INET
from polroutd.core.model import Address, Link, RuleOp
from polroutd.core.record import replace
from polroutd.core.settings import Config, DaemonSettings, InterfaceSpec
from polroutd.engine import Engine
from polroutd.netlink import codec as rtnl
from tests.support.article import article_state
from tests.support.fakes import FakeKernel
from tests.support.harness import CONFIG, Harness


async def test_ready_only_after_the_first_reconcile_converged() -> None:
    h = Harness(FakeKernel(article_state(), fail_next=[("rule", "add", errno.EPERM)]))
    task = asyncio.create_task(h.daemon.run())
    await h.until(lambda: h.counter("reconciles_error") == 1)
    assert "READY=1" not in h.notifier.sent
    assert h.notifier.sent[0] == "STATUS=starting: first reconcile"  # systemctl status says so
    assert h.daemon.status.last is not None and h.daemon.status.last.reason == "startup"
    assert h.daemon.readiness()[0] is False
    await h.until(lambda: h.daemon.status.converged_once)  # retried with backoff
    assert h.notifier.sent.count("READY=1") == 1
    assert h.daemon.readiness() == (True, "ready")
    assert any(s.startswith("STATUS=2 interfaces") for s in h.notifier.sent)
    h.task = task
    assert await h.stop() == 0
    assert "STOPPING=1" in h.notifier.sent


async def test_drift_is_repaired_and_counted_apart_from_changes() -> None:
    h = Harness(FakeKernel(article_state()))
    await h.start()
    changes = h.counter("changes")
    assert changes > 0 and h.counter("drift") == 0
    owned = [r for r in h.kernel.state.rules if r.protocol == 218]
    assert owned
    for rule in owned:
        h.kernel.remove_rule(rule)
    h.events.push(rtnl.RTM_DELRULE)
    await h.until(lambda: h.counter("repairs") == len(owned))
    assert h.counter("drift") == len(owned)
    assert h.counter("changes") == changes
    assert h.daemon.status.in_sync
    m = h.daemon.tally.metrics
    assert m.repairs.labels(kind="rule", op="add")._value.get() == len(owned)
    assert m.drift.labels(kind="rule", change="missing")._value.get() == len(owned)
    assert await h.stop() == 0


async def test_read_failures_apply_nothing_and_are_retried() -> None:
    kernel = FakeKernel(article_state(), failing_reads=2)
    h = Harness(kernel)
    await h.start()
    assert h.counter("reconciles_error") == 2 and kernel.reads == 3
    assert kernel.applied and all(op.op == "add" for op in kernel.applied)
    assert await h.stop() == 0


async def test_overrun_is_counted_and_followed_by_a_full_resync() -> None:
    h = Harness(FakeKernel(article_state()))
    await h.start()
    first = h.events
    reads = h.kernel.reads
    h.kernel.remove_rule(next(r for r in h.kernel.state.rules if r.protocol == 218))
    first.push(overrun=True)
    await h.until(lambda: h.counter("repairs") == 1)
    assert h.counter("netlink_overruns") == 1
    assert first.closed and h.events is not first and h.kernel.reads > reads
    assert await h.stop() == 0


async def test_expected_races_are_retried_without_alarm() -> None:
    kernel = FakeKernel(article_state(), fail_next=[("route", "add", errno.ENODEV)])
    h = Harness(kernel)
    await h.start()
    m = h.daemon.tally.metrics
    assert m.operation_errors.labels(kind="route", op="add", errno="ENODEV")._value.get() == 1
    assert h.daemon.status.in_sync
    assert await h.stop() == 0


async def test_reload_keeps_the_old_config_when_the_new_one_is_invalid() -> None:
    configs: list[Config | Exception] = [ConfigError("x.toml", "daemon.mode", "bad value")]

    def load() -> Config:
        item = configs.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    h = Harness(FakeKernel(article_state()), load=load)
    await h.start()
    h.daemon.request_reload()
    await h.until(lambda: h.counter("config_reloads_error") == 1)
    assert h.daemon.state()["config_error"] == "x.toml: daemon.mode: bad value"
    assert h.daemon.status.in_sync
    changed = replace(CONFIG, daemon=replace(CONFIG.daemon, mode="main-first"))
    configs.append(changed)
    h.daemon.request_reload()
    await h.until(lambda: h.counter("config_reloads_ok") == 1)
    await h.until(lambda: any(r.suppress_prefixlen == 0 for r in h.kernel.state.rules))
    assert h.daemon.state()["config_error"] is None
    assert h.notifier.sent.count("RELOADING=1") == 2
    assert await h.stop() == 0


async def test_cleanup_on_exit_removes_owned_objects_only() -> None:
    config = replace(CONFIG, daemon=replace(CONFIG.daemon, cleanup_on_exit=True))
    kernel = FakeKernel(article_state())
    foreign_before = (kernel.state.rules, kernel.state.routes)
    h = Harness(kernel, config)
    await h.start()
    assert await h.stop() == 0
    assert not any(r.protocol == 218 for r in (*kernel.state.rules, *kernel.state.routes))
    assert (kernel.state.rules, kernel.state.routes) == foreign_before


async def test_stop_leaves_the_kernel_state_in_place_by_default() -> None:
    h = Harness(FakeKernel(article_state()))
    await h.start()
    owned = [r for r in h.kernel.state.rules if r.protocol == 218]
    assert owned
    assert await h.stop() == 0
    assert [r for r in h.kernel.state.rules if r.protocol == 218] == owned


async def test_a_dying_task_stops_the_daemon_with_exit_1_and_no_leaked_tasks() -> None:
    kernel = FakeKernel(article_state())
    h = Harness(kernel)
    before = asyncio.all_tasks()
    await h.start()

    def explode() -> None:
        raise RuntimeError("bug")

    kernel.read_state = explode  # type: ignore[method-assign]
    h.events.push()
    assert h.task is not None
    assert await asyncio.wait_for(h.task, 2.0) == 1
    assert asyncio.all_tasks() - before == set()


async def test_watchdog_is_fed_only_while_healthy() -> None:
    h = Harness(FakeKernel(article_state()))
    await h.start()
    await h.until(lambda: h.notifier.sent.count("WATCHDOG=1") >= 2)
    assert h.daemon.health() == (True, "ok")
    assert await h.stop() == 0


@pytest.mark.parametrize("count", [1, 5])
async def test_startup_removes_stale_objects_of_an_earlier_run(count: int) -> None:
    kernel = FakeKernel(article_state())
    h = Harness(kernel)
    await h.start()
    assert await h.stop() == 0
    stale = [op.rule for op in kernel.applied if isinstance(op, RuleOp)][:count]
    assert stale
    # the interface vanished while the daemon was stopped
    state = kernel.state
    kernel.state = replace(
        state,
        addresses=tuple(a for a in state.addresses if a.address not in {r.src for r in stale}),
    )
    h2 = Harness(kernel)
    await h2.start()
    remaining = {r.src for r in kernel.state.rules if r.protocol == 218}
    assert not remaining & {r.src for r in stale}
    assert await h2.stop() == 0


async def test_a_table_range_exhausted_at_run_time_skips_only_the_interface_left_over() -> None:
    config = Config(
        daemon=replace(CONFIG.daemon, table_range=(40000, 40000)),
        interfaces=(InterfaceSpec(name="ens*"),),  # one table per interface: two needed
    )
    h = Harness(FakeKernel(article_state()), config)
    await h.start()  # the interface that has a table is served
    state = h.daemon.state()
    assert [i["name"] for i in state["interfaces"]] == ["ens192"]
    assert [s["name"] for s in state["skipped"]] == ["ens224"]
    assert "table_range" in state["skipped"][0]["reason"]
    assert {r.table for r in h.kernel.state.rules if r.protocol == 218} == {40000}
    assert await h.stop() == 0


async def test_a_repair_that_fails_counts_its_drift_once_and_the_retry_repairs_it() -> None:
    h = Harness(FakeKernel(article_state()))
    await h.start()
    changes = h.counter("changes")
    victim = next(r for r in h.kernel.state.rules if r.protocol == 218)
    h.kernel.remove_rule(victim)
    h.kernel.fail_next.append(("rule", "add", errno.EPERM))
    h.events.push(rtnl.RTM_DELRULE)
    await h.until(lambda: h.counter("operation_errors") == 1)
    assert h.counter("drift") == 1 and h.counter("repairs") == 0
    await h.until(lambda: h.counter("repairs") == 1)  # retried with backoff
    assert h.counter("drift") == 1  # the retry is not new drift
    assert h.counter("changes") == changes  # nor a change: drift is measured against the
    assert h.daemon.status.in_sync  # last successful desired state, not the failed attempt
    # drift after that is drift again
    h.kernel.remove_rule(victim)
    h.events.push(rtnl.RTM_DELRULE)
    await h.until(lambda: h.counter("repairs") == 2)
    assert h.counter("drift") == 2 and h.counter("changes") == changes
    assert await h.stop() == 0


async def test_a_reload_before_the_first_convergence_does_not_say_ready() -> None:
    kernel = FakeKernel(article_state(), fail_next=[("rule", "add", errno.EPERM)] * 20)
    h = Harness(kernel)
    task = asyncio.create_task(h.daemon.run())
    await h.until(lambda: h.counter("reconciles_error") >= 1)
    h.daemon.request_reload()
    await h.until(lambda: "RELOADING=1" in h.notifier.sent)
    await h.until(lambda: h.counter("config_reloads_ok") == 1)
    assert "READY=1" not in h.notifier.sent
    kernel.fail_next.clear()
    await h.until(lambda: h.daemon.status.converged_once, timeout=10)
    assert h.notifier.sent.count("READY=1") == 1
    h.task = task
    assert await h.stop() == 0


async def test_an_unwritable_tables_file_does_not_stop_the_rules(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    config = replace(CONFIG, daemon=replace(
        CONFIG.daemon, rt_tables_file=str(blocker / "rt_tables.d" / "polroutd.conf")))
    h = Harness(FakeKernel(article_state()), config)
    await h.start()  # READY: the rules are in place
    assert any(r.protocol == 218 for r in h.kernel.state.rules)
    assert h.daemon.engine.tables_file_error is not None
    assert str(blocker) in h.daemon.engine.tables_file_error
    assert await h.stop() == 0


def test_without_a_tables_file_automatic_numbers_stay_with_their_interfaces() -> None:
    kernel = FakeKernel(article_state())
    engine = Engine(Config(daemon=DaemonSettings(rt_tables_file="", protocol=218)), kernel)
    first = engine.decide(kernel.read_state())
    engine.apply(first)
    before = {i.name: i.table_id for i in first.desired.interfaces}
    # an interface whose name sorts first appears (hot-plug)
    state = kernel.read_state()
    kernel.state = replace(
        state,
        links=(*state.links, Link(9, "aa0", True, True)),
        addresses=(*state.addresses, Address(9, AF_INET, "192.0.2.9", 24)),
    )
    after = {i.name: i.table_id for i in engine.decide(kernel.read_state()).desired.interfaces}
    assert {name: after[name] for name in before} == before
    assert after["aa0"] not in before.values()
