"""Logging (docs/behaviour.md §3.4): polroutd's loggers, and ``configure_logging``, which sets up
the output (adapters/log_pipeline.py: structlog and stdlib logging; JSON, console or journald).

``polroutd run`` does not make its first reconcile wait for that pipeline (structlog alone takes
tens of milliseconds to load): ``record_logs`` keeps every line from then on, polroutd's and
stdlib loggers' alike, with the time and place it was logged at and its exception, until
``configure_logging``, which writes them out in order, as they would have been written at once.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import logging
    from collections.abc import Mapping
    from typing import TextIO

    from structlog.stdlib import BoundLogger

class _Kept(NamedTuple):
    """A line of a polroutd logger, kept: the call, and when and where it was made."""

    name: str
    context: dict[str, Any]
    method: str
    event: str | None
    args: tuple[Any, ...]
    kw: dict[str, Any]
    at: float
    where: tuple[str, int, str]


# The lines kept since ``record_logs``, in order; None: lines are written at once.
_kept: list[_Kept | logging.LogRecord] | None = None
_keeper: logging.Handler | None = None  # keeps the stdlib loggers' records meanwhile
_root_level: int | None = None  # the root logger's level before ``record_logs``


def record_logs() -> None:
    """Keeps every line, unwritten, until ``configure_logging`` writes them."""
    global _kept, _keeper, _root_level
    if _kept is not None:
        return
    kept: list[_Kept | logging.LogRecord] = []
    _kept = kept
    if "logging" not in sys.modules:
        # Stdlib logging (~20 ms to load) is kept unloaded too: nothing on the daemon's path
        # to its first reconcile logs through it (lease files' warnings take polroutd's
        # logger; tests/kernel/test_start_netns.py pins that it stays unloaded).
        return
    import logging

    class Keeper(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(record)

    keeper = Keeper()
    root = logging.getLogger()
    _keeper, _root_level = keeper, root.level
    root.addHandler(keeper)
    root.setLevel(logging.NOTSET)  # every record kept: the configured level filters them later


def configure_logging(
    fmt: str = "auto",
    level: str = "info",
    *,
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """(Re)configure structlog and the stdlib root logger, then write the lines kept so far.
    Raises ValueError on an unknown format or level. The default stream is stderr, so stdout
    stays for command output."""
    from polroutd.adapters import log_pipeline

    log_pipeline.install(fmt, level, stream=stream, environ=environ)
    kept = _stop_keeping()
    if kept:
        _write(kept)


def reset_logging() -> None:
    """Undo configure_logging() (and record_logs(): what was kept is dropped)."""
    from polroutd.adapters import log_pipeline

    _stop_keeping()
    log_pipeline.reset()


def _stop_keeping() -> list[_Kept | logging.LogRecord]:
    global _kept, _keeper, _root_level
    kept, keeper, _kept, _keeper = _kept or [], _keeper, None, None
    if keeper is not None:
        import logging

        root = logging.getLogger()
        root.removeHandler(keeper)
        if root.level == logging.NOTSET and _root_level is not None:
            root.setLevel(_root_level)  # not configured: as before
        _root_level = None
    return kept


def _write(kept: list[_Kept | logging.LogRecord]) -> None:
    """The kept lines through the pipeline, each with when and where it was logged (keys the
    pipeline takes the timestamp and the journal's CODE_* fields from, then drops)."""
    import logging

    import structlog

    from polroutd.adapters.log_pipeline import LOGGED_AT, LOGGED_FROM

    for line in kept:
        if isinstance(line, _Kept):
            target = structlog.stdlib.get_logger(line.name, **line.context)
            getattr(target, line.method)(line.event, *line.args, **line.kw,
                                         **{LOGGED_AT: line.at, LOGGED_FROM: line.where})
        else:
            logger = logging.getLogger(line.name)
            if logger.isEnabledFor(line.levelno):
                setattr(line, LOGGED_AT, line.created)
                logger.handle(line)


class Logger:
    """A polroutd logger: structlog's stdlib ``BoundLogger`` (loaded when first needed), whose
    lines are kept while ``record_logs`` holds."""

    __slots__ = ("_context", "_name", "_target")

    def __init__(self, name: str, context: dict[str, Any]) -> None:
        self._name, self._context = name, context
        self._target: BoundLogger | None = None

    def bind(self, **values: Any) -> Logger:
        return Logger(self._name, {**self._context, **values})

    def debug(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        return self._log("debug", event, args, kw)

    def info(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        return self._log("info", event, args, kw)

    def warning(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        return self._log("warning", event, args, kw)

    def error(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        return self._log("error", event, args, kw)

    def critical(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        return self._log("critical", event, args, kw)

    def exception(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        return self._log("exception", event, args, kw)

    def _log(self, method: str, event: str | None, args: tuple[Any, ...],
             kw: dict[str, Any]) -> Any:
        if _kept is None:
            if self._target is None:
                import structlog

                self._target = structlog.stdlib.get_logger(self._name, **self._context)
            return getattr(self._target, method)(event, *args, **kw)
        if kw.get("exc_info", method == "exception") is True:
            kw["exc_info"] = sys.exc_info()  # the exception being handled now, not at writing
        if method == "exception":  # the same line, with the exception just kept (the
            method = "error"  # stdlib's exception() would take the one handled at writing)
        caller = sys._getframe(2)
        where = (caller.f_code.co_filename, caller.f_lineno, caller.f_code.co_name)
        _kept.append(_Kept(self._name, self._context, method, event, args, kw, time.time(),
                           where))
        return None


def get_logger(name: str = "polroutd", **initial_values: Any) -> Logger:
    return Logger(name, initial_values)
