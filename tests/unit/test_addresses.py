"""Addresses as real DHCP clients and router advertisements leave them (issue 10, pure or fake
kernel): ``noprefixroute``, IPv6 DAD states, the gateway gauge, unreadable lease files."""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import logging
import os
import socket
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polroutd.cli.render import FORMATS, render
from polroutd.core.decision import Decision
from polroutd.core.describe import Names
from polroutd.core.desired import desired_state
from polroutd.core.limits import AF_INET, AF_INET6
from polroutd.core.model import Address, Gateway, KernelState, Operation, OpResult, Route, RouteOp
from polroutd.core.plan import make_plan
from polroutd.core.record import replace
from polroutd.core.settings import Config, DaemonSettings
from polroutd.engine import Engine
from polroutd.inputs import leases
from polroutd.netlink import codec
from tests.support.article import PROTO, article_state, inputs
from tests.support.fakes import FakeKernel
from tests.support.harness import CONFIG, Harness

# The kernel's address flags (linux/if_addr.h), written out: the values are the contract.
IFA_F_OPTIMISTIC = 0x04
IFA_F_DADFAILED = 0x08
IFA_F_DEPRECATED = 0x20
IFA_F_TENTATIVE = 0x40
IFA_F_NOPREFIXROUTE = 0x200

def _state_with(*extra: Address, drop_data_prefix: bool = False) -> KernelState:
    """The article's server plus ``extra`` addresses on ens224."""
    state = article_state()
    routes = state.routes
    if drop_data_prefix:  # as dhcpcd/NetworkManager leave it: their prefix route, not the kernel's
        routes = tuple(r for r in routes if (r.dst, r.oif) != ("10.225.176.0", 3))
    addresses = tuple(a for a in state.addresses if not (a.ifindex == 3 and a.family == AF_INET))
    return replace(state, addresses=(*addresses, *extra), routes=routes)


def _connected(desired_routes: tuple[Route, ...], table: int) -> set[tuple[str, int, str | None]]:
    return {(r.dst, r.dst_len, r.prefsrc) for r in desired_routes
            if r.table == table and r.gateway is None and r.dst_len > 0 and r.oif == 3}


# --- 1. noprefixroute ------------------------------------------------------------------------


def test_a_noprefixroute_address_gets_its_connected_route_in_the_table() -> None:
    # dhcpcd: address noprefixroute, prefix route at metric 1002 in main (here: none at all,
    # as networkd leaves it with RouteTable= elsewhere).
    address = Address(3, AF_INET, "10.225.176.38", 24, flags=IFA_F_NOPREFIXROUTE)
    desired = desired_state(_state_with(address, drop_data_prefix=True),
                            inputs(leases={"ens224": "10.225.176.1"}))
    assert ("10.225.176.0", 24, "10.225.176.38") in _connected(desired.routes, 2)
    # ... and the gateway is on-link in the table: its default comes after the prefix.
    table = [r for r in desired.routes if r.table == 2 and r.family == AF_INET]
    prefix = next(i for i, r in enumerate(table) if r.dst_len == 24)
    default = next(i for i, r in enumerate(table) if r.dst_len == 0)
    assert prefix < default and table[default].gateway == "10.225.176.1"


def test_a_noprefixroute_ipv6_address_gets_its_connected_route_too() -> None:
    address = Address(3, AF_INET6, "2001:db8:176::99", 64, flags=IFA_F_NOPREFIXROUTE)
    state = article_state()
    state = replace(state, addresses=(*(a for a in state.addresses
                                         if a.address != "2001:db8:176::38"), address))
    desired = desired_state(state, inputs())
    assert ("2001:db8:176::", 64, "2001:db8:176::99") in _connected(desired.routes, 2)


@pytest.mark.parametrize("fmt", FORMATS)
def test_render_carries_the_connected_route_of_a_noprefixroute_address(fmt: str) -> None:
    address = Address(3, AF_INET, "10.225.176.38", 24, flags=IFA_F_NOPREFIXROUTE)
    state = _state_with(address, drop_data_prefix=True)
    desired = desired_state(state, inputs(leases={"ens224": "10.225.176.1"}))
    decision = Decision(state, desired, make_plan(desired, state, PROTO),
                        Names(links={1: "lo", 2: "ens192", 3: "ens224", 4: "docker0"},
                              tables={1: "mgt", 2: "data"}), {})
    files = render(decision, fmt, "polroutd", generated_at=datetime(2024, 5, 1, tzinfo=UTC),
                   config_file="/etc/polroutd/polroutd.toml")
    text = "\n".join(files.values())
    assert "10.225.176.0/24" in text


