"""The benchmark harness (bench/): pure helpers, and a smoke run of its smallest scenario.

No timing is asserted here (docs/behaviour.md §5 targets are judged by ``./dev bench``, not by
tests); the
smoke run checks that the scenario produced its numbers, converged and left no namespace.
CI also runs every scenario once with ``./dev bench --quick``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from bench import hosts, naive, runner, scen_start
from bench.common import Row, percentile
from bench.scen_large import SHAPE, storm_lines
from polroutd.lab import netns

REPO = Path(__file__).resolve().parents[2]


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 201)]
    assert percentile(values, 50) == 100.0
    assert percentile(values, 99) == 198.0
    assert percentile([3.0], 99) == 3.0


def test_storm_has_the_asked_events_and_ends_with_an_add() -> None:
    lines, kept, removed = storm_lines(SHAPE, 5000)
    assert len(lines) == 5000
    adds = [line for line in lines if line.startswith("addr add")]
    assert len(adds) == 2500 and lines[-1].startswith("addr add")
    assert len(kept) == 2 and len(removed) == 2
    # what is kept was added last and never deleted; what is removed was there before
    deleted = {line.split()[2].split("/")[0] for line in lines if line.startswith("addr del")}
    assert not kept & deleted and removed <= deleted
    assert removed <= {hosts.address(i, j) for i in range(SHAPE.interfaces)
                       for j in range(SHAPE.per_interface)}


def test_naive_script_maps_interfaces_to_tables() -> None:
    script = naive.SCRIPT % {"base": 30000, "priority": 30000}
    assert "ip -4 -o monitor address" in script
    assert "$((30000 + ${dev#bn}))" in script and "${4%/*}" in script


def test_table_and_ratios() -> None:
    row = Row("cold", "x", "ms", 60.0, ip_batch=30.0, naive=120.0, target="<= 2x", met=True)
    assert row.ratio_ip == 2.0 and row.ratio_naive == 0.5
    text = runner.table([row, Row("idle", "cpu", "% core", None)])
    assert "| cold" in text and "2.00" in text and "yes" in text


def test_in_netns_refuses_namespaces_it_did_not_make() -> None:
    with pytest.raises(ValueError):
        netns.in_netns("not-a-bench-namespace", lambda: None)


IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       120 |        120 |   _io
{"event": "starting", "level": "info"}
import time:       300 |        420 | io
import time:        50 |         50 |       multidict._abc
import time:       900 |        950 |     multidict
import time:      2000 |       2950 |   aiohttp.http
import time:      1000 |       3950 | aiohttp
"""


def test_importtime_lines_are_parsed_with_their_depth_and_log_lines_skipped() -> None:
    lines = scen_start.parse_importtime(IMPORTTIME)
    assert [(line.module, line.depth) for line in lines] == [
        ("_io", 1), ("io", 0), ("multidict._abc", 3), ("multidict", 2), ("aiohttp.http", 1),
        ("aiohttp", 0)]
    assert lines[-1] == scen_start.ImportLine("aiohttp", 1000, 3950, 0)
    assert scen_start.total_us(lines) == 420 + 3950  # the top level's cumulative times
    assert [line.module for line in scen_start.top_cumulative(lines, 2)] == [
        "aiohttp", "aiohttp.http"]
    assert scen_start.deferred_loaded(lines) == ["aiohttp"]
    assert scen_start.deferred_loaded(lines[:2]) == []


def test_the_runtime_venv_is_built_from_the_runtime_dependencies_without_the_dev_tools() -> None:
    def name(requirement: str) -> str:
        return re.split(r"[<>=;\s]", requirement)[0]

    with (REPO / "pyproject.toml").open("rb") as f:
        dev = {name(r) for r in tomllib.load(f)["project"]["optional-dependencies"]["dev"]}
    deps = {name(r) for r in scen_start.runtime_dependencies(REPO / "pyproject.toml")}
    assert {"aiohttp", "prometheus-client", "structlog"} <= deps
    assert not deps & dev
def test_the_address_plan_gives_every_interface_a_prefix_of_its_own() -> None:
    """256 interfaces (the 4,096-rule host) and more: distinct /24s, clear of the probes'."""
    prefixes = [hosts.subnet(i) for i in range(hosts.MAX_INTERFACES)]
    assert len(set(prefixes)) == hosts.MAX_INTERFACES
    assert hosts.address(255, 15) == "10.101.5.25" and hosts.gateway(3) == "10.100.3.1"
    assert all(int(p.split(".")[1]) < 200 for p in prefixes)  # probes use 10.200 upwards


CURVE = {"cold": {"64": {"polroutd_ms": 20.0, "ip_batch_ms": 10.0},
                  "4096": {"polroutd_ms": 400.0, "ip_batch_ms": 300.0}},
         "event": {"64": {"polroutd_ms": 2.0, "ip_batch_ms": 5.0},
                   "4096": {"polroutd_ms": 2.5, "ip_batch_ms": 5.0}}}


def test_the_curve_is_drawn_to_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from bench.plot import draw_curve

    target = tmp_path / "sub" / "curve.png"
    assert draw_curve(CURVE, target) == target
    assert target.read_bytes().startswith(b"\x89PNG")


def test_without_matplotlib_the_curve_is_not_drawn(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from bench.plot import draw_curve

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    assert draw_curve(CURVE, tmp_path / "curve.png") is None
    assert not (tmp_path / "curve.png").exists()


def test_the_curve_is_a_full_run_scenario_and_plots_into_docs() -> None:
    from bench import scen_curve

    assert "curve" in runner.SCENARIOS and "curve" in runner.NOT_QUICK
    assert [n * scen_curve.PER_INTERFACE for n in scen_curve.INTERFACES] == [64, 256, 1024, 4096]
    assert scen_curve.plot_target(False, Path("/tmp/x")) == REPO / "docs" / "cost-curve.png"
    # a quick run's few samples never replace the recorded plot
    assert scen_curve.plot_target(True, Path("/tmp/x")) == Path("/tmp/x/cost-curve.png")
