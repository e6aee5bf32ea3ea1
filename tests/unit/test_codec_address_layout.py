"""``decode_address`` reads the kernel's usual address layout by fixed unpacks and walks every
other message attribute by attribute (``decode_address_walk``). Both must find the same thing:
on the layouts the kernel writes (generated, and the recorded dump), on those layouts changed
in every way the fixed unpacks must notice, and on garbage. The generated messages' expected
objects come from what the generator put in, not from either decoder."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from pathlib import Path
from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from polroutd.core.limits import AF_INET, AF_INET6
from polroutd.core.model import Address
from polroutd.netlink import codec

IFADDR = struct.Struct("=BBBBI")
FIXTURES = Path(__file__).parent / "fixtures" / "netlink"


def attr(atype: int, value: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(value), atype) + value + b"\0" * (-len(value) % 4)


@st.composite
def kernel_messages(draw: st.DrawFn) -> tuple[bytes, Address]:
    """An address message as inet_fill_ifaddr / inet6_fill_ifaddr write it, and its object."""
    family = draw(st.sampled_from([AF_INET, AF_INET6]))
    size = 4 if family == AF_INET else 16
    local = draw(st.binary(min_size=size, max_size=size))
    prefixlen = draw(st.integers(0, 8 * size))
    scope = draw(st.sampled_from([0, 200, 253, 254]))
    index = draw(st.integers(1, 2**32 - 1))
    flags = draw(st.integers(0, 2**32 - 1))
    head = IFADDR.pack(family, prefixlen, flags & 0xFF, scope, index)
    cacheinfo = attr(codec.IFA_CACHEINFO, draw(st.binary(min_size=16, max_size=16)))
    if family == AF_INET:
        peer = draw(st.none() | st.binary(min_size=4, max_size=4))
        body = attr(codec.IFA_ADDRESS, peer or local) + attr(codec.IFA_LOCAL, local)
        if draw(st.booleans()):
            body += attr(codec.IFA_BROADCAST, draw(st.binary(min_size=4, max_size=4)))
        label = draw(st.text("abcdefghijklmnopqrstuvwxyz0123456789.-_", min_size=1, max_size=15))
        body += attr(codec.IFA_LABEL, label.encode() + b"\0")
        body += attr(codec.IFA_FLAGS, struct.pack("=I", flags)) + cacheinfo
    else:
        peer = None
        body = attr(codec.IFA_ADDRESS, local) + cacheinfo + attr(
            codec.IFA_FLAGS, struct.pack("=I", flags))
        if draw(st.booleans()):
            body += attr(codec.IFA_PROTO, bytes([draw(st.integers(0, 255))]))
    text = str(ipaddress.ip_address(local))
    expected = Address(index, family, text, prefixlen, scope, flags,
                       None if peer in (None, local) else str(ipaddress.ip_address(peer)))
    return head + body, expected


def walk_not_used() -> mock._patch[mock.MagicMock]:
    return mock.patch.object(codec, "decode_address_walk",
                             side_effect=AssertionError("the walk was used"))


@given(kernel_messages())
def test_the_kernels_layouts_are_read_without_the_walk(case: tuple[bytes, Address]) -> None:
    message, expected = case
    assert codec.decode_address_walk(message) == expected
    with walk_not_used():
        assert codec.decode_address(message) == expected


def test_the_recorded_dump_is_read_without_the_walk_and_as_the_walk_reads_it() -> None:
    data = (FIXTURES / "addresses.dump").read_bytes()
    messages = [m[4] for m in codec.iter_messages(data) if m[0] == codec.RTM_NEWADDR]
    walked = [codec.decode_address_walk(m) for m in messages]
    assert len(messages) >= 8 and None not in walked
    with walk_not_used():
        assert [codec.decode_address(m) for m in messages] == walked


def outcome(decode: Callable[[bytes], Address | None], message: bytes) -> object:
    """The decoded object, or the type of the exception raised: both decoders must agree."""
    try:
        return decode(message)
    except Exception as exc:
        return type(exc)


def header_at(message: bytes, index: int) -> int:
    """The offset of the message's index-th attribute header (the last when fewer)."""
    offset, found = IFADDR.size, IFADDR.size
    for _ in range(index + 1):
        if offset + 4 > len(message):
            break
        found = offset
        offset += (struct.unpack_from("=H", message, offset)[0] + 3) & ~3
    return found


