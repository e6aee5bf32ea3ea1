"""The codec's framing rules and text fields, on hand-built messages (no root).

Attributes are read as the kernel's ``nla_for_each_attr`` reads them: an attribute without a
value (a netlink flag, length 4) is an attribute like any other; a length below 4 ends the
list, and what was read before it stands. Interface names that are not UTF-8 stay distinct
(``:xNN`` per undecodable byte); other text is decoded with U+FFFD for what is not UTF-8."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polroutd.core.limits import AF_INET, AF_INET6
from polroutd.core.model import Address, Link, Neighbour, NextHop, Route, RouteOp, Rule
from polroutd.netlink import codec
from polroutd.netlink.kernel import encode_operation

HEADER = struct.Struct("=IHHII")
RTMSG = struct.Struct("=BBBBBBBBI")  # also fib_rule_hdr
IFINFO = struct.Struct("=BxHiII")
IFADDR = struct.Struct("=BBBBI")
NDMSG = struct.Struct("=BxxxiHBB")
RTNEXTHOP = struct.Struct("=HBBi")
UNKNOWN = 99  # an attribute type no decoder reads
U32 = struct.Struct("=I").pack
IFF_UP_AND_RUNNING = 0x1 | 0x10000


def attr(atype: int, value: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(value), atype) + value + b"\0" * (-len(value) % 4)


BROKEN = struct.pack("=HH", 3, 1) + b"\xff" * 8  # claims 3 bytes: shorter than its own header

RULE_HEAD = RTMSG.pack(AF_INET, 0, 32, 0, 100, 0, 0, 1, 0)
RULE_ATTRS = attr(codec.FRA_SRC, bytes([10, 0, 0, 1])) + attr(codec.FRA_PRIORITY, U32(30000))
RULE = Rule(AF_INET, 30000, 100, 0, src="10.0.0.1", src_len=32)
ROUTE_HEAD = RTMSG.pack(AF_INET, 24, 0, 0, 100, 218, 253, 1, 0)
ROUTE_ATTRS = attr(codec.RTA_DST, bytes([10, 0, 0, 0])) + attr(codec.RTA_OIF, U32(2))
ROUTE = Route(AF_INET, 100, "10.0.0.0", 24, 218, scope=253, oif=2)
ADDRESS_HEAD = IFADDR.pack(AF_INET, 24, 0, 0, 2)
ADDRESS_ATTRS = attr(codec.IFA_ADDRESS, bytes([10, 0, 0, 5]))
ADDRESS = Address(2, AF_INET, "10.0.0.5", 24)
LINK_HEAD = IFINFO.pack(0, 1, 2, IFF_UP_AND_RUNNING, 0)
LINK_ATTRS = attr(codec.IFLA_IFNAME, b"wan0\0") + attr(codec.IFLA_MASTER, U32(7))
LINK = Link(2, "wan0", True, True, master=7)


def test_an_attribute_without_a_value_is_read_past() -> None:
    empty = attr(UNKNOWN, b"")
    assert codec.decode_rule(RULE_HEAD + empty + RULE_ATTRS) == RULE._replace(
        extra=((UNKNOWN, b""),))
    assert codec.decode_route(ROUTE_HEAD + empty + ROUTE_ATTRS) == ROUTE._replace(
        extra=((UNKNOWN, b""),))
    assert codec.decode_address(ADDRESS_HEAD + empty + ADDRESS_ATTRS) == ADDRESS
    assert codec.decode_link(LINK_HEAD + empty + LINK_ATTRS) == LINK
    neighbour = NDMSG.pack(AF_INET, 2, 0x02, 0, 1) + empty + attr(1, bytes([10, 0, 0, 9]))
    assert codec.decode_neighbour(neighbour) == Neighbour(2, AF_INET, "10.0.0.9", 0x02)


def test_an_unknown_attribute_without_a_value_still_makes_the_object_foreign() -> None:
    # last in the message: a rule or route carrying it is not one polroutd wrote
    empty = attr(UNKNOWN, b"")
    assert codec.decode_rule(RULE_HEAD + RULE_ATTRS + empty).extra == ((UNKNOWN, b""),)
    assert codec.decode_route(ROUTE_HEAD + ROUTE_ATTRS + empty).extra == ((UNKNOWN, b""),)


def test_a_length_below_4_ends_the_attributes_and_keeps_what_was_read() -> None:
    assert codec.decode_rule(RULE_HEAD + RULE_ATTRS + BROKEN) == RULE
    assert codec.decode_route(ROUTE_HEAD + ROUTE_ATTRS + BROKEN) == ROUTE
    assert codec.decode_address(ADDRESS_HEAD + ADDRESS_ATTRS + BROKEN) == ADDRESS
    assert codec.decode_link(LINK_HEAD + LINK_ATTRS + BROKEN) == LINK


def test_a_local_address_alone_is_the_address_without_a_peer() -> None:
    body = ADDRESS_HEAD + attr(codec.IFA_LOCAL, bytes([10, 0, 0, 5]))
    assert codec.decode_address(body) == ADDRESS


# --- text -----------------------------------------------------------------------------------


def link_named(raw: bytes) -> Link | None:
    return codec.decode_link(LINK_HEAD + attr(codec.IFLA_IFNAME, raw + b"\0"))


def test_interface_names_that_are_not_utf8_stay_distinct() -> None:
    names = [link_named(raw) for raw in (b"wan\x80", b"wan\xff", b"wan\xc3", b"w\xe4n")]
    assert [n.name if n else None for n in names] == ["wan:x80", "wan:xff", "wan:xc3", "w:xe4n"]
    utf8 = link_named("wän".encode())
    assert utf8 is not None and utf8.name == "wän"


def test_an_interface_name_ends_at_its_first_nul() -> None:
    named = link_named(b"wan0\0old\0")
    assert named is not None and named.name == "wan0"


def kind_of(raw: bytes) -> str | None:
    info = attr(codec.IFLA_LINKINFO, attr(codec.IFLA_INFO_KIND, raw))
    link = codec.decode_link(LINK_HEAD + attr(codec.IFLA_IFNAME, b"x\0") + info)
    assert link is not None
    return link.kind


def test_other_text_ends_at_its_first_nul_and_survives_bytes_that_are_not_utf8() -> None:
    assert kind_of(b"veth\0bond\0") == "veth"
    assert kind_of(b"v\xffth\0") == "v\ufffdth"
    message = attr(codec.NLMSGERR_ATTR_MSG, b"bad \xfe value\0")
    body = struct.pack("=i", -22) + HEADER.pack(16, 24, 5, 9, 0) + message
    assert codec.decode_error(body, codec.NLM_F_ACK_TLVS | codec.NLM_F_CAPPED) == (
        22, "bad \ufffd value")


def test_a_capped_error_skips_only_the_echoed_header() -> None:
    # NLM_F_CAPPED: the kernel echoes the request's header, whose length is the whole request's,
    # without its payload
    message = attr(codec.NLMSGERR_ATTR_MSG, b"Invalid table\0")
    body = struct.pack("=i", -22) + HEADER.pack(60, 24, 5, 9, 0) + message
    assert codec.decode_error(body, codec.NLM_F_ACK_TLVS | codec.NLM_F_CAPPED) == (
        22, "Invalid table")


def test_a_truncated_message_is_refused_naming_where() -> None:
    data = HEADER.pack(16, 3, 0, 1, 0) + HEADER.pack(40, 3, 0, 2, 0)
    with pytest.raises(ValueError, match="truncated netlink message at offset 16"):
        list(codec.iter_messages(data))


# --- multipath ------------------------------------------------------------------------------


def multipath(*hops: bytes) -> Route | None:
    return codec.decode_route(ROUTE_HEAD + attr(codec.RTA_MULTIPATH, b"".join(hops)))


def hop(ifindex: int, weight: int, gateway: bytes | None = None,
        length: int | None = None) -> bytes:
    attrs = attr(codec.RTA_GATEWAY, gateway) if gateway else b""
    size = RTNEXTHOP.size + len(attrs) if length is None else length
    return RTNEXTHOP.pack(size, 0, weight - 1, ifindex) + attrs


def test_a_path_that_claims_more_bytes_than_remain_ends_the_paths() -> None:
    first = hop(2, 1, bytes([10, 0, 0, 1]))
    route = multipath(first, hop(3, 1, bytes([10, 0, 0, 2]), length=64))
    assert route is not None and route.nexthops == (NextHop(2, "10.0.0.1"),)
    route = multipath(first, hop(3, 1, length=7))  # shorter than struct rtnexthop
    assert route is not None and route.nexthops == (NextHop(2, "10.0.0.1"),)


v4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
v6 = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))


@st.composite
def multipath_routes(draw: st.DrawFn) -> Route:
    family = draw(st.sampled_from([AF_INET, AF_INET6]))
    hops = draw(st.lists(st.builds(
        NextHop, oif=st.integers(1, 2**31 - 1), gateway=st.none() | (v4 if family == AF_INET
                                                                     else v6),
        weight=st.integers(1, 256)), min_size=1, max_size=4))
    return Route(family, draw(st.integers(1, 2**32 - 1)), "0.0.0.0" if family == AF_INET else "::",
                 0, 218, metric=draw(st.integers(1, 2**32 - 1)), nexthops=tuple(hops))


@given(multipath_routes())
def test_multipath_routes_round_trip(route: Route) -> None:
    message = encode_operation(RouteOp("replace", route), 5)
    assert codec.decode_route(next(codec.iter_messages(message))[4]) == route


def _rule_frame(mtype: int, flags: int, seq: int, rule: Rule) -> bytes:
    """A rule request as linux/fib_rules.h lays it out, attribute by attribute."""
    body = RTMSG.pack(rule.family, rule.dst_len, rule.src_len, rule.tos,
                      rule.table if rule.table < 256 else 0, 0, 0, rule.action, rule.flags)
    body += attr(codec.FRA_PRIORITY, U32(rule.priority)) + attr(codec.FRA_TABLE, U32(rule.table))
    body += attr(codec.FRA_PROTOCOL, bytes([rule.protocol]))
    if rule.src_len:
        body += attr(codec.FRA_SRC, ipaddress.ip_address(rule.src).packed)
    if rule.dst_len:
        body += attr(codec.FRA_DST, ipaddress.ip_address(rule.dst).packed)
    if rule.suppress_prefixlen is not None:
        body += attr(codec.FRA_SUPPRESS_PREFIXLEN, U32(rule.suppress_prefixlen))
    if rule.iifname is not None:
        body += attr(codec.FRA_IIFNAME, rule.iifname.encode() + b"\0")
    if rule.oifname is not None:
        body += attr(codec.FRA_OIFNAME, rule.oifname.encode() + b"\0")
    if rule.fwmark is not None:
        body += attr(codec.FRA_FWMARK, U32(rule.fwmark))
    for atype, value in rule.extra:
        body += attr(atype, value)
    return HEADER.pack(16 + len(body), mtype, flags, seq, 0) + body


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    family = draw(st.sampled_from([AF_INET, AF_INET6]))
    bits = 32 if family == AF_INET else 128
    kind = ipaddress.IPv4Address if family == AF_INET else ipaddress.IPv6Address
    address = st.integers(1, 2**bits - 1).map(lambda n: str(kind(n)))
    src_len, dst_len = draw(st.integers(0, bits)), draw(st.sampled_from([0, 0, bits // 2]))
    optional = st.none() | st.integers(0, 2**32 - 1)
    name = st.none() | st.sampled_from(["eth0", "wan-1"])
    return Rule(
        family, draw(st.integers(0, 2**32 - 1)), draw(st.integers(1, 2**32 - 1)),
        draw(st.integers(0, 255)), src=draw(address) if src_len else None, src_len=src_len,
        dst=draw(address) if dst_len else None, dst_len=dst_len,
        action=draw(st.sampled_from([1, 2, 6])),
        suppress_prefixlen=draw(st.none() | st.integers(0, bits)),
        iifname=draw(name), oifname=draw(name), fwmark=draw(optional),
        tos=draw(st.integers(0, 255)), flags=draw(st.sampled_from([0, 2])),
        extra=draw(st.sampled_from([(), ((UNKNOWN, b"abc"),)])),
    )


@given(rule=rules(), mtype=st.sampled_from([codec.RTM_NEWRULE, codec.RTM_DELRULE]),
       flags=st.integers(0, 0xFFFF), seq=st.integers(0, 2**32 - 1))
def test_rules_are_written_attribute_by_attribute(
    rule: Rule, mtype: int, flags: int, seq: int
) -> None:
    assert codec.encode_rule(mtype, flags, seq, rule) == _rule_frame(mtype, flags, seq, rule)


@pytest.mark.parametrize("rule", [
    Rule(AF_INET, 30000, 100, 218, src="10.100.9.24", src_len=32),
    Rule(AF_INET6, 30001, 1000, 218, src="2001:db8::24", src_len=64),
    Rule(AF_INET, 0, 254, 4, src="192.0.2.1", src_len=24, tos=8, flags=2, action=2),
])
def test_a_rule_with_a_source_alone_is_written_attribute_by_attribute(rule: Rule) -> None:
    """The shape of nearly every rule polroutd writes (and the codec writes in one piece)."""
    for mtype in (codec.RTM_NEWRULE, codec.RTM_DELRULE):
        assert codec.encode_rule(mtype, 0x601, 7, rule) == _rule_frame(mtype, 0x601, 7, rule)
