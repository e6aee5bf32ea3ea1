"""The event socket's filter program and its attachment (the kernel's verdicts on it are in
tests/kernel/test_event_filter_netns.py)."""

from __future__ import annotations

import errno
import socket
import struct

import pytest

from polroutd.core.limits import AF_INET, RT_TABLE_LOCAL
from polroutd.core.model import Route, Rule
from polroutd.netlink import codec as rtnl
from polroutd.netlink.kernel import SO_ATTACH_FILTER, _attach_filter


class RefusingSocket:
    def __init__(self) -> None:
        self.options: list[tuple[int, int, bytes]] = []

    def setsockopt(self, level: int, option: int, value: bytes) -> None:
        self.options.append((level, option, value))
        raise OSError(errno.ENOPROTOOPT, "Protocol not available")


def test_a_refused_filter_is_no_error_the_socket_then_receives_everything() -> None:
    sock = RefusingSocket()
    assert _attach_filter(sock, rtnl.local_route_filter()) is False  # type: ignore[arg-type]
    [(level, option, fprog)] = sock.options
    assert (level, option) == (socket.SOL_SOCKET, SO_ATTACH_FILTER)
    count, _address = struct.unpack("@HP", fprog)
    assert count == len(rtnl.local_route_filter()) // 8


def test_the_program_is_whole_instructions_ending_in_verdicts() -> None:
    program = rtnl.local_route_filter()
    assert len(program) % 8 == 0
    instructions = list(struct.iter_unpack("=HBBI", program))
    ret = 0x06
    assert instructions[-1] == (ret, 0, 0, 0xFFFFFFFF)  # what is not a local route: accepted
    assert (ret, 0, 0, 0) in instructions  # a local route: dropped
    for at, (code, true, false, _k) in enumerate(instructions):  # jumps stay inside
        assert at + 1 + max(true, false) < len(instructions) or code == ret


def run_filter(program: bytes, packet: bytes) -> int:
    """What the kernel's classic BPF does with ``packet`` (the instructions the filter uses):
    loads are big-endian, a load past the end rejects, jumps count from the next one."""
    instructions = list(struct.iter_unpack("=HBBI", program))
    accumulator, at = 0, 0
    while True:
        code, true, false, k = (int(value) for value in instructions[at])
        if code in (0x28, 0x30):  # ld half / ld byte, absolute
            size = 2 if code == 0x28 else 1
            if k + size > len(packet):
                return 0
            accumulator = int.from_bytes(packet[k:k + size], "big")
            at += 1
        elif code == 0x15:  # jeq k
            at += 1 + (true if accumulator == k else false)
        elif code == 0x06:  # ret k
            return k
        else:
            raise AssertionError(f"instruction {code:#x} not expected")


def route(table: int) -> Route:
    return Route(AF_INET, table, "10.0.0.0", 24, 2)


@pytest.mark.parametrize(("message", "kept"), [
    (rtnl.encode_route(rtnl.RTM_NEWROUTE, 0, 1, route(RT_TABLE_LOCAL)), False),
    (rtnl.encode_route(rtnl.RTM_DELROUTE, 0, 1, route(RT_TABLE_LOCAL)), False),
    (rtnl.encode_route(rtnl.RTM_NEWROUTE, 0, 1, route(254)), True),
    (rtnl.encode_route(rtnl.RTM_DELROUTE, 0, 1, route(100)), True),
    (rtnl.encode_route(rtnl.RTM_NEWROUTE, 0, 1, route(253)), True),
    (rtnl.encode_route(rtnl.RTM_NEWROUTE, 0, 1, route(255000)), True),  # RTA_TABLE: compat byte
    (rtnl.encode_route(rtnl.RTM_GETROUTE, 0, 1, route(RT_TABLE_LOCAL)), True),  # no change
    # A rule's header has its table at the same place: a rule of the local table is kept.
    (rtnl.encode_rule(rtnl.RTM_NEWRULE, 0, 1, Rule(AF_INET, 0, RT_TABLE_LOCAL, 2)), True),
    (rtnl.encode_barrier(7), True),
])
def test_the_filter_drops_the_local_tables_routes_alone(message: bytes, kept: bool) -> None:
    verdict = run_filter(rtnl.local_route_filter(), message)
    assert verdict == (0xFFFFFFFF if kept else 0)


def test_an_address_message_with_255_where_a_route_has_its_table_is_kept() -> None:
    message = bytearray(rtnl.encode_route(rtnl.RTM_NEWROUTE, 0, 1, route(RT_TABLE_LOCAL)))
    struct.pack_into("=H", message, 4, rtnl.RTM_NEWADDR)
    assert run_filter(rtnl.local_route_filter(), bytes(message)) == 0xFFFFFFFF
