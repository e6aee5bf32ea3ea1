"""Logging: JSON lines off a terminal, console lines on one, journald fields when
$JOURNAL_STREAM names the stream, and stdlib loggers (aiohttp's) through the same pipeline."""

from __future__ import annotations

import io
import json
import logging
import os
import pty
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import pytest
import structlog

from polroutd.adapters import log_pipeline, logs
from polroutd.adapters.logs import configure_logging, get_logger
from polroutd.core.model import KernelState
from polroutd.daemon.deps import Deps
from polroutd.inputs.leases import LeaseFiles
from tests.support.fakes import FakeKernel, FakeNotifier


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    logs.reset_logging()
    structlog.contextvars.clear_contextvars()
    root.setLevel(level)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_bound_keys() -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    get_logger("polroutd.engine").bind(interface="ens224").info(
        "rule_added", table=30001, source="10.225.176.38")

    [entry] = json_lines(out)
    assert entry["event"] == "rule_added"
    assert entry["interface"] == "ens224"
    assert entry["table"] == 30001
    assert entry["source"] == "10.225.176.38"
    assert entry["level"] == "info"
    assert entry["logger"] == "polroutd.engine"


def test_json_timestamps_are_iso_utc() -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    before = datetime.now(UTC)
    get_logger().info("tick")
    [entry] = json_lines(out)
    assert entry["timestamp"].endswith("Z")
    stamp = datetime.fromisoformat(entry["timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert abs((stamp - before).total_seconds()) < 5


def test_context_variables_are_included() -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    structlog.contextvars.bind_contextvars(reconcile=7)
    get_logger().info("reconciled")
    assert json_lines(out)[0]["reconcile"] == 7


def test_level_filters_structlog_and_stdlib() -> None:
    out = io.StringIO()
    configure_logging("json", "warning", stream=out)
    get_logger().info("hidden")
    logging.getLogger("aiohttp.server").info("hidden too")
    get_logger().warning("shown")
    logging.getLogger("aiohttp.server").error("shown too")
    assert [e["event"] for e in json_lines(out)] == ["shown", "shown too"]


def test_stdlib_logging_goes_through_the_same_output() -> None:
    out = io.StringIO()
    configure_logging("json", "info", stream=out)
    logging.getLogger("aiohttp.access").info("%s %s %d", "GET", "/metrics", 200)

    [entry] = json_lines(out)
    assert entry["event"] == "GET /metrics 200"
    assert entry["logger"] == "aiohttp.access"
    assert entry["level"] == "info"
    assert "timestamp" in entry


def test_exceptions_are_rendered_into_the_json() -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    try:
        raise ValueError("bad gateway address")
    except ValueError:
        get_logger().exception("config_reload_failed")
    [entry] = json_lines(out)
    assert entry["level"] == "error"
    assert "ValueError: bad gateway address" in entry["exception"]


def test_auto_writes_json_when_not_on_a_terminal() -> None:
    out = io.StringIO()
    configure_logging("auto", stream=out, environ={})
    get_logger().info("started", mode="strict")
    assert json_lines(out)[0]["mode"] == "strict"


def test_console_lines_are_readable_and_plain_off_a_terminal() -> None:
    out = io.StringIO()
    configure_logging("console", stream=out, environ={})
    get_logger().info("reconciled", interfaces=3)
    line = out.getvalue()
    assert "reconciled" in line and "interfaces=3" in line and "info" in line
    assert "\x1b[" not in line  # no colors into a file or pipe
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


@pytest.fixture
def terminal() -> Iterator[tuple[TextIO, int]]:
    controller, terminal_fd = pty.openpty()
    stream = os.fdopen(terminal_fd, "w", buffering=1)
    yield stream, controller
    stream.close()
    os.close(controller)


def test_auto_writes_colored_console_lines_on_a_terminal(terminal: tuple[TextIO, int]) -> None:
    stream, controller = terminal
    configure_logging("auto", stream=stream, environ={})
    get_logger().info("reconciled", interfaces=3)
    stream.flush()
    shown = os.read(controller, 4096).decode()
    assert "reconciled" in shown and "interfaces" in shown
    assert "\x1b[" in shown
    assert not shown.lstrip().startswith("{")


# --- journald ------------------------------------------------------------------------------

@pytest.fixture
def journal_sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    journal = pytest.importorskip("systemd.journal")
    sent: list[dict[str, Any]] = []

    def capture(MESSAGE: str, **fields: Any) -> None:  # journal.send names it MESSAGE
        sent.append({"MESSAGE": MESSAGE, **fields})

    monkeypatch.setattr(journal, "send", capture)
    return sent


@pytest.fixture
def journal_stream(tmp_path: Path) -> Iterator[tuple[TextIO, dict[str, str]]]:
    """A real file standing in for the journal socket, and the $JOURNAL_STREAM naming it."""
    with (tmp_path / "stream").open("w") as stream:
        stat = os.fstat(stream.fileno())
        yield stream, {"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"}


def test_journald_gets_fields_when_journal_stream_matches(
    journal_sent: list[dict[str, Any]], journal_stream: tuple[TextIO, dict[str, str]],
    tmp_path: Path,
) -> None:
    stream, environ = journal_stream
    configure_logging("auto", stream=stream, environ=environ)
    get_logger("polroutd.engine").bind(interface="eth1").warning(
        "gateway_missing", family="ipv4", reason="no lease")

    [entry] = journal_sent
    assert entry["POLROUTD_EVENT"] == "gateway_missing"
    assert entry["PRIORITY"] == "4"
    assert entry["INTERFACE"] == "eth1"
    assert entry["FAMILY"] == "ipv4"
    assert entry["REASON"] == "no lease"
    assert entry["LOGGER"] == "polroutd.engine"
    assert entry["MESSAGE"].startswith("gateway_missing")
    assert "interface=eth1" in entry["MESSAGE"]
    assert entry["CODE_FILE"] == __file__
    stream.flush()
    assert (tmp_path / "stream").read_text() == ""  # nothing went to the stream itself


def test_journald_values_are_strings_and_names_are_valid(
    journal_sent: list[dict[str, Any]], journal_stream: tuple[TextIO, dict[str, str]],
) -> None:
    stream, environ = journal_stream
    configure_logging("auto", "debug", stream=stream, environ=environ)
    get_logger().debug("applied", operations=12, **{"dry-run": False, "message": "x"})
    logging.getLogger("aiohttp.server").error("handler crashed")

    debug, error = journal_sent
    assert debug["PRIORITY"] == "7"
    assert debug["OPERATIONS"] == "12"
    assert debug["DRY_RUN"] == "False"
    assert debug["POLROUTD_MESSAGE"] == "x"  # never overrides MESSAGE itself
    assert error["PRIORITY"] == "3"
    assert error["POLROUTD_EVENT"] == "handler crashed"
    assert error["LOGGER"] == "aiohttp.server"


def test_json_when_journal_stream_names_another_file(
    journal_sent: list[dict[str, Any]], tmp_path: Path
) -> None:
    out = io.StringIO()
    with (tmp_path / "other").open("w") as other:
        stat = os.fstat(other.fileno())
        configure_logging("auto", stream=out,
                          environ={"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"})
    get_logger().info("started")
    assert journal_sent == []
    assert json_lines(out)[0]["event"] == "started"


def test_json_when_the_journal_module_is_missing(
    journal_stream: tuple[TextIO, dict[str, str]], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(log_pipeline, "_journal_module", lambda: None)
    stream, environ = journal_stream
    configure_logging("auto", stream=stream, environ=environ)
    get_logger().info("started")
    stream.flush()
    assert json.loads((tmp_path / "stream").read_text())["event"] == "started"


def test_explicit_format_wins_over_journal_stream(
    journal_sent: list[dict[str, Any]], journal_stream: tuple[TextIO, dict[str, str]],
    tmp_path: Path,
) -> None:
    stream, environ = journal_stream
    configure_logging("json", stream=stream, environ=environ)
    get_logger().info("started")
    stream.flush()
    assert journal_sent == []
    assert json.loads((tmp_path / "stream").read_text())["event"] == "started"


@pytest.mark.parametrize("value", ["", "garbage", "1:", ":2", "1:2:3"])
def test_malformed_journal_stream_is_not_the_journal(value: str, tmp_path: Path) -> None:
    with (tmp_path / "f").open("w") as stream:
        assert not log_pipeline.is_journal_stream(stream, {"JOURNAL_STREAM": value})


# --- reconfiguration -----------------------------------------------------------------------

def test_reconfiguring_replaces_only_its_own_handler() -> None:
    foreign = io.StringIO()
    foreign_handler = logging.StreamHandler(foreign)
    logging.getLogger().addHandler(foreign_handler)
    try:
        first, second = io.StringIO(), io.StringIO()
        configure_logging("json", stream=first)
        configure_logging("json", "debug", stream=second)
        get_logger().debug("once")
        assert first.getvalue() == ""
        assert [e["event"] for e in json_lines(second)] == ["once"]
        assert foreign.getvalue() != ""  # the other handler is still attached
    finally:
        logging.getLogger().removeHandler(foreign_handler)


def test_loggers_made_before_configuration_follow_it() -> None:
    early = get_logger("polroutd.early")
    out = io.StringIO()
    configure_logging("json", stream=out)
    early.info("late_configured")
    assert json_lines(out)[0]["logger"] == "polroutd.early"


@pytest.mark.parametrize(("fmt", "level"), [("xml", "info"), ("json", "loud")])
def test_bad_format_or_level_is_a_value_error(fmt: str, level: str) -> None:
    with pytest.raises(ValueError, match=fmt if fmt == "xml" else level):
        configure_logging(fmt, level, stream=io.StringIO())


# --- lines kept until the output is configured (polroutd run's start) ----------------------

def log_a_start() -> datetime:
    """Lines of every kind, polroutd's and a stdlib logger's interleaved; when they were done."""
    log = get_logger("polroutd.daemon")
    log.info("starting", mode="strict", max_open_files=1024)
    log.debug("below_the_level")
    logging.getLogger("polroutd.leases").warning("lease file %s %s", "/x.lease", "refused")
    log.bind(interface="ens224").warning("interface_entry_matches_excluded", message="m")
    try:
        raise ValueError("bad gateway address")
    except ValueError:
        log.exception("reconcile_crashed")
        log.error("task_failed", exc_info=True)
    return datetime.now(UTC)


def logged(fmt: str, *, kept: bool, environ: dict[str, str] | None = None,
           stream: TextIO | None = None) -> tuple[str, datetime]:
    """What ``log_a_start`` writes with ``fmt``: configured before it (as other commands do),
    or kept until configured after it (as ``polroutd run`` does)."""
    out = io.StringIO()
    if kept:
        logs.record_logs()
        done = log_a_start()
        configure_logging(fmt, stream=stream or out, environ=environ or {})
    else:
        configure_logging(fmt, stream=stream or out, environ=environ or {})
        done = log_a_start()
    logs.reset_logging()
    return out.getvalue(), done


def without_timestamps(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "timestamp"} for e in entries]


def test_kept_lines_are_written_once_configured_as_they_would_have_been_at_once() -> None:
    direct, _ = logged("json", kept=False)
    kept, done = logged("json", kept=True)
    entries = [json.loads(line) for line in kept.splitlines()]
    assert without_timestamps(entries) == without_timestamps(
        [json.loads(line) for line in direct.splitlines()])
    assert [e["event"] for e in entries] == [
        "starting", "lease file /x.lease refused", "interface_entry_matches_excluded",
        "reconcile_crashed", "task_failed"]
    assert "ValueError: bad gateway address" in entries[-1]["exception"]
    # Each keeps the time it was logged at, not the time it was written.
    assert all(datetime.fromisoformat(e["timestamp"]) <= done for e in entries)


def test_kept_console_lines_read_as_direct_ones() -> None:
    def plain(text: str) -> list[str]:  # the lines, past their timestamps (not the tracebacks,
        # whose variables differ between any two calls)
        return [line.partition(" ")[2] for line in text.splitlines() if line[:4].isdigit()]

    direct, _ = logged("console", kept=False)
    kept, _ = logged("console", kept=True)
    assert plain(kept) == plain(direct)
    assert any("starting" in line and "mode=strict" in line for line in plain(kept))


def test_kept_lines_reach_the_journal_with_the_place_they_were_logged_at(
    journal_sent: list[dict[str, Any]], journal_stream: tuple[TextIO, dict[str, str]],
) -> None:
    stream, environ = journal_stream
    logged("auto", kept=False, environ=environ, stream=stream)
    direct = list(journal_sent)
    journal_sent.clear()
    logged("auto", kept=True, environ=environ, stream=stream)
    assert journal_sent == direct
    assert {entry["CODE_FILE"] for entry in direct} == {__file__}
    assert [entry["CODE_FUNC"] for entry in direct] == ["log_a_start"] * 5


def test_without_record_logs_lines_are_written_at_once() -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    get_logger().info("now")
    assert [e["event"] for e in json_lines(out)] == ["now"]


def test_the_daemons_lease_file_warnings_are_polroutd_lines_kept_in_order(tmp_path: Path) -> None:
    """``polroutd run`` gives its engine polroutd's ``polroutd.leases`` logger for refused lease
    files (daemon/deps.py): a warning from its first reconcile is kept in order with the
    daemon's other lines, and needs no stdlib logger (its start leaves stdlib logging unloaded)."""
    fifo = tmp_path / "dhclient.eth0.leases"
    os.mkfifo(fifo)
    deps = Deps(kernel=FakeKernel(KernelState()), events_factory=lambda: None,  # type: ignore[arg-type,return-value]
                notifier=FakeNotifier(), load_config=lambda: None)  # type: ignore[arg-type,return-value]
    files = LeaseFiles(time.time, deps.lease_warning)
    out = io.StringIO()
    logs.record_logs()
    get_logger("polroutd.daemon").info("starting")
    assert files.parsed(str(fifo)) is not None
    get_logger("polroutd.daemon").info("ready")
    configure_logging("json", stream=out)
    entries = json_lines(out)
    assert [(e["logger"], e["level"]) for e in entries] == [
        ("polroutd.daemon", "info"), ("polroutd.leases", "warning"), ("polroutd.daemon", "info")]
    assert entries[1]["event"].startswith(f"lease file {fifo} ")
    assert entries[1]["event"].endswith("; no gateway is taken from it")
