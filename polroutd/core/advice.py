"""Warnings about a valid configuration that probably does not do what was meant. Pure.

Once any ``[[interface]]`` entry exists, ``exclude`` no longer applies: only the entries say
what is managed. An entry that matches a container or VM bridge (``docker0``, ``virbr0``)
turns that bridge into a managed interface with a table of its own, and its routes are then
no longer copied into the other tables, so the containers behind it become unreachable from
the other interfaces' addresses (see docs/guide.md, "exclude and [[interface]]").
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from polroutd.core.globs import overlap_witness
from polroutd.core.model import Link
from polroutd.core.settings import DEFAULT_EXCLUDE, Config

_CONSEQUENCE = (
    "with [[interface]] entries exclude no longer applies, so it would get a managed table "
    "and its routes would no longer be copied into the other tables (containers behind it "
    "unreachable from the other addresses); name the interfaces exactly if that is not meant"
)


def interface_warnings(config: Config, links: Iterable[Link] = ()) -> list[str]:
    """One line per ``[[interface]]`` entry that matches an ``exclude`` pattern (the
    configured ones and the built-in defaults) or a bridge among ``links`` (the kernel's,
    when they could be read)."""
    patterns = tuple(dict.fromkeys((*config.daemon.exclude, *DEFAULT_EXCLUDE)))
    bridges = sorted(link.name for link in links if link.kind == "bridge")
    warnings = []
    for n, spec in enumerate(config.interfaces, 1):
        where = f"interface[{n}].name {spec.name!r}"
        matched = [b for b in bridges if fnmatchcase(b, spec.name)]
        if matched:
            warnings.append(f"{where} matches the bridge {', '.join(matched)}: {_CONSEQUENCE}")
            continue
        for pattern in patterns:
            witness = overlap_witness(spec.name, pattern)
            if witness is not None:
                warnings.append(
                    f"{where} matches names the exclude pattern {pattern!r} leaves alone (such "
                    f"as {witness!r}): {_CONSEQUENCE}"
                )
                break
    return warnings
