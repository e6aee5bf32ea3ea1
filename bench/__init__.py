"""polroutd's benchmarks (docs/behaviour.md §5).

``python -m bench [--quick] [--out FILE.json] [--scenario NAME ...]``

Every scenario is built in network namespaces named ``polroutd-bench-<6 hex>-<role>`` and torn
down afterwards (also on Ctrl-C and SIGTERM); the root network namespace is never changed.
polroutd and its comparisons (``ip -batch`` of exactly the same operations, and the naive
``ip monitor`` shell loop a sysadmin would write) run side by side in one run, and every time
is observed from outside the daemon, on netlink. See docs/performance.md.
"""

from polroutd.lab.netns import LabError

#: The benchmarks' namespaces are ``<PREFIX>-<6 hex>-<role>``.
PREFIX = "polroutd-bench"


class BenchError(LabError):
    """A scenario could not be built or did not converge."""
