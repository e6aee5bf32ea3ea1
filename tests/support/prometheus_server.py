"""A real Prometheus server for end-to-end tests: it scrapes one target, evaluates rule files,
and its HTTP API is read back (targets, alerts, rules, queries).

The target may be a stand-in exporter on 127.0.0.1 (tests/test_prometheus_contrib.py) or the
real daemon. A daemon listening on 127.0.0.1 *inside a network namespace* is not reachable from
the root namespace, so with ``netns="NS"`` Prometheus runs in that namespace
(``ip netns exec NS prometheus ...``) and every API request is made from inside it too (a
``python -c`` fetch under ``ip netns exec``). Only the namespace's loopback is used: it must be
up (the lab's namespaces have it up); nothing in the namespace is changed.

    with running_prometheus("127.0.0.1:19641", tmp_path, rule_files=[ALERTS],
                            netns=lab.server) as prom:
        prom.wait_until_target_up()
        ...  # make drift happen
        prom.wait_for_alert("PolroutdDriftRepaired")

Prometheus listens on 127.0.0.1 only and stores its TSDB under the given work directory; it is
stopped (SIGTERM, then SIGKILL) when the ``with`` block ends, on failure too.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from polroutd.adapters.metrics import Metrics

PROMETHEUS = "prometheus"
PROMTOOL = "promtool"
INSTALL_HINT = "apt-get install prometheus (Debian package; includes promtool)"

# Fetch a URL from inside a network namespace: prints the HTTP status, a newline, the body.
_FETCH = r"""
import sys, urllib.error, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(sys.argv[1], timeout=float(sys.argv[2])) as r:
        status, body = r.status, r.read()
except urllib.error.HTTPError as e:
    status, body = e.code, e.read()
except OSError as e:
    status, body = 0, str(e).encode()
