"""contrib/prometheus and contrib/grafana: the alert rules, their promtool unit tests, the
example scrape config and the Grafana dashboard, checked against the metrics polroutd really
exports (docs/behaviour.md §3.3, polroutd/metrics.py), and the alerts evaluated by a real Prometheus
scraping a stand-in exporter that serves a ``Metrics()`` exposition.

promtool and prometheus come from the Debian package ``prometheus`` (``./dev`` installs it);
the tests that need them are skipped, with that reason, only where it is missing.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from polroutd.adapters.metrics import Metrics
from tests.support import ALERTS
from tests.support.prometheus_server import (
    INSTALL_HINT,
    PROMTOOL,
    PrometheusServer,
    have_prometheus,
    have_promtool,
    healthy_metrics,
    needs_prometheus,
    running_prometheus,
)

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "contrib" / "prometheus"

ALERT_TESTS = PROM_DIR / "polroutd-alerts.test.yml"
SCRAPE_EXAMPLE = PROM_DIR / "prometheus.example.yml"
DASHBOARD = ROOT / "contrib" / "grafana" / "polroutd-dashboard.json"

EXPECTED_ALERTS = {
    "PolroutdDown": "critical",
    "PolroutdNotInSync": "critical",
    "PolroutdDriftRecurring": "warning",
    "PolroutdDriftRepaired": "info",
    "PolroutdReconcileErrors": "warning",
    "PolroutdReconcileStalled": "critical",
    "PolroutdInterfaceWithoutGateway": "warning",
    "PolroutdNetlinkOverruns": "info",
    "PolroutdConfigReloadFailed": "warning",
    "PolroutdConflicts": "warning",
    "PolroutdNoHealthyUplink": "critical",
    "PolroutdUplinkFlapping": "warning",
}

# Label values docs/behaviour.md fixes (§3.3); a matcher `label="value"` must use one of them.
CONTRACT_VALUES = {
    "kind": {"rule", "route"},
    "change": {"missing", "unexpected", "changed"},
    "op": {"add", "delete", "replace"},
    "result": {"ok", "error"},
    "family": {"ipv4", "ipv6"},
    "to": {"up", "down"},
    "cause": {"startup", "link", "neighbour", "probe"},
}
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}

needs_promtool = pytest.mark.skipif(not have_promtool(), reason=f"promtool missing: {INSTALL_HINT}")


# --- what polroutd exports -------------------------------------------------------------------

def populate(m: Metrics) -> Metrics:
    """Give every labelled metric one child, so that each family has samples to parse."""
    m.drift.labels(kind="rule", change="missing").inc()
    m.repairs.labels(kind="rule", op="add").inc()
    m.changes.labels(kind="route", op="replace").inc()
    m.operation_errors.labels(kind="route", op="add", errno="ENETDOWN").inc()
    m.netlink_events.labels(type="address").inc()
    m.gateway_present.labels(interface="ens224", family="ipv4").set(1)
    m.reconcile_duration.labels(mode="incremental").observe(0.001)
    m.cache_divergence.labels(kind="route").inc()
    u = m.uplinks
    u.up.labels("wan1", "ipv4").set(1)
    u.active.labels("wan1", "ipv4").set(1)
    u.transitions.labels("wan1", "ipv4", "down", "link").inc()
    u.probe_duration.labels("wan1").observe(0.001)
    u.probe_failures.labels("wan1", "timeout").inc()
    return m


def _sample_names(family_name: str, family_type: str) -> set[str]:
    if family_type == "counter":
        return {family_name + "_total"}
    if family_type == "histogram":
        return {family_name + s for s in ("_bucket", "_sum", "_count")}
    return {family_name}


@pytest.fixture(scope="module")
def exported() -> dict[str, set[str]]:
    """Every sample name a scrape can return (``_total``, ``_bucket``...) -> its label names."""
    names: dict[str, set[str]] = {}
    # The families of a fresh Metrics(): also those that have no child (no sample) yet.
    for fam in text_string_to_metric_families(Metrics().exposition().decode()):
        for name in _sample_names(fam.name, fam.type):
            names.setdefault(name, set())
    # Label names from a populated one; each family must then have samples (else populate()
    # missed a metric and the label check below would silently pass).
    for fam in text_string_to_metric_families(populate(Metrics()).exposition().decode()):
        assert fam.samples, f"populate() gave {fam.name} no sample"
        for sample in fam.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return {name: labels - {"le"} | ({"le"} if name.endswith("_bucket") else set())
            for name, labels in names.items()}


# --- a small PromQL reader: the metric names and label matchers an expression uses -----------

_SELECTOR = re.compile(r"(?<![\w:$])([A-Za-z_:][\w:]*)?\s*\{([^{}]*)\}")
_MATCHER = re.compile(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_IDENT = re.compile(r"(?<![\w:$.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_AGGREGATIONS = {"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk",
                 "bottomk", "quantile", "count_values"}  # `sum by (x) (...)`: no "(" after
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
             "unless", "bool", "offset", "inf", "nan", "__selector__", *_AGGREGATIONS}


@dataclass
class PromQLUse:
    metrics: set[str]
    matchers: list[tuple[str, str, str, str]]  # (metric, label, operator, value)
    grouping: set[str]


def promql_use(expr: str) -> PromQLUse:
    matchers: list[tuple[str, str, str, str]] = []
    metrics: set[str] = set()

    def selector(m: re.Match[str]) -> str:
        name = m.group(1) or ""
        if name in _KEYWORDS:  # `... by (x) {` cannot happen; `on{` neither: keep it simple
            name = ""
        pairs = _MATCHER.findall(m.group(2))
        if not name:
            name = next((v for k, op, v in pairs if k == "__name__" and op == "="), "")
        if name:
            metrics.add(name)
        matchers.extend((name, k, op, v) for k, op, v in pairs if k != "__name__")
        return " __selector__ "

    rest = _SELECTOR.sub(selector, expr)
    rest = re.sub(r"\[[^\]]*\]", " ", rest)  # ranges and subqueries: [5m], [1h:1m]
    grouping: set[str] = set()
    for _, labels in _GROUPING.findall(rest):
        grouping.update(x.strip() for x in labels.split(",") if x.strip())
    rest = _GROUPING.sub(r" \1 ", rest)
    rest = re.sub(r"\boffset\s+\S+", " ", rest)
    metrics.update(n for n in _IDENT.findall(rest) if n not in _KEYWORDS)
    return PromQLUse(metrics, matchers, grouping)


def test_promql_reader_sees_names_labels_and_grouping() -> None:
    use = promql_use(
        'sum by (job, instance) (increase(polroutd_repairs_total{kind="rule"}[1h])) > 3 '
        'and on (job, instance) changes(sum by (job) (polroutd_x)[1h:1m]) >= 3 '
        'or absent(up{job="polroutd"}) unless time() - polroutd_y offset 5m')
    assert use.metrics == {"polroutd_repairs_total", "polroutd_x", "up", "polroutd_y"}
    assert ("polroutd_repairs_total", "kind", "=", "rule") in use.matchers
    assert use.grouping == {"job", "instance"}


def check_expr(expr: str, exported: dict[str, set[str]], allowed_extra: set[str]) -> list[str]:
    """The problems of one expression: unknown metrics, labels or contract values."""
    problems = []
    use = promql_use(expr)
    known = set(exported) | allowed_extra
    for name in sorted(use.metrics - known):
        problems.append(f"unknown metric {name}")
    if not use.metrics:
        problems.append("uses no metric")
    labels_here = set(TARGET_LABELS)
    for name in use.metrics & set(exported):
        labels_here |= exported[name]
    for metric, label, op, value in use.matchers:
        if metric in exported and label not in exported[metric] | TARGET_LABELS:
            problems.append(f"{metric} has no label {label}")
        if op == "=" and label in CONTRACT_VALUES and value not in CONTRACT_VALUES[label]:
            problems.append(f"{label}={value!r} is not one of {sorted(CONTRACT_VALUES[label])}")
    for label in sorted(use.grouping - labels_here):
        problems.append(f"groups by {label}, which none of its metrics has")
    return problems


def family(name: str) -> str:
    return re.sub(r"_(total|bucket|sum|count|created)$", "", name)


def unknown_mentions(text: str, exported: dict[str, set[str]]) -> list[str]:
    """Any metric mentioned anywhere (comments, descriptions) must exist too."""
    known = set(exported) | {family(n) for n in exported}
    return [f"mentions unknown metric {n}"
            for n in sorted(set(re.findall(r"\bpolroutd_\w+", text)) - known)]


# --- the alert rules -----------------------------------------------------------------------

def alert_blocks(text: str) -> dict[str, str]:
    """Alert name -> the text of its rule (from `- alert:` to the next one)."""
    parts = re.split(r"^\s*- alert:\s*", text, flags=re.M)[1:]
    return {part.split("\n", 1)[0].strip(): part for part in parts}


def rule_exprs(text: str) -> dict[str, str]:
    """Alert name -> its `expr` (inline, or a `|`/`>` block scalar)."""
    exprs = {}
    for name, block in alert_blocks(text).items():
        lines = block.splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"^(\s*)expr:\s*(.*)$", line)
            if not m:
                continue
            indent, value = len(m.group(1)), m.group(2).strip()
            if value[:1] in ("|", ">"):
                body = []
                for nxt in lines[i + 1:]:
                    if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                        break
                    body.append(nxt.strip())
                value = " ".join(b for b in body if b)
            exprs[name] = value.strip("'\"") if value[:1] in "'\"" else value
            break
    return exprs


def test_the_rule_file_has_every_alert_with_severity_summary_and_description() -> None:
    text = ALERTS.read_text()
    assert re.search(r"^\s*- name:\s*polroutd\s*$", text, re.M), "rule group `polroutd`"
    blocks = alert_blocks(text)
    assert set(blocks) == set(EXPECTED_ALERTS)
    for name, block in blocks.items():
        assert re.search(rf"^\s*severity:\s*{EXPECTED_ALERTS[name]}\s*$", block, re.M), name
        for key in ("summary", "description"):
            assert re.search(rf"^\s*{key}:", block, re.M), f"{name} has no {key}"
        assert re.search(r"^\s*for:\s*\d+[smh]\s*$", block, re.M), f"{name} has no for:"
        # The description must tell the on-call engineer where to look.
        assert re.search(r"polroutd status|localhost:9641|journalctl", block), name
    assert re.search(r"^\s*for:\s*0m\s*$", blocks["PolroutdDriftRepaired"], re.M)
    assert "absent(up{job=\"polroutd\"})" in blocks["PolroutdDown"]
    assert "networkd" in blocks["PolroutdDriftRecurring"]


def test_alert_rules_use_only_exported_metrics(exported: dict[str, set[str]]) -> None:
    text = ALERTS.read_text()
    exprs = rule_exprs(text)
    assert set(exprs) == set(EXPECTED_ALERTS)
    problems = [f"{name}: {p}" for name, expr in exprs.items()
                for p in check_expr(expr, exported, allowed_extra={"up"})]
    problems += unknown_mentions(text, exported)
    assert not problems, problems


@needs_promtool
def test_promtool_check_rules() -> None:
    proc = subprocess.run([PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in proc.stdout


@needs_promtool
def test_promtool_test_rules() -> None:
    proc = subprocess.run([PROMTOOL, "test", "rules", ALERT_TESTS.name], cwd=PROM_DIR,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_has_unit_tests_that_fire_and_that_must_not() -> None:
    text = ALERT_TESTS.read_text()
    cases = re.findall(r"alertname:\s*(\w+)\s*\n\s*exp_alerts:\s*(\[\])?", text)
    fires = {name for name, empty in cases if not empty}
    silent = {name for name, empty in cases if empty}
    assert fires == set(EXPECTED_ALERTS), set(EXPECTED_ALERTS) ^ fires
    assert silent == set(EXPECTED_ALERTS), set(EXPECTED_ALERTS) ^ silent


@needs_promtool
def test_example_scrape_config_is_valid(tmp_path: Path) -> None:
    text = SCRAPE_EXAMPLE.read_text()
    assert re.search(r"job_name:\s*polroutd\s*$", text, re.M)
    assert "127.0.0.1:9641" in text
    # Point its rule_files at the real file, so promtool also checks that it loads.
    local = tmp_path / "prometheus.yml"
    local.write_text(re.sub(r"/etc/prometheus/rules/polroutd-alerts\.yml", str(ALERTS), text))
    proc = subprocess.run([PROMTOOL, "check", "config", str(local)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 rule files found" in proc.stdout + proc.stderr


# --- the Grafana dashboard -------------------------------------------------------------------

@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def all_panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dash.get("panels", []):
        out.append(panel)
        out += panel.get("panels", [])  # collapsed rows keep their panels inside
    return out


def panel_exprs(panel: dict[str, Any]) -> list[str]:
    return [t["expr"] for t in panel.get("targets", []) if t.get("expr")]


_DATASOURCE_REFS = {"${datasource}", "$datasource", "${DS_PROMETHEUS}"}


def test_dashboard_structure(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] and dashboard["title"]
    inputs = {i["name"]: i for i in dashboard.get("__inputs", [])}
    assert inputs["DS_PROMETHEUS"]["pluginId"] == "prometheus"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["instance"]["type"] == "query"
    assert variables["instance"]["datasource"]["uid"] in _DATASOURCE_REFS

    panels = all_panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    for p in panels:
        if p["type"] == "row":
            continue
        where = f"panel {p['id']} {p.get('title')!r}"
        assert p.get("datasource", {}).get("uid") in _DATASOURCE_REFS, where
        assert p["datasource"].get("type") == "prometheus", where
        assert panel_exprs(p), f"{where} has no query"
        for t in p["targets"]:
            assert t.get("datasource", p["datasource"])["uid"] in _DATASOURCE_REFS, where
            assert 'instance=~"$instance"' in t["expr"], f"{where} ignores $instance"
        grid = p["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, where


def test_dashboard_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], int] = {}
    for p in all_panels(dashboard):
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panels {cells[(x, y)]} and {p['id']} overlap"
                cells[(x, y)] = p["id"]


def test_dashboard_has_the_expected_panels(dashboard: dict[str, Any]) -> None:
    by_type: dict[str, list[str]] = {}
    for p in all_panels(dashboard):
        by_type.setdefault(p["type"], []).append(" ".join(panel_exprs(p)))
    stats = " ".join(by_type["stat"])
    for metric in ("polroutd_in_sync", "polroutd_managed_interfaces", "polroutd_owned_rules",
                   "polroutd_owned_routes"):
        assert metric in stats, f"no stat panel for {metric}"
    assert any("polroutd_interface_gateway_present" in e for e in by_type["table"])
    series = " ".join(by_type["timeseries"])
    assert "histogram_quantile(0.5," in series and "histogram_quantile(0.99," in series
    assert "polroutd_reconcile_duration_seconds_bucket" in series
    for fragment in ("by (kind, change)", "by (result)", "by (errno", "by (type)"):
        assert fragment in series, fragment


def test_dashboard_uses_only_exported_metrics_and_shows_all(
        dashboard: dict[str, Any], exported: dict[str, set[str]]) -> None:
    problems = []
    shown: set[str] = set()
    for p in all_panels(dashboard):
        for expr in panel_exprs(p):
            problems += [f"panel {p['id']} {p.get('title')!r}: {x}"
                         for x in check_expr(expr, exported, allowed_extra=set())]
            shown |= promql_use(expr).metrics
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            names = set(re.findall(r"\bpolroutd_\w+", query))
            problems += [f"variable {var['name']}: unknown metric {n}"
                         for n in names - set(exported)]
    problems += unknown_mentions(DASHBOARD.read_text(), exported)
    assert not problems, problems
    # Every family polroutd exports appears on some panel (one sample name of it suffices).
    missing = {family(n) for n in exported} - {family(n) for n in shown}
    assert not missing, f"exported but not on the dashboard: {sorted(missing)}"


# --- a real Prometheus against a stand-in exporter ---------------------------------------------

class StandInExporter:
    """Serves ``metrics.exposition()`` on 127.0.0.1:<free port>/metrics, like the daemon."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = exporter.metrics.exposition()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> StandInExporter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@dataclass
