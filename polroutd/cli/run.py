"""``polroutd run``: the daemon in the foreground (imports aiohttp and friends only here)."""

from __future__ import annotations

import argparse

from polroutd.cli.common import load
from polroutd.daemon.service import run_daemon


def command(args: argparse.Namespace) -> int:
    return run_daemon(load(args), debug=args.debug)
