"""A decision made ahead of its reconcile: while the debounce waits for quiet after events,
the daemon applies them to its view and decides from it (daemon/loop.py), so that the
reconcile, if nothing changed meanwhile, only applies. Nothing made ahead reaches the kernel,
/state, the metrics or the logs before that reconcile."""

from __future__ import annotations

from polroutd.core.decision import Decision
from polroutd.core.model import KernelState
from polroutd.core.record import record
from polroutd.core.uplinks import HealthView
from polroutd.engine import Checkpoint, Engine

# Quiet after the last event from which the events are applied to the view and the decision is
# made ahead, while the debounce runs on: when the quiet lasts, the reconcile finds both done
# and only applies (after a burst, applying the events and deciding cost about what the
# debounce waits). Events seldom leave a gap this long in a burst; at most AHEAD_TRIES
# decisions are made ahead between two reconciles, so events that keep coming just after
# each one cost a bounded amount of work.
AHEAD_QUIET = 0.005
AHEAD_TRIES = 3


@record
class Ahead:
    """A decision made ahead of its reconcile, from the view as it was then."""

    view: KernelState
    decide_all: bool  # made for a reason that decides every interface again
    health: HealthView | None  # the uplink health it was made with
    engine: Engine
    checkpoint: Checkpoint  # the engine before it: to withdraw it
    decision: Decision
    in_full: bool  # made by a full decision (which read the names files again)

    def holds(self, engine: Engine, view: KernelState | None, decide_all: bool) -> bool:
        """Whether it is the decision a reconcile would make now: nothing changed since."""
        return (engine is self.engine and view is self.view and decide_all == self.decide_all
                and engine.uplink_health == self.health)

    def withdraw(self) -> None:
        self.engine.rollback(self.checkpoint)
