"""The logging pipeline (docs/behaviour.md §3.4): structlog and stdlib logging configured, by
adapters/logs.py's ``configure_logging`` (which loads this module only then).

Three outputs, one pipeline:

* ``json``: one JSON object per line, ISO-8601 UTC timestamps, every bound key kept;
* ``console``: readable aligned lines, colored only on a terminal;
* journald: native journal entries whose fields are the bound keys (``POLROUTD_EVENT``,
  ``INTERFACE``, ...), chosen by ``auto`` when ``$JOURNAL_STREAM`` says the stream *is* the
  journal, so ``journalctl -o verbose`` shows them and ``journalctl INTERFACE=eth1`` filters.

``auto`` picks journald, else console on a terminal, else JSON. Records of other libraries'
stdlib loggers (aiohttp's) go through the same pipeline.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import ModuleType
from typing import Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

FORMATS = ("auto", "json", "console")
# Keys of a line kept for later (adapters/logs.py): when and where (file, line, function) it was
# logged. Taken for the timestamp and the journal's CODE_* fields, then dropped.
LOGGED_AT = "_polroutd_logged_at"
LOGGED_FROM = "_polroutd_logged_from"
LOGGERS = "polroutd.adapters.logs"  # polroutd's loggers: they pass every line on to structlog
OutputKind = Literal["json", "console", "journal"]

# syslog(3) priorities, which journald's PRIORITY= field uses.
SYSLOG_PRIORITY = {"critical": 2, "exception": 3, "error": 3, "warning": 4, "info": 6, "debug": 7}

_JOURNAL_FIELD_INVALID = re.compile(r"[^A-Z0-9_]")
# Fields the journal handler sets itself; a bound key of the same name gets a prefix.
_RESERVED_FIELDS = frozenset({"MESSAGE", "PRIORITY", "POLROUTD_EVENT", "SYSLOG_IDENTIFIER",
                              "CODE_FILE", "CODE_LINE", "CODE_FUNC", "MESSAGE_ID"})
# Keys that become journal metadata rather than fields: journald stamps its own time.
_NOT_JOURNAL_FIELDS = frozenset({"event", "level", "timestamp", "exception"})


def parse_level(level: str) -> int:
    number = logging.getLevelNamesMapping().get(level.strip().upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r} (debug, info, warning, error, critical)")
    return number


def is_journal_stream(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """True when ``$JOURNAL_STREAM`` ("DEV:INODE") names this very stream (systemd.exec(5))."""
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        stat = os.fstat(stream.fileno())
        return (stat.st_dev, stat.st_ino) == (int(device), int(inode))
    except (OSError, ValueError):  # no file descriptor (StringIO), or a malformed variable
        return False


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):
        return False


def _journal_module() -> ModuleType | None:
    try:
        from systemd import journal
    except ImportError:
        return None
    module: ModuleType = journal
    return module


def choose_output(fmt: str, stream: TextIO, environ: Mapping[str, str]) -> OutputKind:
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r} (one of {', '.join(FORMATS)})")
    if fmt == "json":
        return "json"
    if fmt == "console":
        return "console"
    if is_journal_stream(stream, environ) and _journal_module() is not None:
        return "journal"
    return "console" if _isatty(stream) else "json"


def journal_field_name(key: str) -> str:
    """A bound key as a valid journal field name: upper case, [A-Z0-9_], no leading '_'
    (those are trusted fields only journald may set)."""
    name = _JOURNAL_FIELD_INVALID.sub("_", key.upper()).lstrip("_")[:64]
    if not name or name[0].isdigit() or name in _RESERVED_FIELDS:
        name = f"POLROUTD_{name}"[:64]
    return name


def journal_fields(event_dict: EventDict) -> dict[str, str]:
    """The journal entry for one event: MESSAGE, PRIORITY, POLROUTD_EVENT and one field per
    bound key. The message repeats the keys so plain ``journalctl`` output stays useful."""
    event = str(event_dict.get("event", ""))
    extra = {k: v for k, v in event_dict.items() if k not in _NOT_JOURNAL_FIELDS}
    message = " ".join([event, *(f"{k}={v}" for k, v in extra.items())])
    if event_dict.get("exception"):
        message += "\n" + str(event_dict["exception"])
    fields = {journal_field_name(k): str(v) for k, v in extra.items()}
    fields.update(
        MESSAGE=message,
        PRIORITY=str(SYSLOG_PRIORITY.get(str(event_dict.get("level")), 6)),
        POLROUTD_EVENT=event,
        SYSLOG_IDENTIFIER="polroutd",
    )
    return fields


def _render_journal_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
    # ProcessorFormatter insists on a str from its last processor; JSON carries the field
    # dict to the handler losslessly.
    return json.dumps(journal_fields(event_dict))


class JournalHandler(logging.Handler):
    """Sends each record to journald as a native entry with fields."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            journal = _journal_module()
            if journal is None:
                raise RuntimeError("systemd.journal is not importable")
            fields = json.loads(self.format(record))
            path, line, function = code_location(record)
            journal.send(CODE_FILE=path, CODE_LINE=line, CODE_FUNC=function, **fields)
        except Exception:
            self.handleError(record)


