"""One listen-address rule for the configuration and the HTTP server (polroutd.core.listen)."""

from __future__ import annotations

import pytest

from polroutd.core.listen import ListenAddress, parse_listen


@pytest.mark.parametrize(("listen", "expected"), [
    ("127.0.0.1:9641", ("127.0.0.1", 9641)),
    ("0.0.0.0:1", ("0.0.0.0", 1)),
    ("[::1]:9641", ("::1", 9641)),
    ("[::]:65535", ("::", 65535)),
])
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == ListenAddress(*expected)


@pytest.mark.parametrize("listen", [
    "", "9641", ":9641", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
    "127.0.0.1:http", "localhost:9641", "::1:9641", "[::1]9641", "[127.0.0.1]:9641",
    "[::1]:", "127.0.0.1:٩٦", "127.0.0.1: 80",
    # Port 0 would bind a random port that no scraper or probe could be pointed at.
    "127.0.0.1:0", "[::1]:0",
])
def test_parse_listen_refuses(listen: str) -> None:
    with pytest.raises(ValueError, match=r"^must "):
        parse_listen(listen)


def test_ipv6_without_brackets_says_so() -> None:
    with pytest.raises(ValueError, match="brackets"):
        parse_listen("::1:9641")
