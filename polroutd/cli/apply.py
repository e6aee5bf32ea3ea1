"""``polroutd apply``: one reconcile, then exit (for ifup/dispatcher hooks and cron)."""

from __future__ import annotations

import _thread
import argparse
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from polroutd.cli.common import EXIT_ERROR, EXIT_OK, kernel_engine, load
from polroutd.core.describe import conflict_text, operation_text

if TYPE_CHECKING:
    from polroutd.core.decision import Decision
    from polroutd.core.model import OpResult
    from polroutd.engine import Engine

T = TypeVar("T")

# While the kernel carries out the plan, the report's lines are written (see _reconcile): a
# thread waiting for the GIL then gets it within this (not the default 5 ms), so the apply's
# threads hand the kernel its next batch at once.
SWITCH_INTERVAL = 0.0002


def command(args: argparse.Namespace) -> int:
    engine = kernel_engine(load(args))
    from polroutd.netlink.kernel import collector_paused  # imported by kernel_engine already

    # One reconcile and its report, then the process ends: the thousands of objects they make
    # hold no cycles, and collections between the steps (each walking all of them) cost a
    # cold apply several milliseconds.
    with collector_paused():
        return _reconcile(engine)


def _reconcile(engine: Engine) -> int:
    decision = engine.read_and_decide()
    operations = decision.plan.operations
    if len(operations) > 1 and len(os.sched_getaffinity(0)) > 1:
        results, texts = _apply_while_describing(engine, decision)
    else:
        results, texts = engine.apply(decision), _describe(decision)
    failed = [r for r in results if not r.ok]
    lines = []  # one write, not a thousand print() calls
    for index, result in enumerate(results):
        if index < len(texts) and result.operation is operations[index]:
            line = texts[index]
        else:  # (never: results come in the plan's order)
            line = operation_text(result.operation, decision.names)
        if result.errno:
            line = f"{line}  FAILED {result.error_name}: {result.message or ''}".rstrip()
        lines.append(line)
    lines.append("")
    sys.stdout.write("\n".join(lines))
    for conflict in decision.plan.conflicts:
        print(f"! conflict: {conflict_text(conflict, decision.names)}")
    print(f"applied {len(results) - len(failed)} operation(s), {len(failed)} failed")
    if engine.tables_file_error:
        print(f"polroutd: warning: {engine.tables_file_error} (table names not recorded)",
              file=sys.stderr)
    return EXIT_ERROR if failed else EXIT_OK


def _describe(decision: Decision) -> list[str]:
    names = decision.names
    return [operation_text(operation, names) for operation in decision.plan.operations]


def _apply_while_describing(engine: Engine, decision: Decision) -> tuple[list[OpResult], list[str]]:
    """The plan applied in a thread while this one writes the report's lines: the kernel's
    work (most of an apply at a thousand rules, done with the GIL released) and the lines'
    (a few milliseconds of Python) overlap, given a second CPU."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        applying = _Background(engine.apply, decision)
        texts = _describe(decision)
        return applying.result(), texts
    finally:
        sys.setswitchinterval(interval)


class _Background(Generic[T]):
    """A call in a thread of its own; ``result`` waits for it and returns or raises what it
    did. Without a thread to be had, the call is made at once, in the caller's thread. Started
    with ``_thread``: ``threading.Thread.start`` waits until the new thread runs (on a busy
    machine, until a CPU is free)."""

    def __init__(self, call: Callable[[Decision], T], decision: Decision) -> None:
        self._outcome: tuple[T] | BaseException | None = None
        self._running = threading.Lock()  # held until the call is over
        self._running.acquire()
        try:
            _thread.start_new_thread(self._run, (call, decision))
        except RuntimeError:  # "can't start new thread"
            self._run(call, decision)

    def _run(self, call: Callable[[Decision], T], decision: Decision) -> None:
        try:
            self._outcome = (call(decision),)
        except BaseException as exc:  # handed to result(), in the caller's thread
            self._outcome = exc
        finally:
            self._running.release()

    def result(self) -> T:
        with self._running:
            pass
        outcome = self._outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None
        return outcome[0]
