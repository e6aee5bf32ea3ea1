"""Uplinks in the pure core: the health state machine and the uplink table, with health as an
input (no kernel, no clock), by example and by property."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from polroutd.core.desired import Inputs, TableRef, desired_state
from polroutd.core.health import (
    LinkSeen,
    NeighbourSeen,
    Observation,
    ProbeResult,
    initial,
    observe,
)
from polroutd.core.limits import AF_INET, AF_INET6, RT_SCOPE_LINK, RT_TABLE_MAIN
from polroutd.core.model import Address, KernelState, Link, NextHop, Route, RouteOp
from polroutd.core.plan import make_plan
from polroutd.core.settings import Config, DaemonSettings, InterfaceSpec, UplinkSpec
from polroutd.netlink import codec as rtnl
from polroutd.netlink.kernel import encode_operation

PROTO = 218
DHCP = 16
UPLINK_TABLE = 500
WAN = {"wan1": (2, "10.1.0", "2001:db8:1::"), "wan2": (3, "10.2.0", "2001:db8:2::"),
       "wan3": (4, "10.3.0", "2001:db8:3::")}


def uplink_config(mode: str = "failover", weights: dict[str, int] | None = None) -> Config:
    return Config(
        daemon=DaemonSettings(uplinks=mode),  # type: ignore[arg-type]
        interfaces=tuple(
            InterfaceSpec(name=name, uplink=UplinkSpec(metric=100 * (n + 1),
                                                       weight=(weights or {}).get(name, 1)))
            for n, name in enumerate(WAN)
        ),
    )


def kernel(carrier: dict[str, bool] | None = None, v6: bool = True) -> KernelState:
    links, addresses, routes = [Link(1, "lo", True, True, loopback=True)], [], []
    for name, (index, v4, six) in WAN.items():
        links.append(Link(index, name, up=True, carrier=(carrier or {}).get(name, True)))
        addresses.append(Address(index, AF_INET, f"{v4}.2", 24))
        routes.append(Route(AF_INET, RT_TABLE_MAIN, f"{v4}.0", 24, 2, scope=RT_SCOPE_LINK,
                            oif=index, prefsrc=f"{v4}.2"))
        # Each DHCP client installs its own default in main: foreign, never touched.
        routes.append(Route(AF_INET, RT_TABLE_MAIN, "0.0.0.0", 0, DHCP, metric=index,
                            oif=index, gateway=f"{v4}.1"))
        if v6:
            addresses.append(Address(index, AF_INET6, f"{six}2", 64))
            routes.append(Route(AF_INET6, RT_TABLE_MAIN, "::", 0, DHCP, metric=1024 + index,
                                oif=index, gateway=f"{six}1"))
    return KernelState(links=tuple(links), addresses=tuple(addresses), routes=tuple(routes))


def decide(config: Config, state: KernelState, health: dict[tuple[str, int], bool] | None):  # type: ignore[no-untyped-def]
    tables = {name: TableRef(100 + n, name) for n, name in enumerate(WAN)}
    return desired_state(state, Inputs(
        config=config, protocol=PROTO, tables=tables, named_tables={}, leases={},
        uplink_table=TableRef(UPLINK_TABLE, "uplinks"), uplink_health=health,
    ))


def uplink_routes(desired):  # type: ignore[no-untyped-def]
    return [r for r in desired.routes if r.table == UPLINK_TABLE]


def test_failover_gives_one_default_per_healthy_uplink_and_the_two_rules() -> None:
    desired = decide(uplink_config(), kernel(), {("wan1", AF_INET): False})
    v4 = sorted((r.metric, r.gateway, r.oif) for r in uplink_routes(desired) if r.family == AF_INET)
    assert v4 == [(200, "10.2.0.1", 3), (300, "10.3.0.1", 4)]
    rules = [(r.family, r.priority, r.table, r.suppress_prefixlen) for r in desired.rules
             if r.priority >= 32760]
    assert rules == [(AF_INET, 32760, RT_TABLE_MAIN, 0), (AF_INET6, 32760, RT_TABLE_MAIN, 0),
                     (AF_INET, 32761, UPLINK_TABLE, None), (AF_INET6, 32761, UPLINK_TABLE, None)]
    active = {(c.interface, c.family) for c in desired.uplinks if c.active}
    assert active == {("wan2", AF_INET), ("wan1", AF_INET6)}
    assert all(r.table != RT_TABLE_MAIN for r in desired.routes if r.is_default)


def test_balance_gives_one_multipath_route_by_weight() -> None:
    config = uplink_config("balance", {"wan1": 3, "wan2": 1})
    desired = decide(config, kernel(), {("wan3", AF_INET): False})
    (route,) = [r for r in uplink_routes(desired) if r.family == AF_INET]
    assert route.oif is None and route.gateway is None
    assert [(h.oif, h.gateway, h.weight) for h in route.nexthops] == [
        (2, "10.1.0.1", 3), (3, "10.2.0.1", 1)]


def test_balance_with_one_healthy_uplink_is_a_plain_route_as_the_kernel_shows_it() -> None:
    desired = decide(uplink_config("balance"), kernel(v6=False),
                     {("wan1", AF_INET): False, ("wan2", AF_INET): False})
    (route,) = uplink_routes(desired)
    assert (route.oif, route.gateway, route.nexthops) == (4, "10.3.0.1", ())


def test_without_observed_health_the_links_decide() -> None:
    """``polroutd plan``/``apply``/``render`` have no probes: carrier is all they know."""
    desired = decide(uplink_config(), kernel({"wan1": False}, v6=False), None)
    assert {r.oif for r in uplink_routes(desired)} == {3, 4}


def test_an_observed_up_never_overrides_a_link_without_carrier() -> None:
    desired = decide(uplink_config(), kernel({"wan1": False}, v6=False),
                     {("wan1", AF_INET): True})
    assert 2 not in {r.oif for r in uplink_routes(desired)}


def test_uplinks_off_means_no_uplink_objects() -> None:
    config = Config(interfaces=tuple(InterfaceSpec(name=n) for n in WAN))
    desired = decide(config, kernel(), None)
    assert not uplink_routes(desired) and desired.uplinks == ()
    assert all(r.priority < 32760 for r in desired.rules)


@settings(max_examples=150, deadline=None)
@given(
    mode=st.sampled_from(["failover", "balance"]),
    health=st.dictionaries(st.tuples(st.sampled_from(list(WAN)),
                                     st.sampled_from([AF_INET, AF_INET6])), st.booleans()),
    carrier=st.dictionaries(st.sampled_from(list(WAN)), st.booleans()),
)
def test_uplink_table_properties(
    mode: str, health: dict[tuple[str, int], bool], carrier: dict[str, bool]
) -> None:
    state = kernel(carrier)
    desired = decide(uplink_config(mode), state, health)
    index = {name: WAN[name][0] for name in WAN}
    healthy = {
        (name, family) for name in WAN for family in (AF_INET, AF_INET6)
        if carrier.get(name, True) and health.get((name, family), True)
    }
    for family in (AF_INET, AF_INET6):
        routes = [r for r in uplink_routes(desired) if r.family == family]
        via = {h.oif for r in routes for h in r.nexthops} | {r.oif for r in routes if r.oif}
        # exactly the healthy uplinks carry routes, never an unhealthy one
        assert via == {index[n] for n, f in healthy if f == family}
        if mode == "balance":
            assert len(routes) <= 1
        else:
            assert len({r.metric for r in routes}) == len(routes)
        active = {c.interface for c in desired.uplinks if c.active and c.family == family}
        if mode == "failover" and routes:
            best = min(routes, key=lambda r: r.metric)
            assert active == {n for n in WAN if index[n] == best.oif}
        assert active <= {n for n, f in healthy if f == family}
    plan = make_plan(desired, state, PROTO)
    # polroutd never adds, changes or deletes a default route in main (nor anything foreign)
    assert all(op.route.table != RT_TABLE_MAIN for op in plan.operations
               if isinstance(op, RouteOp))
    assert all(getattr(op, "route", getattr(op, "rule", None)).protocol == PROTO
               for op in plan.operations)
    # idempotent: once applied, nothing more to do
    applied = KernelState(state.links, state.addresses, state.routes + desired.routes,
                          desired.rules)
    assert make_plan(desired, applied, PROTO).empty


# --- the health state machine ---------------------------------------------------------------


def run(seen: list[Observation], down: int = 3, up: int = 3, link_ok: bool = True):  # type: ignore[no-untyped-def]
    health = initial(0.0, link_ok)
    transitions = []
    for item in seen:
        health, transition = observe(health, item, down_after=down, up_after=up)
        if transition:
            transitions.append(transition)
    return health, transitions


def ok(at: float) -> ProbeResult:
    return ProbeResult(at, True, 0.001)


def fail(at: float) -> ProbeResult:
    return ProbeResult(at, False, None, "timeout")


def test_carrier_loss_is_down_at_once_and_up_only_after_probe_up_successes() -> None:
    _, transitions = run([LinkSeen(1.0, False), LinkSeen(1.1, True), ok(1.2), ok(1.4)])
    assert [(t.up, t.cause) for t in transitions] == [(False, "link")]
    _, transitions = run([LinkSeen(1.0, False), LinkSeen(1.1, True), ok(1.2), ok(1.4),
                               ok(1.6)])
    assert [(t.up, t.cause, t.at) for t in transitions] == [(False, "link", 1.0),
                                                            (True, "probe", 1.6)]


def test_probe_failures_take_it_down_after_probe_down_in_a_row() -> None:
    _, transitions = run([fail(1), fail(2), ok(3), fail(4), fail(5)])
    assert transitions == []
    _, transitions = run([fail(1), fail(2), fail(3)])
    assert [(t.up, t.cause, t.at) for t in transitions] == [(False, "probe", 3)]


def test_a_failed_neighbour_is_down_at_once_and_an_answer_clears_it() -> None:
    health, transitions = run([NeighbourSeen(1, True), ok(2), ok(3), ok(4)])
    assert [(t.up, t.cause) for t in transitions] == [(False, "neighbour"), (True, "probe")]
    assert not health.neighbour_failed


def test_answers_to_requests_queued_while_the_link_was_down_do_not_make_up_probe_up() -> None:
    """Found in the lab: echo requests sent while the carrier was gone wait in the neighbour
    queue and are all answered the moment it comes back; they must not count."""
    _, transitions = run([
        LinkSeen(1.0, False),
        LinkSeen(2.0, True),
        ProbeResult(2.03, True, 0.23, sent=1.8),  # queued, answered at once
        ProbeResult(2.03, True, 0.03, sent=2.0),
        ProbeResult(2.2, True, 0.001, sent=2.2),
    ])
    assert [(t.up, t.cause) for t in transitions] == [(False, "link")]
    _, transitions = run([LinkSeen(1.0, False), LinkSeen(2.0, True), ok(2.0), ok(2.2),
                          ok(2.4)])
    assert [(t.up, t.at) for t in transitions] == [(False, 1.0), (True, 2.4)]


def test_answers_arriving_together_count_once_with_a_spacing() -> None:
    """A neighbour that resolves at last releases every request queued for it at once."""
    burst = [NeighbourSeen(1.0, True), ProbeResult(2.0, True, 0.3, sent=1.7),
             ProbeResult(2.0, True, 0.1, sent=1.9), ProbeResult(2.05, True, 0.01, sent=2.04)]
    _, transitions = run(burst)
    assert [t.up for t in transitions] == [False, True]  # without a spacing: up at once
    spaced = initial(0.0, True)
    ups = []
    for item in [*burst, ProbeResult(2.25, True, 0.01, sent=2.24),
                 ProbeResult(2.45, True, 0.01, sent=2.44)]:
        spaced, transition = observe(spaced, item, down_after=3, up_after=3, spacing=0.1)
        if transition:
            ups.append((transition.up, transition.at))
    assert ups == [(False, 1.0), (True, 2.45)]


def test_a_success_sent_before_a_failure_does_not_count() -> None:
    _, transitions = run([fail(1), fail(2), fail(3),
                          ProbeResult(4.0, False, None, "timeout", sent=3.7),
                          ProbeResult(4.1, True, 0.6, sent=3.5), ok(4.2), ok(4.4)], up=3)
    assert [t.up for t in transitions] == [False]


observations = st.lists(st.one_of(
    st.builds(LinkSeen, st.just(0.0), st.booleans()),
    st.builds(NeighbourSeen, st.just(0.0), st.booleans()),
    st.builds(ProbeResult, st.just(0.0), st.booleans(), st.just(None)),
), max_size=60)


@settings(max_examples=300, deadline=None)
@given(seen=observations, down=st.integers(1, 4), up=st.integers(1, 4),
       link_ok=st.booleans())
def test_health_properties(seen: list[Observation], down: int, up: int, link_ok: bool) -> None:
    seen = [s._replace(at=float(n)) for n, s in enumerate(seen)]
    health = initial(-1.0, link_ok)
    link, run_of_ok, run_of_fail, ups_allowed = link_ok, 0, 0, 0
    ups = 0
    for item in seen:
        before = health.up
        health, transition = observe(health, item, down_after=down, up_after=up)
        if isinstance(item, LinkSeen):
            link = item.ok
            run_of_ok = 0
        elif isinstance(item, NeighbourSeen):
            run_of_ok = 0 if item.failed else run_of_ok
        else:
            run_of_ok, run_of_fail = (run_of_ok + link, 0) if item.ok else (0, run_of_fail + 1)
            if item.ok and run_of_ok == up and link:
                ups_allowed += 1
        if transition is not None:
            assert transition.up != before and transition.up == health.up  # alternates
            if transition.up:
                ups += 1
                # up only with the link up, after probe_up successes in a row
                assert link and run_of_ok >= up and transition.cause == "probe"
            elif transition.cause == "probe":
                assert run_of_fail >= down
            elif transition.cause == "link":
                assert not link
        if not link:
            assert not health.up
    # hysteresis: at most one up per run of probe_up successes (a flapping link resets it)
    assert ups <= ups_allowed


# --- the codec: RTA_MULTIPATH ------------------------------------------------------------------


@given(weights=st.lists(st.integers(1, 256), min_size=2, max_size=4), v6=st.booleans())
def test_multipath_routes_survive_encoding_and_decoding(weights: list[int], v6: bool) -> None:
    family = AF_INET6 if v6 else AF_INET
    hops = tuple(NextHop(n + 2, f"2001:db8:{n + 1}::1" if v6 else f"10.{n}.0.1", w)
                 for n, w in enumerate(weights))
    route = Route(family, UPLINK_TABLE, "::" if v6 else "0.0.0.0", 0, PROTO,
                  metric=1024 if v6 else 0, nexthops=hops)
    wire = encode_operation(RouteOp("add", route), 7)
    (message,) = rtnl.iter_messages(wire)
    decoded = rtnl.decode_route(message[4])
    assert decoded == route
