"""``polroutd status``: the summary of /state, and the exit codes against a real HTTP server.

The sample documents come from the real producer (stateview.state_document) and are checked
against the shipped JSON schema, so a change of the document cannot slip past the summary.
"""

from __future__ import annotations

import errno
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

import jsonschema
import pytest

from polroutd.cli.status import (
    EXIT_IN_SYNC,
    EXIT_NOT_IN_SYNC,
    EXIT_UNREACHABLE,
    MalformedState,
    Unreachable,
    fetch_state,
    format_status,
    status_command,
)
from polroutd.core.limits import AF_INET
from polroutd.core.model import Conflict, OpResult, Plan, Route, RouteOp, RuleOp
from polroutd.core.record import replace
from polroutd.core.stateview import LastReconcile, state_document
from tests.support.article import article_decision

AT = 1714564800.0  # 2024-05-01 12:00:00 UTC
SCHEMA = json.loads(resources.files("polroutd").joinpath("state.schema.json").read_text())
COUNTERS = {
    "reconciles_ok": 7, "reconciles_error": 1, "drift": 2, "repairs": 3, "restorations": 5,
    "changes": 11,
    "operation_errors": 1, "netlink_events": 40, "netlink_overruns": 0,
    "config_reloads_ok": 1, "config_reloads_error": 1,
}
CONFIG_ERROR = "/etc/polroutd/polroutd.toml: daemon.bogus: unknown key (line 3)"


def _document(*, lease: bool = True, fail_rule: bool = False,
              config_error: str | None = None) -> dict[str, Any]:
    decision = article_decision(lease=lease)
    results = []
    for op in decision.plan.operations:
        failed = fail_rule and (
            (isinstance(op, RuleOp) and op.rule.src == "10.225.176.38")
            or (isinstance(op, RouteOp) and op.route.gateway == "10.225.176.1"
                and op.route.table == 30001))
        results.append(OpResult(op, errno.ENETUNREACH if failed else 0,
                                "Network is unreachable" if failed else None))
    if fail_rule:  # and a foreign route standing where polroutd wants one
        foreign = Route(AF_INET, 30001, "10.225.176.0", 24, 4, oif=3)
        decision = replace(decision, plan=Plan(decision.plan.operations, conflicts=(
            Conflict("route", "foreign route in table data (30001)", foreign),)))
    failures = tuple(r for r in results if not r.ok)
    doc = state_document(
        decision=decision, results=results,
        last=LastReconcile(at=AT, duration=0.0042, result="error" if failures else "ok",
                           reason="event", operations=len(results), failures=failures),
        counters=COUNTERS, config_file="/etc/polroutd/polroutd.toml", mode="strict",
        protocol=218, config_error=config_error, ready=not failures, in_sync=not failures,
    )
    jsonschema.validate(doc, SCHEMA)  # the samples are real /state documents
    return doc


def in_sync() -> dict[str, Any]:
    return _document()


def not_in_sync() -> dict[str, Any]:
    return _document(fail_rule=True, config_error=CONFIG_ERROR)


# ------------------------------------------------------------------ format_status


def test_in_sync_summary() -> None:
    text = format_status(in_sync(), now=AT + 5)
    lines = text.splitlines()
    assert lines[0].startswith("polroutd ") and lines[0].endswith(": in sync")
    assert lines[1] == ("last reconcile: 2024-05-01 12:00:00 UTC (5 s ago), ok, reason event, "
                        "4.2 ms, 12 operation(s)")
    assert "config: /etc/polroutd/polroutd.toml, mode strict, protocol 218" in lines
    assert "CONFIGURATION ERROR" not in text
    assert "  ens192  up, carrier  table mgt(30000)  priority 30000" in lines
    assert "    gateway ipv4: 10.225.160.1 (from main-table)" in lines
    assert "    gateway ipv4: 10.225.176.1 (from dhcp-lease)" in lines
    assert "    gateway ipv6: fe80::1 (from main-table)" in lines
    assert "rules: 3 desired, all present" in lines
    assert "  ok       from 10.225.176.38 lookup data priority 30000" in lines
    assert "  table data(30001): 5 route(s), all present" in lines
    assert "  table main(254): 1 route(s), all present" in lines
    assert "conflicts with foreign objects (left alone): none" in lines
    assert "pending operations (retried): none" in lines
    assert ("counters: drift 2, repairs 3, restorations 5, changes 11, errors 1, events 40, "
            "overruns 0" in lines)
    assert "MISSING" not in text


def test_not_in_sync_with_a_config_error() -> None:
    text = format_status(not_in_sync())
    lines = text.splitlines()
    assert lines[0].endswith(": NOT in sync (not ready)")
    assert lines[1:4] == [
        "!!! CONFIGURATION ERROR - the reload was refused and the previous",
        "!!! configuration stays in force until this is fixed:",
        f"!!!   {CONFIG_ERROR}",
    ]
    assert lines[5].startswith("last reconcile: 2024-05-01 12:00:00 UTC, ERROR, reason event")
    assert ("  failed: + rule from 10.225.176.38 lookup data priority 30000 "
            "(ENETUNREACH: Network is unreachable)") in lines
    assert "rules: 3 desired, 2 present, 1 MISSING" in lines
    assert "  MISSING  from 10.225.176.38 lookup data priority 30000" in lines
    assert "conflicts with foreign objects (left alone) (1):" in lines
    assert any(line.startswith("  foreign route in table data (30001): 10.225.176.0/24")
               for line in lines)
    assert "routes: 9 desired, 8 present, 1 MISSING" in lines
    assert "  table data(30001): 5 route(s), 1 MISSING" in lines
    assert "    MISSING  default via 10.225.176.1 dev ens224 table data" in lines
    assert "  table mgt(30000): 3 route(s), all present" in lines
    assert "pending operations (retried) (2):" in lines
    assert ("  + rule from 10.225.176.38 lookup data priority 30000  (ENETUNREACH)"
            in lines)


