"""What the commands share: exit codes, the configuration they were pointed at, an engine on
this namespace's kernel."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from polroutd.config.parse import load_config, resolve_config_path
from polroutd.core.settings import Config

if TYPE_CHECKING:
    import argparse

    from polroutd.engine import Engine

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2  # also: invalid configuration, and "changes pending" for plan/status
EXIT_INTERRUPTED = 130


def load(args: argparse.Namespace) -> Config:
    return load_config(resolve_config_path(args.config, os.environ))


def kernel_engine(config: Config) -> Engine:
    """An engine on the kernel of the current network namespace (imported here: check-config
    needs neither netlink nor the engine's inputs)."""
    from polroutd.engine import Engine
    from polroutd.netlink.kernel import Netlink

    return Engine(config, Netlink())
