"""A flag the daemon sets before its event loop exists and awaits once it does.

``polroutd run`` makes its first reconcile before it imports asyncio (a restart repairs the
kernel sooner: docs/performance.md, Start-up); what that reconcile sets (a stop asked for by
SIGTERM, the end of the first reconcile) is awaited later, on the loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio


class Flag:
    """``asyncio.Event``'s ``set``, ``clear``, ``is_set`` and ``wait``; the event itself is
    made by the first ``wait`` (on the running loop), so setting and reading need no asyncio."""

    __slots__ = ("_event", "_sleepers", "_value")

    def __init__(self) -> None:
        self._value = False
        self._event: asyncio.Event | None = None
        self._sleepers: list[asyncio.Future[None]] = []  # ``wait_at_most``'s, while waiting

    def set(self) -> None:
        self._value = True
        if self._event is not None:
            self._event.set()
        for sleeper in self._sleepers:
            if not sleeper.done():
                sleeper.set_result(None)

    def clear(self) -> None:
        self._value = False
        if self._event is not None:
            self._event.clear()

    def is_set(self) -> bool:
        return self._value

    async def wait(self) -> bool:
        if self._event is None:
            import asyncio  # only once the loop runs

            self._event = asyncio.Event()
            if self._value:
                self._event.set()
        return await self._event.wait()

    async def wait_at_most(self, timeout: float) -> bool:
        """``wait`` for at most ``timeout`` seconds; whether the flag is set. One future and
        one timer: ``asyncio.wait_for`` wraps the wait in a task of its own, and a wake-up then
        took three turns of the loop, each of which read the event socket again before the
        woken reconcile ran (during a burst, the first one's reconcile started milliseconds
        and dozens of interfaces late)."""
        if self._value:
            return True
        import asyncio

        loop = asyncio.get_running_loop()
        sleeper: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(max(timeout, 0.0), _wake_up, sleeper)
        self._sleepers.append(sleeper)
        try:
            await sleeper
        finally:
            timer.cancel()
            self._sleepers.remove(sleeper)
        return self._value


def _wake_up(sleeper: asyncio.Future[None]) -> None:
    if not sleeper.done():
        sleeper.set_result(None)
