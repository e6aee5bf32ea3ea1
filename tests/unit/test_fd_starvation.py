"""Issue 11, defect 2: out of file descriptors, "could not read" is never taken for "nothing
there" (a lease-derived default route must not be deleted as a change); the reconcile fails
instead, and a daemon whose reconciles keep failing that way stops feeding the watchdog.
Repeated log lines from the libraries (asyncio's accept errors) are rate-limited."""

from __future__ import annotations

import errno
import logging
import os
import re
import resource
from pathlib import Path
from typing import Any

import pytest

from polroutd.adapters.log_pipeline import RepeatLimiter
from polroutd.core.errors import is_starved
from polroutd.core.model import LeaseFindings
from polroutd.daemon.service import raise_descriptor_limit
from polroutd.inputs import leases, rt_tables
from polroutd.netlink import codec as rtnl
from tests.support.article import PROTO, article_decision, lease_of
from tests.support.fakes import FakeKernel
from tests.support.harness import Harness

NOW = 1_800_000_000.0


def _emfile(*_args: Any, **_kwargs: Any) -> Any:
    raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))


def test_a_lease_file_that_cannot_be_opened_for_lack_of_descriptors_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "eth0.lease").write_text("ADDRESS=192.0.2.5\nROUTER=192.0.2.1\n")
    pattern = [f"{tmp_path}/{{ifname}}.lease"]
    assert leases.lease_gateways({"eth0": 2}, pattern, NOW)["eth0"].gateway == "192.0.2.1"
    monkeypatch.setattr(leases.os, "open", _emfile)
    with pytest.raises(OSError) as raised:
        leases.lease_gateways({"eth0": 2}, pattern, NOW)
    assert is_starved(raised.value)
    # A file that is simply not readable is still no lease (not an error).
    monkeypatch.setattr(leases.os, "open", lambda *_a, **_k: _raise(errno.EACCES))
    assert leases.lease_gateways({"eth0": 2}, pattern, NOW) == {}


def test_a_lease_directory_that_cannot_be_listed_for_lack_of_descriptors_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "eth0.lease").write_text("ADDRESS=192.0.2.5\nROUTER=192.0.2.1\n")
    monkeypatch.setattr(leases.os, "listdir", _emfile)
    with pytest.raises(OSError):
        leases.lease_gateways({"eth0": 2}, [f"{tmp_path}/*.lease"], NOW,
                              leases.LeaseFiles(lambda: NOW))


def _raise(code: int) -> Any:
    raise OSError(code, os.strerror(code))


def test_name_files_that_cannot_be_opened_for_lack_of_descriptors_are_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rt_tables").write_text("100 data\n")
    assert rt_tables.read_registry([tmp_path]).tables["data"] == 100
    monkeypatch.setattr(rt_tables, "read_bounded", _emfile)
    with pytest.raises(OSError):
        rt_tables.read_registry([tmp_path])


async def test_starved_reconciles_keep_the_route_and_stop_the_watchdog() -> None:
    decision = article_decision()
    kernel = FakeKernel(decision.state)
    starved = False

    def lease_reader(_: Any) -> dict[str, LeaseFindings]:
        if starved:
            _emfile()
        return {"ens224": lease_of("10.225.176.1")}

    h = Harness(kernel, lease_reader=lease_reader)
    h.daemon.starved_grace = 0.3
    await h.start()
    lease_route = next(r for r in kernel.state.routes if r.protocol == PROTO
                       and r.is_default and r.gateway == "10.225.176.1")
    starved = True
    failed = h.counter("reconciles_error")
    h.events.push(rtnl.RTM_NEWADDR)
    await h.until(lambda: h.counter("reconciles_error") > failed)
    assert lease_route in kernel.state.routes  # "could not read" is not "no gateway"
    assert h.daemon.health()[0] is True  # one failure: not yet a reason to be restarted
    await h.until(lambda: not h.daemon.health()[0], timeout=5)
    assert "descriptors" in h.daemon.health()[1]
    fed = h.notifier.sent.count("WATCHDOG=1")
    await h.until(lambda: h.counter("reconciles_error") > failed + 2, timeout=5)
    assert h.notifier.sent.count("WATCHDOG=1") == fed  # systemd will restart it
    starved = False
    h.events.push(rtnl.RTM_NEWADDR)  # an event is handled at once, whatever the backoff
    await h.until(lambda: h.daemon.health()[0], timeout=5)
    assert lease_route in kernel.state.routes
    assert await h.stop() == 0


def test_repeated_library_lines_are_rate_limited() -> None:
    clock = [0.0]
    limiter = RepeatLimiter(burst=3, window=60.0, clock=lambda: clock[0])
    logger = logging.getLogger("test.repeat")

    def record(msg: str) -> logging.LogRecord:
        return logger.makeRecord("asyncio", logging.ERROR, __file__, 1, msg, (), None)

    passed = [limiter.filter(record("socket.accept() out of system resource")) for _ in range(1000)]
    assert sum(passed) == 3
    assert limiter.filter(record("another message"))
    clock[0] = 61.0
    again = record("socket.accept() out of system resource")
    assert limiter.filter(again)
    assert "997 similar lines suppressed" in again.getMessage()
    # structlog's own events (a dict, not a text) are the daemon's: never dropped here.
    event = logger.makeRecord("polroutd", logging.WARNING, __file__, 1, {"event": "x"}, (), None)
    assert all(limiter.filter(event) for _ in range(100))


def test_the_daemon_raises_its_soft_descriptor_limit_and_the_unit_sets_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        assert raise_descriptor_limit() == (hard, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    unit = (Path(__file__).parents[2] / "systemd" / "polroutd.service").read_text()
    [limit] = re.findall(r"^LimitNOFILE=(\d+)$", unit, re.MULTILINE)
    assert int(limit) >= 4096
