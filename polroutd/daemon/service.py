"""Wires the daemon to the real world: netlink sockets, HTTP, systemd, logs, the config file."""

from __future__ import annotations

import asyncio
import gc
import os

from polroutd.adapters.http import HttpServer
from polroutd.adapters.logs import configure_logging, get_logger
from polroutd.adapters.sdnotify import Notifier
from polroutd.config.parse import load_config, resolve_config_path
from polroutd.core.settings import Config
from polroutd.daemon.loop import Daemon, Deps
from polroutd.inputs.foreign_managers import foreign_manager_warnings
from polroutd.netlink.kernel import EVENT_BUFFER, EventSocket, Netlink
from polroutd.netlink.uplink_events import UplinkEventSocket


async def serve(config: Config, deps: Deps) -> int:
    """Runs the daemon, with its HTTP server when ``http_listen`` is set."""
    http: HttpServer | None = None

    async def start_http(daemon: Daemon) -> None:
        nonlocal http
        if config.daemon.http_listen:
            http = HttpServer(daemon, config.daemon.http_listen)
            await http.start()
            get_logger().info("http_listening", listen=config.daemon.http_listen, port=http.port)

    deps.on_started = start_http
    daemon = Daemon(config, deps)
    try:
        return await daemon.run()
    finally:
        if http is not None:
            await http.stop()


def _event_buffer() -> int:
    """The event socket's receive buffer; POLROUTD_EVENT_RCVBUF overrides it (tests shrink it
    to force an overrun; hosts with huge event storms may grow it)."""
    return int(os.environ.get("POLROUTD_EVENT_RCVBUF", EVENT_BUFFER))


def run_daemon(config: Config, *, debug: bool = False) -> int:
    configure_logging(config.daemon.log_format, "debug" if debug else config.daemon.log_level)
    log = get_logger()
    for warning in foreign_manager_warnings():
        log.warning("foreign_manager", message=warning)
    config_path = resolve_config_path(
        None if config.source == "<defaults>" else config.source, os.environ
    )
    netlink = Netlink()
    deps = Deps(
        kernel=netlink,
        # Events our own requests cause are echoes of what we just did: not a reason to look again.
        events_factory=lambda: EventSocket(_event_buffer(), ignore_portid=netlink.portid),
        notifier=Notifier(),
        load_config=lambda: load_config(config_path),
        uplink_events_factory=UplinkEventSocket,
    )
    log.info("starting", config=config.source, mode=config.daemon.mode)
    # The libraries' start-up objects never die: keep the collector from walking them on
    # every reconcile (it made no-op reconciles at 1,024 rules 50 % slower, with spikes).
    gc.collect()
    gc.freeze()
    try:
        return asyncio.run(serve(config, deps))
    finally:
        netlink.close()
