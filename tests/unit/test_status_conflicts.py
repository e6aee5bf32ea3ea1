"""Issue 11, defect 8: ``polroutd status`` shows conflicts and exits 2 when conflicts exist or a
configuration error is pending, even in a document that says in sync."""

from __future__ import annotations

from typing import Any

import pytest

from polroutd.cli import status
from polroutd.core.describe import conflict_json
from polroutd.core.limits import AF_INET
from polroutd.core.model import Conflict, Route
from tests.support.article import article_decision


def _document(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "in_sync": True, "ready": True, "config_error": None, "interfaces": [], "rules": [],
        "routes": [], "conflicts": [], "pending": [], "counters": {"restorations": 4},
    }
    doc.update(changes)
    return doc


def _conflict() -> dict[str, Any]:
    foreign = Route(AF_INET, 30001, "10.225.176.0", 24, 4, oif=3)
    return conflict_json(Conflict("route", "foreign route in table data (30001)", foreign),
                         article_decision().names)


@pytest.mark.parametrize(("changes", "code"), [
    ({}, status.EXIT_IN_SYNC),
    ({"conflicts": "conflict"}, status.EXIT_NOT_IN_SYNC),
    ({"config_error": "/etc/polroutd/polroutd.toml: daemon.bogus: unknown key"},
     status.EXIT_NOT_IN_SYNC),
    ({"in_sync": False}, status.EXIT_NOT_IN_SYNC),
])
def test_status_exits_2_for_conflicts_and_pending_config_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    changes: dict[str, Any], code: int,
) -> None:
    if changes.get("conflicts") == "conflict":
        changes = {"conflicts": [_conflict()]}
    doc = _document(**changes)
    monkeypatch.setattr(status, "fetch_state", lambda url: doc)
    assert status.status_command("http://127.0.0.1:9") == code
    out = capsys.readouterr().out
    assert "restorations 4" in out
    if "conflicts" in changes:
        assert "conflicts with foreign objects (left alone) (1):" in out
        assert "foreign route" in out
