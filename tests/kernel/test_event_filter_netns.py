"""The event socket's kernel-side filter: the local table's route notifications (the kernel's
own routes for each local address, about half of an address burst's events) never reach
polroutd; every other notification does, as before."""

from __future__ import annotations

import json

from tests.support.lab_tools import namespace, probe

# Runs inside the namespace: an event socket with and one without the filter see the same
# changes; each prints the events it decoded.
PROBE = r"""
import json, subprocess, time
from polroutd.netlink import kernel
from polroutd.netlink.kernel import EventSocket

def sh(line):
    subprocess.run(["ip", *line.split()], check=True, capture_output=True)

sh("link add d0 type veth peer name d1")
for line in ("link set d0 up", "link set d1 up", "link set lo up"):
    sh(line)
filtered = EventSocket()
real_attach = kernel._attach_filter
kernel._attach_filter = lambda sock, program: False  # a kernel that refused the filter
unfiltered = EventSocket()
kernel._attach_filter = real_attach
time.sleep(0.05)
filtered.drain(), unfiltered.drain()
for line in (
    "addr add 10.1.2.3/24 dev d0",
    "-6 addr add 2001:db8:1::3/64 dev d0 nodad",
    "route add local 10.9.9.9 dev d0 table local",
    "-6 route add local 2001:db8::9 dev d0 table local",
    "route add 10.8.0.0/24 dev d0 table 100",
    "route add 10.7.0.0/24 dev d0 table 255000",
    "rule add from 10.1.2.3 lookup 100",
    "route del local 10.9.9.9 dev d0 table local",
    "addr del 10.1.2.3/24 dev d0",
):
    sh(line)
time.sleep(0.1)

def seen(sock):
    return [[e.kind, e.change, getattr(e.obj, "table", None) if e.obj else None]
            for e in sock.drain()]

print(json.dumps({"filtered": filtered.filtered, "with": seen(filtered),
                  "without": seen(unfiltered)}))
"""


def test_local_table_routes_are_dropped_by_the_kernel_and_nothing_else() -> None:
    with namespace() as ns:
        seen_by = probe(ns, PROBE)
    assert seen_by.returncode == 0, seen_by.stderr
    seen = json.loads(seen_by.stdout)
    assert seen["filtered"] is True
    # Without the filter, the local table's routes arrive (undecoded: no object).
    local = ["route", "new", None]
    assert local in seen["without"] and ["route", "del", None] in seen["without"]
    assert seen["with"] == [event for event in seen["without"] if event[2] is not None
                            or event[0] != "route"]
    # What polroutd reads is all there: addresses, main and other tables' routes (a table
    # number above 255 included), rules, deletions.
    assert ["address", "new", None] in seen["with"] and ["address", "del", None] in seen["with"]
    for table in (254, 100, 255000):
        assert ["route", "new", table] in seen["with"]
    assert ["rule", "new", 100] in seen["with"]
