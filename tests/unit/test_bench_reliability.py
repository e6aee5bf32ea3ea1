"""The reliability scenario is registered for full runs and by name, never for --quick."""

from __future__ import annotations

from bench import runner


def test_quick_runs_leave_the_reliability_scenario_out() -> None:
    assert "reliability" not in runner.selected(runner.parse_args(["--quick"]))
    assert "reliability" in runner.selected(runner.parse_args([]))
    assert runner.selected(runner.parse_args(["--quick", "--scenario", "reliability"])) == [
        "reliability"]


def test_the_soak_lasts_as_asked() -> None:
    assert runner.parse_args([]).soak_minutes == 10.0
    assert runner.parse_args(["--soak-minutes", "3"]).soak_minutes == 3.0
