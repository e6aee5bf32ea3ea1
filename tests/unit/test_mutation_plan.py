"""The plan's conflicts and the drift classification, stated as required behaviour (written
to kill the mutants that survived the other tests, see docs/testing.md)."""

from __future__ import annotations

from polroutd.core.limits import AF_INET, AF_INET6, RT_SCOPE_LINK, RT_TABLE_MAIN
from polroutd.core.model import (
    DesiredState,
    Gateway,
    KernelState,
    ManagedInterface,
    Route,
    RouteOp,
    Rule,
    RuleOp,
)
from polroutd.core.plan import classify, make_plan

PROTO = 218
FOREIGN = 3  # RTPROT_BOOT: what `ip` gives by default
TABLE = 30001
OURS = Rule(AF_INET, 30000, TABLE, PROTO, src="10.0.0.5", src_len=32)
CONNECTED = Route(AF_INET, TABLE, "10.0.0.0", 24, PROTO, scope=RT_SCOPE_LINK, oif=2,
                  prefsrc="10.0.0.5")
DEFAULT = Route(AF_INET, TABLE, "0.0.0.0", 0, PROTO, oif=2, gateway="10.0.0.1")
EXTRA_IN_MAIN = Route(AF_INET, RT_TABLE_MAIN, "192.168.50.0", 24, PROTO, oif=2,
                      gateway="10.0.0.1")


def interface(index: int = 2, addresses: tuple[str, ...] = ("10.0.0.5/24",),
              up: bool = True) -> ManagedInterface:
    no_gateway = Gateway(None, None, reason="test")
    return ManagedInterface(
        name=f"eth{index}", index=index, up=up, carrier=True, addresses=addresses,
        table_id=TABLE + index - 2, table_name=None, priority=30000,
        gateway4=no_gateway, gateway6=no_gateway,
    )


def desired(*, rules: tuple[Rule, ...] = (OURS,), routes: tuple[Route, ...] = (CONNECTED,),
            interfaces: tuple[ManagedInterface, ...] | None = None) -> DesiredState:
    return DesiredState(
        interfaces=(interface(),) if interfaces is None else interfaces,
        rules=rules, routes=routes, tables=frozenset({TABLE}),
    )


# --- rule conflicts -------------------------------------------------------------------------


def test_a_foreign_rule_with_polroutds_selector_and_priority_is_a_conflict() -> None:
    squatter = OURS._replace(protocol=FOREIGN, table=100)
    plan = make_plan(desired(), KernelState(rules=(squatter,), routes=(CONNECTED,)), PROTO)
    [conflict] = plan.conflicts
    assert (conflict.kind, conflict.foreign) == ("rule", squatter)
    assert "30000" in conflict.message
    # polroutd still adds its own rule (it never touches the foreign one)
    assert plan.operations == (RuleOp("add", OURS),)


def test_a_foreign_rule_at_another_priority_or_selector_is_no_conflict() -> None:
    elsewhere = (
        OURS._replace(protocol=FOREIGN, priority=100),  # same selector, other priority
        OURS._replace(protocol=FOREIGN, src="10.0.0.6"),  # same priority, other selector
        OURS._replace(protocol=FOREIGN, src=None, src_len=0, fwmark=1),
    )
    plan = make_plan(desired(), KernelState(rules=elsewhere, routes=(CONNECTED,)), PROTO)
    assert plan.conflicts == ()
    assert plan.operations == (RuleOp("add", OURS),)


def test_polroutds_own_rule_is_no_conflict() -> None:
    plan = make_plan(desired(), KernelState(rules=(OURS,), routes=(CONNECTED,)), PROTO)
    assert plan.conflicts == () and plan.operations == ()


# --- route conflicts ------------------------------------------------------------------------


def test_a_foreign_route_holding_the_key_wanted_in_main_is_a_conflict_and_left_alone() -> None:
    squatter = EXTRA_IN_MAIN._replace(protocol=FOREIGN, gateway="10.0.0.99")
    want = desired(routes=(CONNECTED, EXTRA_IN_MAIN))
    plan = make_plan(want, KernelState(rules=(OURS,), routes=(CONNECTED, squatter)), PROTO)
    [conflict] = plan.conflicts
    assert (conflict.kind, conflict.foreign) == ("route", squatter)
    assert str(RT_TABLE_MAIN) in conflict.message
    assert plan.operations == ()


def test_a_foreign_route_in_polroutds_table_is_one_conflict() -> None:
    squatter = DEFAULT._replace(protocol=FOREIGN, gateway="10.0.0.99")
    want = desired(routes=(CONNECTED, DEFAULT))
    plan = make_plan(want, KernelState(rules=(OURS,), routes=(CONNECTED, squatter)), PROTO)
    [conflict] = plan.conflicts  # reported once, though it is both in the table and in the way
    assert (conflict.kind, conflict.foreign) == ("route", squatter)
    assert str(TABLE) in conflict.message
    assert plan.operations == ()


