"""``polroutd run``: the daemon in the foreground (imports aiohttp and friends only here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from polroutd.cli.common import load
from polroutd.daemon.service import run_daemon

if TYPE_CHECKING:
    import argparse


def command(args: argparse.Namespace) -> int:
    return run_daemon(load(args), debug=args.debug)
