"""What was read from a file or directory, reused while ``stat`` shows it unchanged.

A file or directory is reread when its device, inode, size, mtime or ctime changed. What is read
within ``settle`` seconds of its last change is not kept: a second change within the
timestamp's granularity could leave all of those as they were.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

SETTLE = 1.0  # seconds after a change from which what was read is reused
MAX_ENTRIES = 1024

_Key = tuple[int, int, int, int, int]


class SettledFileCache(Generic[T]):
    """``load(path, stat)`` per path, cached by the path's stat; the values are shared, so
    callers must not change them. ``clock`` gives Unix time (the files' timestamps')."""

    def __init__(
        self,
        load: Callable[[str, os.stat_result], T],
        *,
        clock: Callable[[], float],
        settle: float = SETTLE,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._load = load
        self._clock = clock
        self._settle = settle
        self._max_entries = max_entries
        self._entries: dict[str, tuple[_Key, T]] = {}

    def get(self, path: str) -> T:
        """What ``load`` gives for ``path`` now; OSError when it cannot be stat'ed or loaded."""
        try:
            info = os.stat(path)
            key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
            cached = self._entries.get(path)
            if cached is not None and cached[0] == key:
                return cached[1]
            value = self._load(path, info)
        except OSError:
            self._entries.pop(path, None)
            raise
        if self._clock() - max(info.st_mtime, info.st_ctime) > self._settle:
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[path] = (key, value)
        else:
            self._entries.pop(path, None)
        return value