class E2E:
    prom: PrometheusServer
    exporter: StandInExporter


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    if not have_prometheus():
        pytest.skip(f"prometheus missing: {INSTALL_HINT}")
    workdir = tmp_path_factory.mktemp("prometheus")
    with StandInExporter(healthy_metrics()) as exporter, \
            running_prometheus(exporter.target, workdir, rule_files=[ALERTS]) as prom:
        prom.wait_until_target_up(timeout=20)
        yield E2E(prom, exporter)


@needs_prometheus
def test_prometheus_loads_and_evaluates_every_rule(e2e: E2E,
                                                   exported: dict[str, set[str]]) -> None:
    rules = e2e.prom.wait_until_rules_evaluated(timeout=20)
    by_name = {r["name"]: r for r in rules}
    assert set(by_name) == set(EXPECTED_ALERTS)
    for name, rule in by_name.items():
        assert rule["group"] == "polroutd"
        assert rule["type"] == "alerting"
        assert rule["health"] == "ok", f"{name}: {rule.get('lastError')}"
        assert rule["labels"]["severity"] == EXPECTED_ALERTS[name]
        assert {"summary", "description"} <= set(rule["annotations"]), name
        # Prometheus' own parse of the expression, checked like the file's text.
        assert not check_expr(rule["query"], exported, allowed_extra={"up"}), rule["query"]
    # A healthy daemon: nothing fires.
    assert e2e.prom.firing() == []


