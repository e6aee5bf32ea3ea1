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

    __slots__ = ("_event", "_value")

    def __init__(self) -> None:
        self._value = False
        self._event: asyncio.Event | None = None

    def set(self) -> None:
        self._value = True
        if self._event is not None:
            self._event.set()

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
