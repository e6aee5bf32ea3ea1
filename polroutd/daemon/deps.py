"""The daemon's outside world, as the loop sees it: real sockets in service.py, fakes in tests."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from polroutd.adapters.logs import get_logger
from polroutd.core.kernelview import Event
from polroutd.core.record import field, record
from polroutd.core.settings import Config
from polroutd.engine import Kernel, LeaseReader

if TYPE_CHECKING:
    from polroutd.daemon.uplinks import UplinkEvents


class EventSource(Protocol):
    def fileno(self) -> int: ...

    def drain(self) -> list[Event]: ...

    def close(self) -> None: ...


class Notifier(Protocol):
    def ready(self) -> None: ...

    def reloading(self) -> None: ...

    def stopping(self) -> None: ...

    def status(self, text: str) -> None: ...

    def watchdog(self) -> None: ...

    def watchdog_interval(self) -> float | None: ...


@record(frozen=False)
class Deps:
    """Everything the daemon does I/O with."""

    kernel: Kernel
    events_factory: Callable[[], EventSource]
    notifier: Notifier
    load_config: Callable[[], Config]
    lease_reader: LeaseReader | None = None
    clock: Callable[[], float] = time.monotonic
    wallclock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)  # jitters the resync
    # Holds the one-daemon-per-protocol name for another protocol (a reload changed it);
    # raises AlreadyRunning when another daemon has it.
    claim_protocol: Callable[[int], None] | None = None
    uplink_events_factory: Callable[[], UplinkEvents] | None = None  # None: no link/neigh events
    # A refused lease file's warning, on polroutd's logger: kept in order with the daemon's
    # other lines until logging is configured, and stdlib logging never loaded for it.
    lease_warning: Callable[[str], None] = field(
        default_factory=lambda: get_logger("polroutd.leases").warning)