def test_missing_gateway_says_why() -> None:
    lines = format_status(_document(lease=False)).splitlines()
    ens224 = lines.index("  ens224  up, carrier  table data(30001)  priority 30000")
    assert lines[ens224 + 1] == "    addresses: 10.225.176.38/24 2001:db8:176::38/64"
    assert lines[ens224 + 2] == (
        "    gateway ipv4: NONE - no ipv4 default route via ens224 in the main table "
        "and no readable DHCP lease names a router")
    assert lines[ens224 + 3] == "    gateway ipv6: fe80::1 (from main-table)"


def test_before_the_first_reconcile() -> None:
    doc = state_document(decision=None, results=[], last=None, counters=COUNTERS,
                         config_file="<defaults>", mode="strict", protocol=218,
                         config_error=None, ready=False, in_sync=False)
    text = format_status(doc)
    assert "last reconcile: none yet" in text and "interfaces: none managed" in text


def _broken(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    doc = in_sync()
    change(doc)
    return doc


MALFORMED = [
    ([], "not an object"),
    ({"error": "not found"}, "'in_sync' is missing"),
    (_broken(lambda d: d.update(in_sync="yes")), "'in_sync' is str"),
    (_broken(lambda d: d.update(rules={})), "'rules' is dict"),
    (_broken(lambda d: d["interfaces"][0].pop("name")), "interfaces[0].'name' is missing"),
    (_broken(lambda d: d["routes"][1].update(table="main")), "routes[1].table is not a table"),
    (_broken(lambda d: d["rules"].append(7)), "rules[3] is int"),
    (_broken(lambda d: d.update(counters=None)), "'counters' is NoneType"),
    (_broken(lambda d: d["last_reconcile"].pop("at")), "last_reconcile: 'at' is missing"),
]


@pytest.mark.parametrize(("doc", "problem"), MALFORMED)
def test_malformed_documents_are_named(doc: Any, problem: str) -> None:
    with pytest.raises(MalformedState, match=problem.replace("[", r"\[").replace("(", r"\(")):
        format_status(doc)


# ------------------------------------------------------------------ status_command over HTTP


class _Canned(BaseHTTPRequestHandler):
    body: bytes = b""
    status: int = 200

    def do_GET(self) -> None:
        if self.path != "/state":
            self.send_error(404)
            return
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Callable[[bytes, int], str]]:
    """A tiny HTTP server on 127.0.0.1:<free port>; call it with the body to serve."""
    class Handler(_Canned):  # its own class: the canned answer is per test
        pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()

    def serve(body: bytes, status: int = 200) -> str:
        Handler.body, Handler.status = body, status
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    try:
        yield serve
    finally:
        httpd.shutdown()
        httpd.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_in_sync_exits_0(server: Callable[[bytes, int], str],
                         capsys: pytest.CaptureFixture[str],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # must be ignored: local daemon
    url = server(json.dumps(in_sync()).encode(), 200)
    assert status_command(url) == EXIT_IN_SYNC
    out = capsys.readouterr()
    assert out.out.splitlines()[0].endswith(": in sync") and out.err == ""


def test_not_in_sync_exits_2(server: Callable[[bytes, int], str],
                             capsys: pytest.CaptureFixture[str]) -> None:
    url = server(json.dumps(not_in_sync()).encode(), 200)
    assert status_command(url + "/") == EXIT_NOT_IN_SYNC  # a trailing slash is fine
    assert "!!! CONFIGURATION ERROR" in capsys.readouterr().out


def test_url_without_scheme(server: Callable[[bytes, int], str]) -> None:
    url = server(json.dumps(in_sync()).encode(), 200)
    assert status_command(url.removeprefix("http://")) == EXIT_IN_SYNC


def test_unreachable_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    assert status_command(url) == EXIT_UNREACHABLE
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == (f"polroutd: cannot reach the daemon at {url}: Connection refused "
                       "(is polroutd running? is http_listen set?)\n")


@pytest.mark.parametrize(("body", "status", "problem"), [
    (b"<html>hello</html>", 200, "not JSON"),
    (b"\xff\xfe", 200, "not JSON"),
    (b'["a", "list"]', 200, "the document is list, not an object"),
    (b'{"in_sync": true}', 200, "'counters' is missing"),
    (b'{"error": "down"}', 503, "HTTP 503"),
])
def test_answers_that_are_not_state_exit_1(
    server: Callable[[bytes, int], str], capsys: pytest.CaptureFixture[str],
    body: bytes, status: int, problem: str,
) -> None:
    url = server(body, status)
    assert status_command(url) == EXIT_UNREACHABLE
    out = capsys.readouterr()
    lines = out.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in out.err
    assert lines[0].startswith(f"polroutd: the answer of {url}/state is not a polroutd state")
    assert problem in lines[0] and out.out == ""


def test_a_daemon_that_never_answers_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(Unreachable, match=r"no answer within 0\.3 s"):
            fetch_state(url, timeout=0.3)
        assert time.monotonic() - started < 2
