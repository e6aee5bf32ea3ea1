"""The read-only HTTP API of docs/behaviour.md §3.2 (the only module that imports aiohttp).

GET and HEAD only; nothing here changes state. Unknown paths are 404 and other methods on a
known path 405 (both with a JSON ``{"error": ...}`` body); a provider that fails gives 503 with
a one-line reason, so no client input can produce a 500.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import resource
import socket
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, Protocol, TypeVar

from aiohttp import HttpVersion10, HttpVersion11, web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST

from polroutd import __version__
from polroutd.adapters.listener import BACKLOG
from polroutd.core.text import one_line

log = logging.getLogger("polroutd.http")

SHUTDOWN_TIMEOUT = 1.0  # seconds open requests get on stop; every handler answers at once
# Any local user may connect: connections are bounded in number and in idle time, so they can
# never take the descriptors the daemon needs for netlink, lease and rt_tables files.
KEEPALIVE_TIMEOUT = 5.0  # seconds a connection may sit without a complete request, then closed
MAX_CONNECTIONS = 128
FD_RESERVE = 64  # descriptors always left to the daemon's own work
_MAX_REASON = 300  # characters of a failure reason put in a response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")

# aiohttp >= 3.9 takes shutdown_timeout on the runner (and deprecates it on the site), and the
# runner's cleanup() shuts the open connections down. 3.8 (Debian 12's python3-aiohttp) does both
# only in a site's stop(), and we have no site: there HttpServer.stop shuts them down itself.
_RUNNER_SHUTS_CONNECTIONS = (
    "shutdown_timeout" in inspect.signature(web.BaseRunner.__init__).parameters
)


class StateProvider(Protocol):
    """What the daemon exposes to the API; every method is cheap and must not block."""

    def health(self) -> tuple[bool, str]:
        """(alive, reason): the event loop and the netlink sockets are alive."""
        ...

    def readiness(self) -> tuple[bool, str]:
        """(ready, reason): the first reconcile converged and the last one succeeded."""
        ...

    def state(self) -> dict[str, Any]:
        """The /state document (JSON-serialisable)."""
        ...

    def state_version(self) -> int:
        """Changes whenever the /state document may have: the serialised document is built once
        per version and its bytes served to every request until the next one."""
        ...

    def metrics(self) -> bytes:
        """Prometheus exposition text."""
        ...


class ProviderFailed(Exception):
    """A provider call raised or returned something unusable; the message is one line."""


def _ask(what: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except Exception as exc:  # the daemon's bug must not become a 500 for the client
        log.warning("HTTP %s: provider failed", what, exc_info=True)
        reason = f"{what} failed: {type(exc).__name__}: {exc}"
        raise ProviderFailed(one_line(reason, _MAX_REASON)) from exc


def _probe_response(what: str, call: Callable[[], tuple[bool, str]], ok_text: str) -> web.Response:
    def checked() -> tuple[bool, str]:
        ok, reason = call()
        return bool(ok), str(reason)

    try:
        ok, reason = _ask(what, checked)
    except ProviderFailed as exc:
        return _text(503, f"{exc}\n")
    if ok:
        return _text(200, ok_text)
    return _text(503, (one_line(reason, _MAX_REASON) or "no reason given") + "\n")


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _handlers(provider: StateProvider, openapi: bytes) -> dict[str, Handler]:
    async def healthz(request: web.Request) -> web.Response:
        return _probe_response("health check", provider.health, "ok\n")

    async def readyz(request: web.Request) -> web.Response:
        return _probe_response("readiness check", provider.readiness, "ready\n")

    async def metrics(request: web.Request) -> web.Response:
        try:
            body = _ask("metrics", lambda: bytes(provider.metrics()))
        except ProviderFailed as exc:
            return _error(503, str(exc))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    cached: list[tuple[int, bytes]] = []  # (version, body) of the last document served

    def state_body() -> bytes:
        version = provider.state_version()
        if cached and cached[0][0] == version:
            return cached[0][1]
        # Serialising is part of the ask: a NaN or an odd object in the document is a 503 too.
        body = (json.dumps(provider.state(), indent=2, allow_nan=False) + "\n").encode()
        cached[:] = [(version, body)]
        return body

    async def state(request: web.Request) -> web.Response:
        # Built at most once per reconcile: a crowd of clients costs the reconciles nothing
        # but writing the same bytes out.
        try:
            body = _ask("state", state_body)
        except ProviderFailed as exc:
            return _error(503, str(exc))
        return web.Response(body=body, content_type="application/json")

    async def openapi_json(request: web.Request) -> web.Response:
        return web.Response(body=openapi, content_type="application/json")

    return {
        "/healthz": healthz,
        "/readyz": readyz,
        "/metrics": metrics,
        "/state": state,
        "/openapi.json": openapi_json,
    }


@web.middleware
async def _http1_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a request line naming another HTTP version (``HTTP/9.9``) with a 400, as
    aiohttp >= 3.9's parser does before the app sees it. aiohttp 3.8's parser lets any
    ``HTTP/d.d`` through, and from 3.9 on ``HTTP/2.0`` and ``HTTP/0.9`` pass; aiohttp answers in
    the request's version, so the refusal is written here by hand in HTTP/1.1 and the connection
    closed (the response returned is then never written)."""
    if request.version in (HttpVersion10, HttpVersion11):
        return await handler(request)
    major, minor = request.version
    body = json.dumps({"error": f"HTTP/{major}.{minor} is not supported; use HTTP/1.1"}).encode()
    head = (
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
    )
    if request.transport is not None:
        request.transport.write(head.encode() + body)
    request.protocol.force_close()  # flushes what was written, then closes
    return web.Response(status=400)