def test_a_foreign_route_in_main_elsewhere_is_no_concern() -> None:
    other = EXTRA_IN_MAIN._replace(protocol=FOREIGN, dst="192.168.51.0")
    plan = make_plan(desired(), KernelState(rules=(OURS,), routes=(CONNECTED, other)), PROTO)
    assert plan == make_plan(desired(), KernelState(rules=(OURS,), routes=(CONNECTED,)), PROTO)
    assert plan.conflicts == () and plan.operations == ()


# --- drift or change ------------------------------------------------------------------------


def test_a_flushed_table_is_route_drift() -> None:
    state = desired(routes=(CONNECTED, DEFAULT))
    stale = DEFAULT._replace(table=TABLE, dst="192.0.2.0", dst_len=24, gateway=None)
    plan = make_plan(state, KernelState(rules=(OURS,), routes=(stale,)), PROTO)
    classified = {(c.operation.op, c.operation.route): (c.cause, c.drift)  # type: ignore[union-attr]
                  for c in classify(plan, state, state)}
    assert classified == {
        ("add", CONNECTED): ("drift", "missing"),
        ("add", DEFAULT): ("drift", "missing"),
        ("delete", stale): ("drift", "unexpected"),
    }


def test_a_route_changed_by_someone_else_is_drift_changed() -> None:
    state = desired(routes=(CONNECTED, DEFAULT))
    tampered = DEFAULT._replace(gateway="10.0.0.2")
    plan = make_plan(state, KernelState(rules=(OURS,), routes=(CONNECTED, tampered)), PROTO)
    [item] = classify(plan, state, state)
    assert (item.operation, item.cause, item.drift) == (
        RouteOp("replace", DEFAULT, previous=tampered), "drift", "changed"
    )


def test_a_route_whose_desired_form_moved_is_a_change() -> None:
    before = desired(routes=(CONNECTED, DEFAULT._replace(gateway="10.0.0.2")))
    after = desired(routes=(CONNECTED, DEFAULT))
    actual = KernelState(rules=(OURS,), routes=(CONNECTED, DEFAULT._replace(gateway="10.0.0.2")))
    [item] = classify(make_plan(after, actual, PROTO), before, after)
    assert (item.operation.op, item.cause, item.drift) == ("replace", "change", None)


def test_repairs_on_an_interface_that_appeared_or_went_are_changes() -> None:
    # A route of ours on interface 3 that neither state wants: deleting it repairs drift when
    # interface 3 is as it was, and follows a change when it came or went.
    leftover = Route(AF_INET, 999, "0.0.0.0", 0, PROTO, oif=3, gateway="10.3.0.1")
    with3 = desired(interfaces=(interface(), interface(3, ("10.3.0.5/24",))))
    without3 = desired()
    actual = KernelState(rules=(OURS,), routes=(CONNECTED, leftover))
    for before, after in ((without3, with3), (with3, without3)):
        [item] = classify(make_plan(after, actual, PROTO), before, after)
        assert (item.operation, item.cause) == (RouteOp("delete", leftover), "change")
    [item] = classify(make_plan(with3, actual, PROTO), with3, with3)
    assert (item.cause, item.drift) == ("drift", "unexpected")


def test_a_rule_repair_on_an_interface_whose_addresses_moved_is_a_change() -> None:
    before = desired()
    after = desired(interfaces=(interface(addresses=("10.0.0.5/24", "10.0.0.6/24")),))
    [item] = classify(make_plan(after, KernelState(routes=(CONNECTED,)), PROTO), before, after)
    assert (item.operation, item.cause, item.drift) == (RuleOp("add", OURS), "change", None)
    [item] = classify(make_plan(after, KernelState(routes=(CONNECTED,)), PROTO), after, after)
    assert (item.operation, item.cause, item.drift) == (RuleOp("add", OURS), "drift", "missing")


def test_an_interface_going_down_makes_its_repairs_changes() -> None:
    before = desired()
    after = desired(interfaces=(interface(up=False),))
    [item] = classify(make_plan(after, KernelState(routes=(CONNECTED,)), PROTO), before, after)
    assert item.cause == "change"


def test_a_rule_that_stopped_being_wanted_is_a_change_and_one_never_wanted_is_drift() -> None:
    gone = OURS._replace(src="10.0.0.7")
    before = desired(rules=(OURS, gone))
    after = desired()
    actual = KernelState(rules=(OURS, gone), routes=(CONNECTED,))
    [item] = classify(make_plan(after, actual, PROTO), before, after)
    assert (item.operation, item.cause) == (RuleOp("delete", gone), "change")
    [item] = classify(make_plan(after, actual, PROTO), after, after)
    assert (item.operation, item.cause, item.drift) == (RuleOp("delete", gone), "drift",
                                                        "unexpected")


def test_without_a_previous_state_everything_is_a_change() -> None:
    state = desired(routes=(CONNECTED, DEFAULT))
    plan = make_plan(state, KernelState(), PROTO)
    assert len(plan.operations) == 3
    assert [(c.operation, c.cause, c.drift) for c in classify(plan, None, state)] == [
        (op, "change", None) for op in plan.operations
    ]


def test_an_empty_plan_classifies_to_nothing() -> None:
    state = desired()
    plan = make_plan(state, KernelState(rules=(OURS,), routes=(CONNECTED,)), PROTO)
    assert plan.empty and classify(plan, state, state) == []


