"""Wires the daemon to the real world: netlink sockets, HTTP, systemd, logs, the config file."""

from __future__ import annotations

import asyncio
import gc
import os
import resource

from polroutd.adapters.http import HttpServer
from polroutd.adapters.logs import configure_logging, get_logger
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


async def serve(config: Config, deps: Deps) -> int:
    """Runs the daemon, with its HTTP server when ``http_listen`` is set: bound here, before the
    first reconcile (probes answer before READY=1), then supervised with the daemon's tasks."""
    daemon = Daemon(config, deps)
    if not config.daemon.http_listen:
        return await daemon.run()
    host, port = parse_listen(config.daemon.http_listen)
    http = HttpServer(daemon, host, port)
    await http.start()
    try:
        get_logger().info("http_listening", listen=config.daemon.http_listen, port=http.port)
        return await daemon.run({"http": http.serve_until_stopped()})
    finally:
        await http.stop()


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
    has this protocol in this network namespace: both before anything is changed."""
    if not has_net_admin():  # every change would fail, and be retried forever
        raise NoNetAdmin(NO_NET_ADMIN)
    _registry, protocol = resolve_names(config)
    instance = InstanceClaim(protocol)
    try:
        return _run(config, debug, instance)
    finally:
        instance.close()


def _run(config: Config, debug: bool, instance: InstanceClaim) -> int:
    configure_logging(config.daemon.log_format, "debug" if debug else config.daemon.log_level)
    log = get_logger()
    for warning in foreign_manager_warnings():
        log.warning("foreign_manager", message=warning)
    config_path = resolve_config_path(
        None if config.source == "<defaults>" else config.source, os.environ
    )
    netlink = Netlink()
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
    # The libraries' start-up objects never die: keep the collector from walking them on
    # every reconcile (it made no-op reconciles at 1,024 rules 50 % slower, with spikes).
    gc.collect()
    gc.freeze()
    try:
        return asyncio.run(serve(config, deps))
    finally:
        netlink.close()
