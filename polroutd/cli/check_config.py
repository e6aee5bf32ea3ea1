"""``polroutd check-config``: validates the file and the names it uses; changes nothing."""

from __future__ import annotations

import argparse
import sys

from polroutd.cli.common import EXIT_OK, load
from polroutd.core.advice import interface_warnings
from polroutd.core.errors import KernelError
from polroutd.core.model import Link
from polroutd.engine import resolve_names


def command(args: argparse.Namespace) -> int:
    config = load(args)
    resolve_names(config)
    for warning in interface_warnings(config, _links_if_readable()):
        print(f"polroutd: warning: {config.source}: {warning}", file=sys.stderr)
    print(
        f"{config.source}: configuration is valid "
        f"({len(config.interfaces) or 'no'} interface entries, mode {config.daemon.mode})"
    )
    return EXIT_OK


def _links_if_readable() -> tuple[Link, ...]:
    """The kernel's links, to tell bridges apart; none where netlink cannot be read (check-config
    also runs on a machine other than the one the file is for). Only reads."""
    from polroutd.netlink.kernel import Netlink

    try:
        with Netlink() as netlink:
            return netlink.read_links()
    except (KernelError, OSError):
        return ()
