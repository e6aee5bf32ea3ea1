"""The daemon loop against the in-memory kernel and a pipe-backed event source, shared by the
daemon's unit tests."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import time
from collections.abc import Callable

from polroutd.core.errors import Overrun
from polroutd.core.settings import Config, DaemonSettings, InterfaceSpec
from polroutd.daemon.deps import Deps
from polroutd.daemon.loop import Daemon
from polroutd.engine import LeaseReader
from polroutd.netlink import codec as rtnl
from polroutd.netlink.kernel import Event
from tests.support.fakes import FakeKernel, FakeNotifier

CONFIG = Config(
    daemon=DaemonSettings(
        rt_tables_file="", debounce=0.005, max_delay=0.05, resync_interval=3600, protocol=218
    ),
    interfaces=(InterfaceSpec(name="ens192", table=101), InterfaceSpec(name="ens224", table=102)),
)


class FakeEvents:
    """An event source with a real file descriptor (a pipe) so the loop's reader fires."""

    instances: list[FakeEvents] = []

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self.queue: list[Event] = []
        self.overrun = False
        self.closed = False
        FakeEvents.instances.append(self)

    def fileno(self) -> int:
        return self._r

    def push(self, mtype: int = rtnl.RTM_NEWADDR, overrun: bool = False) -> None:
        self.queue.append(Event(rtnl.EVENT_TYPES[mtype]))
        self.overrun = overrun
        os.write(self._w, b"x")

    def push_event(self, event: Event) -> None:
        self.queue.append(event)
        os.write(self._w, b"x")

    def drain(self) -> list[Event]:
        with contextlib.suppress(BlockingIOError):
            os.read(self._r, 4096)
        if self.overrun:
            self.overrun = False
            raise Overrun("injected", errno.ENOBUFS)
        out, self.queue = self.queue, []
        return out

    def close(self) -> None:
        self.closed = True
        os.close(self._r)
        os.close(self._w)


class Harness:
    def __init__(
        self,
        kernel: FakeKernel,
        config: Config = CONFIG,
        load: Callable[[], Config] | None = None,
        lease_reader: LeaseReader | None = None,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        FakeEvents.instances = []
        self.kernel = kernel
        self.notifier = FakeNotifier()
        self.deps = Deps(
            kernel=kernel,
            events_factory=FakeEvents,
            notifier=self.notifier,
            load_config=load or (lambda: config),
            lease_reader=lease_reader or (lambda _: {}),
            wallclock=wallclock,
        )
        self.daemon = Daemon(config, self.deps)
        self.task: asyncio.Task[int] | None = None

    @property
    def events(self) -> FakeEvents:
        return FakeEvents.instances[-1]

    async def start(self) -> None:
        self.task = asyncio.create_task(self.daemon.run())
        await self.until(lambda: self.daemon.status.converged_once)

    async def until(self, cond: Callable[[], bool], timeout: float = 3.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not cond():
            assert asyncio.get_running_loop().time() < deadline, "condition not reached"
            await asyncio.sleep(0.002)

    async def stop(self) -> int:
        assert self.task is not None
        self.daemon.request_stop()
        return await asyncio.wait_for(self.task, 2.0)

    def counter(self, name: str) -> int:
        return self.daemon.tally.counters[name]
