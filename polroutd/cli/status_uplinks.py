"""The uplinks section of ``polroutd status`` (docs/uplinks.md): one line per uplink and family,
and why probes cannot run, when that is so. Pure: a /state document in, lines out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def uplink_lines(doc: Mapping[str, Any], now: float | None) -> list[str]:
    uplinks = doc.get("uplinks")
    if not isinstance(uplinks, list) or not uplinks:
        return []
    lines = [f"uplinks ({len(uplinks)}):"]
    error = doc.get("uplinks_error")
    if isinstance(error, str) and error:
        lines.append(f"  !!! {error}")
    for entry in uplinks:
        if not isinstance(entry, Mapping):
            continue
        health = "up" if entry.get("up") else "DOWN"
        role = "ACTIVE" if entry.get("active") else "standby" if entry.get("up") else "-"
        since = entry.get("since")
        ago = (f" {max(0.0, now - since):.0f} s ago" if isinstance(since, int | float)
               and now is not None else "")
        recent = entry.get("recent_probes") or []
        marks = "".join("+" if p.get("ok") else "-" for p in recent if isinstance(p, Mapping))
        lines.append(
            f"  {entry.get('interface')} {entry.get('family')}  {health} {role}  "
            f"via {entry.get('gateway') or '?'}  metric {entry.get('metric')} weight "
            f"{entry.get('weight')}  last change: {entry.get('cause')}{ago}"
            f"  probe {entry.get('probe')} {marks}".rstrip()
        )
    return lines
