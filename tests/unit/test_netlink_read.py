"""``Netlink``'s dump reading without a kernel: the recorded dumps (tests/unit/fixtures/netlink)
answered from a script, read as the codec decodes each message on its own."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from polroutd.core.limits import RT_TABLE_LOCAL
from polroutd.netlink import codec, kernel

FIXTURES = Path(__file__).parent / "fixtures" / "netlink"
HEADER = struct.Struct("=IHHII")
DUMPS = {codec.RTM_GETLINK: "links", codec.RTM_GETADDR: "addresses",
         codec.RTM_GETROUTE: "routes", codec.RTM_GETRULE: "rules"}


def messages(name: str) -> list[bytes]:
    """The recorded dump's messages, each whole (header included)."""
    data = (FIXTURES / f"{name}.dump").read_bytes()
    out, offset = [], 0
    while offset < len(data):
        length = HEADER.unpack_from(data, offset)[0]
        out.append(data[offset : offset + length])
        offset += (length + 3) & ~3
    return out


def with_seq(message: bytes, seq: int) -> bytes:
    length, mtype, flags, _seq, pid = HEADER.unpack_from(message, 0)
    return HEADER.pack(length, mtype, flags, seq, pid) + message[16:]


class ScriptedNetlink(kernel.Netlink):
    """Answers each dump request with the datagrams scripted for its type."""

    def __init__(self, script: dict[int, list[bytes]]) -> None:
        super().__init__()
        self._sock.close()
        self.script = script
        self.queue: list[bytes] = []

    def _discard_stale(self) -> None:
        pass

    def _send(self, data: bytes) -> None:
        self.queue = list(self.script[HEADER.unpack_from(data, 0)[1]])

    def _recv(self) -> bytes:
        return self.queue.pop(0)


def datagrams(mtype: int, split: int) -> list[bytes]:
    """The recorded dump of ``mtype`` answered in datagrams of ``split`` messages, with the
    sequence number the read asks with."""
    seq = kernel._DUMP_SEQ + mtype
    found = [with_seq(m, seq) for m in messages(DUMPS[mtype])]
    return [b"".join(found[i : i + split]) for i in range(0, len(found), split)]


def decoded_alone(mtype: int) -> list[object]:
    decode = {codec.RTM_GETLINK: codec.decode_link, codec.RTM_GETADDR: codec.decode_address,
              codec.RTM_GETROUTE: codec.decode_route, codec.RTM_GETRULE: codec.decode_rule}[mtype]
    out = []
    for message in messages(DUMPS[mtype]):
        payload = message[16:]
        if HEADER.unpack_from(message, 0)[1] == codec.NLMSG_DONE:
            continue
        if mtype == codec.RTM_GETROUTE and codec.route_table_of(payload) == RT_TABLE_LOCAL:
            continue
        if (obj := decode(payload)) is not None:
            out.append(obj)
    return out


@pytest.mark.parametrize("split", [1, 3, 100])
def test_a_read_holds_what_each_message_decodes_to(split: int) -> None:
    netlink = ScriptedNetlink({mtype: datagrams(mtype, split) for mtype in DUMPS})
    state = netlink.read_state()
    assert list(state.links) == decoded_alone(codec.RTM_GETLINK)
    assert list(state.addresses) == decoded_alone(codec.RTM_GETADDR)
    assert list(state.routes) == decoded_alone(codec.RTM_GETROUTE)
    assert list(state.rules) == decoded_alone(codec.RTM_GETRULE)
    assert len(state.addresses) >= 8 and len(state.routes) >= 4
    # read again (what was seen is taken from the last read): the same
    netlink.script = {mtype: datagrams(mtype, split) for mtype in DUMPS}
    assert netlink.read_state() == state


def test_messages_of_another_sequence_number_are_not_taken() -> None:
    mtype = codec.RTM_GETADDR
    first, *rest = datagrams(mtype, 100)
    stray = with_seq(messages("addresses")[0], 1234)
    netlink = ScriptedNetlink({mtype: [stray + first, *rest]})
    assert list(netlink.read_addresses()) == decoded_alone(mtype)


def test_a_truncated_message_is_refused_naming_where() -> None:
    mtype = codec.RTM_GETADDR
    whole = datagrams(mtype, 100)[0]
    first = HEADER.unpack_from(whole, 0)[0]
    cut = whole[: first + 20]  # the second message's header claims more than is left
    netlink = ScriptedNetlink({mtype: [cut]})
    with pytest.raises(ValueError, match=f"truncated netlink message at offset {first}"):
        netlink.read_addresses()


def test_a_length_below_the_header_is_refused() -> None:
    mtype = codec.RTM_GETADDR
    seq = kernel._DUMP_SEQ + mtype
    first = with_seq(messages("addresses")[0], seq)
    short = HEADER.pack(8, codec.RTM_NEWADDR, 0, seq, 0) + bytes(8)
    netlink = ScriptedNetlink({mtype: [first + short]})
    with pytest.raises(ValueError, match=f"truncated netlink message at offset {len(first)}$"):
        netlink.read_addresses()


def test_messages_are_aligned_to_4_bytes_and_a_bare_done_ends_the_dump() -> None:
    # the first message one byte longer than its attributes, padded; the dump ends with a
    # NLMSG_DONE that is a header alone
    mtype = codec.RTM_GETADDR
    seq = kernel._DUMP_SEQ + mtype
    found = [with_seq(m, seq) for m in messages("addresses")
             if HEADER.unpack_from(m, 0)[1] != codec.NLMSG_DONE]
    length, *rest = HEADER.unpack_from(found[0], 0)
    odd = HEADER.pack(length + 1, *rest) + found[0][16:] + b"\0" * 4
    done = HEADER.pack(16, codec.NLMSG_DONE, codec.NLM_F_MULTI, seq, 0)
    netlink = ScriptedNetlink({mtype: [odd + b"".join(found[1:]) + done]})
    assert list(netlink.read_addresses()) == decoded_alone(mtype)
