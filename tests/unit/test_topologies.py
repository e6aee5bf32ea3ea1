"""Edge topologies (docs/topologies.md): VRF, bond and bridge ports, loopback, peer addresses,
several gateways on one interface, link-local-only interfaces, the life of table numbers, and a
foreign owner filling polroutd's table.

This machine's kernel has no VRF or bond module (``ip link add x type vrf table 5`` answers
"Unknown device type" in a throwaway namespace), so VRF and bond ports are tested with
constructed netlink messages and the in-memory kernel; bridge ports and peer addresses also on
the real kernel, in a namespace.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
import structlog

from polroutd.config.files import FileRefused
from polroutd.core.limits import AF_INET, AF_INET6, RT_SCOPE_LINK, RT_TABLE_MAIN
from polroutd.core.model import Address, KernelState, Link, Route
from polroutd.core.record import replace
from polroutd.core.settings import Config, DaemonSettings, InterfaceSpec
from polroutd.core.stateview import state_document
from polroutd.core.tables import NameRegistry, assign_tables, render_recorded
from polroutd.daemon.loop import Daemon, Deps
from polroutd.engine import Engine
from polroutd.inputs import rt_tables
from polroutd.netlink import codec
from tests.support.fakes import FakeKernel

PROTO = 218
BARE = NameRegistry(tables={"main": 254}, protocols={})

LO = Link(1, "lo", True, True, loopback=True)
ETH1 = Link(2, "eth1", True, True)
BLUE = Link(10, "blue", True, True, kind="vrf")
ETH2 = Link(3, "eth2", True, True, master=10)  # ip link set eth2 master blue


def daemon_settings(tmp: Path | None = None, **changes: object) -> DaemonSettings:
    tables_file = str(tmp / "iproute2" / "rt_tables.d" / "polroutd.conf") if tmp else ""
    settings = DaemonSettings(rt_tables_file=tables_file, protocol=PROTO, dhcp_lease_paths=())
    return replace(settings, **changes)  # type: ignore[arg-type]


def engine(state: KernelState, config: Config, clock: list[float] | None = None) -> Engine:
    now = clock if clock is not None else [1000.0]
    return Engine(config, FakeKernel(state), lease_reader=lambda _: {},
                  clock=lambda: now[0])


def decide_and_apply(e: Engine) -> dict[str, Any]:
    """One reconcile against the in-memory kernel, and the /state document it gives."""
    decision = e.read_and_decide()
    results = e.apply(decision)
    assert all(r.ok for r in results), results
    return state_document(
        decision=decision, results=results, last=None, counters={}, config_file="t.toml",
        mode="strict", protocol=PROTO, config_error=None, ready=True, in_sync=True,
    )


def link_message(index: int, name: str, kind: str | None = None, master: int | None = None
                 ) -> bytes:
    body = struct.pack("=BxHiII", 0, 1, index, 0x1 | 0x10000, 0)
    body += codec._attr(codec.IFLA_IFNAME, name.encode() + b"\0")
    if kind is not None:
        body += codec._attr(codec.IFLA_LINKINFO,
                            codec._attr(codec.IFLA_INFO_KIND, kind.encode() + b"\0"))
    if master is not None:
        body += codec._attr(10, struct.pack("=I", master))  # IFLA_MASTER
    return body


# --- 1. ports of a VRF, bond or bridge; loopback ------------------------------------------------


def test_decode_link_reads_the_master_and_the_masters_kind() -> None:
    # An RTM_NEWLINK as the kernel sends for "ip link set eth2 master blue", and for blue.
    port = codec.decode_link(link_message(3, "eth2", kind="veth", master=10))
    vrf = codec.decode_link(link_message(10, "blue", kind="vrf"))
    assert port is not None and port.master == 10 and port.kind == "veth"
    assert vrf is not None and vrf.kind == "vrf" and vrf.master is None


VRF_STATE = KernelState(
    links=(LO, ETH1, BLUE, ETH2),
    addresses=(
        Address(1, AF_INET, "127.0.0.1", 8, scope=254),
        Address(2, AF_INET, "10.50.0.2", 24),
        Address(3, AF_INET, "10.60.0.2", 24),
    ),
    routes=(
        Route(AF_INET, RT_TABLE_MAIN, "0.0.0.0", 0, 3, oif=2, gateway="10.50.0.1"),
        # the VRF's own table: the kernel's local and connected routes of eth2
        Route(AF_INET, 100, "10.60.0.0", 24, 2, scope=RT_SCOPE_LINK, oif=3, prefsrc="10.60.0.2"),
    ),
)


@pytest.mark.parametrize("interfaces", [(), (InterfaceSpec(name="*"),)])
def test_a_port_of_a_vrf_is_skipped_with_the_reason(
    tmp_path: Path, interfaces: tuple[InterfaceSpec, ...]
) -> None:
    config = Config(daemon=daemon_settings(tmp_path), interfaces=interfaces)
    e = engine(VRF_STATE, config)
    decision = e.read_and_decide()
    assert [i.name for i in decision.desired.interfaces] == ["eth1"]
    assert {r.src for r in decision.desired.rules} == {"10.50.0.2"}  # nothing from 10.60.0.2
    skipped = {s.name: s.reason for s in decision.desired.skipped}
    assert "VRF blue" in skipped["eth2"] and "out of scope" in skipped["eth2"]
    if interfaces:  # named by "*": the VRF device and lo are left out, and say so
        assert set(skipped) == {"blue", "eth2", "lo"}
    assert set(decision.recorded_tables) == {"eth1"}  # no table allocated for them
    doc = decide_and_apply(e)
    assert {s["name"] for s in doc["skipped"]} == set(skipped)


def test_name_star_never_manages_loopback_or_ports_of_a_bond() -> None:
    bond = Link(5, "bond0", True, True, kind="bond")
    state = KernelState(
        links=(LO, bond, Link(6, "ens1", True, True, master=5), Link(7, "ens2", True, True,
                                                                    master=5)),
        addresses=(Address(1, AF_INET, "127.0.0.1", 8, scope=254),
                   Address(5, AF_INET, "10.7.0.2", 24)),
    )
    config = Config(daemon=daemon_settings(), interfaces=(InterfaceSpec(name="*"),))
    decision = engine(state, config).read_and_decide()
    assert [i.name for i in decision.desired.interfaces] == ["bond0"]
    assert set(decision.recorded_tables) == {"bond0"}
    reasons = {s.name: s.reason for s in decision.desired.skipped}
    assert reasons["ens1"].startswith("a port of bond bond0") and "loopback" in reasons["lo"]


# --- 2. another owner filling polroutd's table ------------------------------------------------


def test_a_foreign_owner_in_polroutds_table_is_loud_not_in_sync() -> None:
    config = Config(daemon=daemon_settings(), interfaces=(InterfaceSpec(name="eth1", table=7),))
    state = KernelState(links=(ETH1,), addresses=(Address(2, AF_INET, "10.50.0.2", 24),))
    kernel = FakeKernel(state)
    daemon = Daemon(config, Deps(kernel=kernel, events_factory=lambda: None,  # type: ignore
                                 notifier=_Quiet(), load_config=lambda: config,
                                 lease_reader=lambda _: {}))
    assert daemon.reconcile("startup") and daemon.readiness()[0]
    # A VRF created later on table 7: the kernel fills it with its own routes.
    vrf_route = Route(AF_INET, 7, "10.99.0.0", 24, 2, scope=RT_SCOPE_LINK, oif=2)
    kernel.state = replace(kernel.state, routes=(*kernel.state.routes, vrf_route))
    with structlog.testing.capture_logs() as logs:
        daemon.reconcile("event")
        daemon.reconcile("resync")
    ready, why = daemon.readiness()
    assert not ready and "foreign" in why
    assert daemon.state()["in_sync"] is False and daemon.state()["conflicts"]
    assert b'polroutd_conflicts{kind="route"} 1.0' in daemon.metrics()
    assert b"polroutd_in_sync 0.0" in daemon.metrics()
    warnings = [entry for entry in logs if entry["event"] == "conflict"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"  # once, not per pass
    kernel.state = replace(kernel.state, routes=tuple(
        r for r in kernel.state.routes if r != vrf_route))
    daemon.reconcile("event")
    assert daemon.readiness()[0]
    assert b'polroutd_conflicts{kind="route"} 0.0' in daemon.metrics()


class _Quiet:
    def ready(self) -> None: ...
    def reloading(self) -> None: ...
    def stopping(self) -> None: ...
    def status(self, text: str) -> None: ...
    def watchdog(self) -> None: ...
    def watchdog_interval(self) -> float | None:
        return None


# --- 3. polroutd's own file is its memory, not the system's registry ----------------------------


TWO_LINKS = KernelState(
    links=(ETH1, Link(3, "eth2", True, True)),
    addresses=(Address(2, AF_INET, "10.50.0.2", 24), Address(3, AF_INET, "10.60.0.2", 24)),
)


def test_the_registry_leaves_out_polroutds_own_file(tmp_path: Path) -> None:
    own = tmp_path / "iproute2" / "rt_tables.d" / "polroutd.conf"
    own.parent.mkdir(parents=True)
    own.write_text("30000 eth1\n")
    (own.parent / "vpn.conf").write_text("200 vpn\n")
    registry = rt_tables.read_registry(rt_tables.config_dirs_for(str(own)), exclude=own)
    assert registry.tables.get("vpn") == 200 and "eth1" not in registry.tables


def test_duplicated_records_do_not_make_tables_swap(tmp_path: Path) -> None:
    config = Config(daemon=daemon_settings(tmp_path))
    own = Path(config.daemon.rt_tables_file)
    own.parent.mkdir(parents=True)
    own.write_text("30000 eth1\n30000 eth2\n")  # a hand edit (or two hosts' files merged)
    e = engine(TWO_LINKS, config)
    seen = []
    for _ in range(3):
        decision = e.read_and_decide()
        e.apply(decision)
        seen.append({i.name: i.table_id for i in decision.desired.interfaces})
    assert seen == [{"eth1": 30000, "eth2": 30001}] * 3
    assert not {"eth1", "eth2"} & set(e.registry.tables)  # our records are not the system's


def test_names_added_to_the_system_files_are_read_again(tmp_path: Path) -> None:
    config = Config(daemon=daemon_settings(tmp_path),
                    interfaces=(InterfaceSpec(name="eth1", table="vpn"),
                                InterfaceSpec(name="eth2")))
    etc = tmp_path / "iproute2"
    (etc / "rt_tables.d").mkdir(parents=True)
    (etc / "rt_tables").write_text("255 local\n254 main\n")
    e = engine(TWO_LINKS, config)
    def tables() -> dict[str, int]:
        decision = e.read_and_decide()
        e.apply(decision)
        return {i.name: i.table_id for i in decision.desired.interfaces}

    assert tables() == {"eth1": 30001, "eth2": 30000}  # "vpn" allocated, after "eth2"
    (etc / "rt_tables").write_text("255 local\n254 main\n150 vpn\n")  # the admin registers it
    assert tables() == {"eth1": 150, "eth2": 30000}


# --- 4. table numbers are reused, least recently used first; per-interface degradation --------


def test_numbers_of_absent_interfaces_are_reused_oldest_first(tmp_path: Path) -> None:
    config = Config(daemon=daemon_settings(tmp_path, table_range=(30000, 30001)))
    clock = [1000.0]
    fake = FakeKernel(KernelState())
    e = Engine(config, fake, lease_reader=lambda _: {}, clock=lambda: clock[0])

    def present(*names: str) -> dict[str, int]:
        links = tuple(Link(n, name, True, True) for n, name in enumerate(names, 2))
        addresses = tuple(Address(n, AF_INET, f"10.{n}.0.2", 24) for n in range(2, len(names) + 2))
        fake.state = KernelState(links=links, addresses=addresses)
        decision = e.read_and_decide()
        e.apply(decision)
        clock[0] += 60
        return {i.name: i.table_id for i in decision.desired.interfaces}

    assert present("a", "b") == {"a": 30000, "b": 30001}
    assert present("b") == {"b": 30001}  # a is gone: its number waits for it
    assert present("a", "b") == {"a": 30000, "b": 30001}  # and it comes back to it
    assert present("b") == {"b": 30001}
    assert present("c") == {"c": 30000}  # range full: a's number (unused longest) goes to c
    assert present("b", "c") == {"b": 30001, "c": 30000}  # b kept its own
    # More interfaces than numbers: only the one left over goes without, and says why.
    decision_doc = present("a", "b", "c")
    assert decision_doc == {"b": 30001, "c": 30000}
    skipped = {s.name: s.reason for s in e.read_and_decide().desired.skipped}
    assert "no free table number left in 30000..30001 for table 'a'" in skipped["a"]
    text = Path(config.daemon.rt_tables_file).read_text()
    assert "30000 c\n" in text and "30001 b\n" in text


def test_rounds_of_short_lived_interfaces_never_exhaust_the_range() -> None:
    recorded: dict[str, int] = {}
    unused: dict[str, float] = {}
    for round_ in range(6):  # six rounds of 200 container names in the default range of 1000
        names = [(f"veth{round_}x{n}", None) for n in range(200)]
        result = assign_tables(names, registry=BARE, recorded=recorded, table_range=(30000, 30999),
                               in_use=frozenset(), source="t", unused_since=unused, now=round_)
        assert not result.unassigned and len(set(r.id for r in result.by_interface.values())) == 200
        recorded, unused = dict(result.recorded), dict(result.unused_since)
    assert len(recorded) == 1000  # bounded by the range


# --- 5. peer addresses ----------------------------------------------------------------------------


def test_a_peer_address_takes_its_prefix_from_the_peer() -> None:
    # RTM_NEWADDR for "ip addr add 172.16.4.1 peer 192.168.44.2/24 dev eth4"
    body = struct.pack("=BBBBI", AF_INET, 24, 0x80, 0, 4)
    body += codec._attr(2, bytes([172, 16, 4, 1]))  # IFA_LOCAL
    body += codec._attr(1, bytes([192, 168, 44, 2]))  # IFA_ADDRESS: the peer
    address = codec.decode_address(body)
    assert address == Address(4, AF_INET, "172.16.4.1", 24, 0, 0x80, peer="192.168.44.2")
    state = KernelState(links=(Link(4, "eth4", True, True),), addresses=(address,))
    decision = engine(state, Config(daemon=daemon_settings())).read_and_decide()
    connected = [r for r in decision.desired.routes if not r.is_default]
    assert [(r.dst, r.dst_len, r.prefsrc) for r in connected] == [
        ("192.168.44.0", 24, "172.16.4.1")]
    assert decision.desired.interfaces[0].addresses == ("172.16.4.1 peer 192.168.44.2/24",)
    assert {r.src for r in decision.desired.rules} == {"172.16.4.1"}


# --- 6. cost linear in the records, bounded file reads --------------------------------------


def test_twenty_thousand_records_are_all_kept_and_a_new_name_gets_a_free_number(
    tmp_path: Path,
) -> None:
    # Was quadratic in the records (2.3 s at 20,000; 0.13 s now, measured by hand, see
    # docs/topologies.md); the suite checks the outcome, not the time.
    recorded = {f"gone{n}": 40000 + n for n in range(20000)}
    path = tmp_path / "polroutd.conf"
    path.write_text(render_recorded(recorded))
    result = assign_tables([("eth1", None)], registry=BARE, recorded=rt_tables.read_recorded(path),
                           table_range=(30000, 30999), in_use=frozenset(), source="t")
    assert result.by_interface["eth1"].id == 30000
    assert result.recorded == {**recorded, "eth1": 30000}


def test_name_files_over_their_bound_are_refused_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rt_tables, "MAX_NAME_FILE_BYTES", 19)
    small, big = tmp_path / "small.conf", tmp_path / "big.conf"
    small.write_text("1 one\n2 two\n")
    big.write_text("1 one\n2 two\n3 three\n4 four\n")  # crosses 19 bytes
    assert rt_tables.read_recorded(small) == {"one": 1, "two": 2}
    with pytest.raises(FileRefused):
        rt_tables.read_recorded(big)


# --- several gateways on one interface; a link-local-only interface ---------------------------


def test_the_gateways_that_lose_on_a_multi_subnet_interface_are_named() -> None:
    state = KernelState(
        links=(ETH1,),
        addresses=(Address(2, AF_INET, "10.50.0.2", 24), Address(2, AF_INET, "10.51.0.2", 24)),
        routes=(Route(AF_INET, RT_TABLE_MAIN, "0.0.0.0", 0, 3, metric=200, oif=2,
                      gateway="10.51.0.1"),
                Route(AF_INET, RT_TABLE_MAIN, "0.0.0.0", 0, 3, metric=100, oif=2,
                      gateway="10.50.0.1")),
    )
    doc = decide_and_apply(engine(state, Config(daemon=daemon_settings())))
    gateway = doc["interfaces"][0]["gateway"]["ipv4"]
    assert gateway["address"] == "10.50.0.1"
    assert gateway["passed_over"][0]["address"] == "10.51.0.1"
    assert "metric 200" in gateway["passed_over"][0]["reason"]


def test_a_link_local_only_interface_says_why_it_has_no_default() -> None:
    state = KernelState(
        links=(ETH1,),
        addresses=(Address(2, AF_INET, "10.50.0.2", 24),
                   Address(2, AF_INET6, "fe80::2", 64, scope=253)),
        routes=(Route(AF_INET6, RT_TABLE_MAIN, "::", 0, 3, metric=1024, oif=2,
                      gateway="fe80::1"),),
    )
    config = Config(daemon=daemon_settings(), interfaces=(InterfaceSpec(name="eth1"),))
    doc = decide_and_apply(engine(state, config))
    gateway6 = doc["interfaces"][0]["gateway"]["ipv6"]
    assert gateway6["address"] == "fe80::1"
    assert "no global ipv6 address on eth1" in gateway6["not_installed"]


# --- the real kernel: a bridge port and a peer address, in a namespace ------------------------
