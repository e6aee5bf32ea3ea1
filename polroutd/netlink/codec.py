"""rtnetlink wire format: encode requests, decode dumps and events. Pure bytes in, model out.

polroutd encodes its own messages because it sends only a handful of message shapes and must
send a thousand of them in a few milliseconds: pyroute2's generic encoder measured ~200 µs per
rule on this machine, which alone would put cold start far outside 2x of ``ip -batch``.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterator
from typing import Literal

from polroutd.core.limits import AF_INET, AF_INET6, RT_TABLE_COMPAT, RT_TABLE_LOCAL
from polroutd.core.model import Address, Link, Neighbour, NextHop, Route, Rule

# Message types (linux/rtnetlink.h, linux/netlink.h).
NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWRULE, RTM_DELRULE, RTM_GETRULE = 32, 33, 34
RTM_NEWNEIGH, RTM_DELNEIGH = 28, 29

EventKind = Literal["link", "address", "route", "rule"]
EVENT_TYPES: dict[int, EventKind] = {
    RTM_NEWLINK: "link", RTM_DELLINK: "link",
    RTM_NEWADDR: "address", RTM_DELADDR: "address",
    RTM_NEWROUTE: "route", RTM_DELROUTE: "route",
    RTM_NEWRULE: "rule", RTM_DELRULE: "rule",
}

# Flags.
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_ACK_TLVS = 0x200  # on NLMSG_ERROR: extended-ack attributes follow
NLM_F_CAPPED = 0x100  # on NLMSG_ERROR: the request's payload is not echoed
NLMSGERR_ATTR_MSG = 1

# Multicast groups (RTNLGRP_*), joined with NETLINK_ADD_MEMBERSHIP.
RTNLGRP_LINK = 1
RTNLGRP_NEIGH = 3
RTNLGRP_IPV4_IFADDR = 5
RTNLGRP_IPV4_ROUTE = 7
RTNLGRP_IPV4_RULE = 8
RTNLGRP_IPV6_IFADDR = 9
RTNLGRP_IPV6_ROUTE = 11
RTNLGRP_IPV6_RULE = 19
EVENT_GROUPS = (
    RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV4_RULE,
    RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV6_ROUTE, RTNLGRP_IPV6_RULE,
)


def local_route_filter() -> bytes:
    """A classic BPF program (``struct sock_filter`` entries) for the event socket that drops
    route notifications of the local table: the kernel's own routes for each local address,
    which polroutd never reads. An address added brings one or two, so they are about half
    of an address burst's events, each a datagram to receive. Everything else is accepted.

    BPF loads a half-word in network order, and ``nlmsg_type`` is in the host's: the types
    are compared as those bytes read big-endian."""
    def as_loaded(message_type: int) -> int:
        return int.from_bytes(struct.pack("=H", message_type), "big")

    rtm_table = _HEADER.size + 4  # rtmsg: family, dst_len, src_len, tos, table
    accept, drop = 0xFFFFFFFF, 0
    program = (
        (_BPF_LD_H_ABS, 0, 0, 4),  # nlmsg_type
        (_BPF_JEQ_K, 1, 0, as_loaded(RTM_NEWROUTE)),
        (_BPF_JEQ_K, 0, 3, as_loaded(RTM_DELROUTE)),
        (_BPF_LD_B_ABS, 0, 0, rtm_table),
        (_BPF_JEQ_K, 0, 1, RT_TABLE_LOCAL),
        (_BPF_RET_K, 0, 0, drop),
        (_BPF_RET_K, 0, 0, accept),
    )
    return b"".join(_SOCK_FILTER.pack(*instruction) for instruction in program)


_SOCK_FILTER = struct.Struct("=HBBI")  # code, jump if true, jump if false, k
_BPF_LD_H_ABS, _BPF_LD_B_ABS, _BPF_JEQ_K, _BPF_RET_K = 0x28, 0x30, 0x15, 0x06

# Attributes.
IFLA_IFNAME = 3
IFLA_MASTER = 10
IFLA_LINKINFO = 18
IFLA_INFO_KIND = 1
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
IFA_BROADCAST = 4
IFA_CACHEINFO = 6
IFA_FLAGS = 8
IFA_PROTO = 11
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_PREFSRC = 7
RTA_MULTIPATH = 9
RTA_CACHEINFO = 12
RTA_TABLE = 15
RTA_PREF = 20
RTA_EXPIRES = 23
FRA_DST = 1
FRA_SRC = 2
FRA_IIFNAME = 3
FRA_PRIORITY = 6
FRA_FWMARK = 10
FRA_SUPPRESS_IFGROUP = 13
FRA_SUPPRESS_PREFIXLEN = 14
FRA_TABLE = 15
FRA_FWMASK = 16
FRA_OIFNAME = 17
FRA_PAD = 18
FRA_PROTOCOL = 21

# Route attributes the kernel reports that say nothing about what the route is.
_ROUTE_NOISE = frozenset({RTA_CACHEINFO, RTA_PREF, RTA_EXPIRES, RTA_TABLE})

NDA_DST = 1

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_LOWER_UP = 0x10000

RT_SCOPE_NOWHERE = 255  # as a delete selector: any scope

_HEADER = struct.Struct("=IHHII")
NLMSG_HEADER = _HEADER  # struct nlmsghdr, for the framing in kernel.Netlink._read
_ATTR = struct.Struct("=HH")
_U8 = struct.Struct("=B")
_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")
_RTMSG = struct.Struct("=BBBBBBBBI")  # also fib_rule_hdr: same layout
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_NDMSG = struct.Struct("=BxxxiHBB")  # ndm_family, ifindex, state, flags, type
_RTNEXTHOP = struct.Struct("=HBBi")  # rtnh_len, rtnh_flags, rtnh_hops (weight - 1), ifindex
_NO_SUPPRESS = 0xFFFFFFFF


def iter_messages(data: bytes) -> Iterator[tuple[int, int, int, int, bytes]]:
    """The (type, flags, seq, port id, payload) of each message in a datagram. Plain tuples: a
    read decodes thousands of messages, and a named tuple costs ten times as much to build.

    In an event the port id is that of the socket whose request caused it (0: the kernel)."""
    offset, end = 0, len(data)
    unpack = _HEADER.unpack_from
    while offset + 16 <= end:
        length, mtype, flags, seq, pid = unpack(data, offset)
        if length < 16 or offset + length > end:
            raise ValueError(f"truncated netlink message at offset {offset}")
        yield mtype, flags, seq, pid, data[offset + 16 : offset + length]
        offset += (length + 3) & ~3


# The decoders below walk the attributes inline rather than through ``_attrs``: the same
# framing rules (stop at a length below 4, values sliced to the attribute's length), without
# a generator and a tuple per attribute, since a read decodes thousands of messages.


def _attrs(payload: bytes, start: int) -> Iterator[tuple[int, bytes]]:
    offset, end = start, len(payload)
    while offset + 4 <= end:
        length, atype = _ATTR.unpack_from(payload, offset)
        if length < 4:
            return
        yield atype & 0x3FFF, payload[offset + 4 : offset + length]
        offset += (length + 3) & ~3


def _addr(family: int, raw: bytes) -> str:
    text = socket.inet_ntop(family, raw)
    if family == AF_INET6 and "." in text:
        # inet_ntop writes ::a.b.c.d forms; ipaddress (used for configured addresses) does not
        return str(ipaddress.IPv6Address(raw))
    return text


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _ifname(raw: bytes) -> str:
    """An interface name as text, distinct for distinct names.

    The kernel allows any bytes but '/', ':' and whitespace. A name that is not UTF-8 gets each
    undecodable byte written as ``:xNN``: the ':' no real name holds keeps it from colliding
    with another name (U+FFFD for every such byte would give two interfaces one table)."""
    name = raw.split(b"\0", 1)[0]
    try:
        return name.decode("utf-8")
    except UnicodeDecodeError:
        text = name.decode("utf-8", "surrogateescape")
        return "".join(f":x{ord(c) - 0xDC00:02x}" if "\udc80" <= c <= "\udcff" else c
                       for c in text)


def decode_error(payload: bytes, flags: int) -> tuple[int, str | None]:
    """An NLMSG_ERROR payload: (errno, the kernel's extended-ack text if any). errno 0 is an ACK."""
    (error,) = _I32.unpack_from(payload, 0)
    text = None
    if flags & NLM_F_ACK_TLVS:
        (orig_len,) = _U32.unpack_from(payload, 4)
        start = 4 + (16 if flags & NLM_F_CAPPED else orig_len)
        for atype, value in _attrs(payload, (start + 3) & ~3):
            if atype == NLMSGERR_ATTR_MSG:
                text = _cstr(value)
    return -error, text


def decode_link(payload: bytes) -> Link | None:
    _family, _type, index, flags, _change = _IFINFO.unpack_from(payload, 0)
    name, kind, master = None, None, None
    unpack = _ATTR.unpack_from
    offset, end = _IFINFO.size, len(payload)
    while offset + 4 <= end:
        length, atype = unpack(payload, offset)
        if length < 4:
            break
        atype &= 0x3FFF
        if atype == IFLA_IFNAME:
            name = _ifname(payload[offset + 4 : offset + length])
        elif atype == IFLA_LINKINFO:
            for itype, ivalue in _attrs(payload[offset + 4 : offset + length], 0):
                if itype == IFLA_INFO_KIND:
                    kind = _cstr(ivalue)
        elif atype == IFLA_MASTER and length >= 8:
            (master,) = _U32.unpack_from(payload, offset + 4)
        offset += (length + 3) & ~3
    if name is None:
        return None
    return Link(
        ifindex=index, name=name, up=bool(flags & IFF_UP), carrier=bool(flags & IFF_LOWER_UP),
        loopback=bool(flags & IFF_LOOPBACK), kind=kind, master=master or None,
    )


def link_event(payload: bytes) -> tuple[int, bool] | None:
    """(ifindex, administratively up) of a link message; None when it is too short to say."""
    if len(payload) < _IFINFO.size:
        return None
    _family, _type, index, flags, _change = _IFINFO.unpack_from(payload, 0)
    return index, bool(flags & IFF_UP)


# The kernel writes an address message's attributes in one order (inet_fill_ifaddr,
# inet6_fill_ifaddr); a dump holds a thousand of them. ``decode_address`` reads messages laid out
# exactly so (every attribute header as expected, the last one ending the message) with a few
# fixed unpacks, and walks every other message attribute by attribute: what both find is the
# same, since in such a message the walk meets exactly these attributes, IFA_ADDRESS and
# IFA_LOCAL once each. IPv4: ADDRESS, LOCAL, [BROADCAST], LABEL, FLAGS, CACHEINFO; IPv6:
# ADDRESS, CACHEINFO, FLAGS, [PROTO].

# The attribute headers (length, type) expected, as bytes.
_H_ADDRESS4, _H_LOCAL4 = _ATTR.pack(8, IFA_ADDRESS), _ATTR.pack(8, IFA_LOCAL)
_H_ADDRESS6, _H_CACHEINFO = _ATTR.pack(20, IFA_ADDRESS), _ATTR.pack(20, IFA_CACHEINFO)
_H_FLAGS, _H_PROTO = _ATTR.pack(8, IFA_FLAGS), _ATTR.pack(5, IFA_PROTO)
# ifaddrmsg, IFA_ADDRESS, IFA_LOCAL, and the next attribute's header
_IPV4_HEAD = struct.Struct("=BBBBI 4s4s 4s4s HH")
# IFA_FLAGS and IFA_CACHEINFO's header (its value is 16 bytes)
_IPV4_TAIL = struct.Struct("=4sI 4s")
# ifaddrmsg, IFA_ADDRESS, IFA_CACHEINFO (header), IFA_FLAGS
_IPV6_HEAD = struct.Struct("=BBBBI 4s16s 4s16x 4sI")


def decode_address(payload: bytes) -> Address | None:
    """An RTM_NEWADDR/RTM_DELADDR payload (None: a family polroutd does not handle)."""
    end = len(payload)
    if end >= _IPV4_HEAD.size and payload[0] == AF_INET:
        (family, prefixlen, _flags, scope, index, h_address, address, h_local, local,
         length, atype) = _IPV4_HEAD.unpack_from(payload, 0)
        offset = 24
        if atype == IFA_BROADCAST and length == 8:
            offset = 32
            length, atype = _ATTR.unpack_from(payload, offset) if end >= 36 else (0, 0)
        if (h_address == _H_ADDRESS4 and h_local == _H_LOCAL4 and atype == IFA_LABEL
                and length >= 4):
            offset += (length + 3) & ~3
            if offset + 28 == end:
                h_flags, flags, h_cacheinfo = _IPV4_TAIL.unpack_from(payload, offset)
                if h_flags == _H_FLAGS and h_cacheinfo == _H_CACHEINFO:
                    text = socket.inet_ntop(AF_INET, local)
                    peer = None if address == local else socket.inet_ntop(AF_INET, address)
                    return Address(index, family, text, prefixlen, scope, flags, peer)
    elif end >= _IPV6_HEAD.size and payload[0] == AF_INET6:
        (family, prefixlen, _flags, scope, index, h_address, address, h_cacheinfo, h_flags,
         flags) = _IPV6_HEAD.unpack_from(payload, 0)
        rest = payload[_IPV6_HEAD.size :]  # nothing, or IFA_PROTO (one byte, padded)
        if (h_address == _H_ADDRESS6 and h_cacheinfo == _H_CACHEINFO and h_flags == _H_FLAGS
                and (not rest or (len(rest) == 8 and rest[:4] == _H_PROTO))):
            return Address(index, family, _addr(family, address), prefixlen, scope, flags)
    return decode_address_walk(payload)


def decode_address_walk(payload: bytes) -> Address | None:
    """``decode_address`` for any layout: attribute by attribute."""
    family, prefixlen, flags, scope, index = _IFADDR.unpack_from(payload, 0)
    if family not in (AF_INET, AF_INET6):
        return None
    address = local = None
    unpack = _ATTR.unpack_from
    offset, end = _IFADDR.size, len(payload)
    while offset + 4 <= end:
        length, atype = unpack(payload, offset)
        if length < 4:
            break
        atype &= 0x3FFF
        if atype == IFA_ADDRESS:
            address = payload[offset + 4 : offset + length]
        elif atype == IFA_LOCAL:
            local = payload[offset + 4 : offset + length]
        elif atype == IFA_FLAGS:
            (flags,) = _U32.unpack_from(payload[offset + 4 : offset + length], 0)
        offset += (length + 3) & ~3
    # IFA_LOCAL is ours; IFA_ADDRESS is the same address, or the peer on point-to-point links
    # (``ip addr add LOCAL peer PEER/LEN``), whose prefix the kernel's connected route takes.
    if local is None:
        if address is None:
            return None
        local = address
    peer = _addr(family, address) if address is not None and address != local else None
    return Address(index, family, _addr(family, local), prefixlen, scope, flags, peer)


def decode_neighbour(payload: bytes) -> Neighbour | None:
    """An RTM_NEWNEIGH/RTM_DELNEIGH payload: whose entry, and its NUD state."""
    if len(payload) < _NDMSG.size:
        return None
    family, ifindex, state, _flags, _type = _NDMSG.unpack_from(payload, 0)
    if family not in (AF_INET, AF_INET6):
        return None
    for atype, value in _attrs(payload, _NDMSG.size):
        if atype == NDA_DST:
            return Neighbour(ifindex, family, _addr(family, value), state)
    return None


def route_table_of(payload: bytes) -> int:
    """The table of a route message, cheaply (to skip the local table without decoding it)."""
    table = payload[4]
    if table == RT_TABLE_COMPAT:
        for atype, value in _attrs(payload, _RTMSG.size):
            if atype == RTA_TABLE:
                return int(_U32.unpack_from(value, 0)[0])
    return table


def decode_route(payload: bytes) -> Route | None:
    family, dst_len, _src_len, tos, table, protocol, scope, rtype, _flags = _RTMSG.unpack_from(
        payload, 0
    )
    if family not in (AF_INET, AF_INET6):
        return None
    dst = gateway = prefsrc = None
    oif = None
    metric = 0
    extra: list[tuple[int, bytes]] = []
    nexthops: tuple[NextHop, ...] = ()
    unpack = _ATTR.unpack_from
    offset, end = _RTMSG.size, len(payload)
    while offset + 4 <= end:
        length, atype = unpack(payload, offset)
        if length < 4:
            break
        atype &= 0x3FFF
        value = payload[offset + 4 : offset + length]
        offset += (length + 3) & ~3
        if atype == RTA_MULTIPATH:
            nexthops = decode_nexthops(family, value)
        elif atype == RTA_DST:
            dst = _addr(family, value)
        elif atype == RTA_GATEWAY:
            gateway = _addr(family, value)
        elif atype == RTA_OIF:
            (oif,) = _U32.unpack_from(value, 0)
        elif atype == RTA_PRIORITY:
            (metric,) = _U32.unpack_from(value, 0)
        elif atype == RTA_PREFSRC:
            prefsrc = _addr(family, value)
        elif atype == RTA_TABLE:
            (table,) = _U32.unpack_from(value, 0)
        elif atype not in _ROUTE_NOISE:
            extra.append((atype, value))
    if dst is None:
        dst = "0.0.0.0" if family == AF_INET else "::"
    # Positional (every field, in Route's order): a third of the keyword call's cost.
    return Route(family, table, dst, dst_len, protocol, metric, tos, rtype, scope, oif, gateway,
                 prefsrc, tuple(extra), nexthops)


def decode_nexthops(family: int, value: bytes) -> tuple[NextHop, ...]:
    """An RTA_MULTIPATH value: rtnexthop headers, each followed by its own attributes. The
    flags (dead, linkdown, onlink) are the kernel's view of the path, not part of the route."""
    hops: list[NextHop] = []
    offset, end = 0, len(value)
    while offset + _RTNEXTHOP.size <= end:
        length, _flags, hops_byte, ifindex = _RTNEXTHOP.unpack_from(value, offset)
        if length < _RTNEXTHOP.size or offset + length > end:
            break
        gateway = None
        for atype, attr in _attrs(value[offset + _RTNEXTHOP.size : offset + length], 0):
            if atype == RTA_GATEWAY:
                gateway = _addr(family, attr)
        hops.append(NextHop(oif=ifindex, gateway=gateway, weight=hops_byte + 1))
        offset += (length + 3) & ~3
    return tuple(hops)


def encode_nexthops(family: int, nexthops: tuple[NextHop, ...]) -> bytes:
    parts = []
    for hop in nexthops:
        attrs = _attr(RTA_GATEWAY, _pton(family, hop.gateway)) if hop.gateway else b""
        parts.append(
            _RTNEXTHOP.pack(_RTNEXTHOP.size + len(attrs), 0, hop.weight - 1, hop.oif) + attrs
        )
    return _attr(RTA_MULTIPATH, b"".join(parts))


def decode_rule(payload: bytes) -> Rule | None:
    family, dst_len, src_len, tos, table, _r1, _r2, action, flags = _RTMSG.unpack_from(payload, 0)
    if family not in (AF_INET, AF_INET6):
        return None
    src = dst = iifname = oifname = None
    fwmark: int | None = None
    fwmask: int | None = None
    suppress: int | None = None
    priority = protocol = 0
    extra: list[tuple[int, bytes]] = []
    unpack = _ATTR.unpack_from
    offset, end = _RTMSG.size, len(payload)
    while offset + 4 <= end:
        length, atype = unpack(payload, offset)
        if length < 4:
            break
        atype &= 0x3FFF
        value = payload[offset + 4 : offset + length]
        offset += (length + 3) & ~3
        if atype == FRA_SRC:
            src = _addr(family, value)
        elif atype == FRA_DST:
            dst = _addr(family, value)
        elif atype == FRA_PRIORITY:
            (priority,) = _U32.unpack_from(value, 0)
        elif atype == FRA_TABLE:
            (table,) = _U32.unpack_from(value, 0)
        elif atype == FRA_PROTOCOL:
            (protocol,) = _U8.unpack_from(value, 0)  # struct.error, not IndexError, if empty
        elif atype == FRA_SUPPRESS_PREFIXLEN:
            (raw,) = _U32.unpack_from(value, 0)
            suppress = None if raw == _NO_SUPPRESS else raw
        elif atype == FRA_IIFNAME:
            iifname = _ifname(value)
        elif atype == FRA_OIFNAME:
            oifname = _ifname(value)
        elif atype == FRA_FWMARK:
            (fwmark,) = _U32.unpack_from(value, 0)
        elif atype == FRA_FWMASK:
            (fwmask,) = _U32.unpack_from(value, 0)
        elif atype == FRA_SUPPRESS_IFGROUP:
            if _U32.unpack_from(value, 0)[0] != _NO_SUPPRESS:
                extra.append((atype, value))
        elif atype != FRA_PAD:
            extra.append((atype, value))
    if fwmask is not None and not (fwmark is None and fwmask == _NO_SUPPRESS):
        extra.append((FRA_FWMASK, _U32.pack(fwmask)))
    return Rule(
        family=family, priority=priority, table=table, protocol=protocol, src=src,
        src_len=src_len, dst=dst, dst_len=dst_len, action=action, suppress_prefixlen=suppress,
        iifname=iifname, oifname=oifname, fwmark=fwmark, tos=tos, flags=flags,
        extra=tuple(sorted(extra)),
    )


def _attr(atype: int, value: bytes) -> bytes:
    length = 4 + len(value)
    return _ATTR.pack(length, atype) + value + b"\0" * ((-length) & 3)


def _u32_attr(atype: int, value: int) -> bytes:
    return _ATTR.pack(8, atype) + _U32.pack(value)


def _message(mtype: int, flags: int, seq: int, body: bytes) -> bytes:
    return _HEADER.pack(16 + len(body), mtype, flags, seq, 0) + body


def _pton(family: int, address: str) -> bytes:
    return socket.inet_pton(family, address)


def encode_barrier(seq: int) -> bytes:
    """A NOOP the kernel acknowledges: placed after requests sent without NLM_F_ACK."""
    return _message(NLMSG_NOOP, NLM_F_REQUEST | NLM_F_ACK, seq, b"")


def encode_dump(mtype: int, seq: int, family: int = 0) -> bytes:
    """A dump request; the header is sized for the strict checks of the message type."""
    if mtype == RTM_GETLINK:
        body = _IFINFO.pack(family, 0, 0, 0, 0)
    elif mtype == RTM_GETADDR:
        body = _IFADDR.pack(family, 0, 0, 0, 0)
    else:
        body = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    return _message(mtype, NLM_F_REQUEST | NLM_F_DUMP, seq, body)


def encode_route(mtype: int, flags: int, seq: int, route: Route) -> bytes:
    family = route.family
    deleting = mtype == RTM_DELROUTE
    table_byte = route.table if route.table < 256 else RT_TABLE_COMPAT
    scope = RT_SCOPE_NOWHERE if deleting else route.scope
    parts = [
        _RTMSG.pack(
            family, route.dst_len, 0, route.tos, table_byte, route.protocol, scope, route.type, 0
        ),
        _u32_attr(RTA_TABLE, route.table),
    ]
    if route.dst_len:
        parts.append(_attr(RTA_DST, _pton(family, route.dst)))
    if route.oif is not None:
        parts.append(_u32_attr(RTA_OIF, route.oif))
    if route.gateway is not None:
        parts.append(_attr(RTA_GATEWAY, _pton(family, route.gateway)))
    if route.nexthops:
        parts.append(encode_nexthops(family, route.nexthops))
    if route.prefsrc is not None and not deleting:
        parts.append(_attr(RTA_PREFSRC, _pton(family, route.prefsrc)))
    if route.metric or family == AF_INET6:
        parts.append(_u32_attr(RTA_PRIORITY, route.metric))
    return _message(mtype, flags, seq, b"".join(parts))


# fib_rule_hdr, FRA_PRIORITY, FRA_TABLE and FRA_PROTOCOL (one byte, padded): every rule's head.
_RULE_HEAD = struct.Struct("=BBBBBBBBI HHI HHI HHB3x")


# The whole message of a rule whose one optional attribute is its source (nearly every rule
# polroutd writes) by family: netlink header, _RULE_HEAD, FRA_SRC. One pack instead of three
# and two concatenations, for the thousand rules of a cold start.
_RULE_FROM = {
    AF_INET: struct.Struct("=IHHII BBBBBBBBI HHI HHI HHB3x HH4s"),
    AF_INET6: struct.Struct("=IHHII BBBBBBBBI HHI HHI HHB3x HH16s"),
}


def encode_rule(mtype: int, flags: int, seq: int, rule: Rule) -> bytes:
    family = rule.family
    table_byte = rule.table if rule.table < 256 else 0
    whole = _RULE_FROM.get(family)
    if (whole is not None and rule.src is not None and rule.src_len and rule.dst is None
            and rule.suppress_prefixlen is None and rule.iifname is None
            and rule.oifname is None and rule.fwmark is None and not rule.extra):
        return whole.pack(
            whole.size, mtype, flags, seq, 0,
            family, rule.dst_len, rule.src_len, rule.tos, table_byte, 0, 0, rule.action,
            rule.flags,
            8, FRA_PRIORITY, rule.priority,
            8, FRA_TABLE, rule.table,
            5, FRA_PROTOCOL, rule.protocol,
            whole.size - 16 - _RULE_HEAD.size, FRA_SRC, _pton(family, rule.src),
        )
    # Built by concatenation, each optional attribute tested once: a cold start encodes a
    # thousand rules, nearly all of them the head and a source alone.
    body = _RULE_HEAD.pack(
        family, rule.dst_len, rule.src_len, rule.tos, table_byte, 0, 0, rule.action,
        rule.flags,
        8, FRA_PRIORITY, rule.priority,
        8, FRA_TABLE, rule.table,
        5, FRA_PROTOCOL, rule.protocol,
    )
    if rule.src is not None and rule.src_len:
        body += _attr(FRA_SRC, _pton(family, rule.src))
    if rule.dst is not None and rule.dst_len:
        body += _attr(FRA_DST, _pton(family, rule.dst))
    if rule.suppress_prefixlen is not None:
        body += _u32_attr(FRA_SUPPRESS_PREFIXLEN, rule.suppress_prefixlen)
    if rule.iifname is not None:
        body += _attr(FRA_IIFNAME, rule.iifname.encode() + b"\0")
    if rule.oifname is not None:
        body += _attr(FRA_OIFNAME, rule.oifname.encode() + b"\0")
    if rule.fwmark is not None:
        body += _u32_attr(FRA_FWMARK, rule.fwmark)
    for atype, value in rule.extra:
        body += _attr(atype, value)
    return _message(mtype, flags, seq, body)