@st.composite
def changed_messages(draw: st.DrawFn) -> bytes:
    """A kernel layout changed where the fixed unpacks look: an attribute added anywhere (also
    a second IFA_LOCAL, IFA_ADDRESS or IFA_FLAGS), a type with its flag bits set, a length
    changed, bytes added at the end, or the message cut short."""
    message, _ = draw(kernel_messages())
    change = draw(st.sampled_from(["insert", "type-bits", "length", "trailing", "cut"]))
    at = header_at(message, draw(st.integers(0, 6)))
    if change == "insert":
        atype = draw(st.sampled_from([codec.IFA_ADDRESS, codec.IFA_LOCAL, codec.IFA_FLAGS,
                                      codec.IFA_BROADCAST, codec.IFA_LABEL, codec.IFA_PROTO,
                                      codec.IFA_CACHEINFO, 99]))
        value = draw(st.binary(max_size=20))
        where = draw(st.sampled_from([at, len(message)]))
        return message[:where] + attr(atype, value) + message[where:]
    if change == "type-bits":
        length, atype = struct.unpack_from("=HH", message, at)
        bits = draw(st.sampled_from([0x4000, 0x8000, 0xC000]))
        return message[:at] + struct.pack("=HH", length, atype | bits) + message[at + 4:]
    if change == "length":
        length = draw(st.integers(0, 0xFFFF))
        return message[:at] + struct.pack("=H", length) + message[at + 2:]
    if change == "trailing":
        return message + draw(st.binary(min_size=1, max_size=12))
    return message[:draw(st.integers(0, len(message) - 1))]


@given(changed_messages())
def test_changed_layouts_decode_as_the_walk_decodes_them(message: bytes) -> None:
    assert outcome(codec.decode_address, message) == outcome(codec.decode_address_walk, message)


@given(st.sampled_from([AF_INET, AF_INET6, 0, 7]), st.binary(max_size=120))
def test_garbage_decodes_as_the_walk_decodes_it(family: int, tail: bytes) -> None:
    message = IFADDR.pack(family, 24, 0, 0, 3) + tail
    assert outcome(codec.decode_address, message) == outcome(codec.decode_address_walk, message)