sys.stdout.buffer.write(b"%d\n" % status + body)
"""

_FREE_PORT = r"""
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
"""

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


class PrometheusError(RuntimeError):
    """Prometheus did not start, did not answer, or a wait timed out (with its log's tail)."""


def have_prometheus() -> bool:
    return shutil.which(PROMETHEUS) is not None


def have_promtool() -> bool:
    return shutil.which(PROMTOOL) is not None


def _netns_prefix(netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns] if netns else []


def _clean_env() -> dict[str, str]:
    """The environment without proxy settings: every request here goes to 127.0.0.1."""
    return {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARIABLES}


def free_port(netns: str | None = None) -> int:
    """A TCP port free on 127.0.0.1 now (in ``netns`` when given)."""
    if netns is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
            return port
    proc = subprocess.run([*_netns_prefix(netns), sys.executable, "-c", _FREE_PORT],
                          capture_output=True, text=True, check=True, timeout=10)
    return int(proc.stdout.strip())


def http_get(url: str, netns: str | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET ``url`` (from inside ``netns`` when given); status 0 when nothing answered."""
    if netns is None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(url, timeout=timeout) as resp:
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError as exc:
            return 0, str(exc).encode()
    proc = subprocess.run(
        [*_netns_prefix(netns), sys.executable, "-c", _FETCH, url, str(timeout)],
        capture_output=True, check=False, timeout=timeout + 10)
    if proc.returncode != 0:
        return 0, proc.stderr
    head, _, body = proc.stdout.partition(b"\n")
    return int(head or b"0"), body


def write_config(workdir: Path, target: str, rule_files: Sequence[Path] = (), *,
                 job: str = "polroutd", scrape_interval: str = "1s",
                 evaluation_interval: str = "1s", metrics_path: str = "/metrics") -> Path:
    """Write ``workdir/prometheus.yml`` scraping ``target`` as ``job`` (JSON is valid YAML)."""
    config = {
        "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval,
                   "evaluation_interval": evaluation_interval},
        "rule_files": [str(Path(p).resolve()) for p in rule_files],
        "scrape_configs": [{"job_name": job, "metrics_path": metrics_path,
                            "static_configs": [{"targets": [target]}]}],
    }
    path = workdir / "prometheus.yml"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


@dataclass
class PrometheusServer:
    """A running Prometheus and its HTTP API (see :func:`running_prometheus`)."""

    workdir: Path
    port: int
    netns: str | None
    process: subprocess.Popen[bytes]
    log_path: Path
    poll_interval: float = 0.25
    _log_file: Any = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _fail(self, message: str) -> PrometheusError:
        return PrometheusError(f"{message}\n--- prometheus log (tail) ---\n{self.log_tail()}")

    def api(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data`` (raises on an error answer)."""
        url = f"{self.base_url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        status, body = http_get(url, self.netns)
        try:
            answer = json.loads(body)
        except ValueError:
            raise self._fail(f"GET {url}: HTTP {status}: {body[:300]!r}") from None
        if status != 200 or answer.get("status") != "success":
            raise PrometheusError(f"GET {url}: HTTP {status}: {answer.get('errorType')}: "
                                  f"{answer.get('error')}")
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query; the vector's elements (``metric``, ``value``)."""
        data = self.api("query", {"query": expr})
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else []
        return result

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self.api("targets", {"state": "active"})["activeTargets"]
        return active

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts (``labels``, ``annotations``, ``state``, ``value``)."""
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule, flattened over the groups (with ``group`` added)."""
        out = []
        for group in self.api("rules")["groups"]:
            out += [dict(rule, group=group["name"]) for rule in group["rules"]]
        return out

    def _wait(self, what: str, timeout: float, probe: Any) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            if self.process.poll() is not None:
                raise self._fail(f"prometheus exited ({self.process.returncode}) waiting for "
                                 f"{what}")
            last = probe()
            if last:
                return last
            if time.monotonic() > deadline:
                raise self._fail(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(self.poll_interval)

    def wait_until_ready(self, timeout: float = 30.0) -> None:
        self._wait("/-/ready", timeout,
                   lambda: http_get(f"{self.base_url}/-/ready", self.netns)[0] == 200)

    def wait_until_target_up(self, timeout: float = 20.0) -> dict[str, Any]:
        """Wait until every active target has been scraped successfully; return the first."""
        def probe() -> dict[str, Any] | None:
            targets = self.targets()
            if targets and all(t["health"] == "up" for t in targets):
                return targets[0]
            return None
        target: dict[str, Any] = self._wait("the scrape target to be up", timeout, probe)
        return target

    def wait_until_rules_evaluated(self, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Wait until every rule has been evaluated at least once; return the rules."""
        def probe() -> list[dict[str, Any]] | None:
            rules = self.rules()
            done = all(not r.get("lastEvaluation", "").startswith("0001-") for r in rules)
            return rules if rules and done else None
        rules: list[dict[str, Any]] = self._wait("every rule to be evaluated", timeout, probe)
        return rules

    def firing(self, name: str | None = None) -> list[dict[str, Any]]:
        return [a for a in self.alerts() if a["state"] == "firing"
                and (name is None or a["labels"].get("alertname") == name)]

    def wait_for_alert(self, name: str, state: str = "firing", timeout: float = 30.0,
                       labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Wait until alert ``name`` is in ``state`` (with ``labels``, when given); return it."""
        want = dict(labels or {})

        def probe() -> dict[str, Any] | None:
            for alert in self.alerts():
                got = alert["labels"]
                if (got.get("alertname") == name and alert["state"] == state
                        and all(got.get(k) == v for k, v in want.items())):
                    return alert
            return None
        alert: dict[str, Any] = self._wait(f"alert {name} {want or ''} to be {state}", timeout,
                                           probe)
        return alert

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def _check_loopback(netns: str) -> None:
    proc = subprocess.run(["ip", "-n", netns, "-j", "link", "show", "lo"], capture_output=True,
                          text=True, check=False, timeout=10)
    if proc.returncode != 0:
        raise PrometheusError(f"network namespace {netns!r}: {proc.stderr.strip()}")
    links = json.loads(proc.stdout or "[]")
    if not links or "UP" not in links[0].get("flags", []):
        raise PrometheusError(f"loopback is down in network namespace {netns!r}: Prometheus "
                              f"could not listen on or scrape 127.0.0.1 there")


@contextmanager
def running_prometheus(target: str, workdir: Path, *, rule_files: Sequence[Path] = (),
                       job: str = "polroutd", netns: str | None = None,
                       scrape_interval: str = "1s", evaluation_interval: str = "1s",
                       metrics_path: str = "/metrics",
                       startup_timeout: float = 30.0) -> Iterator[PrometheusServer]:
    """Start Prometheus scraping ``target`` (``host:port``) as ``job``; stop it afterwards.

    ``workdir`` receives ``prometheus.yml``, the TSDB (``data/``) and ``prometheus.log``.
    """
    if shutil.which(PROMETHEUS) is None:
        raise PrometheusError(f"prometheus is not installed ({INSTALL_HINT})")
    if netns is not None:
        _check_loopback(netns)
    workdir.mkdir(parents=True, exist_ok=True)
    config = write_config(workdir, target, rule_files, job=job, scrape_interval=scrape_interval,
                          evaluation_interval=evaluation_interval, metrics_path=metrics_path)
    port = free_port(netns)
    log_path = workdir / "prometheus.log"
    log_file = log_path.open("ab")
    argv = [*_netns_prefix(netns), PROMETHEUS, f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=info"]
    try:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file,
                                   stderr=subprocess.STDOUT, env=_clean_env(),
                                   start_new_session=True)
    except BaseException:
        log_file.close()
        raise
    server = PrometheusServer(workdir=workdir, port=port, netns=netns, process=process,
                              log_path=log_path, _log_file=log_file)
    try:
        server.wait_until_ready(startup_timeout)
        yield server
    finally:
        server.stop()


needs_prometheus = pytest.mark.skipif(not have_prometheus(),
                                      reason=f"prometheus missing: {INSTALL_HINT}")


def healthy_metrics() -> Metrics:
    """What a converged daemon with two interfaces exports (no alert condition)."""
    m = Metrics()
    m.in_sync.set(1)
    m.last_success.set(time.time())
    m.managed_interfaces.set(2)
    m.owned_rules.set(4)
    m.owned_routes.set(6)
    m.reconciles.labels(result="ok").inc(3)
    m.reconcile_duration.labels(mode="full").observe(0.004)
    for iface in ("ens192", "ens224"):
        m.gateway_present.labels(interface=iface, family="ipv4").set(1)
    m.netlink_events.labels(type="address").inc(2)
    return m
