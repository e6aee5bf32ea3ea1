"""Our rtnetlink decoder against pyroute2's, on the same real kernel dump (an independent
oracle: polroutd encodes and decodes its own messages for speed, see rtnl.py)."""

from __future__ import annotations

import json

import pytest

from tests.support.lab_tools import namespace, probe

SETUP = [
    "route add 192.0.2.0/24 via 10.1.0.1 dev eth0 table 300 proto static metric 7",
    "route add 198.51.100.0/24 dev eth0 scope link src 10.1.0.2 table 77 proto 218",
    "route add default via 10.1.0.1 dev eth0 table 100000 proto dhcp",
    "route add 2001:db8:9::/64 via fe80::1 dev eth0 table 300 proto 66",
    "route add unreachable default table 300 proto 218",
    "route add blackhole 203.0.113.0/24 table 300 metric 5 proto 218",
    "route add prohibit 198.18.0.0/15 table 300 proto 218",
    "-6 route add unreachable 2001:db8:66::/48 table 300 proto 218",
    "rule add from 10.1.0.2 lookup 300 priority 30000 proto 218",
    "rule add from 10.1.0.0/24 iif eth0 fwmark 0x10 lookup 100000 priority 100 proto boot",
    "rule add to 192.0.2.7 oif eth0 lookup main suppress_prefixlength 0 priority 200",
    "-6 rule add from 2001:db8:1::2 lookup 77 priority 30000 proto 218",
]

# Runs inside the namespace: both decoders read the kernel, each prints what it saw.
PROBE = r"""
import json
from pyroute2 import IPRoute
from polroutd.netlink.kernel import Netlink

def rules_ours():
    with Netlink() as nl:
        return sorted((
            [r.family, r.priority, r.table, r.protocol, r.src, r.src_len, r.dst, r.dst_len,
             r.iifname, r.oifname, r.fwmark, r.suppress_prefixlen]
            for r in nl.read_rules()), key=json.dumps)

def routes_ours():
    with Netlink() as nl:
        return sorted((
            [r.family, r.table, r.dst if r.dst_len else None, r.dst_len, r.protocol, r.metric,
             r.scope, r.oif, r.gateway, r.prefsrc, r.type]
            for r in nl.read_routes()), key=json.dumps)

def rules_theirs(ipr):
    out = []
    for family in (2, 10):
        for m in ipr.get_rules(family=family):
            sup = m.get_attr("FRA_SUPPRESS_PREFIXLEN")
            out.append([m["family"], m.get_attr("FRA_PRIORITY") or 0,
                        m.get_attr("FRA_TABLE") or m["table"],
                        m.get_attr("FRA_PROTOCOL") or 0,
                        m.get_attr("FRA_SRC"), m["src_len"], m.get_attr("FRA_DST"), m["dst_len"],
                        m.get_attr("FRA_IIFNAME"), m.get_attr("FRA_OIFNAME"),
                        m.get_attr("FRA_FWMARK"),
                        None if sup in (None, 0xFFFFFFFF) else sup])
    return sorted(out, key=json.dumps)

def routes_theirs(ipr):
    out = []
    for family in (2, 10):
        for m in ipr.get_routes(family=family, table=None):
            table = m.get_attr("RTA_TABLE") or m["table"]
            if table == 255:
                continue
            out.append([m["family"], table, m.get_attr("RTA_DST"), m["dst_len"], m["proto"],
                        m.get_attr("RTA_PRIORITY") or 0, m["scope"], m.get_attr("RTA_OIF"),
                        m.get_attr("RTA_GATEWAY"), m.get_attr("RTA_PREFSRC"), m["type"]])
    return sorted(out, key=json.dumps)

with IPRoute() as ipr:
    print(json.dumps({"ours": [rules_ours(), routes_ours()],
                      "theirs": [rules_theirs(ipr), routes_theirs(ipr)]}))
"""


def test_our_decoder_agrees_with_pyroute2_on_a_real_dump() -> None:
    pytest.importorskip("pyroute2")  # a test-only dependency: the oracle
    with namespace() as ns:
        seen_by = probe(ns, PROBE, SETUP)
    assert seen_by.returncode == 0, seen_by.stderr
    seen = json.loads(seen_by.stdout)
    assert seen["ours"][0] == seen["theirs"][0]
    assert seen["ours"][1] == seen["theirs"][1]
    assert len(seen["ours"][0]) >= 4 and len(seen["ours"][1]) >= 8
    assert {route[-1] for route in seen["ours"][1]} >= {1, 6, 7, 8}  # every type, decoded


# Addresses in every layout the kernel writes here: broadcast or not, labels of several lengths,
# a peer, flags only IFA_FLAGS holds, a route metric (IFA_RT_PRIORITY), IPv6 with and without
# DAD. decode_address reads the usual layouts by fixed unpacks and walks the rest: both must
# agree with pyroute2.
ADDRESS_SETUP = [
    "addr add 10.1.0.5/24 brd + dev eth0",
    "addr add 10.1.0.6/24 dev eth0 label eth0:a",
    "addr add 10.1.0.7/24 brd + dev eth0 label eth0:abcdefghij",
    "addr add 10.9.0.1 peer 10.9.0.2/32 dev eth0",
    "addr add 10.7.0.1/24 dev eth0 noprefixroute",
    "addr add 10.6.0.1/24 dev eth0 metric 50",
    "addr add 2001:db8:5::1/64 dev eth0",
    "addr add 2001:db8:6::1/64 dev eth0 nodad metric 300",
    "addr add 2001:db8:7::1/64 dev eth0 nodad noprefixroute",
    "addr add 2001:db8:8::1 peer 2001:db8:8::2/128 dev eth0 nodad",
]

ADDRESS_PROBE = r"""
import json
from pyroute2 import IPRoute
from polroutd.netlink.kernel import Netlink

with Netlink() as nl:
    ours = sorted([[a.ifindex, a.family, a.address, a.prefixlen, a.scope, a.flags, a.peer]
                   for a in nl.read_addresses()], key=json.dumps)
theirs = []
with IPRoute() as ipr:
    for m in ipr.get_addr():
        local, address = m.get_attr("IFA_LOCAL"), m.get_attr("IFA_ADDRESS")
        flags = m.get_attr("IFA_FLAGS")
        theirs.append([m["index"], m["family"], local or address, m["prefixlen"], m["scope"],
                       m["flags"] if flags is None else flags,
                       address if local and address != local else None])
print(json.dumps({"ours": ours, "theirs": sorted(theirs, key=json.dumps)}))
"""


def test_our_address_decoder_agrees_with_pyroute2_on_a_real_dump() -> None:
    pytest.importorskip("pyroute2")
    with namespace() as ns:
        seen_by = probe(ns, ADDRESS_PROBE, ADDRESS_SETUP)
    assert seen_by.returncode == 0, seen_by.stderr
    seen = json.loads(seen_by.stdout)
    assert seen["ours"] == seen["theirs"]
    found = {row[2] for row in seen["ours"]}
    assert {"10.1.0.7", "10.9.0.1", "10.6.0.1", "2001:db8:6::1", "2001:db8:8::1"} <= found