# --- 2. IPv6 duplicate address detection -----------------------------------------------------


SLAAC = "2001:db8:176:0:a8bb:ccff:fedd:eeff"


def _with_slaac(flags: int) -> KernelState:
    state = article_state()
    return replace(state, addresses=(*state.addresses, Address(3, AF_INET6, SLAAC, 64,
                                                              flags=flags)))


def _sources(state: KernelState) -> set[str | None]:
    desired = desired_state(state, inputs())
    return {r.src for r in desired.rules} | {r.prefsrc for r in desired.routes}


@pytest.mark.parametrize("flags", [IFA_F_TENTATIVE, IFA_F_DADFAILED,
                                   IFA_F_TENTATIVE | IFA_F_DADFAILED])
def test_an_address_in_dad_or_after_failed_dad_gets_no_rule_and_is_no_source(flags: int) -> None:
    assert SLAAC not in _sources(_with_slaac(flags))


def test_a_tentative_only_ipv6_address_gets_no_default_route_yet() -> None:
    state = article_state()
    addresses = tuple(a for a in state.addresses if a.address != "2001:db8:176::38")
    state = replace(state, addresses=(*addresses, Address(3, AF_INET6, SLAAC, 64,
                                                          flags=IFA_F_TENTATIVE)))
    desired = desired_state(state, inputs())
    assert not [r for r in desired.routes if r.table == 2 and r.family == AF_INET6]
    assert not [r for r in desired.rules if r.family == AF_INET6]


@pytest.mark.parametrize("flags", [0, IFA_F_OPTIMISTIC | IFA_F_TENTATIVE, IFA_F_DEPRECATED])
def test_preferred_optimistic_and_deprecated_addresses_keep_their_rule(flags: int) -> None:
    assert SLAAC in _sources(_with_slaac(flags))


def test_a_deprecated_address_is_the_prefix_source_only_when_no_preferred_one_is_left() -> None:
    # The deprecated address is the lower one: by value alone it would be the source.
    low = Address(3, AF_INET6, "2001:db8:176::1", 64, flags=IFA_F_DEPRECATED)
    state = article_state()
    both = replace(state, addresses=(*state.addresses, low))
    assert ("2001:db8:176::", 64, "2001:db8:176::38") in _connected(
        desired_state(both, inputs()).routes, 2)
    alone = replace(state, addresses=(*(a for a in state.addresses
                                         if a.address != "2001:db8:176::38"), low))
    assert ("2001:db8:176::", 64, "2001:db8:176::1") in _connected(
        desired_state(alone, inputs()).routes, 2)


@given(st.integers(min_value=0, max_value=0xFFFF))
def test_no_rule_and_no_source_is_ever_an_address_the_kernel_refuses(flags: int) -> None:
    refused = flags & IFA_F_DADFAILED or (flags & IFA_F_TENTATIVE and not
                                          flags & IFA_F_OPTIMISTIC)
    assert (SLAAC in _sources(_with_slaac(flags))) == (not refused)


def _newaddr(ifa_flags: int, attr_flags: int | None) -> bytes:
    """An RTM_NEWADDR payload: ifaddrmsg, IFA_ADDRESS, and IFA_FLAGS when given."""
    header = struct.pack("=BBBBI", AF_INET6, 64, ifa_flags, 0, 3)
    raw = bytes.fromhex("20010db8017600000000000000000099")
    attrs = struct.pack("=HH", 4 + len(raw), 1) + raw
    if attr_flags is not None:
        attrs += struct.pack("=HHI", 8, codec.IFA_FLAGS, attr_flags)
    return header + attrs


def test_the_codec_takes_the_32_bit_ifa_flags_attribute_over_the_8_bit_field() -> None:
    # The kernel puts flags above 0xff (noprefixroute 0x200) only in IFA_FLAGS.
    decoded = codec.decode_address(_newaddr(0x40, IFA_F_TENTATIVE | IFA_F_NOPREFIXROUTE))
    assert decoded is not None and decoded.flags == IFA_F_TENTATIVE | IFA_F_NOPREFIXROUTE
    assert not decoded.is_global
    plain = codec.decode_address(_newaddr(IFA_F_DEPRECATED, None))
    assert plain is not None and plain.flags == IFA_F_DEPRECATED and plain.is_global


# --- the gateway gauge: the table has its default route, or not ------------------------------


