"""What one read of the kernel leads to: shared by the engine, the daemon and ``/state``."""

from __future__ import annotations

from collections.abc import Mapping

from polroutd.core.describe import Names
from polroutd.core.model import DesiredState, KernelState, Plan
from polroutd.core.record import field, record


@record
class Decision:
    """What one read of the kernel leads to."""

    state: KernelState
    desired: DesiredState
    plan: Plan
    names: Names
    recorded_tables: Mapping[str, int]
    unused_tables: Mapping[str, float] = field(default_factory=dict)  # name -> unused since
