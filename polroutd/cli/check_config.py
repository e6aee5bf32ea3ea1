"""``polroutd check-config``: validates the file and the names it uses; touches no kernel."""

from __future__ import annotations

import argparse

from polroutd.cli.common import EXIT_OK, load
from polroutd.engine import resolve_names


def command(args: argparse.Namespace) -> int:
    config = load(args)
    resolve_names(config)
    print(
        f"{config.source}: configuration is valid "
        f"({len(config.interfaces) or 'no'} interface entries, mode {config.daemon.mode})"
    )
    return EXIT_OK
