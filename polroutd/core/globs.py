"""Whether two interface-name globs can match the same name (config validation)."""

from __future__ import annotations

from collections import deque
from fnmatch import fnmatchcase

GLOB_CHARS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    return any(c in GLOB_CHARS for c in pattern)


def overlap_witness(a: str, b: str) -> str | None:
    """An interface name both patterns match, or None when there is none.

    A breadth-first search over pairs of positions in the two globs (the product of their
    automata): a step consumes one character both current tokens accept, or lets a ``*`` match
    nothing. Exact for names of printable ASCII characters, which is what interfaces are called.
    """
    if a == b:
        return a
    left, right = _glob_tokens(a), _glob_tokens(b)
    start, end = (0, 0), (len(left), len(right))
    came_from: dict[tuple[int, int], tuple[tuple[int, int], str]] = {}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        if state == end:
            witness = []
            while state != start:
                state, char = came_from[state]
                witness.append(char)
            # Only all-star patterns meet on the empty name, and they match any name.
            return "".join(reversed(witness)) or "x"
        for following, char in _steps(left, right, *state):
            if following not in came_from and following != start:
                came_from[following] = (state, char)
                queue.append(following)
    return None


def _steps(
    left: list[str], right: list[str], i: int, j: int
) -> list[tuple[tuple[int, int], str]]:
    steps = []
    if i < len(left) and left[i] == "*":
        steps.append(((i + 1, j), ""))
    if j < len(right) and right[j] == "*":
        steps.append(((i, j + 1), ""))
    if i < len(left) and j < len(right):
        char = _common_char(left[i], right[j])
        following = (i if left[i] == "*" else i + 1, j if right[j] == "*" else j + 1)
        if char is not None and following != (i, j):
            steps.append((following, char))
    return steps


_NAME_CHARS = "x" + "".join(
    c for c in map(chr, range(33, 127)) if c not in "x/:"
)  # what an interface name may contain ("x" first, for readable witnesses)


def _common_char(x: str, y: str) -> str | None:
    """A character both glob tokens (a literal, "?", "*" or "[...]") accept, if any."""
    for token, other in ((x, y), (y, x)):
        if _is_literal(token):
            return token if _accepts(other, token) else None
    return next((c for c in _NAME_CHARS if _accepts(x, c) and _accepts(y, c)), None)


def _is_literal(token: str) -> bool:
    return token not in ("*", "?") and not (token.startswith("[") and len(token) > 1)


def _accepts(token: str, char: str) -> bool:
    if token in ("*", "?"):
        return True
    if _is_literal(token):
        return token == char
    return fnmatchcase(char, token)


def _glob_tokens(pattern: str) -> list[str]:
    """Splits a glob into literal characters, "*", "?" and "[...]" classes, as fnmatch does."""
    tokens: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "[":
            end = i + 1
            if end < len(pattern) and pattern[end] == "!":
                end += 1
            if end < len(pattern) and pattern[end] == "]":
                end += 1
            end = pattern.find("]", end)
            if end != -1:
                tokens.append(pattern[i : end + 1])
                i = end + 1
                continue
        tokens.append(pattern[i])
        i += 1
    return tokens