# Frames that are not where a line was logged: the logging machinery's, polroutd's loggers'.
_NOT_CALLERS = ("logging", "structlog", LOGGERS, __name__)


def code_location(record: logging.LogRecord) -> tuple[str, int, str]:
    """Where the line was logged: recorded with it when it was kept for later (adapters/logs.py),
    else the record's own (the first frame outside structlog and logging), unless that is a
    polroutd logger's: then the first caller outside the loggers."""
    recorded = record.msg.get(LOGGED_FROM) if isinstance(record.msg, dict) else None
    if recorded is not None:
        path, line, function = recorded
        return str(path), int(line), str(function)
    loggers = sys.modules.get(LOGGERS)
    if loggers is None or record.pathname != loggers.__file__:
        return record.pathname, record.lineno, record.funcName
    frame = sys._getframe(1)
    while frame.f_back is not None and str(frame.f_globals.get("__name__")).startswith(
            _NOT_CALLERS):
        frame = frame.f_back
    return frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name


def _drop_logger_meta(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    event_dict.pop("_record", None)
    event_dict.pop("_from_structlog", None)
    event_dict.pop(LOGGED_FROM, None)
    return event_dict


def _add_timestamp(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog's ``TimeStamper(fmt="iso", utc=True)``, but a line kept for later
    (adapters/logs.py) keeps the time it was logged at."""
    at = event_dict.pop(LOGGED_AT, None)
    if at is None:
        at = getattr(event_dict.get("_record"), LOGGED_AT, None)
    stamp = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    event_dict["timestamp"] = stamp.isoformat().replace("+00:00", "Z")
    return event_dict


def _final_processors(kind: OutputKind, colors: bool) -> list[Processor]:
    if kind == "console":
        return [_drop_logger_meta, structlog.dev.ConsoleRenderer(colors=colors)]
    exception_formatting: list[Processor] = [structlog.processors.format_exc_info]
    if kind == "journal":
        return [_drop_logger_meta, *exception_formatting, _render_journal_fields]
    return [_drop_logger_meta, *exception_formatting, structlog.processors.JSONRenderer()]


_SHARED_PROCESSORS: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.stdlib.PositionalArgumentsFormatter(),
    _add_timestamp,
    structlog.processors.StackInfoRenderer(),
]


# The handler ``install`` installed: reconfiguring replaces only ours, never handlers others
# attached to the root logger (pytest's capture, for one).
_installed_handler: logging.Handler | None = None


class RepeatLimiter(logging.Filter):
    """Lets at most ``burst`` lines of one library message (same logger, level and text
    template) through per ``window`` seconds; the first line after a quiet window says how many
    were dropped. Out of descriptors, asyncio logged its accept error 300,000 times in 50 s.
    The daemon's own structlog events (a dict, not a text) are left alone: they are logged
    once per cause already."""

    def __init__(
        self, burst: int = 5, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.burst, self.window, self._clock = burst, window, clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}  # -> (window start, n)

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str):
            return True
        key = (record.name, record.levelno, record.msg)
        now = self._clock()
        start, count = self._seen.get(key, (now, 0))
        if now - start >= self.window:
            suppressed = count - self.burst
            start, count = now, 0
            if suppressed > 0:
                record.msg = f"{record.msg} ({suppressed} similar lines suppressed)"
        if len(self._seen) > 1000:  # many distinct texts: forget, rather than grow
            self._seen.clear()
        self._seen[key] = (start, count + 1)
        return count < self.burst


def install(
    fmt: str = "auto",
    level: str = "info",
    *,
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """(Re)configure structlog and the stdlib root logger. Raises ValueError on an unknown
    format or level. The default stream is stderr, so stdout stays for command output."""
    out = sys.stderr if stream is None else stream
    env = os.environ if environ is None else environ
    numeric_level = parse_level(level)
    kind = choose_output(fmt, out, env)

    handler: logging.Handler = JournalHandler() if kind == "journal" else logging.StreamHandler(out)
    handler.addFilter(RepeatLimiter())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED_PROCESSORS,
            processors=_final_processors(kind, colors=_isatty(out)),
        )
    )
    global _installed_handler
    root = logging.getLogger()
    if _installed_handler is not None:
        root.removeHandler(_installed_handler)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    _installed_handler = handler

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED_PROCESSORS,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Loggers are module globals created at import time; not caching lets a later
        # install() (after the config file named a level) reach them all.
        cache_logger_on_first_use=False,
    )


def reset() -> None:
    """Undo ``install``: remove its handler and restore structlog's defaults."""
    global _installed_handler
    if _installed_handler is not None:
        logging.getLogger().removeHandler(_installed_handler)
        _installed_handler = None
    structlog.reset_defaults()
