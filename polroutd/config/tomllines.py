"""Where keys stand in a TOML text, so configuration errors can name a line."""

from __future__ import annotations

import bisect
import contextlib
import re
from collections.abc import Mapping


def line_of(lines: Mapping[str, int], key: str) -> int | None:
    """The line of ``key``, else of the closest enclosing key or table the text shows."""
    while key:
        if key in lines:
            return lines[key]
        parent = re.sub(r"(\[\d+\]|\.?[^.\[]+)$", "", key)
        if parent == key:
            return None
        key = parent
    return None


def key_lines(text: str) -> dict[str, int]:
    """Where each key, table and array element is defined in TOML text tomllib accepted.

    Keys are spelled like ``ConfigError`` keys: ``daemon.debounce``, ``interface[2]``,
    ``interface[1].routes[1].via``. Best effort: on anything unexpected it stops and returns
    what it found so far, since it only improves messages.
    """
    scanner = _KeyScanner(text)
    with contextlib.suppress(IndexError, ValueError):
        scanner.document()
    return scanner.found


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR = re.compile(r"[^,\]}\n#]+")


class _KeyScanner:
    """A reader of just enough TOML structure to know the line of every key."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.found: dict[str, int] = {}
        self.array_tables: dict[str, int] = {}  # "[[x]]" path -> how many seen so far
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line(self) -> int:
        return bisect.bisect_right(self.line_starts, self.pos)

    def note(self, key: str, line: int) -> None:
        self.found.setdefault(key, line)

    def at(self, token: str) -> bool:
        return self.text.startswith(token, self.pos)

    def skip(self, *, newlines: bool) -> None:
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in " \t" or (newlines and char in "\r\n"):
                self.pos += 1
            elif newlines and char == "#":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end == -1 else end
            else:
                return

    def document(self) -> None:
        table = ""
        while True:
            self.skip(newlines=True)
            if self.pos >= len(self.text):
                return
            line = self.line()
            if self.at("[["):
                self.pos += 2
                parts = self.key_parts()
                array = _join(self.resolve(parts[:-1]), parts[-1])
                count = self.array_tables[array] = self.array_tables.get(array, 0) + 1
                table = f"{array}[{count}]"
                self.expect("]]")
                self.note(table, line)
            elif self.at("["):
                self.pos += 1
                table = self.resolve(self.key_parts())
                self.expect("]")
                self.note(table, line)
            else:
                self.key_value(table)

    def resolve(self, parts: list[str]) -> str:
        path = ""
        for part in parts:
            path = _join(path, part)
            if path in self.array_tables:
                path = f"{path}[{self.array_tables[path]}]"
        return path

    def expect(self, token: str) -> None:
        self.skip(newlines=False)
        if not self.at(token):
            raise ValueError(token)
        self.pos += len(token)

    def key_parts(self) -> list[str]:
        parts = []
        while True:
            self.skip(newlines=False)
            if self.at('"') or self.at("'"):
                start = self.pos + 1
                self.string()
                parts.append(self.text[start : self.pos - 1])
            else:
                bare = _BARE_KEY.match(self.text, self.pos)
                if bare is None:
                    raise ValueError("key")
                parts.append(bare.group())
                self.pos = bare.end()
            self.skip(newlines=False)
            if not self.at("."):
                return parts
            self.pos += 1

    def key_value(self, table: str) -> None:
        line = self.line()
        key = _join(table, ".".join(self.key_parts()))
        self.expect("=")
        self.note(key, line)
        self.skip(newlines=False)
        self.value(key)

    def value(self, key: str) -> None:
        if self.at("["):
            self.pos += 1
            count = 0
            while True:
                self.skip(newlines=True)
                if self.at("]"):
                    self.pos += 1
                    return
                count += 1
                self.note(f"{key}[{count}]", self.line())
                self.value(f"{key}[{count}]")
                self.skip(newlines=True)
                if self.at(","):
                    self.pos += 1
        elif self.at("{"):
            self.pos += 1
            while True:
                self.skip(newlines=False)
                if self.at("}"):
                    self.pos += 1
                    return
                self.key_value(key)
                self.skip(newlines=False)
                if self.at(","):
                    self.pos += 1
        elif self.at('"') or self.at("'"):
            self.string()
        else:
            scalar = _SCALAR.match(self.text, self.pos)
            if scalar is None:
                raise ValueError("value")
            self.pos = scalar.end()

    def string(self) -> None:
        quote = self.text[self.pos]
        delimiter = quote * 3 if self.at(quote * 3) else quote
        self.pos += len(delimiter)
        while not self.at(delimiter):
            if self.pos >= len(self.text):
                raise ValueError("string")
            # Only basic strings have escapes; literal strings end at the first quote.
            self.pos += 2 if quote == '"' and self.text[self.pos] == "\\" else 1
        self.pos += len(delimiter)
        while len(delimiter) == 3 and self.at(quote):  # """a"""" ends with a quote inside
            self.pos += 1


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key
