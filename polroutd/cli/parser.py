"""The ``polroutd`` command line's parser (docs/behaviour.md §3.1), argparse's: the commands
and their options, which the man pages and shell completions are made from too.

A plain ``polroutd run`` line is read without it (cli/main.py's ``run_line``): argparse and its
help formatters are worth a few milliseconds of every daemon start.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from polroutd import __version__
from polroutd.core.errors import UsageError

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
