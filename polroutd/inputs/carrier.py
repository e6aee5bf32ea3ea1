"""An interface's carrier as the kernel knows it this instant, from sysfs.

Link events carry carrier changes late when the kernel's linkwatch is busy: it reports
non-urgent changes (a physical NIC's carrier among them) at most once a second for the whole
host, so one loss can reach userspace up to a second after it happened. The carrier file reads
``netif_carrier_ok()`` directly; the uplink monitor polls it as a complement to the events
(docs/uplinks.md), through :class:`CarrierFiles`.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

SYS_CLASS_NET = Path("/sys/class/net")


def carrier(name: str, root: Path = SYS_CLASS_NET) -> bool | None:
    """True with carrier, False without (or administratively down: the kernel then refuses
    the read), None when the interface or sysfs is not there to ask."""
    try:
        with open(root / name / "carrier", "rb") as file:
            return file.read(1) == b"1"
    except FileNotFoundError:
        return None
    except OSError:  # EINVAL: the interface is down
        return False


class CarrierFiles:
    """:func:`carrier` for reads many times a second: each interface's carrier file stays
    open and is read again with one ``pread`` (sysfs answers afresh at offset 0), instead of
    the six system calls of an open, read and close. Keyed by name and ifindex: an interface
    deleted, or a name that now belongs to another interface, opens anew."""

    def __init__(self, root: Path = SYS_CLASS_NET) -> None:
        self._root = root
        self._fds: dict[tuple[str, int], int] = {}

    def read(self, name: str, ifindex: int) -> bool | None:
        key = (name, ifindex)
        fd = self._fds.get(key)
        if fd is None:
            try:
                fd = os.open(self._root / name / "carrier", os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return None
            except OSError:
                return False
            self._fds[key] = fd
        try:
            return os.pread(fd, 1, 0) == b"1"
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # the interface is down
                return False
            self._close(key)  # ENODEV: deleted; asked again, the name is looked up afresh
            return carrier(name, self._root)

    def retain(self, keys: set[tuple[str, int]]) -> None:
        """Close the files of interfaces no longer read."""
        for key in set(self._fds) - keys:
            self._close(key)

    def _close(self, key: tuple[str, int]) -> None:
        os.close(self._fds.pop(key))

    def close(self) -> None:
        self.retain(set())
