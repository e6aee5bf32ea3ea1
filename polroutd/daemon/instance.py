"""One daemon per protocol per network namespace.

Two daemons with the same protocol would each delete what the other adds, forever, each
reporting itself in sync. The first to start binds an abstract-namespace unix socket named
after the network namespace and the protocol; the kernel releases the name when the process
dies (however it dies), no file is left in /run, and AF_UNIX is allowed under the hardened
unit. Abstract names are themselves per network namespace, so daemons in other namespaces, or
with another protocol, are not affected.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

from polroutd.core.errors import PolroutdError


class AlreadyRunning(PolroutdError):
    """Another polroutd with the same protocol runs in this network namespace."""


def instance_name(protocol: int) -> bytes:
    netns = os.stat("/proc/self/ns/net").st_ino
    return f"\0polroutd-{netns}-{protocol}".encode()


def claim_instance(protocol: int) -> socket.socket:
    """The socket that holds the name while this process lives (keep it open); raises
    ``AlreadyRunning`` when another process holds it."""
    name = instance_name(protocol)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.bind(name)
        sock.listen(1)  # only so that a second instance can ask who holds it
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            raise
        holder = _holder_pid(name)
        who = f" (pid {holder})" if holder else ""
        raise AlreadyRunning(
            f"another polroutd{who} already manages protocol {protocol} in this network "
            "namespace; two would undo each other's routes forever: stop it, or give this one "
            "another daemon.protocol"
        ) from None
    return sock


class InstanceClaim:
    """The name held for the daemon's protocol; a reload that changes the protocol moves it."""

    def __init__(self, protocol: int) -> None:
        self.protocol = protocol
        self._sock = claim_instance(protocol)

    def move_to(self, protocol: int) -> None:
        """Holds ``protocol``'s name instead; raises ``AlreadyRunning`` (keeping the old one)
        when another daemon has that protocol here."""
        if protocol == self.protocol:
            return
        sock = claim_instance(protocol)
        self._sock.close()
        self._sock, self.protocol = sock, protocol

    def close(self) -> None:
        self._sock.close()


def _holder_pid(name: bytes) -> int | None:
    """The pid of the process holding ``name``, from the credentials of its socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(name)
            creds = probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        except OSError:
            return None
    pid: int = struct.unpack("3i", creds)[0]
    return pid or None
