"""The uplink monitor's own event socket: link and neighbour events, decoded, non-blocking.

Apart from the reconcile's event socket on purpose: neighbour entries change all the time and
are no reason to reconcile, and the monitor must see a link's carrier drop even when it comes
back within one coalescing window (the hysteresis counts on it).
"""

from __future__ import annotations

import errno

from polroutd.core.errors import KernelError, Overrun
from polroutd.core.model import Link, Neighbour
from polroutd.netlink import codec as rtnl
from polroutd.netlink.kernel import (
    NETLINK_ADD_MEMBERSHIP,
    SOL_NETLINK,
    Netlink,
    _netlink_socket,
    _Receiver,
)

UPLINK_EVENT_BUFFER = 4 << 20

LinkOrNeighbour = Link | Neighbour


class UplinkEventSocket:
    def __init__(self, rcvbuf: int = UPLINK_EVENT_BUFFER) -> None:
        self._sock = _netlink_socket(rcvbuf)
        for group in (rtnl.RTNLGRP_LINK, rtnl.RTNLGRP_NEIGH):
            self._sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
        self._sock.setblocking(False)
        self._receiver = _Receiver()

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        self._sock.close()

    def drain(self) -> list[LinkOrNeighbour]:
        """Every link and neighbour event queued now, in order. Raises Overrun on ENOBUFS
        (the caller re-reads the links)."""
        out: list[LinkOrNeighbour] = []
        while True:
            try:
                data = self._receiver.recv(self._sock)
            except BlockingIOError:
                return out
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    raise Overrun("uplink event socket overrun (ENOBUFS)", exc.errno) from exc
                raise KernelError(
                    f"uplink event receive failed: {exc.strerror}", exc.errno or 0
                ) from exc
            for mtype, _flags, _seq, _pid, payload in rtnl.iter_messages(data):
                item: LinkOrNeighbour | None = None
                if mtype == rtnl.RTM_NEWLINK:
                    item = rtnl.decode_link(payload)
                elif mtype == rtnl.RTM_DELLINK:
                    link = rtnl.decode_link(payload)
                    item = link._replace(up=False, carrier=False) if link else None
                elif mtype in (rtnl.RTM_NEWNEIGH, rtnl.RTM_DELNEIGH):
                    item = rtnl.decode_neighbour(payload)
                if item is not None:
                    out.append(item)


def read_links() -> tuple[Link, ...]:
    """The links now (to start from, and after an overrun)."""
    with Netlink() as nl:
        return nl.read_links()
