"""The read-only HTTP API against a real server on 127.0.0.1 (port 0) and a fake provider."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from importlib import resources
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from polroutd.adapters.http import (
    SHUTDOWN_TIMEOUT,
    HttpServer,
    StateProvider,
    create_app,
    openapi_document,
)
from polroutd.adapters.metrics import Metrics

PATHS = ("/healthz", "/readyz", "/metrics", "/state", "/openapi.json")

SAMPLE_STATE: dict[str, Any] = {
    "version": "0.1.0",
    "in_sync": False,
    "ready": True,
    "last_reconcile": {
        "at": 1700000000.0, "duration_seconds": 0.004, "result": "error", "reason": "event",
        "operations": 3,
        "errors": [
            {"text": "+ route default via 10.225.176.1 dev ens224 table data", "errno": "ENETDOWN",
             "message": None},
            {"text": "read kernel state", "errno": None, "message": "injected read failure"},
        ],
    },
    "config_error": None,
    "config_file": "/etc/polroutd/polroutd.toml",
    "mode": "main-first",
    "protocol": 218,
    "interfaces": [
        {
            "name": "ens224", "index": 3, "up": True, "carrier": True,
            "addresses": ["10.225.176.38/24", "2001:db8:176::38/64"], "priority": 30000,
            "table": {"id": 30001, "name": "data"},
            "gateway": {
                "ipv4": {"address": "10.225.176.1", "source": "dhcp-lease", "reason": None},
                "ipv6": {"address": None, "source": None,
                         "reason": "no ipv6 default route via ens224 in the main table"},
            },
        },
        {
            "name": "ppp0", "index": 7, "up": True, "carrier": False,
            "addresses": ["192.0.2.7/32"], "priority": 30010,
            "table": {"id": 30002, "name": None},
            "gateway": {
                "ipv4": {"address": None, "source": "main-table", "reason": None,
                         "device_route": True},
                "ipv6": {"address": "fe80::1", "source": "config", "reason": None},
            },
        },
    ],
    "rules": [
        {"family": "ipv4", "priority": 30000, "from": "10.225.176.38", "table": 30001,
         "table_name": "data", "suppress_prefixlength": None, "protocol": 218,
         "text": "from 10.225.176.38 lookup data priority 30000", "present": True},
        {"family": "ipv4", "priority": 29999, "from": "all", "table": 254, "table_name": "main",
         "suppress_prefixlength": 0, "protocol": 218,
         "text": "from all lookup main suppress_prefixlength 0 priority 29999", "present": False},
    ],
    "routes": [
        {"family": "ipv4", "table": 30001, "table_name": "data", "dst": "default",
         "gateway": "10.225.176.1", "dev": "ens224", "src": None, "metric": 0, "protocol": 218,
         "text": "default via 10.225.176.1 dev ens224 table data", "present": False},
        {"family": "ipv4", "table": 30001, "table_name": "data", "dst": "10.225.176.0/24",
         "gateway": None, "dev": "ens224", "src": "10.225.176.38", "metric": 0, "protocol": 218,
         "text": "10.225.176.0/24 dev ens224 table data scope link src 10.225.176.38",
         "present": True},
    ],
    "conflicts": [
        {"kind": "route", "message": "a foreign route holds this key",
         "text": "a foreign route holds this key: default via 10.0.0.1 dev ens224 table data "
                 "proto static"},
    ],
    "pending": [
        {"kind": "route", "op": "add", "errno": "ENETDOWN",
         "text": "+ route default via 10.225.176.1 dev ens224 table data"},
        {"kind": "rule", "op": "delete", "text": "- rule from 10.225.176.9 lookup data"},
    ],
    "counters": {
        "reconciles_ok": 1, "reconciles_error": 1, "drift": 0, "repairs": 0, "changes": 3,
        "operation_errors": 1, "netlink_events": 10, "netlink_overruns": 0,
        "config_reloads_ok": 0, "config_reloads_error": 0,
    },
}


class FakeProvider:
    def __init__(self, *, alive: bool = True, ready: bool = True,
                 state: dict[str, Any] | None = None, metrics: Metrics | None = None) -> None:
        self.alive = alive
        self.ready = ready
        self.document = SAMPLE_STATE if state is None else state
        self.registry = metrics or Metrics()
        self.calls = 0

    def health(self) -> tuple[bool, str]:
        self.calls += 1
        return self.alive, "ok" if self.alive else "netlink event socket is closed"

    def readiness(self) -> tuple[bool, str]:
        self.calls += 1
        return self.ready, "ready" if self.ready else "the first reconcile has not\nconverged yet"

    def state(self) -> dict[str, Any]:
        self.calls += 1
        return self.document

    def state_version(self) -> int:
        return self.calls  # every call a new version: each request sees the document as is

    def metrics(self) -> bytes:
        self.calls += 1
        return self.registry.exposition()


class BrokenProvider:
    """Every call fails the way a daemon bug would."""

    def health(self) -> tuple[bool, str]:
        raise RuntimeError("event loop\nwedged")

    def readiness(self) -> tuple[bool, str]:
        raise KeyError("status")

    def state(self) -> dict[str, Any]:
        raise ValueError("half-built decision")

    def state_version(self) -> int:
        return 0

    def metrics(self) -> bytes:
        raise OSError("registry gone")


Serve = Callable[[StateProvider], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Starts servers on 127.0.0.1:0 and returns their base URL; stops them afterwards."""
    servers: list[HttpServer] = []

    async def start(provider: StateProvider) -> str:
        server = HttpServer(provider, "127.0.0.1", 0)
        await server.start()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# --- the endpoints ------------------------------------------------------------------------------


