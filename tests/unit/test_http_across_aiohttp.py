"""The HTTP adapter behaves the same on Debian 12's aiohttp 3.8 as on current aiohttp: other HTTP
versions are refused in HTTP/1.1, a connection that never completes a request is closed after the
idle timeout (and one that does is not), and stop() shuts every connection down."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from polroutd.adapters.http import SHUTDOWN_TIMEOUT, HttpServer


class Provider:
    def health(self) -> tuple[bool, str]:
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        return True, "ready"

    def state(self) -> dict[str, Any]:
        return {}

    def state_version(self) -> int:
        return 1

    def metrics(self) -> bytes:
        return b""


async def _started(**kwargs: Any) -> HttpServer:
    server = HttpServer(Provider(), "127.0.0.1", 0, **kwargs)
    await server.start()
    return server


def _exchange(port: int, data: bytes) -> bytes:
    """Everything the server sends for ``data`` until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
        return answer


@pytest.mark.parametrize("version", ["0.9", "1.2", "2.0", "9.9"])
async def test_a_request_in_another_http_version_is_refused_in_http_1(version: str) -> None:
    server = await _started()
    try:
        request = f"GET /healthz HTTP/{version}\r\nHost: x\r\n\r\n".encode()
        answer = await asyncio.to_thread(_exchange, server.port, request)
    finally:
        await server.stop()
    # Refused by aiohttp's parser (in HTTP/1.0) or by the adapter (in HTTP/1.1), depending on
    # the version of each; either way the answer names the version and the connection is closed.
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith((b"HTTP/1.0 400 ", b"HTTP/1.1 400 ")), head
    assert f"HTTP/{version}".encode() in body, body


async def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout() -> None:
    server = await _started(keepalive_timeout=0.3)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 3) == b""
        assert time.monotonic() - started >= 0.25
        writer.close()
    finally:
        await server.stop()


async def test_a_connection_in_use_outlives_the_first_request_timeout() -> None:
    # Each request comes within the idle timeout of the previous one, the last well after the
    # timeout counted from the connection: the first-request timer must have been disarmed.
    server = await _started(keepalive_timeout=1.0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        for _ in range(3):
            await asyncio.sleep(0.5)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
            assert head.startswith(b"HTTP/1.1 200 "), head
            assert await asyncio.wait_for(reader.readexactly(3), 3) == b"ok\n"
        writer.close()
    finally:
        await server.stop()


async def test_stop_is_prompt_and_leaves_no_task_with_a_silent_connection_open() -> None:
    before = asyncio.all_tasks()
    server = await _started()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        await asyncio.sleep(0.05)  # accepted: aiohttp's handler task for it is running
        started = time.monotonic()
        await server.stop()
        assert time.monotonic() - started < SHUTDOWN_TIMEOUT + 0.5
        assert await asyncio.wait_for(reader.read(), 3) == b""
        await asyncio.sleep(0)
        assert asyncio.all_tasks() == before
    finally:
        writer.close()