@web.middleware
async def _no_store(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers["Cache-Control"] = "no-store"  # probes and state are only true right now
    return response


@web.middleware
async def _errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:  # the router's 404 and 405 (405 carries Allow)
        allow = exc.headers.get("Allow")
        if exc.status == 404:
            message = "not found; the paths served are listed in /openapi.json"
        elif allow is not None:
            message = f"method not allowed; use {allow.replace(',', ' or ')}"
        else:
            message = exc.reason
        return _error(exc.status, message, {"Allow": allow} if allow is not None else None)
    except Exception:  # our own bug: logged in full, answered in JSON like everything else
        log.exception("HTTP %s %s failed", request.method, request.path)
        return _error(500, "internal error (logged)")


def _rebased(node: Any, base: str) -> Any:
    """A copy of a JSON Schema whose local references (``#/...``) point below ``base``."""
    if isinstance(node, dict):
        return {
            key: base + value[1:]
            if key == "$ref" and isinstance(value, str) and value.startswith("#")
            else _rebased(value, base)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rebased(item, base) for item in node]
    return node


def openapi_document() -> dict[str, Any]:
    """The shipped OpenAPI document with the state schema bundled in, so it stands alone.

    The package's ``openapi.json`` refers to its sibling ``state.schema.json``; a client that
    fetched ``/openapi.json`` could not resolve that, so it is inlined under
    ``components.schemas.State``.
    """
    package = resources.files("polroutd")
    document: dict[str, Any] = json.loads(package.joinpath("openapi.json").read_text("utf-8"))
    schema = json.loads(package.joinpath("state.schema.json").read_text("utf-8"))
    document["info"]["version"] = __version__
    document["components"]["schemas"]["State"] = _rebased(schema, "#/components/schemas/State")
    return document


def create_app(provider: StateProvider) -> web.Application:
    app = web.Application(middlewares=[_http1_only, _no_store, _errors_as_json])
    openapi = (json.dumps(openapi_document(), indent=2) + "\n").encode()
    for path, handler in _handlers(provider, openapi).items():
        app.router.add_get(path, handler)  # also answers HEAD
    return app


def connection_cap() -> int:
    """How many HTTP connections may be open at once: well below the descriptor limit in force
    now (read on every accept: ``prlimit`` can lower it under a running daemon)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(2, min(MAX_CONNECTIONS, (soft - FD_RESERVE) // 2))


class _ServerLogger(logging.Logger):
    """aiohttp's logger for what happens below the app: a request the parser refused is the
    client's error, not the daemon's, so it is one debug line (aiohttp logs each with ERROR
    and a traceback: a thousand bad requests were 818 KB of log)."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self.debug(msg, *args, exc_info=exc_info, **kwargs)
        else:
            super().exception(msg, *args, exc_info=exc_info, **kwargs)

    def debug(self, msg: object, *args: object, exc_info: Any = None, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):  # one line, no traceback
            msg, args, exc_info = "bad request refused: %s", (one_line(str(exc_info), 200),), None
        super().debug(msg, *args, exc_info=exc_info, **kwargs)


def _server_logger() -> logging.Logger:
    logger = _ServerLogger("polroutd.http.server")
    logger.parent = logging.getLogger("polroutd.http")
    return logger


class HttpServer:
    """The API on one address, started and stopped with the daemon."""

    def __init__(
        self,
        provider: StateProvider,
        host: str = "",
        port: int = 0,
        *,
        sock: socket.socket | None = None,
        max_connections: Callable[[], int] = connection_cap,
        keepalive_timeout: float = KEEPALIVE_TIMEOUT,
    ) -> None:
        """Listens on ``host`` and ``port`` (0: any free port, for tests), or takes over
        ``sock``, already listening (adapters/listener.py: the daemon binds it at start). The
        server closes it when it stops."""
        if sock is not None:
            host, port = sock.getsockname()[:2]
        self.host, self.requested_port = host, port
        self._sock = sock
        self._app = create_app(provider)
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._stopped = asyncio.Event()
        self._max_connections = max_connections
        self._keepalive_timeout = keepalive_timeout
        # Connections that have not yet sent a complete request, with the timer that closes them.
        self._awaiting_first_request: dict[web.RequestHandler, asyncio.TimerHandle] = {}
        self._app.middlewares.insert(0, self._first_request_arrived)
        self.evicted = 0  # connections closed to make room for a newer one

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("HTTP server already started")
        self._stopped.clear()
        # access_log=None: one log line per scrape or probe would drown the daemon's own logs.
        # aiohttp's own reports (malformed requests, answered 400 before the app sees them) go
        # under our logger's name, so the daemon's logging configuration covers them.
        timeout: dict[str, Any] = {"shutdown_timeout": SHUTDOWN_TIMEOUT}
        runner = web.AppRunner(
            self._app, access_log=None, logger=_server_logger(),
            keepalive_timeout=self._keepalive_timeout,
            **(timeout if _RUNNER_SHUTS_CONNECTIONS else {}),
        )
        await runner.setup()
        assert runner.server is not None
        connections = runner.server
        try:
            # Our own listener rather than a TCPSite: each accepted connection first goes
            # through ``_bounded``, which keeps their number under the cap.
            address: dict[str, Any] = (
                {"sock": self._sock} if self._sock is not None
                else {"host": self.host, "port": self.requested_port}
            )
            self._server = await asyncio.get_running_loop().create_server(
                lambda: self._bounded(connections), backlog=BACKLOG, **address,
            )
        except BaseException:
            await runner.cleanup()
            if self._sock is not None:
                self._sock.close()
            raise
        self._runner = runner
        self._port = int(self._server.sockets[0].getsockname()[1])
        log.info("HTTP API listening on %s", self.url)

    def _bounded(self, connections: web.Server) -> asyncio.Protocol:
        """The protocol for a connection just accepted. At the cap the oldest connection is
        closed to make room: a newcomer (a probe, a scrape) is served, and idle or slow
        clients, however many, hold at most the cap's descriptors."""
        open_now = [c for c in connections.connections if c.transport is not None]  # oldest first
        for oldest in open_now[: max(0, len(open_now) - self._max_connections() + 1)]:
            oldest.force_close()
            self.evicted += 1
        connection = connections()
        # aiohttp's keep-alive timeout closes a connection idle between requests, but until
        # recent releases (3.8 and 3.9 included) never starts on one that has not completed a
        # request: a client that connects and sends nothing, or half a request line, gets the
        # same time from this timer, disarmed by the first request, and is then closed.
        self._awaiting_first_request[connection] = asyncio.get_running_loop().call_later(
            self._keepalive_timeout, self._close_if_still_waiting, connection
        )
        return connection

    def _close_if_still_waiting(self, connection: web.RequestHandler) -> None:
        if self._awaiting_first_request.pop(connection, None) is not None:
            connection.force_close()  # harmless if it is already closed

    @web.middleware
    async def _first_request_arrived(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        timer = self._awaiting_first_request.pop(request.protocol, None)
        if timer is not None:
            timer.cancel()
        return await handler(request)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("HTTP server not started")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def serve_until_stopped(self) -> None:
        """The daemon's supervised "http" task: returns when the server is stopped, which, while
        the daemon runs, stops the daemon (a daemon whose probes do not answer is restarted)."""
        if self._runner is None:
            raise RuntimeError("HTTP server not started")
        await self._stopped.wait()

    async def stop(self) -> None:
        self._stopped.set()
        runner, self._runner, self._port = self._runner, None, None
        server, self._server = self._server, None
        if server is not None:
            server.close()
        if self._sock is not None:  # handed over, and perhaps never served
            self._sock.close()
        for timer in self._awaiting_first_request.values():
            timer.cancel()
        self._awaiting_first_request.clear()
        if runner is not None:
            if not _RUNNER_SHUTS_CONNECTIONS:  # aiohttp 3.8: what its TCPSite.stop would do
                await runner.shutdown()
                assert runner.server is not None
                await runner.server.shutdown(SHUTDOWN_TIMEOUT)
            await runner.cleanup()
