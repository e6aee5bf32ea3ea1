"""One stat-based cache for what is read from files and directories (polroutd.inputs.filecache),
with the clock injected; used by the engine's recorded-tables file and the lease search."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from polroutd.inputs import leases
from polroutd.inputs.filecache import SettledFileCache
from polroutd.inputs.leases import LeaseFiles


class Reader:
    def __init__(self) -> None:
        self.reads = 0

    def __call__(self, path: str, _info: os.stat_result) -> str:
        self.reads += 1
        return Path(path).read_text()


def aged(path: Path, seconds: float) -> None:
    """Sets the file's mtime ``seconds`` into the past (ctime stays now; the clock is faked)."""
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_a_settled_file_is_read_once_and_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("one")
    read = Reader()
    later = time.time() + 10  # the file's last change (ctime too) is long settled by then
    cache = SettledFileCache(read, clock=lambda: later)
    assert cache.get(str(path)) == "one"
    assert cache.get(str(path)) == "one"
    assert read.reads == 1
    path.write_text("two!")  # another size, mtime, ctime
    assert cache.get(str(path)) == "two!"
    assert read.reads == 2


def test_what_was_read_just_after_a_change_is_not_kept(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("one")
    read = Reader()
    cache = SettledFileCache(read, clock=time.time)  # the change was just now
    cache.get(str(path))
    cache.get(str(path))
    assert read.reads == 2


def test_a_file_that_disappears_raises_and_is_forgotten(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("one")
    read = Reader()
    cache = SettledFileCache(read, clock=lambda: time.time() + 10)
    cache.get(str(path))
    path.unlink()
    with pytest.raises(FileNotFoundError):
        cache.get(str(path))
    path.write_text("one")
    cache.get(str(path))
    assert read.reads == 2


def test_directory_listings_come_from_the_owner_with_its_clock(tmp_path: Path) -> None:
    (tmp_path / "a.lease").write_text("x")
    now = [time.time()]
    listings = LeaseFiles(lambda: now[0])
    assert listings.names(str(tmp_path)) == ["a.lease"]
    now[0] += 10  # settled now: the next listing is kept
    assert listings.names(str(tmp_path)) == ["a.lease"]
    (tmp_path / "b.lease").write_text("x")
    assert sorted(listings.names(str(tmp_path)) or []) == ["a.lease", "b.lease"]
    assert listings.names(str(tmp_path / "a.lease")) is None  # not a directory
    assert listings.names(str(tmp_path / "missing")) is None


def test_the_lease_module_keeps_no_process_wide_cache() -> None:
    state = {
        name: value for name, value in vars(leases).items()
        if not name.startswith("__")
        and (isinstance(value, dict | list | set) or type(value).__module__.startswith("polroutd"))
    }
    assert state == {}
