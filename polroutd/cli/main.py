"""The ``polroutd`` command line (spec §3.1). Errors are one line on stderr; --debug adds the
traceback."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from polroutd import __version__
from polroutd.config.parse import load_config, resolve_config_path
from polroutd.core.describe import (
    Names,
    conflict_json,
    conflict_text,
    operation_json,
    operation_text,
)
from polroutd.core.errors import ConfigError, KernelError, NoNetAdmin, PolroutdError
from polroutd.core.model import Plan
from polroutd.core.settings import Config

if TYPE_CHECKING:
    from polroutd.engine import Engine

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2  # also: invalid configuration, and "changes pending" for plan/status


class UsageError(Exception):
    pass


def _load(args: argparse.Namespace) -> Config:
    return load_config(resolve_config_path(args.config, os.environ))


def _engine(config: Config) -> Engine:
    from polroutd.engine import Engine
    from polroutd.netlink.kernel import Netlink

    return Engine(config, Netlink())


def _print_plan(plan: Plan, names: Names) -> None:
    for op in plan.operations:
        print(operation_text(op, names))
    for conflict in plan.conflicts:
        print(f"! conflict: {conflict_text(conflict, names)}")


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args)
    from polroutd.engine import resolve_names

    resolve_names(config)
    print(
        f"{config.source}: configuration is valid "
        f"({len(config.interfaces) or 'no'} interface entries, mode {config.daemon.mode})"
    )
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    engine = _engine(_load(args))
    decision = engine.read_and_decide()
    plan = decision.plan
    if args.json:
        print(
            json.dumps(
                {
                    "in_sync": plan.empty,
                    "operations": [operation_json(op, decision.names) for op in plan.operations],
                    "conflicts": [conflict_json(c, decision.names) for c in plan.conflicts],
                },
                indent=2,
            )
        )
    else:
        _print_plan(plan, decision.names)
        count = len(plan.operations)
        print("in sync: nothing to do" if plan.empty else f"{count} operation(s) pending")
    return EXIT_OK if plan.empty else EXIT_USAGE


def cmd_apply(args: argparse.Namespace) -> int:
    engine = _engine(_load(args))
    decision = engine.read_and_decide()
    results = engine.apply(decision)
    failed = [r for r in results if not r.ok]
    lines = []  # one write, not a thousand print() calls
    for result in results:
        status = "" if result.ok else f"  FAILED {result.error_name}: {result.message or ''}"
        lines.append(operation_text(result.operation, decision.names) + status.rstrip() + "\n")
    sys.stdout.write("".join(lines))
    for conflict in decision.plan.conflicts:
        print(f"! conflict: {conflict_text(conflict, decision.names)}")
    print(f"applied {len(results) - len(failed)} operation(s), {len(failed)} failed")
    if engine.tables_file_error:
        print(f"polroutd: warning: {engine.tables_file_error} (table names not recorded)",
              file=sys.stderr)
    return EXIT_ERROR if failed else EXIT_OK


def cmd_flush(args: argparse.Namespace) -> int:
    engine = _engine(_load(args))
    state = engine.kernel.read_state()
    plan = engine.flush_plan(state)
    names = engine.decide(state).names
    results = engine.kernel.apply(plan.operations) if plan.operations else []
    failed = [r for r in results if not r.ok]
    for result in results:
        status = "" if result.ok else f"  FAILED {result.error_name}"
        print(operation_text(result.operation, names) + status)
    print(f"removed {len(results) - len(failed)} object(s), {len(failed)} failed")
    return EXIT_ERROR if failed else EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from polroutd.daemon.service import run_daemon

    return run_daemon(_load(args), debug=args.debug)


def cmd_render(args: argparse.Namespace) -> int:
    from polroutd.cli.render import render_command

    engine = _engine(_load(args))
    return render_command(engine, args.format, Path(args.out) if args.out else None)


def cmd_status(args: argparse.Namespace) -> int:
    from polroutd.cli.status import status_command

    return status_command(args.url)


def cmd_demo(args: argparse.Namespace) -> int:
    from polroutd.cli.demo import cleanup_demo, run_demo

    if args.cleanup:
        return cleanup_demo()
    return run_demo(keep=args.keep)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polroutd", description="Keeps source-based policy routing correct."
    )
    parser.add_argument("--version", action="version", version=f"polroutd {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def command(
        name: str, func: Callable[[argparse.Namespace], int], help_text: str, config: bool = True
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
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
        return p

    command("run", cmd_run, "run the daemon in the foreground")
    p = command("plan", cmd_plan, "print the operations a reconcile would do; change nothing")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    command("apply", cmd_apply, "reconcile once, then exit")
    command("check-config", cmd_check_config, "validate the configuration")
    p = command("render", cmd_render, "print the persistent equivalent of the desired state")
    p.add_argument(
        "--format", required=True, choices=["ip-batch", "ifcfg", "interfaces", "networkd", "nmcli"]
    )
    p.add_argument("--out", metavar="DIR", help="write files into DIR instead of stdout")
    command("flush", cmd_flush, "remove every object with polroutd's protocol")
    p = command("status", cmd_status, "summarise a running daemon's /state", config=False)
    p.add_argument(
        "--url",
        default="http://127.0.0.1:9641",
        help="the daemon's HTTP address (default: %(default)s)",
    )
    p = command(
        "demo", cmd_demo, "the article's scenario, live, in network namespaces", config=False
    )
    p.add_argument("--keep", action="store_true", help="leave the lab up for exploring")
    p.add_argument("--cleanup", action="store_true",
                   help="remove what a --keep (or interrupted) demo left behind")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors exit 2 and --help/--version exit 0
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    debug = getattr(args, "debug", False)
    try:
        code: int = args.func(args)
        return code
    except ConfigError as exc:
        _error(str(exc), debug)
        # For plan, 2 means "changes pending" and flush knows only 0/1: a bad file is an error.
        return EXIT_ERROR if args.command in ("plan", "flush") else EXIT_USAGE
    except UsageError as exc:
        _error(str(exc), debug)
        return EXIT_USAGE
    except NoNetAdmin as exc:
        _error(str(exc), debug)
        return EXIT_ERROR
    except KernelError as exc:
        _error(f"netlink: {exc} (is this run as root, with CAP_NET_ADMIN?)", debug)
        return EXIT_ERROR
    except PermissionError as exc:
        _error(
            f"permission denied: {exc.filename or exc} (run as root or with CAP_NET_ADMIN)", debug
        )
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except PolroutdError as exc:  # e.g. another daemon already runs: one line, exit 1
        _error(str(exc), debug)
        return EXIT_ERROR
    except Exception as exc:  # the one place where anything unexpected becomes one line
        _error(f"{type(exc).__name__}: {exc}", debug)
        return EXIT_ERROR


def _error(message: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    print(f"polroutd: error: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