async def test_healthz_and_readyz_ok(serve: Serve, client: aiohttp.ClientSession) -> None:
    base = await serve(FakeProvider())
    async with client.get(base + "/healthz") as resp:
        assert (resp.status, await resp.text()) == (200, "ok\n")
        assert resp.content_type == "text/plain"
    async with client.get(base + "/readyz") as resp:
        assert (resp.status, await resp.text()) == (200, "ready\n")


async def test_unhealthy_and_not_ready_are_503_with_one_line_reason(
    serve: Serve, client: aiohttp.ClientSession
) -> None:
    base = await serve(FakeProvider(alive=False, ready=False))
    async with client.get(base + "/healthz") as resp:
        assert (resp.status, await resp.text()) == (503, "netlink event socket is closed\n")
    async with client.get(base + "/readyz") as resp:
        assert (resp.status, await resp.text()) == (
            503, "the first reconcile has not converged yet\n")


async def test_state_is_the_providers_document(serve: Serve, client: aiohttp.ClientSession) -> None:
    base = await serve(FakeProvider())
    async with client.get(base + "/state") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert await resp.json() == SAMPLE_STATE


async def test_metrics_content_type_and_body(serve: Serve, client: aiohttp.ClientSession) -> None:
    metrics = Metrics()
    metrics.reconciles.labels(result="ok").inc(7)
    base = await serve(FakeProvider(metrics=metrics))
    async with client.get(base + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == CONTENT_TYPE_LATEST
        assert 'polroutd_reconciles_total{result="ok"} 7.0' in await resp.text()


@pytest.mark.parametrize("path", PATHS)
async def test_head_answers_like_get_without_body(
    serve: Serve, client: aiohttp.ClientSession, path: str
) -> None:
    base = await serve(FakeProvider())
    async with client.get(base + path) as get:
        get_body = await get.read()
    async with client.head(base + path) as head:
        assert head.status == 200
        assert await head.read() == b""
        assert head.headers["Content-Type"] == get.headers["Content-Type"]
        assert int(head.headers["Content-Length"]) == len(get_body)


@pytest.mark.parametrize("path", PATHS)
async def test_every_answer_is_no_store(
    serve: Serve, client: aiohttp.ClientSession, path: str
) -> None:
    for provider in (FakeProvider(), FakeProvider(alive=False, ready=False), BrokenProvider()):
        base = await serve(provider)
        async with client.get(base + path) as resp:
            assert resp.headers["Cache-Control"] == "no-store", (path, resp.status)
    async with client.get(base + "/nowhere") as resp:
        assert resp.headers["Cache-Control"] == "no-store"
    async with client.post(base + path) as resp:
        assert resp.headers["Cache-Control"] == "no-store"


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS[:4])
async def test_a_failing_provider_is_503_not_500(
    serve: Serve, client: aiohttp.ClientSession, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    base = await serve(BrokenProvider())
    with caplog.at_level(logging.WARNING, logger="polroutd.http"):
        async with client.get(base + path) as resp:
            assert resp.status == 503
            body = await resp.text()
    reason = json.loads(body)["error"] if path in ("/metrics", "/state") else body
    assert reason.count("\n") <= 1 and reason.strip(), body
    assert "failed" in reason
    assert any(r.exc_info for r in caplog.records), "the provider's exception must be logged"


async def test_an_unserialisable_state_is_503(serve: Serve, client: aiohttp.ClientSession) -> None:
    for document in ({"in_sync": float("nan")}, {"interfaces": {object()}}):
        base = await serve(FakeProvider(state=document))
        async with client.get(base + "/state") as resp:
            assert resp.status == 503
            assert "state failed" in (await resp.json())["error"]


async def test_a_provider_returning_garbage_is_503(
    serve: Serve, client: aiohttp.ClientSession
) -> None:
    class Garbage(FakeProvider):
        def health(self) -> tuple[bool, str]:
            return None  # type: ignore[return-value]

    base = await serve(Garbage())
    async with client.get(base + "/healthz") as resp:
        assert resp.status == 503


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
@pytest.mark.parametrize("path", PATHS)
async def test_other_methods_are_405_with_allow(
    serve: Serve, client: aiohttp.ClientSession, path: str, method: str
) -> None:
    provider = FakeProvider()
    base = await serve(provider)
    async with client.request(method, base + path, data=b"x=1") as resp:
        assert resp.status == 405
        assert set(resp.headers["Allow"].split(",")) == {"GET", "HEAD"}
        assert "error" in await resp.json()
    assert provider.calls == 0, "a refused method must not reach the provider"


def raw_request(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Sends bytes exactly as given (no client-side URL normalisation) and reads the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, status, *_ = status_line.split(" ")
    assert version.startswith("HTTP/1."), status_line
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status), headers, body


def get_raw(port: int, target: bytes, method: bytes = b"GET") -> tuple[int, dict[str, str], bytes]:
    return raw_request(
        port, method + b" " + target + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )


@pytest.fixture(scope="module")
def threaded_port() -> Iterator[int]:
    """One server in its own thread and loop, for synchronous (raw socket, Hypothesis) tests."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="httpapi-test-loop", daemon=True)
    thread.start()
    server = HttpServer(FakeProvider(), "127.0.0.1", 0)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    try:
        yield server.port
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.mark.parametrize("target", [
    b"/", b"/nowhere", b"/healthz/", b"//healthz", b"/HEALTHZ", b"/state.json",
    b"/../etc/passwd", b"/..%2f..%2fetc%2fpasswd", b"/%2e%2e/%2e%2e/etc/passwd",
    b"/healthz%00", b"/%00", b"/state%00.json", b"/%ff%fe",
    b"/" + b"a" * 4000, b"/state/" + b"../" * 1000,
])
def test_unknown_paths_are_404_json(threaded_port: int, target: bytes) -> None:
    status, headers, body = get_raw(threaded_port, target)
    assert status == 404, (target[:60], status, body[:200])
    assert headers["content-type"].startswith("application/json")
    assert set(json.loads(body)) == {"error"}


@pytest.mark.parametrize("target", [b"/" + b"a" * 20000, b"/\xff\xfe", b"/healthz\x00"])
def test_what_the_parser_refuses_is_a_client_error(threaded_port: int, target: bytes) -> None:
    status, _, _ = get_raw(threaded_port, target)  # over the line limit, raw non-ASCII or NUL
    assert 400 <= status < 500


# aiohttp 3.8 (Debian 12's python3-aiohttp) never answers a CONNECT whose target has raw
# non-ASCII bytes (yarl raises in its request factory, outside its error handling; the client
# waits until it gives up); 3.9 and later answer 400. No 5xx either way.
OLD_AIOHTTP = tuple(int(part) for part in aiohttp.__version__.split(".")[:2]) < (3, 9)

TOKEN = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
METHODS = st.one_of(
    st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
                     "CONNECT", "PROPFIND", "get"]),
    st.text(alphabet=TOKEN, min_size=1, max_size=12),
)
TARGETS = st.one_of(
    st.sampled_from(PATHS),
    st.builds(lambda p, q: p + q, st.sampled_from(PATHS), st.text(max_size=30).map(
        lambda s: "?" + s.encode("utf-8", "surrogatepass").hex())),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=300)
    .map(lambda s: "/" + s),
    st.binary(max_size=200).map(lambda b: "/" + "".join(f"%{c:02x}" for c in b)),
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=METHODS, target=TARGETS,
       raw_bytes=st.binary(max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b))
def test_no_request_ever_gets_a_5xx(
    threaded_port: int, method: str, target: str, raw_bytes: bytes
) -> None:
    for sent in (target.encode(), target.encode() + raw_bytes):
        if OLD_AIOHTTP and method == "CONNECT" and not sent.isascii():
            continue
        status, _, _ = get_raw(threaded_port, sent, method.encode())
        assert status < 500, (method, sent, status)
        known = sent == target.encode() and target.partition("?")[0] in PATHS
        if known and method != "CONNECT":  # CONNECT's target is a host:port, not a path
            # Methods the parser knows get 405; ones it does not know it refuses with 400.
            allowed = {200} if method in ("GET", "HEAD") else {400, 405}
            assert status in allowed, (method, target, status)


# --- documents ----------------------------------------------------------------------------------


def load_package_json(name: str) -> Any:
    return json.loads(resources.files("polroutd").joinpath(name).read_text("utf-8"))


def state_validator() -> Draft202012Validator:
    schema = load_package_json("state.schema.json")
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_the_sample_state_validates() -> None:
    state_validator().validate(SAMPLE_STATE)


def test_a_freshly_started_daemons_state_validates() -> None:
    starting = {**SAMPLE_STATE, "last_reconcile": None, "ready": False, "interfaces": [],
                "rules": [], "routes": [], "conflicts": [], "pending": [],
                "config_file": "<defaults>", "mode": "strict",
                "config_error": "polroutd.toml:3: [daemon] mode: must be strict or main-first"}
    state_validator().validate(starting)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split(".")

    def mutate(doc: dict[str, Any]) -> None:
        node: Any = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is _DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


_DELETE = object()

MUTATIONS = {
    "missing in_sync": _set("in_sync", _DELETE),
    "missing counters": _set("counters", _DELETE),
    "missing config_error": _set("config_error", _DELETE),
    "in_sync as string": _set("in_sync", "yes"),
    "unknown top-level key": _set("insync", True),
    "unknown mode": _set("mode", "loose"),
    "protocol out of range": _set("protocol", 256),
    "bad reconcile result": _set("last_reconcile.result", "maybe"),
    "bad reconcile reason": _set("last_reconcile.reason", "cron"),
    "negative duration": _set("last_reconcile.duration_seconds", -1),
    "error without errno key": _set("last_reconcile.errors.0.errno", _DELETE),
    "multi-line config_error": _set("config_error", "line one\nline two"),
    "interface without table": _set("interfaces.0.table", _DELETE),
    "table name as number": _set("interfaces.0.table.name", 7),
    "address without prefix": _set("interfaces.0.addresses.0", "10.225.176.38"),
    "unknown gateway source": _set("interfaces.0.gateway.ipv4.source", "guess"),
    "gateway address without source": _set("interfaces.0.gateway.ipv4.source", None),
    "no gateway and no reason": _set("interfaces.0.gateway.ipv6.reason", None),
    "gateway with address and reason": _set("interfaces.0.gateway.ipv4.reason", "why"),
    "device route from config": _set("interfaces.1.gateway.ipv4.source", "config"),
    "device_route not boolean": _set("interfaces.1.gateway.ipv4.device_route", "yes"),
    "device route with address": _set("interfaces.1.gateway.ipv4.address", "192.0.2.1"),
    "missing ipv6 gateway": _set("interfaces.0.gateway.ipv6", _DELETE),
    "rule without present": _set("rules.0.present", _DELETE),
    "rule family ipx": _set("rules.0.family", "ipx"),
    "route metric negative": _set("routes.0.metric", -1),
    "route without text": _set("routes.1.text", _DELETE),
    "conflict kind link": _set("conflicts.0.kind", "link"),
    "pending op flush": _set("pending.0.op", "flush"),
    "counter negative": _set("counters.drift", -1),
    "counter as float": _set("counters.repairs", 1.5),
    "missing counter": _set("counters.netlink_overruns", _DELETE),
}


@pytest.mark.parametrize("name", MUTATIONS)
def test_a_mutated_state_does_not_validate(name: str) -> None:
    doc = copy.deepcopy(SAMPLE_STATE)
    MUTATIONS[name](doc)
    assert not state_validator().is_valid(doc), name


def test_openapi_lists_exactly_the_served_paths() -> None:
    document = load_package_json("openapi.json")
    assert document["openapi"].startswith("3.1.")
    app = create_app(FakeProvider())
    served = {resource.canonical for resource in app.router.resources()}
    assert set(document["paths"]) == served == set(PATHS)
    for path, item in document["paths"].items():
        assert set(item) == {"get"}, path
        assert "200" in item["get"]["responses"], path


def test_shipped_openapi_refers_to_the_shipped_schema() -> None:
    document = load_package_json("openapi.json")
    state_200 = document["paths"]["/state"]["get"]["responses"]["200"]
    assert state_200["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/State"}
    assert document["components"]["schemas"]["State"] == {"$ref": "state.schema.json"}


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(document: Any, ref: str) -> Any:
    node = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


async def test_served_openapi_stands_alone_and_validates_state(
    serve: Serve, client: aiohttp.ClientSession
) -> None:
    base = await serve(FakeProvider())
    async with client.get(base + "/openapi.json") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        served = json.loads(await resp.read())
    assert served == openapi_document()
    refs = list(_refs(served))
    assert refs and all(ref.startswith("#/") for ref in refs), refs
    for ref in refs:
        _resolve(served, ref)  # every reference points at something
    # Validate through the bundled copy, with the whole document as the resolution root.
    via_openapi = Draft202012Validator({"$ref": "#/components/schemas/State", **served})
    via_openapi.validate(SAMPLE_STATE)
    broken = copy.deepcopy(SAMPLE_STATE)
    broken["interfaces"][0]["gateway"]["ipv4"]["source"] = "guess"
    assert not via_openapi.is_valid(broken)


# --- metrics (docs/behaviour.md §3.3) -----------------------------------------------------------

SPEC_METRICS: dict[str, tuple[str, set[str]]] = {
    "polroutd_reconciles_total": ("counter", {"result"}),
    "polroutd_reconcile_duration_seconds_bucket": ("histogram", {"le", "mode"}),
    "polroutd_drift_detected_total": ("counter", {"kind", "change"}),
    "polroutd_repairs_total": ("counter", {"kind", "op"}),
    "polroutd_changes_total": ("counter", {"kind", "op"}),
    "polroutd_operation_errors_total": ("counter", {"kind", "op", "errno"}),
    "polroutd_netlink_events_total": ("counter", {"type"}),
    "polroutd_netlink_overruns_total": ("counter", set()),
    "polroutd_managed_interfaces": ("gauge", set()),
    "polroutd_owned_rules": ("gauge", set()),
    "polroutd_owned_routes": ("gauge", set()),
    "polroutd_in_sync": ("gauge", set()),
    "polroutd_last_success_timestamp_seconds": ("gauge", set()),
    "polroutd_interface_gateway_present": ("gauge", {"interface", "family"}),
    "polroutd_config_reloads_total": ("counter", {"result"}),
    "polroutd_build_info": ("gauge", {"version"}),
}


def _exercised_metrics() -> Metrics:
    """Metrics with one child per labelled metric, as a running daemon would have them."""
    m = Metrics()
    m.reconciles.labels(result="ok").inc()
    m.reconcile_duration.labels(mode="full").observe(0.004)
    m.drift.labels(kind="rule", change="missing").inc()
    m.repairs.labels(kind="rule", op="add").inc()
    m.changes.labels(kind="route", op="replace").inc()
    m.operation_errors.labels(kind="route", op="add", errno="ENETDOWN").inc()
    m.netlink_events.labels(type="address").inc(3)
    m.netlink_overruns.inc()
    m.gateway_present.labels(interface="ens224", family="ipv4").set(1)
    return m


@pytest.mark.parametrize("exercised", [False, True])
async def test_metrics_carry_every_spec_name_and_label(
    serve: Serve, client: aiohttp.ClientSession, exercised: bool
) -> None:
    base = await serve(FakeProvider(metrics=_exercised_metrics() if exercised else Metrics()))
    async with client.get(base + "/metrics") as resp:
        text = await resp.text()
    families = list(text_string_to_metric_families(text))
    types = {s.name: f.type for f in families for s in f.samples}
    labels = {s.name: set(s.labels) for f in families for s in f.samples}
    if not exercised:  # labelled metrics have no samples yet, but every family is declared
        declared = {f.name for f in families}
        for name in SPEC_METRICS:
            family = name.removesuffix("_bucket").removesuffix("_total")
            assert family in declared, name
        return
    for name, (kind, label_names) in SPEC_METRICS.items():
        assert name in types, f"{name} missing from /metrics"
        assert types[name] == kind, name
        assert labels[name] == label_names, name


# --- the server's life --------------------------------------------------------------------------


async def test_stop_leaves_no_task_and_is_prompt_with_an_open_connection() -> None:
    before = asyncio.all_tasks()
    server = HttpServer(FakeProvider(), "127.0.0.1", 0)
    await server.start()
    session = aiohttp.ClientSession()
    try:
        for path in PATHS:  # keep-alive: the connection stays open through stop()
            async with session.get(f"http://127.0.0.1:{server.port}{path}") as resp:
                assert resp.status == 200
        started = time.monotonic()
        await server.stop()
        assert time.monotonic() - started < SHUTDOWN_TIMEOUT + 0.5
        await asyncio.sleep(0)
        # Checked while the client still holds its connection: the server's side must be gone.
        assert asyncio.all_tasks() == before
    finally:
        await session.close()
    with pytest.raises(RuntimeError):
        _ = server.port
    await server.stop()  # a second stop is harmless


async def test_stopped_server_refuses_connections() -> None:
    server = HttpServer(FakeProvider(), "127.0.0.1", 0)
    await server.start()
    port = server.port
    await server.stop()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_a_port_in_use_fails_start_cleanly() -> None:
    before = asyncio.all_tasks()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = HttpServer(FakeProvider(), "127.0.0.1", taken.getsockname()[1])
        with pytest.raises(OSError):
            await server.start()
    assert asyncio.all_tasks() == before
    with pytest.raises(RuntimeError):
        _ = server.port


async def test_ipv6_loopback(client: aiohttp.ClientSession) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    server = HttpServer(FakeProvider(), "::1", 0)
    await server.start()
    try:
        assert server.url == f"http://[::1]:{server.port}"
        async with client.get(server.url + "/healthz") as resp:
            assert resp.status == 200
    finally:
        await server.stop()
