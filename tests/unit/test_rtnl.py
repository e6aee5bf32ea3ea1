"""The rtnetlink codec: what we encode decodes to the same object; errors and framing."""

from __future__ import annotations

import contextlib
import ipaddress
import struct

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from polroutd.core.limits import AF_INET, AF_INET6
from polroutd.core.model import Route, RouteOp, Rule, RuleOp
from polroutd.netlink import codec as rtnl
from polroutd.netlink import kernel
from polroutd.netlink.kernel import encode_operation

v4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
v6 = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    family = draw(st.sampled_from([AF_INET, AF_INET6]))
    addr = draw(v4 if family == AF_INET else v6)
    full = 32 if family == AF_INET else 128
    has_src = draw(st.booleans())
    return Rule(
        family=family,
        priority=draw(st.integers(1, 32765)),
        table=draw(st.integers(1, 2**32 - 1)),
        protocol=draw(st.integers(5, 255)),
        src=addr if has_src else None,
        src_len=full if has_src else 0,
        suppress_prefixlen=draw(st.none() | st.integers(0, full)),
        iifname=draw(st.none() | st.sampled_from(["eth0", "ens224"])),
    )


@st.composite
def routes(draw: st.DrawFn) -> Route:
    family = draw(st.sampled_from([AF_INET, AF_INET6]))
    addrs = v4 if family == AF_INET else v6
    length = draw(st.integers(0, 32 if family == AF_INET else 128))
    net = ipaddress.ip_network(f"{draw(addrs)}/{length}", strict=False)
    return Route(
        family=family,
        table=draw(st.integers(1, 2**32 - 1)),
        dst=str(net.network_address),
        dst_len=length,
        protocol=draw(st.integers(5, 255)),
        metric=draw(st.integers(1, 2**32 - 1)),
        scope=draw(st.sampled_from([0, 253])),
        oif=draw(st.none() | st.integers(1, 2**31 - 1)),
        gateway=draw(st.none() | addrs),
        prefsrc=draw(st.none() | addrs),
    )


def payload(message: bytes) -> bytes:
    [(*_, body)] = list(rtnl.iter_messages(message))
    return body


@given(rules())
def test_rules_round_trip(rule: Rule) -> None:
    assert rtnl.decode_rule(payload(encode_operation(RuleOp("add", rule), 7))) == rule


@given(routes())
def test_routes_round_trip(route: Route) -> None:
    assert rtnl.decode_route(payload(encode_operation(RouteOp("add", route), 7))) == route


def test_route_delete_selects_any_scope_and_keeps_the_protocol() -> None:
    route = Route(AF_INET, 30001, "10.0.0.0", 24, 218, scope=253, oif=3, prefsrc="10.0.0.5")
    body = payload(encode_operation(RouteOp("delete", route), 1))
    decoded = rtnl.decode_route(body)
    assert decoded is not None
    assert decoded.scope == rtnl.RT_SCOPE_NOWHERE and decoded.protocol == 218
    assert decoded.prefsrc is None  # not a selector for deletes


def test_flags_of_each_operation() -> None:
    rule = Rule(AF_INET, 30000, 100, 218, src="10.0.0.1", src_len=32)
    route = Route(AF_INET, 100, "0.0.0.0", 0, 218, oif=2, gateway="10.0.0.254")
    flags = {
        name: next(rtnl.iter_messages(encode_operation(op, 1)))[1]
        for name, op in {
            "rule add": RuleOp("add", rule),
            "route replace": RouteOp("replace", route),
            "route delete": RouteOp("delete", route),
        }.items()
    }
    assert flags["rule add"] & rtnl.NLM_F_EXCL and flags["rule add"] & rtnl.NLM_F_CREATE
    assert flags["route replace"] & rtnl.NLM_F_REPLACE
    assert not flags["route delete"] & rtnl.NLM_F_CREATE