# Each change below is one the fixed unpacks must notice: the walk finds something else there
# than the kernel's layout would say (each case checks that it does), and decode_address must
# find what the walk finds.
HEAD4 = IFADDR.pack(AF_INET, 24, 0x80, 0, 3)  # header flags: only the lower eight bits
HEAD6 = IFADDR.pack(AF_INET6, 64, 0x80, 0, 3)
LOCAL = attr(codec.IFA_LOCAL, bytes([10, 0, 0, 5]))
OTHER_LOCAL = attr(codec.IFA_LOCAL, bytes([10, 0, 0, 6]))
ADDRESS4 = attr(codec.IFA_ADDRESS, bytes([10, 0, 0, 5]))
BROADCAST = attr(codec.IFA_BROADCAST, bytes([10, 0, 0, 255]))
LABEL = attr(codec.IFA_LABEL, b"eth0\0")
FLAGS = attr(codec.IFA_FLAGS, struct.pack("=I", 0x280))
CACHEINFO = attr(codec.IFA_CACHEINFO, bytes(16))
ADDRESS6 = attr(codec.IFA_ADDRESS, bytes([0x20, 1, 0xD, 0xB8]) + bytes(11) + b"\1")
PROTO = attr(codec.IFA_PROTO, b"\3")
TAIL4 = LABEL + FLAGS + CACHEINFO
KERNEL4 = HEAD4 + ADDRESS4 + LOCAL + TAIL4
KERNEL6 = HEAD6 + ADDRESS6 + CACHEINFO + FLAGS + PROTO
LABEL_SHORT = struct.pack("=HH", 2, codec.IFA_LABEL)  # ends the walk: IFA_FLAGS is not read
CHANGED = {
    "IFA_LOCAL again after the layout": KERNEL4 + OTHER_LOCAL,
    "an empty IFA_LOCAL last": KERNEL4 + attr(codec.IFA_LOCAL, b""),
    "IFA_LOCAL again after a broadcast": HEAD4 + ADDRESS4 + LOCAL + BROADCAST + TAIL4
    + OTHER_LOCAL,
    "another attribute where IFA_LOCAL is": HEAD4 + attr(codec.IFA_ADDRESS, bytes([10, 0, 0, 7]))
    + attr(99, bytes(4)) + TAIL4,
    "another attribute where IFA_ADDRESS is": HEAD4 + attr(99, bytes(4)) + OTHER_LOCAL + TAIL4,
    "IFA_LOCAL of 16 bytes where IFA_CACHEINFO is": HEAD4 + ADDRESS4 + LOCAL + LABEL + FLAGS
    + attr(codec.IFA_LOCAL, bytes(16)),
    "IFA_LOCAL where IFA_FLAGS is": HEAD4 + ADDRESS4 + LOCAL + LABEL + OTHER_LOCAL + CACHEINFO,
    "a label length below 4": HEAD4 + ADDRESS4 + LOCAL + LABEL_SHORT + FLAGS + CACHEINFO,
    "IFA_LOCAL where the label is": HEAD4 + ADDRESS4 + LOCAL + OTHER_LOCAL + FLAGS + CACHEINFO,
    "a broadcast header of another length": HEAD4 + ADDRESS4 + LOCAL
    + attr(codec.IFA_BROADCAST, bytes(8)) + TAIL4 + OTHER_LOCAL,
    "a broadcast last": HEAD4 + ADDRESS4 + LOCAL + BROADCAST,
    "an empty broadcast, then an empty IFA_LOCAL": HEAD4 + ADDRESS4 + LOCAL
    + attr(codec.IFA_BROADCAST, b"") + attr(codec.IFA_LOCAL, b"") + TAIL4,
    "IFA_LOCAL of 4 bytes where IFA_PROTO is": HEAD6 + ADDRESS6 + CACHEINFO + FLAGS
    + attr(codec.IFA_LOCAL, bytes(4)),
    "IFA_LOCAL after IFA_PROTO": KERNEL6 + attr(codec.IFA_LOCAL, bytes(15) + b"\2"),
    "IFA_LOCAL where IFA_PROTO is": HEAD6 + ADDRESS6 + CACHEINFO + FLAGS
    + attr(codec.IFA_LOCAL, bytes(15) + b"\2"),
    "IFA_LOCAL where IFA_CACHEINFO is": HEAD6 + ADDRESS6 + attr(codec.IFA_LOCAL, bytes(16))
    + FLAGS,
    "IFA_LOCAL where IPv6's IFA_FLAGS is": HEAD6 + ADDRESS6 + CACHEINFO
    + attr(codec.IFA_LOCAL, bytes(4)),
    "another attribute where IPv6's IFA_ADDRESS is": HEAD6 + attr(99, bytes(16)) + CACHEINFO
    + FLAGS + attr(codec.IFA_LOCAL, bytes(15) + b"\2"),
}


def test_the_kernels_layouts_of_these_cases_are_read_without_the_walk() -> None:
    # labels of every length modulo 4 ("bn0" fills its attribute: no padding)
    labels = [HEAD4 + ADDRESS4 + LOCAL + attr(codec.IFA_LABEL, name + b"\0") + FLAGS + CACHEINFO
              for name in (b"bn0", b"bn10", b"bn100", b"bond0.1")]
    for message in (KERNEL4, KERNEL6, HEAD4 + ADDRESS4 + LOCAL + BROADCAST + TAIL4, *labels):
        walked = codec.decode_address_walk(message)
        assert walked is not None and walked.flags == 0x280
        with walk_not_used():
            assert codec.decode_address(message) == walked


def test_each_change_to_the_layout_is_noticed() -> None:
    usual = {AF_INET: codec.decode_address_walk(KERNEL4),
             AF_INET6: codec.decode_address_walk(KERNEL6)}
    for name, message in CHANGED.items():
        walked = outcome(codec.decode_address_walk, message)
        assert walked != usual[message[0]], name  # the change matters to the walk
        assert outcome(codec.decode_address, message) == walked, name
