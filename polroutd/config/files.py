"""Reading files that someone else writes (the configuration, iproute2's name files, DHCP
leases) without letting them block, exhaust or crash the daemon.

One rule for all of them: a regular file of bounded size, opened without blocking. A FIFO,
a device or a directory where a file is expected is refused (``O_NONBLOCK`` makes opening a
FIFO return at once, ``fstat`` on the open descriptor then tells what it is), and so is a file
larger than its bound, before it is read. Symlinks are followed: a configuration file may
legitimately be one.
"""

from __future__ import annotations

import errno
import os
import stat

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileRefused(OSError):
    """The path exists but is no regular file, or is larger than allowed (an ``OSError``, so
    that whoever handles a failed read handles this too)."""


def read_regular_file(path: str | os.PathLike[str], max_bytes: int) -> tuple[bytes, os.stat_result]:
    """The contents and status of a regular file of at most ``max_bytes`` bytes.

    Raises ``OSError`` when it cannot be opened (missing, no permission, a symlink loop), its
    subclass ``FileRefused`` when it is no regular file or too large.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS if test(info.st_mode)), "no regular file")
            raise FileRefused(f"is {kind}, not a regular file")
        if info.st_size > max_bytes:
            raise FileRefused(_too_large(info.st_size, max_bytes))
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, min(1 << 16, max_bytes + 1 - size) or 1):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:  # it grew while we read
                raise FileRefused(_too_large(size, max_bytes))
        return b"".join(chunks), info
    finally:
        os.close(fd)


def _too_large(size: int, max_bytes: int) -> str:
    return f"is larger than {max_bytes} bytes (at least {size}); refused"


def why_unreadable(exc: OSError) -> str:
    """One short phrase for a refused or failed read, without the path."""
    if isinstance(exc, FileRefused):
        return str(exc)
    if exc.errno == errno.ELOOP:
        return "symlink loop (too many levels of symbolic links)"
    if exc.errno == errno.ENOENT:
        return "file not found"
    return exc.strerror.lower() if exc.strerror else str(exc)
