"""Issue 11: a reload that changed ``protocol`` left every object of the old protocol behind
for good (foreign to the new one, so conflicts where they stood). The old protocol's objects
are now taken over: routes by a replace, rules by an add before the delete."""

from __future__ import annotations

import pytest

from polroutd.core.model import KernelState, RouteOp, RuleOp
from polroutd.core.plan import make_plan
from polroutd.core.record import replace
from polroutd.core.settings import Config
from polroutd.daemon.instance import AlreadyRunning
from tests.support.article import PROTO, article_decision
from tests.support.fakes import FakeKernel
from tests.support.harness import CONFIG, Harness

NEW = 219


def _applied(state: KernelState) -> KernelState:
    """The article's server with polroutd's objects (protocol PROTO) in place."""
    kernel = FakeKernel(state)
    decision = article_decision()
    kernel.apply(decision.plan.operations)
    return kernel.state


def test_the_old_protocols_objects_are_replaced_and_the_rest_removed() -> None:
    decision = article_decision()
    before = _applied(decision.state)
    desired = replace(
        decision.desired,
        rules=tuple(r._replace(protocol=NEW) for r in decision.desired.rules),
        routes=tuple(r._replace(protocol=NEW) for r in decision.desired.routes),
    )
    assert make_plan(desired, before, NEW).conflicts, "without adopting: in the way for good"
    plan = make_plan(desired, before, NEW, adopt=frozenset({PROTO}))
    assert not plan.conflicts
    ops = list(plan.operations)
    # every rule is added before its old copy goes: no address without its rule
    for index, op in enumerate(ops):
        if isinstance(op, RuleOp) and op.op == "delete":
            added = [o for o in ops[:index] if isinstance(o, RuleOp) and o.op == "add"
                     and o.rule.identity() == op.rule.identity()]
            assert added, f"{op} before its replacement"
    assert all(op.op == "replace" for op in ops if isinstance(op, RouteOp)
               and not op.route.keyed_by_device)
    kernel = FakeKernel(before)
    assert all(result.ok for result in kernel.apply(plan.operations))
    ours = [o for o in (*kernel.state.rules, *kernel.state.routes) if o.protocol in (PROTO, NEW)]
    assert {o.protocol for o in ours} == {NEW}
    assert set(kernel.state.rules) >= set(desired.rules)
    assert set(kernel.state.routes) >= set(desired.routes)
    foreign = [o for o in (*before.rules, *before.routes) if o.protocol not in (PROTO, NEW)]
    assert set(foreign) <= set((*kernel.state.rules, *kernel.state.routes))
    assert make_plan(desired, kernel.state, NEW).empty  # nothing of PROTO is left


async def test_a_reload_to_another_protocol_takes_the_objects_over() -> None:
    config: list[Config] = [CONFIG]
    claimed: list[int] = []
    h = Harness(FakeKernel(article_decision().state), load=lambda: config[0])
    h.deps.claim_protocol = claimed.append
    await h.start()
    assert {o.protocol for o in (*h.kernel.state.rules, *h.kernel.state.routes)} >= {PROTO}
    config[0] = replace(CONFIG, daemon=replace(CONFIG.daemon, protocol=NEW))
    h.daemon.request_reload()
    await h.until(lambda: h.daemon.engine.protocol == NEW and not h.daemon.engine.adopting)
    assert claimed == [NEW]
    protocols = {o.protocol for o in (*h.kernel.state.rules, *h.kernel.state.routes)}
    assert PROTO not in protocols and NEW in protocols
    assert h.counter("drift") == 0 and h.counter("changes") > 0  # a change, not drift
    assert h.daemon.readiness()[0]
    assert await h.stop() == 0


async def test_a_reload_to_a_protocol_another_daemon_has_fails() -> None:
    config: list[Config] = [CONFIG]
    h = Harness(FakeKernel(article_decision().state), load=lambda: config[0])

    def taken(protocol: int) -> None:
        raise AlreadyRunning(f"another polroutd already manages protocol {protocol}")

    h.deps.claim_protocol = taken
    await h.start()
    config[0] = replace(CONFIG, daemon=replace(CONFIG.daemon, protocol=NEW))
    h.daemon.request_reload()
    await h.until(lambda: h.daemon.status.config_error is not None)
    assert h.daemon.engine.protocol == PROTO
    assert "protocol 219" in (h.daemon.status.config_error or "")
    assert {o.protocol for o in h.kernel.state.rules} & {PROTO, NEW} == {PROTO}
    assert await h.stop() == 0


@pytest.fixture(autouse=True)
def _article_protocol() -> None:
    assert CONFIG.daemon.protocol == PROTO  # the harness and the article agree
