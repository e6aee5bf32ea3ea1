"""The HTTP listen address: ``"HOST:PORT"`` or ``"[IPv6]:PORT"`` with a literal address. Pure.

The configuration checks it and the HTTP server binds it, by the same rule: port 0 (any free
port) is refused, since Prometheus and probes need an address known in advance.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

from polroutd.core.limits import MAX_PORT


class ListenAddress(NamedTuple):
    host: str
    port: int


def parse_listen(listen: str) -> ListenAddress:
    """The host and port of ``listen``; ValueError says what is wrong (without the value)."""
    if listen.startswith("["):
        host, separator, port = listen[1:].partition("]:")
        family_ok = bool(separator) and _is_ip(host, 6)
    else:
        host, separator, port = listen.rpartition(":")
        family_ok = bool(separator) and _is_ip(host, 4)
        if separator and _is_ip(host, 6):
            raise ValueError("must write an IPv6 host in brackets")
    if not family_ok:
        raise ValueError('must be "HOST:PORT" or "[IPv6]:PORT" with a literal IP address')
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= MAX_PORT):
        raise ValueError(f"must end in a port from 1 to {MAX_PORT}")
    return ListenAddress(host, int(port))


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False
