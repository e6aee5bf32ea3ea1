"""Every error polroutd raises on purpose descends from ``PolroutdError``.

The command line maps each family to its exit code in one place (``polroutd.cli.main``); the
daemon tells a configuration problem from a kernel failure by class, never by message.
"""

from __future__ import annotations

import errno

# The process or the system ran out of descriptors or memory: a file that could not be opened
# then says nothing about what is in it.
STARVED_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})


def is_starved(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure for lack of descriptors or memory (``OSError`` or
    ``KernelError``), never to be taken for "nothing there"."""
    return getattr(exc, "errno", None) in STARVED_ERRNOS


class PolroutdError(Exception):
    """The root: an expected failure with a message fit for one line on stderr."""


class UsageError(PolroutdError):
    """The command line was used wrongly (exit 2)."""


class ConfigError(PolroutdError):
    """An invalid configuration: names the file, the key (and line) and what is expected."""

    def __init__(self, source: str, key: str, problem: str, line: int | None = None) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        self.line = line
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {key}: {problem}")


class TableRangeExhausted(ConfigError):
    """A configuration that only the kernel's state reveals as impossible: more interfaces than
    ``table_range`` has numbers. Raised at run time, so the daemon fails that reconcile and
    keeps running instead of refusing the configuration."""


class KernelError(PolroutdError):
    """A netlink request failed as a whole (not one operation: those are ``OpResult``)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.errno = code


class NoNetAdmin(KernelError):
    """The kernel refused a change with EPERM: this process lacks CAP_NET_ADMIN (in the user
    namespace that owns the network namespace). Retrying cannot help."""


class DumpInterrupted(KernelError):
    """The kernel changed the table while it was being dumped, more often than we retried."""


class Overrun(KernelError):
    """The event socket lost messages (ENOBUFS): its picture of the kernel is no longer whole."""