@needs_prometheus
def test_every_dashboard_query_runs(e2e: E2E, dashboard: dict[str, Any]) -> None:
    for p in all_panels(dashboard):
        for expr in panel_exprs(p):
            query = (expr.replace("$__rate_interval", "1m").replace("${instance}", ".+")
                     .replace("$instance", ".+"))
            e2e.prom.query(query)  # raises with Prometheus' error when it does not parse
    assert e2e.prom.query('polroutd_in_sync{instance=~".+"}')[0]["value"][1] == "1"


@needs_prometheus
def test_drift_makes_polroutd_drift_repaired_fire(e2e: E2E) -> None:
    prom, m = e2e.prom, e2e.exporter.metrics
    # What the daemon does after an `ip rule del`: the drift and repair series appear at 1.
    m.drift.labels(kind="rule", change="missing").inc()
    m.repairs.labels(kind="rule", op="add").inc()
    alert = prom.wait_for_alert("PolroutdDriftRepaired", timeout=30,
                                labels={"kind": "rule", "change": "missing"})
    assert alert["labels"]["job"] == "polroutd"
    assert alert["labels"]["instance"] == e2e.exporter.target
    assert alert["labels"]["severity"] == "info"
    assert e2e.exporter.target in alert["annotations"]["summary"]
    # A second drift of the same kind, now seen by increase(): still firing, now counted twice.
    m.drift.labels(kind="rule", change="missing").inc()
    m.repairs.labels(kind="rule", op="add").inc()
    deadline = time.monotonic() + 15
    while "2 time(s)" not in alert["annotations"]["description"]:
        assert time.monotonic() < deadline, alert["annotations"]["description"]
        time.sleep(0.25)
        alert = prom.wait_for_alert("PolroutdDriftRepaired", timeout=5,
                                    labels={"kind": "rule", "change": "missing"})
    # One incident is not a fight.
    assert prom.firing("PolroutdDriftRecurring") == []
