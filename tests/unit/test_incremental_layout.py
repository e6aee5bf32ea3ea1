"""The layout carried from pieces to pieces by each event's decision (core/incremental.py)
equals the one laid out afresh from all the pieces, whatever changed (issue 13: an event's
decision must not pass over every interface)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from polroutd.core.desired import Piece
from polroutd.core.incremental import Layout, Pieces
from polroutd.core.limits import AF_INET
from polroutd.core.model import Gateway, ManagedInterface, Route, Rule

NAMES = [f"eth{i}" for i in range(8)]


def _piece(index: int, name: str, table: int, rules: int, routes: int, priority: int,
           lease: float | None, own: bool) -> Piece:
    interface = ManagedInterface(
        name=name, index=index, up=True, carrier=True, addresses=(), table_id=table,
        table_name=name, priority=priority,
        gateway4=Gateway("10.0.0.1", "dhcp-lease" if lease else "config", lease_expires=lease),
        gateway6=Gateway(None, None, reason="none"))
    return Piece(
        interface,
        tuple(Rule(AF_INET, priority, table, 218, src=f"10.{index}.0.{k}", src_len=32)
              for k in range(rules)),
        tuple(Route(AF_INET, table, f"10.{index}.{k}.0", 24, 218) for k in range(routes)),
        own_table_only=own)


shape = st.tuples(st.integers(0, 3), st.integers(0, 3), st.sampled_from([100, 200]),
                  st.sampled_from([None, 50.0, 60.0]), st.booleans())


@st.composite
def _pieces(draw: st.DrawFn) -> dict[int, Piece]:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, min_size=1))
    return {10 + i: _piece(10 + i, name, 1000 + i, *draw(shape)) for i, name in enumerate(names)}


@settings(max_examples=200, deadline=None)
@given(_pieces(), st.data())
def test_the_layout_carried_over_equals_a_fresh_one(
    start: dict[int, Piece], data: st.DataObject
) -> None:
    pieces = Pieces(start)
    assert pieces.layout == Layout.of(start)
    for _ in range(data.draw(st.integers(1, 5))):
        indexes = data.draw(st.sets(st.sampled_from(sorted(start)), min_size=1))
        changed = {}
        for index in indexes:
            old = pieces[index].interface
            # mostly the same name and table (the carried-over case), now and then not
            name = data.draw(st.sampled_from([old.name, old.name, f"new{index}"]))
            table = data.draw(st.sampled_from([old.table_id, old.table_id, 2000 + index]))
            changed[index] = _piece(index, name, table, *data.draw(shape))
        pieces = pieces.replaced(changed)
        assert pieces.layout == Layout.of(dict(pieces.items()))
        ends = [g.lease_expires for p in pieces.values()
                for g in (p.interface.gateway4, p.interface.gateway6) if g.lease_expires]
        assert pieces.layout.earliest_lease_expiry == min(ends, default=None)
