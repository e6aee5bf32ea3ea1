"""Wires the daemon to the real world: netlink sockets, HTTP, systemd, logs, the config file.

The start, up to the end of the first reconcile, loads only what that needs (docs/performance.md,
Start-up): the first reconcile is made before the event loop (asyncio is not even imported:
``Daemon.start``), with the log lines kept until the logging pipeline (structlog) is set up after
it (adapters/logs.py); the HTTP server (aiohttp) and the metrics library (prometheus_client) are
loaded later still, and serve on a socket bound before it.
"""

from __future__ import annotations

import contextlib
import gc
import os
import resource
import socket
from typing import TYPE_CHECKING

from polroutd.adapters.listener import bind_listener
from polroutd.adapters.logs import configure_logging, get_logger, record_logs
from polroutd.adapters.metrics import Metrics
from polroutd.adapters.sdnotify import Notifier
from polroutd.config.parse import load_config, resolve_config_path
from polroutd.core.advice import interface_warnings
from polroutd.core.errors import NoNetAdmin
from polroutd.core.listen import parse_listen
from polroutd.core.settings import Config
from polroutd.daemon.deps import Deps
from polroutd.daemon.instance import InstanceClaim
from polroutd.daemon.loop import Daemon
from polroutd.engine import resolve_names
from polroutd.inputs.foreign_managers import foreign_manager_warnings
from polroutd.netlink.kernel import (
    EVENT_BUFFER,
    NO_NET_ADMIN,
    EventSocket,
    Netlink,
    has_net_admin,
)
from polroutd.netlink.uplink_events import UplinkEventSocket

if TYPE_CHECKING:
    from polroutd.adapters.http import HttpServer


def new_daemon(config: Config, deps: Deps) -> Daemon:
    """A daemon whose metrics are recorded for HTTP, when there is HTTP (``http_listen``);
    else nothing is recorded and prometheus_client is never loaded."""
    return Daemon(config, deps, Metrics.deferred(recording=bool(config.daemon.http_listen)))


async def serve(config: Config, deps: Deps, listener: socket.socket | None = None) -> int:
    """Runs a new daemon, its first reconcile included (``run_daemon`` makes that one before
    the event loop). With ``http_listen`` set, its address (``listener``, or bound here) is
    served from just after the first reconcile: a request that comes earlier waits in the
    socket's backlog."""
    if config.daemon.http_listen and listener is None:
        listener = http_listener(config)
    daemon = new_daemon(config, deps)
    if listener is not None:
        _log_http_listening(config, listener)
    return await serve_daemon(daemon, listener if config.daemon.http_listen else None)


async def serve_daemon(daemon: Daemon, listener: socket.socket | None) -> int:
    """Runs ``daemon`` until it stops; with ``listener``, HTTP is served on it once the first
    reconcile has run."""
    if listener is None:
        freeze_long_lived_objects(collect_first=True)  # asyncio and structlog, loaded by now
        return await daemon.run()
    http = DeferredHttp(daemon, daemon.tally.metrics, listener)
    try:
        return await daemon.run({"http": http.serve_until_stopped()})
    finally:
        await http.stop()


def _log_http_listening(config: Config, listener: socket.socket) -> None:
    get_logger().info("http_listening", listen=config.daemon.http_listen,
                      port=listener.getsockname()[1])


def http_listener(config: Config) -> socket.socket:
    """``http_listen`` bound and listening: ``ListenError`` (one line) when it cannot be."""
    host, port = parse_listen(config.daemon.http_listen)
    return bind_listener(host, port)


class DeferredHttp:
    """The HTTP API on a socket bound at start, served once the first reconcile has run: only
    then are prometheus_client (the metrics counted so far replayed into it) and aiohttp
    loaded."""

    def __init__(self, daemon: Daemon, metrics: Metrics, sock: socket.socket) -> None:
        self._daemon, self._metrics, self._sock = daemon, metrics, sock
        self.port: int = sock.getsockname()[1]
        self.server: HttpServer | None = None

    async def serve_until_stopped(self) -> None:
        """The daemon's supervised "http" task (see ``HttpServer.serve_until_stopped``)."""
        await self._daemon.first_reconcile.wait()
        self._metrics.load()
        from polroutd.adapters.http import HttpServer

        self.server = HttpServer(self._daemon, sock=self._sock)
        await self.server.start()
        freeze_long_lived_objects(collect_first=True)  # the libraries just loaded
        await self.server.serve_until_stopped()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        self._sock.close()


