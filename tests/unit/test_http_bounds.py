"""Issue 11, defects 2 and 10 on loopback: HTTP clients cannot take the daemon's descriptors
(connections bounded in number and idle time), /state is serialised once per reconcile however
many ask, and a client's malformed request is not logged as the daemon's error."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import time
from typing import Any

import aiohttp
import pytest

from polroutd.adapters.http import FD_RESERVE, MAX_CONNECTIONS, HttpServer, connection_cap
from tests.support.article import article_decision
from tests.support.fakes import FakeKernel
from tests.support.harness import Harness


class CountingProvider:
    def __init__(self) -> None:
        self.version = 1
        self.builds = 0

    def health(self) -> tuple[bool, str]:
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        return True, "ready"

    def state(self) -> dict[str, Any]:
        self.builds += 1
        return {"version": self.version, "rules": [{"n": i} for i in range(2000)]}

    def state_version(self) -> int:
        return self.version

    def metrics(self) -> bytes:
        return b""


async def _started(provider: Any, **kwargs: Any) -> HttpServer:
    server = HttpServer(provider, "127.0.0.1", 0, **kwargs)
    await server.start()
    return server


async def test_state_is_built_once_per_version_however_many_ask() -> None:
    provider = CountingProvider()
    server = await _started(provider)
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=50)
        ) as client:
            async def get() -> Any:
                async with client.get(f"{server.url}/state") as resp:
                    assert resp.status == 200
                    return (await resp.json())["version"]

            assert set(await asyncio.gather(*(get() for _ in range(100)))) == {1}
            assert provider.builds == 1
            provider.version = 2  # a reconcile happened
            assert set(await asyncio.gather(*(get() for _ in range(20)))) == {2}
            assert provider.builds == 2
    finally:
        await server.stop()


async def test_the_daemons_state_version_moves_with_each_reconcile() -> None:
    decision = article_decision()
    h = Harness(FakeKernel(decision.state))
    await h.start()
    before = h.daemon.state_version()
    assert h.daemon.state_version() == before  # nothing happened: the same bytes serve
    done = h.counter("reconciles_ok")
    h.events.push()
    await h.until(lambda: h.counter("reconciles_ok") > done)
    assert h.daemon.state_version() != before
    assert await h.stop() == 0


async def _connect_idle(port: int, count: int) -> list[tuple[asyncio.StreamReader, Any]]:
    return [await asyncio.open_connection("127.0.0.1", port) for _ in range(count)]


async def test_idle_connections_beyond_the_cap_cannot_starve_a_probe() -> None:
    server = await _started(CountingProvider(), max_connections=lambda: 8)
    idle = await _connect_idle(server.port, 40)
    try:
        started = time.monotonic()
        async with aiohttp.ClientSession() as client, client.get(
            f"{server.url}/healthz", timeout=aiohttp.ClientTimeout(total=3)
        ) as resp:
            assert resp.status == 200
        assert time.monotonic() - started < 2
        await asyncio.sleep(0.1)
        # Of the idle ones, all but the cap's worth were closed by the server (EOF at once).
        closed = 0
        for reader, _writer in idle:
            with contextlib.suppress(TimeoutError, ConnectionError):
                closed += await asyncio.wait_for(reader.read(1), 0.05) == b""
        assert closed >= 40 - 8
        assert server.evicted >= 40 - 8
    finally:
        for _, writer in idle:
            writer.close()
        await server.stop()


async def test_a_connection_that_sends_no_request_is_closed_after_the_idle_timeout() -> None:
    server = await _started(CountingProvider(), keepalive_timeout=0.3)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # slowloris: never finishes
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 3) == b""
        writer.close()
    finally:
        await server.stop()


def test_the_cap_stays_well_below_the_descriptor_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, hard))
        assert connection_cap() == (200 - FD_RESERVE) // 2
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
        assert connection_cap() == MAX_CONNECTIONS
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _send_raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(data)
        return sock.recv(1024)


async def test_malformed_requests_are_not_logged_as_the_daemons_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = await _started(CountingProvider())
    malformed = [b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                 b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n", b"\x16\x03\x01garbage\r\n\r\n",
                 b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"]
    try:
        with caplog.at_level(logging.DEBUG):
            for data in malformed * 20:
                answer = await asyncio.to_thread(_send_raw, server.port, data)
                assert answer.startswith(b"HTTP/1.") and b" 4" in answer[:13], answer[:60]
    finally:
        await server.stop()
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not loud, [r.getMessage() for r in loud[:3]]
    assert not any(r.exc_info for r in caplog.records)
