"""Checks of single configuration values, shared by parse.py and uplinks.py: each returns the
value or raises a ConfigError naming the file, the key, its line and what was expected."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from polroutd.config.tomllines import line_of
from polroutd.core.errors import ConfigError
from polroutd.core.record import record
from polroutd.core.text import one_line


@record
class _Where:
    """Turns a key into an error that carries the file and, when known, the line."""

    source: str
    lines: Mapping[str, int]

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.source, key, problem, line_of(self.lines, key))


Parser = Callable[[_Where, str, Any], Any]


def _int(where: _Where, key: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise where.error(key, f"must be an integer, got {_found(value)}")
    if not low <= value <= high:
        raise where.error(key, f"must be an integer from {low} to {high}, got {value}")
    return value


def _seconds(where: _Where, key: str, value: Any, low: float, high: float) -> float:
    """A number of seconds from ``low`` to ``high``: below, the daemon would spin; above, a
    value is surely a typo (and would overflow the timers)."""
    # TOML tells 60 from 60.0; both are fine for a number of seconds.
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise where.error(key, f"must be a number of seconds, got {_found(value)}")
    # Compared before float(): an integer of 400 digits does not fit in a float.
    if not low <= value <= high:  # also false for nan
        raise where.error(key, f"must be from {low:g} to {high:g} seconds, got {_found(value)}")
    return float(value)


def _str(where: _Where, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise where.error(key, f"must be a string, got {_found(value)}")
    return value


def _bool(where: _Where, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise where.error(key, f"must be true or false, got {_found(value)}")
    return value


def _str_list(item: Parser) -> Parser:
    def parse(where: _Where, key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise where.error(key, f"must be an array of strings, got {_found(value)}")
        return tuple(item(where, f"{key}[{n}]", v) for n, v in enumerate(value, 1))

    return parse


def _found(value: Any) -> str:
    """A value as the TOML file spells it, kept to one short line for messages."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        import json  # here: only a mistake needs it (not every start)

        shown = json.dumps(value)
        return shown if len(shown) <= 60 else shown[:56] + '..."'
    if isinstance(value, int | float):
        shown = repr(value)
        return shown if len(shown) <= 40 else f"a number of {len(shown)} characters"
    if isinstance(value, list):
        return f"an array of {len(value)}"
    if isinstance(value, dict):
        return "a table"
    return one_line(f"{type(value).__name__} {value}")
