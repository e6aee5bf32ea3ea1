"""SIGHUP: the configuration read again and swapped in whole, or not at all."""

from __future__ import annotations

from polroutd.adapters.logs import get_logger
from polroutd.core.schedule import Schedule
from polroutd.core.settings import DaemonSettings
from polroutd.daemon.deps import Deps
from polroutd.engine import Engine

# Settings bound at start-up (the listening socket, the log pipeline): changed only by a restart.
RESTART_ONLY = ("http_listen", "log_format", "log_level")

log = get_logger("polroutd.daemon")


def reloaded_engine(current: Engine, deps: Deps) -> Engine:
    """An engine for the configuration as it is now on disk. Raises ConfigError (and changes
    nothing) when the file is invalid; table numbers applied so far stay with their names."""
    config = deps.load_config()
    # A new protocol: polroutd's objects with the old one are taken over, not left behind.
    engine = Engine(config, deps.kernel, lease_reader=deps.lease_reader,
                    lease_warning=deps.lease_warning,
                    applied_tables=current.applied_tables,
                    applied_unused=current.applied_unused, clock=deps.wallclock,
                    adopt=current.adopting | {current.protocol})
    if engine.protocol != current.protocol:
        if deps.claim_protocol is not None:
            deps.claim_protocol(engine.protocol)  # another daemon has it: the reload fails
        log.info("protocol_changed", previous=current.protocol, protocol=engine.protocol,
                 action="polroutd's objects with the previous protocol are taken over")
    for key in RESTART_ONLY:
        if getattr(config.daemon, key) != getattr(current.config.daemon, key):
            log.warning(f"reload_{key}_ignored", reason="takes effect on restart")
    return engine


def retime(schedule: Schedule, settings: DaemonSettings) -> None:
    """The reloaded timing settings, kept with the schedule's state (a backoff continues)."""
    schedule.debounce = settings.debounce
    schedule.max_delay = settings.max_delay
    schedule.resync_interval = settings.resync_interval
