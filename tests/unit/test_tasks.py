"""The daemon's long-lived tasks are supervised: one that fails (or ends) while the daemon runs
stops the daemon with exit 1 and a log line that names it (polroutd.daemon.tasks)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from structlog.testing import capture_logs

from polroutd.adapters import http
from polroutd.adapters.http import HttpServer, StateProvider
from polroutd.adapters.listener import ListenError
from polroutd.core.model import KernelState
from polroutd.core.record import replace
from polroutd.core.settings import Config, DaemonSettings
from polroutd.daemon import service
from polroutd.daemon.deps import Deps
from polroutd.daemon.loop import Daemon
from polroutd.netlink.kernel import Event
from tests.support.fakes import FakeKernel, FakeNotifier

CONFIG = Config(daemon=DaemonSettings(rt_tables_file="", resync_interval=3600, protocol=218))


class QuietEvents:
    def __init__(self) -> None:
        self._r, self._w = os.pipe()

    def fileno(self) -> int:
        return self._r

    def drain(self) -> list[Event]:
        return []

    def close(self) -> None:
        os.close(self._r)
        os.close(self._w)


def daemon() -> Daemon:
    deps = Deps(kernel=FakeKernel(KernelState()), events_factory=QuietEvents,
                notifier=FakeNotifier(),
                load_config=lambda: CONFIG, lease_reader=lambda _: {})
    return Daemon(CONFIG, deps)


def failures(logs: Sequence[Mapping[str, Any]]) -> list[Any]:
    return [entry["task"] for entry in logs if entry["event"] == "task_failed"]


async def test_a_crashing_supervised_task_stops_the_daemon_with_exit_1_naming_it() -> None:
    d = daemon()

    async def exporter() -> None:
        await asyncio.sleep(0.05)  # the daemon is up and ready by then
        raise RuntimeError("exporter bug")

    before = asyncio.all_tasks()
    with capture_logs() as logs:
        code = await asyncio.wait_for(d.run({"exporter": exporter()}), 2.0)
    assert code == 1
    assert failures(logs) == ["exporter"]
    [entry] = [e for e in logs if e["event"] == "task_failed"]
    assert "exporter bug" in str(entry["error"])
    assert d.status.converged_once  # it was running, not failing to start
    assert "STOPPING=1" not in d.deps.notifier.sent  # type: ignore[attr-defined]
    assert asyncio.all_tasks() - before == set()


async def test_a_task_that_ends_while_the_daemon_runs_is_a_failure() -> None:
    d = daemon()

    async def server() -> None:
        await asyncio.sleep(0.02)

    with capture_logs() as logs:
        code = await asyncio.wait_for(d.run({"http": server()}), 2.0)
    assert code == 1
    assert failures(logs) == ["http"]


async def test_the_reconcile_task_is_named_when_it_crashes() -> None:
    d = daemon()
    with capture_logs() as logs:
        run = asyncio.create_task(d.run())
        await asyncio.sleep(0.05)

        def broken_read() -> KernelState:  # a bug, not a kernel error: nothing handles it
            raise RuntimeError("reader bug")

        d.deps.kernel.read_state = broken_read  # type: ignore[method-assign]
        d.request_reload()  # a reload is followed by a reconcile, which reads the kernel
        assert await asyncio.wait_for(run, 2.0) == 1
    assert failures(logs) == ["reconcile"]


@pytest.mark.parametrize("with_service", [False, True])
async def test_a_requested_stop_is_exit_0_and_no_failure(with_service: bool) -> None:
    d = daemon()

    async def service() -> None:
        await asyncio.Event().wait()

    with capture_logs() as logs:
        run = asyncio.create_task(d.run({"http": service()} if with_service else None))
        await asyncio.sleep(0.05)
        d.request_stop()
        assert await asyncio.wait_for(run, 2.0) == 0
    assert failures(logs) == []
    assert d.health() == (False, "netlink event socket is closed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_http(port: int) -> tuple[Config, Deps]:
    config = replace(CONFIG, daemon=replace(CONFIG.daemon, http_listen=f"127.0.0.1:{port}"))
    deps = Deps(kernel=FakeKernel(KernelState()), events_factory=QuietEvents,
                notifier=FakeNotifier(), load_config=lambda: config, lease_reader=lambda _: {})
    return config, deps


async def test_the_composition_root_binds_http_first_and_supervises_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    servers: list[HttpServer] = []

    class Recorded(HttpServer):
        def __init__(self, provider: StateProvider, *args: Any, **kwargs: Any) -> None:
            super().__init__(provider, *args, **kwargs)
            servers.append(self)

    monkeypatch.setattr(http, "HttpServer", Recorded)
    port = free_port()
    config, deps = with_http(port)
    with capture_logs() as logs:
        run = asyncio.create_task(service.serve(config, deps))
        for _ in range(200):
            if any(e["event"] == "http_listening" for e in logs):
                break
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.0\r\n\r\n")
        assert (await reader.read()).split(b"\r\n")[0].endswith(b" 200 OK")
        writer.close()
        # The server going away under a running daemon stops the daemon.
        [server] = servers
        await server.stop()
        assert await asyncio.wait_for(run, 2.0) == 1
    assert failures(logs) == ["http"]


async def test_a_request_made_during_the_first_reconcile_is_answered_after_it() -> None:
    port = free_port()
    config, deps = with_http(port)
    clients: list[socket.socket] = []

    class AskedDuringTheRead(FakeKernel):
        def read_state(self) -> KernelState:
            if not clients:  # a probe connects while the first reconcile reads the kernel
                client = socket.create_connection(("127.0.0.1", port), timeout=5)
                client.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
                clients.append(client)
            return super().read_state()

    deps.kernel = AskedDuringTheRead(KernelState())

    def answer() -> bytes:
        with clients[0] as client:
            return b"".join(iter(lambda: client.recv(65536), b""))

    run = asyncio.create_task(service.serve(config, deps))
    try:
        while not clients:
            await asyncio.sleep(0.001)
        response = await asyncio.get_running_loop().run_in_executor(None, answer)
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
    assert response.split(b"\r\n")[0].endswith(b" 200 OK")
    # The first reconcile was counted before the metrics library was loaded, and is there.
    assert b'polroutd_reconciles_total{result="ok"} 1.0' in response


async def test_a_port_already_taken_fails_the_start_in_one_line_before_any_reconcile() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config, deps = with_http(port)
        with pytest.raises(ListenError) as raised:
            await service.serve(config, deps)
    assert str(raised.value) == (f"cannot listen on 127.0.0.1:{port} (daemon.http_listen): "
                                 "Address already in use")
    assert isinstance(deps.kernel, FakeKernel) and deps.kernel.reads == 0
