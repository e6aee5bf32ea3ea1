"""RTA_MULTIPATH against the real kernel and pyroute2 (the independent oracle): multipath
routes polroutd encodes are accepted, read back equal (so a reconcile finds nothing to do),
and decoded as pyroute2 decodes them. IPv4 and IPv6."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.support.lab_tools import namespace, probe

SETUP = [
    "link add d1 type veth peer name p1", "link add d2 type veth peer name p2",
    "link set p1 up", "link set p2 up", "link set d1 up", "link set d2 up",
    "addr add 10.1.0.2/24 dev d1", "addr add 10.2.0.2/24 dev d2",
    "addr add 2001:db8:1::2/64 dev d1 nodad", "addr add 2001:db8:2::2/64 dev d2 nodad",
]

PROBE = r"""
import json
from pyroute2 import IPRoute
from polroutd.core.model import KernelState, NextHop, Route, RouteOp, DesiredState
from polroutd.core.plan import make_plan
from polroutd.netlink.kernel import Netlink

wanted = (
    Route(2, 900, "0.0.0.0", 0, 218, nexthops=(NextHop(2, "10.1.0.1", 3),
                                               NextHop(3, "10.2.0.1", 1))),
    Route(10, 900, "::", 0, 218, metric=1024,
          nexthops=(NextHop(2, "2001:db8:1::1", 2), NextHop(3, "2001:db8:2::1", 5))),
)
with Netlink() as nl:
    links = {l.name: l.ifindex for l in nl.read_links()}
    wanted = tuple(r._replace(nexthops=tuple(h._replace(oif=links["d1" if h.oif == 2 else "d2"])
                                             for h in r.nexthops)) for r in wanted)
    results = nl.apply([RouteOp("add", r) for r in wanted])
    state = nl.read_state()
ours = sorted(
    [r.family, [[h.oif, h.gateway, h.weight] for h in r.nexthops]]
    for r in state.routes if r.table == 900)
desired = DesiredState(interfaces=(), rules=(), routes=wanted, tables=frozenset({900}))
theirs = []
with IPRoute() as ipr:
    for family in (2, 10):
        for m in ipr.get_routes(family=family, table=900):
            hops = m.get_attr("RTA_MULTIPATH") or []
            theirs.append([m["family"], [[h["oif"], h.get_attr("RTA_GATEWAY"), h["hops"] + 1]
                                         for h in hops]])
replan = len(make_plan(desired, state, 218).operations)
print(json.dumps({"errors": [r.errno for r in results], "ours": ours,
                  "theirs": sorted(theirs), "replan": replan}))
"""


def test_multipath_routes_round_trip_through_the_kernel_and_agree_with_pyroute2() -> None:
    pytest.importorskip("pyroute2")
    with namespace() as ns:
        seen_by = probe(ns, PROBE, SETUP)
        shown = subprocess.run(["ip", "-n", ns, "-6", "route", "show", "table", "900"],
                               capture_output=True, text=True).stdout
    assert seen_by.returncode == 0, seen_by.stderr
    seen = json.loads(seen_by.stdout)
    assert seen["errors"] == [0, 0]
    assert seen["ours"] == seen["theirs"], shown
    assert [len(hops) for _, hops in seen["ours"]] == [2, 2]
    assert sorted(w for _, hops in seen["ours"] for _, _, w in hops) == [1, 2, 3, 5]
    assert seen["replan"] == 0  # read back equal: a reconcile finds nothing to do