def test_decode_error_with_extended_ack_text() -> None:
    text = b"Nexthop device is not up\0"
    tlv = (
        struct.pack("=HH", 4 + len(text), rtnl.NLMSGERR_ATTR_MSG) + text + b"\0" * (-len(text) % 4)
    )
    body = struct.pack("=i", -100) + struct.pack("=IHHII", 16, 24, 5, 9, 0) + tlv
    assert rtnl.decode_error(body, rtnl.NLM_F_ACK_TLVS | rtnl.NLM_F_CAPPED) == (
        100,
        "Nexthop device is not up",
    )
    assert rtnl.decode_error(struct.pack("=i", 0) + bytes(16), 0) == (0, None)


def test_truncated_messages_are_refused() -> None:
    message = encode_operation(RuleOp("add", Rule(AF_INET, 1, 2, 218)), 1)
    with pytest.raises(ValueError):
        list(rtnl.iter_messages(message[:-4]))


def framed(attributes: list[tuple[int, bytes]]) -> bytes:
    return b"".join(
        struct.pack("=HH", 4 + len(value), atype) + value + b"\0" * (-len(value) % 4)
        for atype, value in attributes
    )


# Attribute types the decoders read (1 to 24 covers every RTA_, FRA_, IFA_, IFLA_ and NDA_ type
# they look at), sometimes with the nested or byte-order flag set, with values of any length.
attribute_lists = st.lists(
    st.tuples(st.integers(0, 30) | st.integers(0, 0xFFFF), st.binary(max_size=24)), max_size=12)


@given(st.sampled_from([AF_INET, AF_INET6]), attribute_lists, st.binary(max_size=40))
@example(AF_INET, [(rtnl.FRA_PROTOCOL, b"")], b"")  # an attribute with no value
@example(AF_INET6, [(rtnl.RTA_MULTIPATH, struct.pack("=HBBi", 8, 0, 0, 1) + b"\xff" * 3)], b"")
def test_decoders_never_crash_on_garbage_attributes(
    family: int, attributes: list[tuple[int, bytes]], tail: bytes
) -> None:
    # A real family in the header, so every decoder goes on to read the attributes: well
    # framed ones of the types it reads, with values of the wrong length, then bytes that
    # are no attributes at all.
    body = framed(attributes) + tail
    for decode, header_size in ((rtnl.decode_rule, 12), (rtnl.decode_route, 12),
                                (rtnl.decode_address, 8), (rtnl.decode_link, 16),
                                (rtnl.decode_neighbour, 12)):
        header = bytes([family]) + bytes(header_size - 1)
        # malformed attributes may be refused, but never with anything else
        with contextlib.suppress(struct.error, ValueError):
            decode(header + body)
    with contextlib.suppress(struct.error, ValueError):
        rtnl.decode_nexthops(family, body)
    with contextlib.suppress(struct.error, ValueError):
        rtnl.decode_error(struct.pack("=iIHHII", -1, 16, 0, 0, 0, 0) + body,
                          rtnl.NLM_F_ACK_TLVS | rtnl.NLM_F_CAPPED)


@given(st.sampled_from([AF_INET, AF_INET6]), st.binary(max_size=200))
def test_decoders_never_crash_on_bytes_past_the_header(family: int, tail: bytes) -> None:
    for decode, header_size in ((rtnl.decode_rule, 12), (rtnl.decode_route, 12),
                                (rtnl.decode_address, 8), (rtnl.decode_link, 16)):
        header = bytes([family]) + bytes(header_size - 1)
        with contextlib.suppress(struct.error, ValueError):
            decode(header + tail)


def test_a_read_skips_exactly_the_local_tables_routes() -> None:
    def route(table_byte: int, table: int | None = None) -> bytes:
        head = struct.pack("=BBBBBBBBI", AF_INET, 32, 0, 0, table_byte, 2, 254, 2, 0)
        return head + (struct.pack("=HHI", 8, rtnl.RTA_TABLE, table) if table else b"")

    cases = {route(255): False, route(254): True, route(252, 255): False,
             route(252, 1000): True, route(255, 1000): False, route(30): True}
    for payload, other in cases.items():
        assert kernel._not_local(payload) is other
        assert other == (rtnl.route_table_of(payload) != 255)
