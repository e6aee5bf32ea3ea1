"""iproute2's name files on disk: the system's rt_tables / rt_protos, and polroutd's own
recorded-tables file, written atomically. What the names mean is decided in
``polroutd.core.tables``.
"""

from __future__ import annotations

import _thread
import contextlib
import errno
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from polroutd.config.files import read_regular_file
from polroutd.core.errors import is_starved
from polroutd.core.limits import RESERVED_PROTOCOLS, RESERVED_TABLE_NAMES
from polroutd.core.tables import (
    WELL_KNOWN_PROTOCOLS,
    NameRegistry,
    parse_name_file,
    parse_recorded,
)

ETC_DIR = Path("/etc/iproute2")
USR_DIR = Path("/usr/share/iproute2")
DEFAULT_CONFIG_DIRS = (ETC_DIR, USR_DIR)
# Name files are refused above this size (iproute2's own are a few hundred bytes; polroutd's
# holds one line per number of its range): a runaway file costs nothing, not minutes.
MAX_NAME_FILE_BYTES = 4 << 20
RegistrySignature = tuple[tuple[str, int, int, int, int], ...]


def read_registry(
    config_dirs: Sequence[Path] = DEFAULT_CONFIG_DIRS, exclude: Path | None = None
) -> NameRegistry:
    """The names in ``rt_tables``, ``rt_tables.d/*.conf``, ``rt_protos`` and ``rt_protos.d``.

    Earlier directories win over later ones; the kernel's reserved names always win, and the
    well-known protocols fill in what no file names. ``exclude`` is polroutd's own records
    file: its memory, not the system's registry.
    """
    tables = {name: number for name, number in RESERVED_TABLE_NAMES.items()}
    protocols = {name: number for number, name in RESERVED_PROTOCOLS.items()}
    for directory in config_dirs:
        for name, number in _read_names(directory, "rt_tables", exclude).items():
            tables.setdefault(name, number)
        for name, number in _read_names(directory, "rt_protos", exclude).items():
            protocols.setdefault(name, number)
    for name, number in WELL_KNOWN_PROTOCOLS.items():
        protocols.setdefault(name, number)
    return NameRegistry(tables=tables, protocols=protocols)


def _name_files(directory: Path, base: str, exclude: Path | None) -> list[Path]:
    drop_ins = sorted((directory / f"{base}.d").glob("*.conf"))
    skip = exclude.absolute() if exclude is not None else None
    return [path for path in [directory / base, *drop_ins] if path.absolute() != skip]


def _read_names(directory: Path, base: str, exclude: Path | None) -> dict[str, int]:
    names: dict[str, int] = {}
    for path in _name_files(directory, base, exclude):
        try:
            text = read_bounded(path)
        except OSError as exc:
            if is_starved(exc):  # out of descriptors: the names are unknown, not absent
                raise
            continue  # iproute2 also skips files it cannot read
        for name, number in parse_name_file(text).items():
            names.setdefault(name, number)
    return names


def read_bounded(path: Path) -> str:
    """A name file's text: a regular file of at most ``MAX_NAME_FILE_BYTES``, read without
    blocking (a FIFO or a giant is refused with ``FileRefused``, an ``OSError``)."""
    return read_regular_file(path, MAX_NAME_FILE_BYTES)[0].decode("utf-8", errors="replace")


def registry_signature(
    config_dirs: Sequence[Path], exclude: Path | None = None
) -> RegistrySignature:
    """What changes when the system's name files change (their drop-in directories' entries,
    each file's inode, size and times): the registry is read again only then."""
    found = []
    for directory in config_dirs:
        for base in ("rt_tables", "rt_protos"):
            for path in [directory / f"{base}.d", *_name_files(directory, base, exclude)]:
                try:
                    info = os.stat(path)
                except OSError:
                    continue
                found.append((str(path), info.st_ino, info.st_size, info.st_mtime_ns,
                              info.st_ctime_ns))
    return tuple(found)


def config_dirs_for(rt_tables_file: str) -> tuple[Path, ...]:
    """Where to read names from: the iproute2 directory our file lives in, then the defaults.

    ``/x/iproute2/rt_tables.d/polroutd.conf`` gives ``(/x/iproute2, /usr/share/iproute2)``; a
    file elsewhere (or none) gives ``(/etc/iproute2, /usr/share/iproute2)``.
    """
    path = Path(rt_tables_file)
    first = path.parent.parent if rt_tables_file and path.parent.name == "rt_tables.d" else ETC_DIR
    return tuple(dict.fromkeys((first, USR_DIR)))


def read_recorded(path: Path) -> dict[str, int]:
    """Our own recorded tables; none when the file does not exist yet."""
    return read_records(path)[0]


def read_records(path: Path) -> tuple[dict[str, int], dict[str, float]]:
    """Our own recorded tables and since when the unused ones are unused; none when the file
    does not exist yet. Raises ``OSError`` when it cannot be read, ``FileRefused`` when it is no
    regular file or too large (a FIFO must not block us)."""
    try:
        return parse_recorded(read_bounded(path))
    except (FileNotFoundError, NotADirectoryError):  # not written yet, or cannot be
        return {}, {}


def write_if_changed(path: Path, content: str) -> bool:
    """Atomically replaces ``path`` with ``content``; False (and no write) when already equal."""
    if not differs(path, content):
        return False
    write_atomically(path, content)
    return True


def differs(path: Path, content: str) -> bool:
    """Whether ``path`` holds anything but ``content`` (or cannot be read: then it is written)."""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        if read_regular_file(path, MAX_NAME_FILE_BYTES)[0].decode("utf-8") == content:
            return False
    return True


def write_atomically(path: Path, content: str) -> None:
    """Replaces ``path`` with ``content`` durably: a temporary file written and synced, renamed
    over it, the directory synced; the old file stays whole if anything fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = _create_temporary(path)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(content.encode("utf-8"))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(path.parent)


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new file beside ``path``, readable by all (ip(8) run by any user reads it), that no
    one else has open: what ``tempfile.mkstemp`` makes, without importing ``tempfile`` (and
    ``random``, ``weakref``...: 4-8 ms of the first apply that writes the file)."""
    for _attempt in range(100):
        temporary = path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp"
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
                                 | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            continue
        try:
            os.fchmod(descriptor, 0o644)  # as asked, whatever the umask
        except BaseException:
            os.close(descriptor)
            os.unlink(temporary)
            raise
        return descriptor, temporary
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(path.parent))


class BackgroundWrite:
    """``write_atomically`` in a thread of its own, so that its two syncs (the file's, then the
    directory's: 2-12 ms, waiting on the disk with the GIL released) overlap the caller's
    work; ``wait`` waits for it and raises what it raised. Without a thread to be had (a limit
    on tasks), the write is done at once, in the caller's thread. Started with ``_thread``:
    ``threading.Thread.start`` waits until the new thread runs (on a busy machine, until a CPU
    is free: milliseconds of a cold apply)."""

    def __init__(self, path: Path, content: str) -> None:
        self._error: BaseException | None = None
        self._writing = threading.Lock()  # held until the write is over
        self._writing.acquire()
        try:
            _thread.start_new_thread(self._write, (path, content))
        except RuntimeError:  # "can't start new thread"
            self._write(path, content)

    def _write(self, path: Path, content: str) -> None:
        try:
            write_atomically(path, content)
        except BaseException as exc:  # handed to wait(), in the caller's thread
            self._error = exc
        finally:
            self._writing.release()

    def wait(self) -> None:
        with self._writing:
            pass
        if self._error is not None:
            raise self._error


def _fsync_directory(directory: Path) -> None:
    """Makes the rename itself durable."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
