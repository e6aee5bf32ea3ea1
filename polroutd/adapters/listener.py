"""The HTTP API's listening socket, bound with the standard library alone.

The daemon binds it at start, before the first reconcile, so that a bad ``http_listen`` or a
port already taken fails the start with one line; the HTTP server (aiohttp) takes it over after
the first reconcile. Connections that arrive meanwhile wait in the kernel's backlog.
"""

from __future__ import annotations

import socket

from polroutd.core.errors import PolroutdError

BACKLOG = 64  # connections the kernel queues until the server accepts them


class ListenError(PolroutdError):
    """The HTTP address cannot be listened on (taken, not local, not permitted)."""


def bind_listener(host: str, port: int, *, backlog: int = BACKLOG) -> socket.socket:
    """A TCP socket listening on ``host`` (a literal IP address) and ``port`` (0: any free
    port), with the options asyncio's own servers set: SO_REUSEADDR (a restart need not wait
    for the old connections' TIME_WAIT), IPV6_V6ONLY for an IPv6 address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        raise ListenError(f"cannot listen on {where} (daemon.http_listen): "
                          f"{exc.strerror or exc}") from exc
    return sock
