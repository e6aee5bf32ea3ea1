"""Long-lived tasks run guarded, in the style of kopf's ``guard``/``run_tasks``: each is named,
a failure is logged with the task's name, and the first task to end stops the others, so the
daemon exits (1) instead of living on half-dead."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from polroutd.adapters.logs import get_logger
from polroutd.daemon.flag import Flag

log = get_logger("polroutd.daemon")


class TaskFailed(Exception):
    """A supervised task raised, or returned while it was meant to run until stopped."""


class Supervisor:
    """Named tasks that run until the daemon stops; ``wait`` returns when one of them ends."""

    def __init__(self, stop: Flag) -> None:
        self._stop = stop  # set when the daemon stops on purpose: tasks may end then
        self._tasks: list[asyncio.Task[None]] = []
        self.failed: list[str] = []  # names of the tasks that failed, in order

    def start(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.create_task(self._guard(name, coro), name=name))

    def dead(self) -> list[str]:
        """The names of tasks that are no longer running."""
        return [task.get_name() for task in self._tasks if task.done()]

    async def _guard(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(name, repr(exc), exc_info=True)
            raise TaskFailed(name) from exc
        if not self._stop.is_set():
            self._fail(name, "returned before the daemon was stopped")
            raise TaskFailed(name)

    def _fail(self, name: str, error: str, exc_info: bool = False) -> None:
        self.failed.append(name)
        log.error("task_failed", task=name, error=error, action="stopping the daemon",
                  exc_info=exc_info)

    async def wait(self) -> bool:
        """Until the daemon is stopped or a task ends; True when a task failed."""
        stopper = asyncio.create_task(self._stop.wait(), name="stop")
        try:
            await asyncio.wait([*self._tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            await asyncio.gather(stopper, return_exceptions=True)
        return bool(self.failed)

    async def cancel_all(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
