"""The ``polroutd`` command line (docs/behaviour.md §3.1): the parser, the dispatch to one module
per command
(imported only when that command runs: ``plan`` and ``check-config`` load no aiohttp), and the
one place where errors become one line on stderr and an exit code. --debug adds the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from polroutd import __version__
from polroutd.cli.common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from polroutd.core.errors import ConfigError, KernelError, NoNetAdmin, PolroutdError, UsageError

# Commands whose exit code 2 means something else: for plan "changes pending"; flush knows only
# 0 and 1. An invalid configuration is an error (1) for them.
CONFIG_ERROR_IS_1 = frozenset({"plan", "flush"})
COMMANDS = ("run", "plan", "apply", "check-config", "render", "flush", "status", "demo")
Option = tuple[tuple[str, ...], dict[str, Any]]  # a command's own option: add_argument's arguments


class _Parser(argparse.ArgumentParser):
    """Usage errors raised as ``UsageError``, so they leave through the one error handler."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``only`` (a command's name) just what parsing that
    command's line needs: its own options are not worth declaring for eight others on every
    start (argparse makes a help formatter for each option it is given)."""
    parser = _Parser(
        prog="polroutd", description="Keeps source-based policy routing correct.",
        epilog="A worked first deployment (configuration, modes, isolated networks, how to "
        "verify it): docs/guide.md in polroutd's source tree.",
    )
    parser.add_argument("--version", action="version", version=f"polroutd {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def command(name: str, help_text: str, *options: Option, config: bool = True) -> None:
        if only is not None and name != only:
            return
        p = sub.add_parser(name, help=help_text, description=help_text)
        # The module that runs it: polroutd.cli.<name>, imported when it runs.
        p.set_defaults(module=f"polroutd.cli.{name.replace('-', '_')}")
        p.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show tracebacks on errors",
        )
        if config:
            p.add_argument(
                "--config",
                metavar="FILE",
                help="configuration file (default: $POLROUTD_CONFIG, then "
                "/etc/polroutd/polroutd.toml)",
            )
        for flags, settings in options:
            p.add_argument(*flags, **settings)

    command("run", "run the daemon in the foreground")
    command("plan", "print the operations a reconcile would do; change nothing",
            (("--json",), {"action": "store_true", "help": "machine-readable output"}))
    command("apply", "reconcile once, then exit")
    command("check-config", "validate the configuration")
    command("render", "print the persistent equivalent of the desired state",
            (("--format",), {"required": True, "choices": [
                "ip-batch", "ifcfg", "interfaces", "networkd", "nmcli"]}),
            (("--out",), {"metavar": "DIR", "help": "write files into DIR instead of stdout"}))
    command("flush", "remove every object with polroutd's protocol")
    command("status", "summarise a running daemon's /state",
            (("--url",), {"default": "http://127.0.0.1:9641",
                          "help": "the daemon's HTTP address (default: %(default)s)"}),
            config=False)
    command("demo", "the article's scenario, live, in network namespaces",
            (("--keep",), {"action": "store_true", "help": "leave the lab up for exploring"}),
            (("--cleanup",), {"action": "store_true",
                              "help": "remove what a --keep (or interrupted) demo left behind"}),
            config=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args: argparse.Namespace | None = None
    try:
        args = build_parser(command_named(sys.argv[1:] if argv is None else argv)
                            ).parse_args(argv)
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
