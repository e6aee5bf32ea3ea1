"""The ``polroutd`` command line (docs/behaviour.md §3.1): the dispatch to one module per command
(imported only when that command runs: ``plan`` and ``check-config`` load no aiohttp), and the
one place where errors become one line on stderr and an exit code. --debug adds the traceback.
The parser is in cli/parser.py; a plain ``run`` line is read without it (``run_line``).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

from polroutd.cli.common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from polroutd.core.errors import ConfigError, KernelError, NoNetAdmin, PolroutdError, UsageError

if TYPE_CHECKING:
    import argparse

# Commands whose exit code 2 means something else: for plan "changes pending"; flush knows only
# 0 and 1. An invalid configuration is an error (1) for them.
CONFIG_ERROR_IS_1 = frozenset({"plan", "flush"})
COMMANDS = ("run", "plan", "apply", "check-config", "render", "flush", "status", "demo")
# One-shot commands whose process ends without the interpreter's teardown (``entry``): they
# register no exit handler, and every thread of theirs has ended and every file is written
# when ``main`` returns. (``run`` and ``demo`` exit as usual: the lab tears down at exit.)
QUICK_EXIT = frozenset({"plan", "apply", "check-config", "render", "flush", "status"})


def entry() -> None:
    """The ``polroutd`` executable: ``main``, then the exit. After a one-shot command, the
    output flushed, the process ends at once (``os._exit``): the interpreter's teardown frees
    every object one by one, which after a reconcile of 1,024 rules took ~8 ms of a ``polroutd
    apply`` that a hook or a timer waits for. A flush that fails gives 120, as Python's own exit
    does."""
    code = main()
    if command_named(sys.argv[1:]) not in QUICK_EXIT:
        sys.exit(code)
    if "logging" in sys.modules:  # its handlers flushed and closed, as at a normal exit
        sys.modules["logging"].shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe or a full disk
        code = 120
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args: argparse.Namespace | None = None
    line = sys.argv[1:] if argv is None else argv
    try:
        args = run_line(line)
        if args is None:
            from polroutd.cli.parser import build_parser

            args = build_parser(command_named(line)).parse_args(line)
        code: int = importlib.import_module(args.module).command(args)
        return code
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # the one place where any failure becomes one line
        debug = bool(getattr(args, "debug", False))
        message, code = describe_failure(exc, getattr(args, "command", None))
        if debug:
            import traceback  # only here: every command's start would pay for it

            traceback.print_exc()
        print(f"polroutd: error: {message}", file=sys.stderr)
        return code


def run_line(argv: Sequence[str]) -> argparse.Namespace | None:
    """What the parser reads from a plain ``run`` line: ``run``, ``--debug`` before or after
    it, ``--config FILE`` (or ``--config=FILE``) once after it. None for any other line, which
    the parser reads: help, usage errors and every other command stay argparse's."""
    debug, config, command = False, None, None
    words = list(argv)
    while words:
        word = words.pop(0)
        if word == "--debug":
            debug = True
        elif word == "run" and command is None:
            command = word
        elif command is None or config is not None:
            return None
        elif word == "--config" and words and not words[0].startswith("-"):
            config = words.pop(0)
        elif word.startswith("--config="):
            config = word.removeprefix("--config=")
        else:
            return None
    if command is None:
        return None
    return cast("argparse.Namespace", SimpleNamespace(
        debug=debug, command=command, module="polroutd.cli.run", config=config))


def command_named(argv: Sequence[str]) -> str | None:
    """The command the line names, when it names a known one (the options before it take no
    values: --debug, --version, --help)."""
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    return first if first in COMMANDS else None


def describe_failure(exc: Exception, command: str | None) -> tuple[str, int]:
    """The line to print and the exit code, by the error's family."""
    if isinstance(exc, ConfigError):
        return str(exc), EXIT_ERROR if command in CONFIG_ERROR_IS_1 else EXIT_USAGE
    if isinstance(exc, UsageError):
        return str(exc), EXIT_USAGE
    if isinstance(exc, NoNetAdmin):  # its message already says what is missing
        return str(exc), EXIT_ERROR
    if isinstance(exc, KernelError):
        return f"netlink: {exc} (is this run as root, with CAP_NET_ADMIN?)", EXIT_ERROR
    if isinstance(exc, PolroutdError):
        return str(exc), EXIT_ERROR
    if isinstance(exc, PermissionError):
        return (f"permission denied: {exc.filename or exc} (run as root or with CAP_NET_ADMIN)",
                EXIT_ERROR)
    return f"{type(exc).__name__}: {exc}", EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
