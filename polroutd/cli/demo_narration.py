"""The demo's narration: headings, explanations, evidence and verdicts, and how a step that
does not behave as narrated says so (shared by every demo step module)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TextIO

__all__ = ["Narrator", "StepFailed", "check"]


class StepFailed(Exception):
    """A step did not behave as narrated; the message says how."""


def check(condition: bool, failure: str) -> None:
    if not condition:
        raise StepFailed(failure)


# --------------------------------------------------------------------------------------------
# Output


class Narrator:
    """Headings, explanations, evidence and verdicts; ANSI bold/green/red only on a terminal."""

    WIDTH = 92

    def __init__(self, out: TextIO, color: bool) -> None:
        self.out = out
        self.color = color

    def _style(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def heading(self, number: int, title: str) -> None:
        self.line()
        self.line(self._style(f"== {number}. {title}", "1"))

    def say(self, text: str) -> None:
        for paragraph in text.split("\n\n"):
            self.line(textwrap.fill(" ".join(paragraph.split()), self.WIDTH,
                                    initial_indent="   ", subsequent_indent="   "))

    def block(self, text: str, limit: int = 14) -> None:
        lines = [line.replace("\t", "  ").rstrip() for line in text.rstrip().splitlines()]
        if len(lines) > limit:
            lines = [*lines[: limit - 1], f"... ({len(lines) - limit + 1} more lines)"]
        for line in lines:
            self.line(f"      {line}")

    def command(self, prompt: str, command: str, output: str, limit: int = 14) -> None:
        self.line(f"   {self._style(prompt + '#', '1')} {command}")
        if output.strip():
            self.block(output, limit)

    def passed(self, detail: str) -> None:
        self.line(f"   {self._style('✓', '32;1')} {detail}")

    def failed(self, detail: str) -> None:
        self.line(f"   {self._style('✗', '31;1')} {detail}")

    def summary(self, results: Sequence[tuple[int, str, bool]]) -> None:
        self.line()
        self.line(self._style("Summary", "1"))
        for number, title, ok in results:
            mark = self._style("✓", "32;1") if ok else self._style("✗", "31;1")
            self.line(f"   {mark} {number}. {title}")
