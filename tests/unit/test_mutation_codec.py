"""The wire codec on recorded kernel dumps and on generated messages, without root.

tests/unit/fixtures/netlink/*.dump are the kernel's answers to ``encode_dump`` requests,
recorded by tests/support/record_netlink_dumps.py from the objects its SETUP lists; the
expectations below are those objects, written from that list (written to kill the mutants
that survived the other tests, see docs/testing.md)."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from polroutd.core.limits import AF_INET, AF_INET6, IFA_F_NOPREFIXROUTE, IFA_F_SECONDARY
from polroutd.core.model import Link, Neighbour, NextHop, Route, RouteOp, Rule, RuleOp
from polroutd.netlink import codec
from polroutd.netlink.kernel import encode_operation

FIXTURES = Path(__file__).parent / "fixtures" / "netlink"
HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, seq, port id
FRA_FWMASK, FRA_SUPPRESS_IFGROUP, FRA_IP_PROTO, FRA_DPORT_RANGE = 16, 13, 22, 24  # fib_rules.h
RTA_METRICS, RTN_UNREACHABLE = 8, 7  # rtnetlink.h
NUD_STALE, NUD_PERMANENT = 0x04, 0x80  # neighbour.h


Message = tuple[int, int, int, int, bytes]  # codec.iter_messages: type, flags, seq, port, payload


def dump(name: str) -> list[Message]:
    messages = list(codec.iter_messages((FIXTURES / f"{name}.dump").read_bytes()))
    assert messages[-1][0] == codec.NLMSG_DONE  # the kernel accepted encode_dump's request
    assert all(m[2] == 7 for m in messages)
    assert all(m[1] & codec.NLM_F_MULTI for m in messages)
    return messages[:-1]


def index_of(name: str) -> int:
    return next(link.ifindex for m in dump("links")
                if (link := codec.decode_link(m[4])) and link.name == name)


# --- recorded dumps -------------------------------------------------------------------------


def test_links_from_a_recorded_dump() -> None:
    links = {link.name: link for m in dump("links") if (link := codec.decode_link(m[4]))}
    assert set(links) == {"lo", "eth0", "peer0", "ptp0", "ptp1", "br0"}
    assert links["lo"]._replace(ifindex=0) == Link(0, "lo", True, True, loopback=True)
    assert links["eth0"]._replace(ifindex=0) == Link(0, "eth0", True, True, kind="veth")
    # ptp0 is up but its peer is down: no carrier; ptp1 is down, and a port of the bridge br0
    assert (links["ptp0"].up, links["ptp0"].carrier) == (True, False)
    assert links["ptp1"]._replace(ifindex=0) == Link(0, "ptp1", False, False, kind="veth",
                                                      master=links["br0"].ifindex)
    assert links["br0"]._replace(ifindex=0) == Link(0, "br0", False, False, kind="bridge")
    assert len({link.ifindex for link in links.values()}) == 6


def test_link_events_say_the_index_and_whether_the_link_is_up() -> None:
    for m in dump("links"):
        link = codec.decode_link(m[4])
        assert link is not None and codec.link_event(m[4]) == (link.ifindex, link.up)
        assert codec.link_event(m[4][:16]) == (link.ifindex, link.up)  # struct ifinfomsg says
    assert codec.link_event(m[4][:15]) is None  # shorter than struct ifinfomsg


def test_addresses_from_a_recorded_dump() -> None:
    links = {link.ifindex: link.name
             for m in dump("links") if (link := codec.decode_link(m[4]))}
    found = {
        (links[a.ifindex], a.family, a.address, a.prefixlen, a.scope, a.peer): a.flags
        for m in dump("addresses") if (a := codec.decode_address(m[4]))
    }
    assert {key for key in found if not key[2].startswith("fe80")} == {
        ("lo", AF_INET, "127.0.0.1", 8, 254, None),
        ("lo", AF_INET6, "::1", 128, 254, None),
        ("eth0", AF_INET, "10.1.0.2", 24, 0, None),
        ("eth0", AF_INET, "10.1.0.3", 24, 0, None),
        ("eth0", AF_INET6, "2001:db8:1::2", 64, 0, None),
        ("ptp0", AF_INET, "10.9.0.1", 32, 0, "10.9.0.2"),  # ours, and the peer's
        ("ptp0", AF_INET, "10.7.0.1", 24, 0, None),
    }
    assert found[("eth0", AF_INET, "10.1.0.3", 24, 0, None)] & IFA_F_SECONDARY
    assert not found[("eth0", AF_INET, "10.1.0.2", 24, 0, None)] & IFA_F_SECONDARY
    # a flag only IFA_FLAGS can carry (the header's byte holds the lower eight)
    assert found[("ptp0", AF_INET, "10.7.0.1", 24, 0, None)] & IFA_F_NOPREFIXROUTE
    assert any(key[2].startswith("fe80:") and key[4] == 253 for key in found)


def test_routes_and_their_tables_from_a_recorded_dump() -> None:
    eth0 = index_of("eth0")
    pairs = [(codec.route_table_of(m[4]), codec.decode_route(m[4]))
             for m in dump("routes")]
    assert all(route is not None and table == route.table for table, route in pairs)
    routes = {r for _, r in pairs if r is not None and r.table not in (254, 255)}
    mtu_1400 = struct.pack("=HHI", 8, 2, 1400)  # RTA_METRICS holding RTAX_MTU
    assert routes == {
        Route(AF_INET, 300, "192.0.2.0", 24, 4, metric=0, oif=eth0, gateway="10.1.0.1"),
        Route(AF_INET, 300, "198.51.100.0", 24, 218, metric=7, scope=253, oif=eth0,
              prefsrc="10.1.0.2"),
        Route(AF_INET, 300, "203.0.113.0", 24, 3,
              nexthops=(NextHop(eth0, "10.1.0.1", weight=3), NextHop(eth0, None))),
        Route(AF_INET, 300, "10.5.0.0", 16, 3, tos=0x10, scope=253, oif=eth0,
              extra=((RTA_METRICS, mtu_1400),)),
        Route(AF_INET, 300, "10.6.0.0", 16, 3, type=RTN_UNREACHABLE),
        Route(AF_INET, 100000, "0.0.0.0", 0, 16, oif=eth0, gateway="10.1.0.1"),
        Route(AF_INET6, 300, "2001:db8:9::", 64, 66, metric=1024, oif=eth0, gateway="fe80::1"),
    }
    assert Route(AF_INET, 254, "0.0.0.0", 0, 3, oif=eth0, gateway="10.1.0.1") in {
        r for _, r in pairs}
    local = [r for table, r in pairs if table == 255]
    assert local and all(r is not None and r.table == 255 for r in local)


def test_rules_from_a_recorded_dump() -> None:
    decoded = [codec.decode_rule(m[4]) for m in dump("rules")]
    assert decoded.count(None) == 2  # the multicast routing families' rules are skipped
    rules = {r for r in decoded if r is not None and r.priority not in (0, 32766, 32767)}
    # ipproto tcp dport 443: attributes polroutd does not write, kept so that the rule cannot
    # pass for one of polroutd's (the kernel adds others of its version, e.g. the port mask)
    ports = next(r for r in rules if r.priority == 400)
    assert ports._replace(extra=()) == Rule(AF_INET, 400, 300, 0)
    assert {(FRA_IP_PROTO, b"\x06"), (FRA_DPORT_RANGE, struct.pack("=HH", 443, 443))} <= set(
        ports.extra)
    u32 = struct.Struct("=I").pack
    assert rules - {ports} == {
        Rule(AF_INET, 30000, 300, 218, src="10.1.0.2", src_len=32),
        Rule(AF_INET, 100, 100000, 3, src="10.1.0.0", src_len=24, iifname="eth0", fwmark=0x10,
             extra=((FRA_FWMASK, u32(0xFF)),)),
        Rule(AF_INET, 101, 300, 0, fwmark=0x20, extra=((FRA_FWMASK, u32(0xFFFFFFFF)),)),
        Rule(AF_INET, 200, 254, 0, dst="192.0.2.7", dst_len=32, oifname="eth0",
             suppress_prefixlen=0),
        Rule(AF_INET, 300, 300, 0, extra=((FRA_SUPPRESS_IFGROUP, u32(5)),)),
        Rule(AF_INET6, 30000, 77, 218, src="2001:db8:1::2", src_len=128),
    }
    defaults = {(r.family, r.priority, r.table) for r in decoded
                if r is not None and r.priority in (0, 32766, 32767)}
    assert defaults == {(AF_INET, 0, 255), (AF_INET, 32766, 254), (AF_INET, 32767, 253),
                        (AF_INET6, 0, 255), (AF_INET6, 32766, 254)}


def test_neighbours_from_a_recorded_dump() -> None:
    eth0 = index_of("eth0")
    found = {n for m in dump("neighbours") if (n := codec.decode_neighbour(m[4]))}
    assert Neighbour(eth0, AF_INET, "10.1.0.9", NUD_PERMANENT) in found
    assert Neighbour(eth0, AF_INET6, "2001:db8:1::9", NUD_STALE) in found
    assert {n.address for n in found} <= {"10.1.0.9", "2001:db8:1::9", "ff02::16"}
    assert codec.decode_neighbour(dump("neighbours")[0][4][:11]) is None  # shorter than ndmsg


# --- what polroutd writes is what the kernel writes back ------------------------------------
#
# Re-encoding an object decoded from the kernel's dump must give the kernel's own header and,
# for every attribute polroutd sends, the kernel's own bytes: the kernel's dump is the oracle.

FLAGS_STATE = 0x10 | 0x40  # RTNH_F_LINKDOWN, RTNH_F_UNRESOLVED: a path's state, never requested


def attributes(payload: bytes, header_size: int) -> dict[int, bytes]:
    found, offset = {}, header_size
    while offset + 4 <= len(payload):
        length, atype = struct.unpack_from("=HH", payload, offset)
        found[atype] = payload[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return found


def test_routes_are_written_as_the_kernel_writes_them() -> None:
    checked = 0
    for m in dump("routes"):
        route = codec.decode_route(m[4])
        assert route is not None
        if route.table == 255 or route.extra:  # the kernel's own; an attribute we never write
            continue
        ours = next(codec.iter_messages(
            codec.encode_route(codec.RTM_NEWROUTE, codec.NLM_F_REQUEST, 1, route)))[4]
        kernel_flags = struct.unpack_from("=I", m[4], 8)[0] & ~FLAGS_STATE
        assert ours[:8] == m[4][:8] and struct.unpack_from("=I", ours, 8)[0] == kernel_flags
        kernel = attributes(m[4], 12)
        assert {a: v for a, v in attributes(ours, 12).items() if kernel.get(a) != v} == {}
        checked += 1
    assert checked >= 10


def test_rules_are_written_as_the_kernel_writes_them() -> None:
    checked = 0
    for m in dump("rules"):
        rule = codec.decode_rule(m[4])
        if rule is None or rule.priority == 0:  # the kernel omits FRA_PRIORITY 0; we do not
            continue
        ours = next(codec.iter_messages(
            codec.encode_rule(codec.RTM_NEWRULE, codec.NLM_F_REQUEST, 1, rule)))[4]
        # above 255 the table is FRA_TABLE's (the kernel reports RT_TABLE_COMPAT in the header
        # and reads FRA_TABLE first: frh_get_table)
        table_byte = slice(4, 5) if rule.table < 256 else slice(4, 4)
        assert ours[:4] + ours[table_byte] + ours[5:12] == m[4][:4] + m[4][table_byte] + m[4][5:12]
        kernel = attributes(m[4], 12)
        assert {a: v for a, v in attributes(ours, 12).items() if kernel.get(a) != v} == {}
        checked += 1
    assert checked == 10


def test_a_rule_without_a_mark_drops_the_kernels_default_mask() -> None:
    body = struct.pack("=BBBBBBBBI", AF_INET, 0, 0, 0, 254, 0, 0, 1, 0)
    body += struct.pack("=HHI", 8, codec.FRA_PRIORITY, 5)
    plain = codec.decode_rule(body)
    masked = codec.decode_rule(body + struct.pack("=HHI", 8, FRA_FWMASK, 0xFFFFFFFF))
    assert plain == masked == Rule(AF_INET, 5, 254, 0)
    ifgroup = codec.decode_rule(body + struct.pack("=HHI", 8, FRA_SUPPRESS_IFGROUP, 0xFFFFFFFF))
    assert ifgroup == plain  # "no suppress_ifgroup" says nothing
    padded = codec.decode_rule(body + struct.pack("=HHI", 8, codec.FRA_PAD, 0))
    assert padded == plain


# --- requests -------------------------------------------------------------------------------


def test_dump_requests_carry_the_header_each_type_expects() -> None:
    request = codec.NLM_F_REQUEST | codec.NLM_F_DUMP
    # struct ifinfomsg is 16 bytes, ifaddrmsg 8, rtmsg and fib_rule_hdr 12 (linux/rtnetlink.h)
    for mtype, size in ((codec.RTM_GETLINK, 16), (codec.RTM_GETADDR, 8),
                        (codec.RTM_GETROUTE, 12), (codec.RTM_GETRULE, 12)):
        assert codec.encode_dump(mtype, 9) == HEADER.pack(16 + size, mtype, request, 9, 0) + bytes(
            size)
        assert codec.encode_dump(mtype, 9, AF_INET6)[16] == AF_INET6
    assert request == 0x301


def test_a_barrier_is_an_acknowledged_noop() -> None:
    assert codec.encode_barrier(77) == HEADER.pack(16, 1, 0x1 | 0x4, 77, 0)


def test_raw_iteration_gives_the_port_id_and_honours_alignment() -> None:
    first = HEADER.pack(16 + 5, 24, 2, 8, 4242) + b"hello" + b"\0" * 3  # padded to 4
    second = HEADER.pack(16 + 4, 3, 0, 9, 0) + b"done"
    data = first + second + b"\0" * 8  # a tail shorter than a header is no message
    assert list(codec.iter_messages(data)) == [(24, 2, 8, 4242, b"hello"), (3, 0, 9, 0, b"done")]
    for broken in (first[:-4], HEADER.pack(15, 3, 0, 1, 0) + b"x" * 4):
        try:
            list(codec.iter_messages(broken))
        except ValueError:
            continue
        raise AssertionError(f"iter_messages accepted {broken!r}")


def test_a_message_exactly_16_bytes_long_is_read() -> None:
    assert list(codec.iter_messages(HEADER.pack(16, 3, 0, 1, 0))) == [(3, 0, 1, 0, b"")]


# --- round trips of what the generated tests did not cover ----------------------------------

v4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
v6 = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))


@st.composite
def full_rules(draw: st.DrawFn) -> Rule:
    family = draw(st.sampled_from([AF_INET, AF_INET6]))
    addrs = v4 if family == AF_INET else v6
    full = 32 if family == AF_INET else 128
    src_len = draw(st.integers(0, full))
    dst_len = draw(st.integers(0, full))
    return Rule(
        family=family, priority=draw(st.integers(0, 2**32 - 1)),
        table=draw(st.integers(1, 2**32 - 1)), protocol=draw(st.integers(0, 255)),
        src=str(ipaddress.ip_network(f"{draw(addrs)}/{src_len}", strict=False).network_address)
        if src_len else None,
        src_len=src_len,
        dst=str(ipaddress.ip_network(f"{draw(addrs)}/{dst_len}", strict=False).network_address)
        if dst_len else None,
        dst_len=dst_len,
        action=draw(st.sampled_from([1, 2, 6])),
        iifname=draw(st.none() | st.sampled_from(["eth0", "wg-a.b"])),
        oifname=draw(st.none() | st.sampled_from(["eth1", "ppp0"])),
        fwmark=draw(st.none() | st.integers(0, 2**32 - 1)),
        tos=draw(st.sampled_from([0, 0x10])),
        flags=draw(st.sampled_from([0, 2])),
    )


@given(full_rules())
def test_every_rule_field_round_trips(rule: Rule) -> None:
    assert codec.decode_rule(next(codec.iter_messages(
        encode_operation(RuleOp("add", rule), 3)))[4]) == rule


@given(st.sampled_from([AF_INET, AF_INET6]), st.integers(0, 2), st.integers(1, 2**32 - 1))
def test_metric_0_round_trips(family: int, oif: int, table: int) -> None:
    dst = "0.0.0.0" if family == AF_INET else "::"
    route = Route(family, table, dst, 0, 218, metric=0, oif=oif or None)
    assert codec.decode_route(next(codec.iter_messages(
        encode_operation(RouteOp("replace", route), 3)))[4]) == route


# --- edges ----------------------------------------------------------------------------------

RTMSG = struct.Struct("=BBBBBBBBI")


def attr(atype: int, value: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(value), atype) + value + b"\0" * (-len(value) % 4)


def test_tables_above_255_go_in_the_attribute_only() -> None:
    for table, header_byte in ((255, 255), (256, 252)):
        route = Route(AF_INET, table, "10.0.0.0", 8, 218, oif=1)
        body = next(codec.iter_messages(encode_operation(RouteOp("add", route), 1)))[4]
        assert body[4] == header_byte and codec.route_table_of(body) == table
        rule = Rule(AF_INET, 5, table, 218)
        body = next(codec.iter_messages(encode_operation(RuleOp("add", rule), 1)))[4]
        assert body[4] == (255 if table == 255 else 0)
        assert codec.decode_rule(body) == rule


def test_the_table_of_a_route_without_the_attribute_is_the_header_byte() -> None:
    assert codec.route_table_of(RTMSG.pack(AF_INET, 0, 0, 0, 254, 3, 0, 1, 0)) == 254
    compat = RTMSG.pack(AF_INET, 0, 0, 0, 252, 3, 0, 1, 0)
    assert codec.route_table_of(compat + attr(codec.RTA_OIF, struct.pack("=I", 2))
                                + attr(codec.RTA_TABLE, struct.pack("=I", 70000))) == 70000


def test_an_error_without_capping_skips_the_whole_echoed_request() -> None:
    text = b"Invalid prefix\0"
    echoed = HEADER.pack(20, 24, 5, 9, 0) + b"abcd"
    body = struct.pack("=i", -22) + echoed + attr(codec.NLMSGERR_ATTR_MSG, text)
    assert codec.decode_error(body, codec.NLM_F_ACK_TLVS) == (22, "Invalid prefix")
    assert codec.decode_error(body, 0) == (22, None)


def test_ipv4_mapped_addresses_are_written_as_ipaddress_writes_them() -> None:
    mapped = ipaddress.IPv6Address("::ffff:192.0.2.1")
    body = RTMSG.pack(AF_INET6, 128, 0, 0, 254, 3, 0, 1, 0) + attr(codec.RTA_DST, mapped.packed)
    route = codec.decode_route(body)
    assert route is not None and route.dst == str(mapped) == "::ffff:c000:201"


def test_messages_of_other_families_or_without_a_name_or_address_are_skipped() -> None:
    assert codec.decode_route(RTMSG.pack(128, 0, 0, 0, 254, 3, 0, 1, 0)) is None
    assert codec.decode_rule(RTMSG.pack(7, 0, 0, 0, 254, 0, 0, 1, 0)) is None
    ifaddr = struct.Struct("=BBBBI")
    v4 = attr(1, bytes([10, 0, 0, 1]))
    assert codec.decode_address(ifaddr.pack(17, 24, 0, 0, 2) + v4) is None  # AF_PACKET
    assert codec.decode_address(ifaddr.pack(AF_INET, 24, 0, 0, 2)) is None
    address = codec.decode_address(ifaddr.pack(AF_INET, 24, 0x80, 0, 2) + v4)
    assert address is not None and (address.address, address.flags) == ("10.0.0.1", 0x80)
    ifinfo = struct.Struct("=BxHiII")
    assert codec.decode_link(ifinfo.pack(0, 1, 3, 1, 0)) is None
    named = codec.decode_link(ifinfo.pack(0, 1, 3, 0x1 | 0x10000, 0) + attr(3, b"wan0\0junk"))
    assert named == Link(3, "wan0", up=True, carrier=True)
