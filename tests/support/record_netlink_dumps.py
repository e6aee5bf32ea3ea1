"""Records the kernel's answers to polroutd's dump requests, for the codec's pure tests.

Run once as root (``python -m tests.support.record_netlink_dumps``): it builds a throwaway namespace
with known links, addresses, routes and rules, sends ``codec.encode_dump`` requests from
inside it and stores every byte received, up to NLMSG_DONE, in tests/unit/fixtures/netlink/*.dump.
tests/unit/test_mutation_codec.py decodes them without root (as pyroute2's tests decode theirs).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.lab_tools import namespace

FIXTURES = Path(__file__).parents[1] / "unit" / "fixtures" / "netlink"

# What tests/unit/test_mutation_codec.py expects to find, besides namespace()'s eth0.
SETUP = [
    "link add ptp0 type veth peer name ptp1",
    "link set ptp0 up",
    "link add br0 type bridge",
    "link set ptp1 master br0",  # IFLA_MASTER
    "addr add 10.1.0.3/24 dev eth0",  # a secondary
    "addr add 10.9.0.1 peer 10.9.0.2 dev ptp0",  # point to point: IFA_LOCAL is ours
    "addr add 10.7.0.1/24 dev ptp0 noprefixroute",  # a flag only IFA_FLAGS can carry
    "route add 192.0.2.0/24 via 10.1.0.1 dev eth0 table 300 proto static metric 0",
    "route add 198.51.100.0/24 dev eth0 scope link src 10.1.0.2 table 300 proto 218 metric 7",
    "route add default via 10.1.0.1 dev eth0 table 100000 proto dhcp",
    # multipath: a weighted hop, then a hop without a gateway (a bare rtnexthop, last)
    "route add 203.0.113.0/24 table 300 nexthop via 10.1.0.1 dev eth0 weight 3 "
    "nexthop dev eth0",
    "route add 10.5.0.0/16 tos 0x10 dev eth0 table 300 mtu 1400",  # tos; RTA_METRICS: extra
    "route add unreachable 10.6.0.0/16 table 300",
    "-6 route add 2001:db8:9::/64 via fe80::1 dev eth0 table 300 proto 66",
    "rule add from 10.1.0.2 lookup 300 priority 30000 proto 218",
    "rule add from 10.1.0.0/24 iif eth0 fwmark 0x10/0xff lookup 100000 priority 100 proto boot",
    "rule add fwmark 0x20 lookup 300 priority 101",
    "rule add to 192.0.2.7 oif eth0 lookup main suppress_prefixlength 0 priority 200",
    "rule add lookup 300 suppress_ifgroup 5 priority 300",
    "-6 rule add from 2001:db8:1::2 lookup 77 priority 30000 proto 218",
    "rule add ipproto tcp dport 443 lookup 300 priority 400",  # attributes the codec keeps as extra
    "neigh add 10.1.0.9 lladdr 02:00:00:00:00:09 dev eth0 nud permanent",
    "-6 neigh add 2001:db8:1::9 lladdr 02:00:00:00:00:0a dev eth0 nud stale",
]
DUMPS = ("links", "addresses", "routes", "rules", "neighbours")

# Runs inside the namespace: one request per dump, every answer's bytes to stdout as hex lines
# (RTM_GETNEIGH is 30: polroutd only listens to neighbour events, it never dumps them).
PROBE = r"""
import socket
from polroutd.netlink import codec
sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
for mtype in (codec.RTM_GETLINK, codec.RTM_GETADDR, codec.RTM_GETROUTE, codec.RTM_GETRULE, 30):
    sock.send(codec.encode_dump(mtype, 7))
    chunks = []
    while True:
        data = sock.recv(1 << 20)
        chunks.append(data)
        if any(m[0] == codec.NLMSG_DONE for m in codec.iter_messages(data)):
            break
    print(b"".join(chunks).hex())
"""


def main() -> None:
    with namespace() as ns:
        for line in SETUP:
            subprocess.run(["ip", "-n", ns, *line.split()], check=True)
        probe = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", PROBE],
                               check=True, capture_output=True, text=True)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, hexdata in zip(DUMPS, probe.stdout.split(), strict=True):
        (FIXTURES / f"{name}.dump").write_bytes(bytes.fromhex(hexdata))


if __name__ == "__main__":
    main()
