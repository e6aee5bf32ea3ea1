"""Text for one line of output: error messages, HTTP reasons, log fields. Pure."""

from __future__ import annotations


def one_line(text: str, limit: int | None = None) -> str:
    """``text`` with its whitespace runs (newlines included) collapsed to single spaces; cut to
    ``limit`` characters, ending in ``...``, when a limit is given."""
    line = " ".join(text.split())
    if limit is None or len(line) <= limit:
        return line
    return line[: limit - 3] + "..."