# --- order ----------------------------------------------------------------------------------


def test_routes_without_a_gateway_are_added_first_and_rules_after_routes() -> None:
    # Numeric address order, not text order: 9.x before 10.x (and the default, 0.0.0.0, which
    # has a gateway, after the routes that make that gateway reachable).
    nine = CONNECTED._replace(dst="9.0.0.0", dst_len=8, prefsrc=None)
    state = desired(routes=(DEFAULT, CONNECTED, nine))
    assert make_plan(state, KernelState(), PROTO).operations == (
        RouteOp("add", nine), RouteOp("add", CONNECTED), RouteOp("add", DEFAULT),
        RuleOp("add", OURS),
    )


def test_rules_are_added_and_deleted_by_priority_then_numeric_address() -> None:
    # The order of ``ip rule``: priority first (not family), addresses as numbers (10.0.0.9
    # before 10.0.0.10, which text order reverses), whatever the order they are given in.
    ten, nine = OURS._replace(src="10.0.0.10"), OURS._replace(src="10.0.0.9")
    first = Rule(AF_INET6, 29999, TABLE, PROTO, src="2001:db8::1", src_len=128)
    state = desired(rules=(ten, nine, first), routes=())
    assert make_plan(state, KernelState(), PROTO).operations == (
        RuleOp("add", first), RuleOp("add", nine), RuleOp("add", ten),
    )
    gone = make_plan(desired(rules=(), routes=()), KernelState(rules=(ten, nine, first)), PROTO)
    assert gone.operations == (
        RuleOp("delete", first), RuleOp("delete", nine), RuleOp("delete", ten),
    )


def test_several_of_ours_at_one_key_leave_one_replaced_whatever_the_dump_order() -> None:
    device = DEFAULT._replace(gateway=None, metric=0)
    via_other = DEFAULT._replace(gateway="10.0.0.2")
    state = desired(routes=(CONNECTED, DEFAULT))
    plans = [make_plan(state, KernelState(rules=(OURS,), routes=(CONNECTED, *order)), PROTO)
             for order in ((device, via_other), (via_other, device))]
    assert plans[0] == plans[1]
    ops = plans[0].operations
    assert [op.op for op in ops] == ["delete", "replace"]  # room made before the replace
    assert {ops[0].route, ops[1].previous} == {device, via_other}  # type: ignore[union-attr]
    assert ops[1].route == DEFAULT


def test_a_foreign_route_anywhere_in_polroutds_table_is_a_conflict_left_alone() -> None:
    stranger = CONNECTED._replace(protocol=FOREIGN, dst="172.16.0.0", dst_len=12)
    plan = make_plan(desired(), KernelState(rules=(OURS,), routes=(CONNECTED, stranger)), PROTO)
    [conflict] = plan.conflicts
    assert (conflict.kind, conflict.foreign) == ("route", stranger)
    assert plan.operations == ()


def test_a_second_route_of_ours_beside_the_right_one_is_deleted_after_the_rules() -> None:
    via_other = DEFAULT._replace(gateway="10.0.0.2")
    stale_rule = OURS._replace(src="10.0.0.9")
    state = desired(routes=(CONNECTED, DEFAULT))
    actual = KernelState(rules=(OURS, stale_rule), routes=(CONNECTED, DEFAULT, via_other))
    assert make_plan(state, actual, PROTO).operations == (
        RuleOp("delete", stale_rule), RouteOp("delete", via_other),
    )


def test_two_of_ours_via_other_gateways_give_one_plan_whatever_the_dump_order() -> None:
    via_b, via_c = DEFAULT._replace(gateway="10.0.0.11"), DEFAULT._replace(gateway="10.0.0.9")
    state = desired(routes=(CONNECTED, DEFAULT))
    plans = [make_plan(state, KernelState(rules=(OURS,), routes=(CONNECTED, *order)), PROTO)
             for order in ((via_b, via_c), (via_c, via_b))]
    assert plans[0] == plans[1]
    assert [op.op for op in plans[0].operations] == ["delete", "replace"]


def test_two_of_ours_through_other_devices_give_one_plan_whatever_the_dump_order() -> None:
    dev3, dev4 = DEFAULT._replace(oif=3), DEFAULT._replace(oif=4)
    state = desired(routes=(CONNECTED, DEFAULT))
    plans = [make_plan(state, KernelState(rules=(OURS,), routes=(CONNECTED, *order)), PROTO)
             for order in ((dev3, dev4), (dev4, dev3))]
    assert plans[0] == plans[1]


def test_a_wanted_rule_is_ours_in_the_kernel_whatever_protocol_it_carries() -> None:
    """A rule's identity leaves its protocol out (Rule.identity): a wanted rule that differs
    from ours in the kernel only there is already in place, neither added nor deleted."""
    wanted = OURS._replace(protocol=FOREIGN)
    plan = make_plan(desired(rules=(wanted,)), KernelState(rules=(OURS,), routes=(CONNECTED,)),
                     PROTO)
    assert plan.operations == ()
