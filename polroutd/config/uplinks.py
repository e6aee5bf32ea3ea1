"""The uplink keys of an ``[[interface]]`` entry and their cross-checks (docs/uplinks.md).

Kept apart from parse.py, whose value checks it reuses; parse.py calls ``parse_uplink`` for
each entry and ``check_uplinks`` once the whole file is read.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from polroutd.config.values import (
    _bool,
    _found,
    _int,
    _seconds,
    _str,
    _str_list,
    _Where,
)
from polroutd.core.limits import MAX_METRIC, MAX_PORT, MAX_RULE_PRIORITY, MAX_WEIGHT
from polroutd.core.settings import DaemonSettings, InterfaceSpec, ProbeSpec, UplinkSpec

UPLINK_KEYS = frozenset({
    "uplink", "uplink_metric", "uplink_weight", "probe", "probe_targets", "probe_interval",
    "probe_timeout", "probe_down", "probe_up",
})
MAX_PROBE_COUNT = 1000  # consecutive results; more would only delay a transition for minutes
# Probe interval and timeout, in seconds: faster than 10 ms is a busy loop, slower than an hour
# is no health check.
PROBE_SECONDS = (0.01, 3600.0)


def parse_uplink(where: _Where, key: str, entry: Mapping[str, Any]) -> UplinkSpec | None:
    """The entry's uplink settings; None when it is no uplink (then no other uplink key)."""
    is_uplink = "uplink" in entry and _bool(where, f"{key}.uplink", entry["uplink"])
    if not is_uplink:
        given = sorted(k for k in UPLINK_KEYS - {"uplink"} if k in entry)
        if given:
            raise where.error(
                f"{key}.{given[0]}", "applies only to an uplink: set uplink = true or remove it"
            )
        return None
    defaults = UplinkSpec()
    probe = _probe(where, f"{key}.probe", entry.get("probe", "none"))
    if "probe_targets" in entry:
        if probe.kind != "icmp":
            raise where.error(
                f"{key}.probe_targets", f'applies only to probe = "icmp", got probe = '
                f'{_found(entry.get("probe", "none"))}',
            )
        targets = _str_list(_target)(where, f"{key}.probe_targets", entry["probe_targets"])
        probe = ProbeSpec(kind="icmp", targets=targets)
    spec = UplinkSpec(
        metric=_int(where, f"{key}.uplink_metric", entry["uplink_metric"], 0, MAX_METRIC)
        if "uplink_metric" in entry else defaults.metric,
        weight=_int(where, f"{key}.uplink_weight", entry["uplink_weight"], 1, MAX_WEIGHT)
        if "uplink_weight" in entry else defaults.weight,
        probe=probe,
        interval=_seconds(where, f"{key}.probe_interval", entry["probe_interval"], *PROBE_SECONDS)
        if "probe_interval" in entry else defaults.interval,
        timeout=_seconds(where, f"{key}.probe_timeout", entry["probe_timeout"], *PROBE_SECONDS)
        if "probe_timeout" in entry else defaults.timeout,
        down=_int(where, f"{key}.probe_down", entry["probe_down"], 1, MAX_PROBE_COUNT)
        if "probe_down" in entry else defaults.down,
        up=_int(where, f"{key}.probe_up", entry["probe_up"], 1, MAX_PROBE_COUNT)
        if "probe_up" in entry else defaults.up,
    )
    return spec


def _target(where: _Where, key: str, value: Any) -> str:
    text = _str(where, key, value)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise where.error(key, f"must be an IPv4 or IPv6 address, got {_found(text)}") from None


def _probe(where: _Where, key: str, value: Any) -> ProbeSpec:
    text = _str(where, key, value)
    if text in ("none", "icmp"):
        return ProbeSpec(kind="none" if text == "none" else "icmp")
    expected = 'must be "none", "icmp" or "tcp:HOST:PORT" (HOST an IP address, [IPv6] in brackets)'
    kind, _, rest = text.partition(":")
    host, _, port = rest.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # an IPv6 host must be bracketed, or its port cannot be told apart
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if kind != "tcp" or address is None or not (port.isascii() and port.isdigit()):
        raise where.error(key, f"{expected}, got {_found(text)}")
    if not 1 <= int(port) <= MAX_PORT:
        raise where.error(key, f"must name a port from 1 to {MAX_PORT}, got {_found(text)}")
    return ProbeSpec(kind="tcp", host=str(address), port=int(port))


def probe_families(spec: UplinkSpec) -> set[int]:
    """IP versions the configured probe targets name (none: the gateway of each family)."""
    if spec.probe.kind == "tcp" and spec.probe.host is not None:
        return {ipaddress.ip_address(spec.probe.host).version}
    return {ipaddress.ip_address(t).version for t in spec.probe.targets}


def check_uplinks(
    where: _Where, daemon: DaemonSettings, interfaces: tuple[InterfaceSpec, ...]
) -> None:
    """Uplinks need the mode on, a gateway that can be known, targets of a family with a
    gateway, and their rules after every per-address rule."""
    uplinks = [(n, spec) for n, spec in enumerate(interfaces, 1) if spec.uplink is not None]
    if daemon.uplinks == "off":
        if uplinks:
            n = uplinks[0][0]
            raise where.error(
                f"interface[{n}].uplink",
                'is true but daemon.uplinks is "off": set it to "failover" or "balance"',
            )
        return
    if not uplinks:
        raise where.error(
            "daemon.uplinks",
            f"is {_found(daemon.uplinks)} but no [[interface]] has uplink = true",
        )
    for n, spec in uplinks:
        assert spec.uplink is not None
        gateways = {4: spec.gateway, 6: spec.gateway6}
        if all(g == "none" for g in gateways.values()):
            raise where.error(
                f"interface[{n}].uplink",
                'needs a gateway, but gateway and gateway6 are both "none"',
            )
        for version in sorted(probe_families(spec.uplink)):
            if gateways[version] == "none":
                key = "probe" if spec.uplink.probe.kind == "tcp" else "probe_targets"
                setting = "gateway" if version == 4 else "gateway6"
                raise where.error(
                    f"interface[{n}].{key}",
                    f'names an IPv{version} target, but {setting} is "none": nothing to probe '
                    "through",
                )
    highest = max(
        [daemon.rule_priority] + [spec.priority for spec in interfaces if spec.priority],
    )
    if daemon.uplink_priority <= highest:
        raise where.error(
            "daemon.uplink_priority",
            f"must come after every per-address rule (above {highest}, below "
            f"{MAX_RULE_PRIORITY}), got {daemon.uplink_priority}",
        )