def freeze_long_lived_objects(*, collect_first: bool) -> None:
    """The libraries' start-up objects never die: the collector is kept from walking them on
    every reconcile (it made no-op reconciles at 1,024 rules 50 % slower, with spikes).
    ``collect_first``: not at start, where a collection after the imports found nothing to
    free and cost 10-20 ms; after the first reconcile, whose leftover cycles a freeze would
    keep for good."""
    if collect_first:
        gc.collect()
    gc.freeze()


def _event_buffer() -> int:
    """The event socket's receive buffer; POLROUTD_EVENT_RCVBUF overrides it (tests shrink it
    to force an overrun; hosts with huge event storms may grow it)."""
    return int(os.environ.get("POLROUTD_EVENT_RCVBUF", EVENT_BUFFER))


def raise_descriptor_limit() -> tuple[int, int]:
    """The soft RLIMIT_NOFILE raised to the hard one (systemd starts services at 1,024), so
    that the HTTP connection cap leaves plenty for netlink, lease and rt_tables files.
    (soft, hard) as in force afterwards; a refusal (a seccomp filter) keeps the old limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError):
            return soft, hard
    return hard, hard


def run_daemon(config: Config, *, debug: bool = False) -> int:
    """Raises ``NoNetAdmin`` without the capability, ``AlreadyRunning`` when another daemon
    has this protocol in this network namespace, ``ListenError`` when ``http_listen`` cannot
    be listened on: all before anything is changed."""
    if not has_net_admin():  # every change would fail, and be retried forever
        raise NoNetAdmin(NO_NET_ADMIN)
    _registry, protocol = resolve_names(config)
    instance = InstanceClaim(protocol)
    try:
        # Bound before the first log line: a bad address or a port already taken fails the
        # start with one line.
        listener = http_listener(config) if config.daemon.http_listen else None
        try:
            return _run(config, debug, instance, listener)
        finally:
            if listener is not None:
                listener.close()
    finally:
        instance.close()


def _run(config: Config, debug: bool, instance: InstanceClaim,
         listener: socket.socket | None) -> int:
    record_logs()  # written once configured, after the first reconcile
    with contextlib.ExitStack() as closing:
        try:
            daemon = _start(config, instance, listener, closing)
        finally:
            configure_logging(config.daemon.log_format,
                              "debug" if debug else config.daemon.log_level)
        import asyncio  # after the first reconcile: the loop is for what follows

        return asyncio.run(serve_daemon(daemon, listener))


def _start(config: Config, instance: InstanceClaim, listener: socket.socket | None,
           closing: contextlib.ExitStack) -> Daemon:
    """A daemon, with its first reconcile made; its netlink socket closed by ``closing``."""
    log = get_logger()
    for warning in foreign_manager_warnings():
        log.warning("foreign_manager", message=warning)
    config_path = resolve_config_path(
        None if config.source == "<defaults>" else config.source, os.environ
    )
    netlink = Netlink()
    closing.callback(netlink.close)
    for warning in interface_warnings(config, netlink.read_links()):
        log.warning("interface_entry_matches_excluded", message=warning)
    deps = Deps(
        kernel=netlink,
        # Events our own requests cause are echoes of what we just did: not a reason to look again.
        events_factory=lambda: EventSocket(_event_buffer(), ignore_portid=netlink.portid),
        notifier=Notifier(),
        load_config=lambda: load_config(config_path),
        claim_protocol=instance.move_to,
        uplink_events_factory=UplinkEventSocket,
    )
    soft, hard = raise_descriptor_limit()
    log.info("starting", config=config.source, mode=config.daemon.mode, max_open_files=soft,
             hard_limit=hard)
    daemon = new_daemon(config, deps)
    if listener is not None:
        _log_http_listening(config, listener)
    freeze_long_lived_objects(collect_first=False)
    daemon.start()
    return daemon