@dataclass
class OnLinkKernel(FakeKernel):
    """Refuses a route whose gateway is not on-link in its table, as the kernel does
    (ENETUNREACH, "Nexthop has invalid gateway"): IPv4 only, link-local IPv6 always on-link."""

    def _apply_one(self, op: Operation) -> OpResult:
        route = op.route if isinstance(op, RouteOp) else None
        if route is not None and op.op != "delete" and route.gateway and route.family == AF_INET:
            on_link = any(
                r.table == route.table and r.gateway is None and r.dst_len > 0
                and _contains(r.dst, r.dst_len, route.gateway)
                for r in self.state.routes)
            if not on_link:
                return OpResult(op, errno.ENETUNREACH)
        return super()._apply_one(op)


def _contains(network: str, prefixlen: int, address: str) -> bool:
    return ipaddress.ip_address(address) in ipaddress.ip_network(f"{network}/{prefixlen}")


def _gauge(h: Harness, interface: str, family: str) -> float | None:
    return h.daemon.tally.metrics.registry.get_sample_value(
        "polroutd_interface_gateway_present", {"interface": interface, "family": family})


async def test_gateway_gauge_is_0_when_the_kernel_refuses_the_tables_default_route() -> None:
    # ens224 with a configured gateway outside any prefix of it: chosen, but refused.
    config = replace(CONFIG, interfaces=(
        CONFIG.interfaces[0], replace(CONFIG.interfaces[1], gateway="10.99.0.1")))
    h = Harness(OnLinkKernel(article_state()), config)
    h.task = asyncio.create_task(h.daemon.run())
    await h.until(lambda: h.counter("reconciles_error") >= 1)
    assert _gauge(h, "ens224", "ipv4") == 0
    assert _gauge(h, "ens192", "ipv4") == 1  # its gateway is on-link: the table has it
    assert await h.stop() == 0


# --- 3. a lease file that exists but cannot be read ------------------------------------------


def _deny(monkeypatch: pytest.MonkeyPatch, denied: Path) -> None:
    """Open as a service user would: ``denied`` raises EACCES (root reads anything)."""
    real_open = os.open

    def fake_open(path: str | os.PathLike[str], flags: int, *args: int, **kwargs: int) -> int:
        if os.fspath(path) == str(denied):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


def _dhcpcd_lease(router: str) -> bytes:
    message = bytearray(240)
    message[0] = 2
    message[16:20] = socket.inet_aton("10.225.176.38")
    message[236:240] = leases.MAGIC_COOKIE
    options = bytes([53, 1, 5, 51, 4, 0, 0, 0x0E, 0x10, 3, 4]) + socket.inet_aton(router) + b"\xff"
    return bytes(message) + options


def test_an_unreadable_dhcpcd_lease_names_its_file_in_the_gateway_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lease = tmp_path / "ens224.lease"
    lease.write_bytes(_dhcpcd_lease("10.225.176.1"))
    config = Config(daemon=DaemonSettings(rt_tables_file="", protocol=PROTO,
                                          dhcp_lease_paths=(f"{tmp_path}/{{ifname}}.lease",)),
                    interfaces=CONFIG.interfaces)
    engine = Engine(config, FakeKernel(article_state()))
    assert _data_gateway(engine).address == "10.225.176.1"  # as root: read
    _deny(monkeypatch, lease)
    gateway = _data_gateway(engine)
    assert gateway.address is None and gateway.reason is not None
    assert f"lease file {lease} permission denied" in gateway.reason
    assert '"Works with"' in gateway.reason  # where the way out is written


def _reconciled(h: Harness, count: int) -> bool:
    return h.counter("reconciles_ok") >= count


def _data_gateway(engine: Engine) -> Gateway:
    decision = engine.read_and_decide()
    return next(i for i in decision.desired.interfaces if i.name == "ens224").gateway4


async def test_an_unreadable_lease_is_warned_about_once_not_per_reconcile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    lease = tmp_path / "ens224.lease"
    lease.write_bytes(_dhcpcd_lease("10.225.176.1"))
    _deny(monkeypatch, lease)
    config = replace(CONFIG, daemon=replace(CONFIG.daemon, dhcp_lease_paths=(
        f"{tmp_path}/{{ifname}}.lease",)))
    h = Harness(FakeKernel(article_state()), config)
    h.daemon.engine = Engine(config, h.kernel)
    with caplog.at_level(logging.WARNING, logger="polroutd.leases"):
        await h.start()
        for done in range(h.counter("reconciles_ok") + 1, h.counter("reconciles_ok") + 4):
            h.events.push()
            await h.until(functools.partial(_reconciled, h, done))
        assert await h.stop() == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == "polroutd.leases"]
    assert len(warnings) == 1, warnings
    assert str(lease) in warnings[0] and "permission denied" in warnings[0]
