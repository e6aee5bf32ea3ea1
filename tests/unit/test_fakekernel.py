"""The fake kernel answers like the real one where the core's tests depend on it."""

from __future__ import annotations

import errno

from polroutd.core.limits import AF_INET, AF_INET6, IP6_DEFAULT_METRIC
from polroutd.core.model import KernelState, Link, Route, RouteOp, Rule, RuleOp
from tests.support.fakes import FakeKernel

ETH = Link(2, "eth0", up=True, carrier=True)


def test_an_ipv6_route_given_metric_0_is_stored_with_metric_1024() -> None:
    kernel = FakeKernel(KernelState(links=(ETH,)))
    route = Route(AF_INET6, 100, "2001:db8::", 64, 218, metric=0, oif=2)
    assert kernel.apply([RouteOp("add", route)])[0].ok
    assert kernel.state.routes == (route._replace(metric=IP6_DEFAULT_METRIC),)
    # and it is the same route for a second add and for a delete
    assert kernel.apply([RouteOp("add", route)])[0].errno == errno.EEXIST
    assert kernel.apply([RouteOp("delete", route)])[0].ok
    assert kernel.state.routes == ()


def test_an_ipv4_route_keeps_metric_0() -> None:
    kernel = FakeKernel(KernelState(links=(ETH,)))
    route = Route(AF_INET, 100, "10.0.0.0", 24, 218, metric=0, oif=2)
    kernel.apply([RouteOp("add", route)])
    assert kernel.state.routes == (route,)


def test_unknown_operations_are_refused_and_change_nothing() -> None:
    route = Route(AF_INET, 100, "10.0.0.0", 24, 218, oif=2)
    rule = Rule(AF_INET, 30000, 100, 218, src="10.0.0.1", src_len=32)
    state = KernelState(links=(ETH,), routes=(route._replace(metric=5),), rules=(rule,))
    kernel = FakeKernel(state)
    bogus = [RouteOp("append", route), RuleOp("replace", rule)]  # type: ignore[arg-type]
    assert [r.errno for r in kernel.apply(bogus)] == [errno.EOPNOTSUPP, errno.EOPNOTSUPP]
    assert kernel.state == state
