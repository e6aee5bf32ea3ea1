"""The view's groups (by interface, by table) derived from the last tuple's equal a fresh
grouping, whatever came or went in between (issue 13: per-event work must not scan the view)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from polroutd.core.kernelview import apply_results, divergence, grouped
from polroutd.core.limits import AF_INET, AF_INET6
from polroutd.core.model import Address, KernelState, OpResult, Route, RouteOp

ADDRESSES = [Address(1 + i % 5, AF_INET, f"10.0.{i % 5}.{i}", 24) for i in range(80)]


def _fresh(items: tuple[Address, ...], field: str) -> dict[object, Counter[Address]]:
    out: dict[object, Counter[Address]] = {}
    for item in items:
        out.setdefault(getattr(item, field), Counter())[item] += 1
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(ADDRESSES), unique=True, max_size=80), min_size=1,
                max_size=8),
       st.sampled_from(["ifindex", "address"]))
def test_derived_groups_equal_fresh_ones(versions: list[list[Address]], field: str) -> None:
    for version in versions:
        items = tuple(version)
        got = {key: Counter(group) for key, group in grouped(items, field).items()}
        assert got == _fresh(items, field)


def test_objects_appended_come_last_in_their_group() -> None:
    first = tuple(ADDRESSES[:40])
    before = list(grouped(first, "ifindex")[1])
    second = (*first, *ADDRESSES[40:50])
    assert grouped(second, "ifindex")[1] == before + [a for a in ADDRESSES[40:50]
                                                      if a.ifindex == 1]


edit = st.tuples(st.sampled_from(["del", "ins", "rep"]), st.integers(0, 200),
                 st.sampled_from(ADDRESSES))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(edit, max_size=6), min_size=1, max_size=8),
       st.sampled_from(["ifindex", "address"]))
def test_groups_after_a_few_edits_equal_fresh_ones(
    rounds: list[list[tuple[str, int, Address]]], field: str
) -> None:
    items = list(ADDRESSES[:60])
    grouped(tuple(items), field)
    for edits in rounds:
        for what, at, address in edits:
            at = at % (len(items) + 1)
            if what == "ins":
                items.insert(at, address)
            elif items and at < len(items):
                if what == "del":
                    del items[at]
                else:
                    items[at] = address
        version = tuple(items)
        got = {key: Counter(group) for key, group in grouped(version, field).items()}
        assert got == _fresh(version, field)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(ADDRESSES), max_size=120),
       st.lists(st.tuples(st.sampled_from(["swap", "drop", "add", "dup"]),
                          st.integers(0, 119), st.integers(0, 119)), max_size=80))
def test_divergence_is_a_comparison_of_multisets(
    items: list[Address], edits: list[tuple[str, int, int]]
) -> None:
    """Whatever the order and the duplicates, the view diverges exactly when the two hold
    different objects or different numbers of them (few moves or many)."""
    from polroutd.core.kernelview import divergence
    from polroutd.core.model import KernelState

    other = list(items)
    for what, i, j in edits:
        if what == "swap" and other:
            a, b = i % len(other), j % len(other)
            other[a], other[b] = other[b], other[a]
        elif what == "drop" and other:
            del other[i % len(other)]
        elif what == "add":
            other.insert(i % (len(other) + 1), ADDRESSES[j % len(ADDRESSES)])
        elif what == "dup" and other:
            other.append(other[i % len(other)])
    found = divergence(KernelState(addresses=tuple(items)), KernelState(addresses=tuple(other)))
    assert (found == ["address"]) == (Counter(items) != Counter(other))


def _copy(table: int, oif: int, metric: int = 256) -> Route:
    return Route(AF_INET6, table, "fe80::", 64, 218, metric=metric, oif=oif)


@settings(max_examples=60, deadline=None)
@given(st.sets(st.tuples(st.integers(100, 111), st.integers(2, 13)), min_size=16),
       st.data())
def test_a_plan_deleting_many_alike_routes_leaves_the_rest(
    copies: set[tuple[int, int]], data: st.DataObject,
) -> None:
    """Strict mode's copies of fe80::/64 (one per table and device) deleted by the dozen, the
    first as the kernel holds them, the last by key (the kernel deletes by key, protocol,
    device and gateway: a delete naming another scope takes the same route), looked for
    among the many already taken out: the view keeps exactly the others."""
    routes = [_copy(table, oif) for table, oif in sorted(copies)]
    state = KernelState(routes=(Route(AF_INET, 254, "10.0.0.0", 8, 2, oif=2), *routes))
    deleted = data.draw(st.lists(st.sampled_from(routes), unique=True, min_size=12))
    exact = data.draw(st.integers(9, len(deleted) - 1))
    ops = [RouteOp("delete", r if at < exact else r._replace(scope=253))
           for at, r in enumerate(deleted)]
    view = apply_results(state, [OpResult(op) for op in ops])
    left = [r for r in state.routes if r not in deleted]
    assert Counter(view.routes) == Counter(left)
    assert divergence(view, KernelState(routes=tuple(left))) == []
