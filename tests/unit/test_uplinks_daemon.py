"""The uplink monitor inside the daemon loop, against the in-memory kernel: link events drive
health, health drives the uplink table, and /state, /metrics and ``status`` show it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable
from importlib import resources

from jsonschema import Draft202012Validator

from polroutd.cli.status import format_status
from polroutd.core.limits import AF_INET, NUD_FAILED, RT_SCOPE_LINK, RT_TABLE_MAIN
from polroutd.core.model import Address, KernelState, Link, Neighbour, Route
from polroutd.core.settings import (
    Config,
    DaemonSettings,
    InterfaceSpec,
    UplinkSpec,
)
from polroutd.daemon.loop import Daemon, Deps
from polroutd.netlink import codec as rtnl
from tests.support.fakes import FakeKernel

PROTO = 218
WAN = {"wan1": 2, "wan2": 3}
UPLINK_TABLE = 900


def state() -> KernelState:
    links, addresses, routes = [Link(1, "lo", True, True, loopback=True)], [], []
    for name, index in WAN.items():
        links.append(Link(index, name, True, True))
        addresses.append(Address(index, AF_INET, f"10.{index}.0.2", 24))
        routes.append(Route(AF_INET, RT_TABLE_MAIN, f"10.{index}.0.0", 24, 2,
                            scope=RT_SCOPE_LINK, oif=index, prefsrc=f"10.{index}.0.2"))
        routes.append(Route(AF_INET, RT_TABLE_MAIN, "0.0.0.0", 0, 16, metric=index, oif=index,
                            gateway=f"10.{index}.0.1"))
    return KernelState(links=tuple(links), addresses=tuple(addresses), routes=tuple(routes))


def config(up: int = 2) -> Config:
    spec = UplinkSpec(interval=0.02, timeout=0.02, down=2, up=up)
    return Config(
        daemon=DaemonSettings(rt_tables_file="", debounce=0.001, max_delay=0.01,
                              resync_interval=3600, protocol=PROTO, uplinks="failover",
                              uplink_table=UPLINK_TABLE, http_listen=""),
        interfaces=(InterfaceSpec("wan1", table=101, uplink=spec),
                    InterfaceSpec("wan2", table=102,
                                  uplink=UplinkSpec(metric=200, interval=0.02, up=up))),
    )


class Pipe:
    """An event source with a real file descriptor, so the loop's reader fires."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self.queue: list[object] = []

    def fileno(self) -> int:
        return self._r

    def drain(self) -> list[object]:
        with contextlib.suppress(BlockingIOError):
            os.read(self._r, 4096)
        out, self.queue = self.queue, []
        return out

    def push(self, item: object) -> None:
        self.queue.append(item)
        os.write(self._w, b"x")

    def close(self) -> None:
        os.close(self._r)
        os.close(self._w)


class Quiet:
    def ready(self) -> None: ...
    def reloading(self) -> None: ...
    def stopping(self) -> None: ...
    def status(self, text: str) -> None: ...
    def watchdog(self) -> None: ...
    def watchdog_interval(self) -> float | None:
        return None


class NoEvents(Pipe):
    def drain(self) -> list[rtnl.Message]:  # type: ignore[override]
        super().drain()
        return []


def uplink_routes(kernel: FakeKernel) -> list[tuple[int | None, str | None]]:
    return sorted((r.oif, r.gateway) for r in kernel.state.routes if r.table == UPLINK_TABLE)


async def until(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.002)


def entry(daemon: Daemon, name: str) -> dict[str, object]:
    found: dict[str, object] = next(u for u in daemon.state()["uplinks"]
                                    if u["interface"] == name)
    return found


async def test_link_events_drive_failover_and_probe_up_recovery() -> None:
    kernel = FakeKernel(state())
    pipes: list[Pipe] = []

    def uplink_events() -> Pipe:
        pipes.append(Pipe())
        return pipes[-1]

    deps = Deps(kernel=kernel, events_factory=NoEvents, notifier=Quiet(),
                load_config=config, lease_reader=lambda _: {},
                uplink_events_factory=uplink_events)  # type: ignore[arg-type]
    daemon = Daemon(config(up=3), deps)
    task = asyncio.create_task(daemon.run())
    try:
        await until(lambda: daemon.status.converged_once and bool(pipes))
        assert uplink_routes(kernel) == [(2, "10.2.0.1"), (3, "10.3.0.1")]
        assert entry(daemon, "wan1")["active"] and not entry(daemon, "wan2")["active"]

        pipes[-1].push(Link(2, "wan1", up=True, carrier=False))
        await until(lambda: uplink_routes(kernel) == [(3, "10.3.0.1")])
        wan1 = entry(daemon, "wan1")
        assert (wan1["up"], wan1["cause"], wan1["active"]) == (False, "link", False)
        assert entry(daemon, "wan2")["active"]
        # main's foreign defaults were never touched
        assert sum(r.table == RT_TABLE_MAIN and r.dst_len == 0 for r in kernel.state.routes) == 2

        pipes[-1].push(Link(2, "wan1", up=True, carrier=True))
        await until(lambda: entry(daemon, "wan1")["up"] is True)
        await until(lambda: uplink_routes(kernel) == [(2, "10.2.0.1"), (3, "10.3.0.1")])
        assert entry(daemon, "wan1")["cause"] == "probe"  # passive checks, probe_up in a row

        pipes[-1].push(Neighbour(3, AF_INET, "10.3.0.1", NUD_FAILED))
        await until(lambda: entry(daemon, "wan2")["cause"] == "neighbour")

        metrics = daemon.metrics().decode()
        assert ('polroutd_uplink_transitions_total{cause="link",family="ipv4",interface="wan1",'
                'to="down"} 1.0') in metrics
        assert 'polroutd_uplink_active{family="ipv4",interface="wan1"} 1.0' in metrics
        assert 'polroutd_uplink_up{family="ipv4",interface="wan2"} 0.0' in metrics

        document = json.loads(json.dumps(daemon.state()))
        schema = json.loads(resources.files("polroutd").joinpath("state.schema.json")
                            .read_text("utf-8"))
        Draft202012Validator(schema).validate(document)
        text = format_status(document, now=document["last_reconcile"]["at"])
        assert "uplinks (2):" in text
        assert "wan1 ipv4  up ACTIVE  via 10.2.0.1  metric 100" in text
        assert "wan2 ipv4  DOWN -" in text and "last change: neighbour" in text
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 2.0) == 0
