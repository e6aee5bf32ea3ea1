"""Reading an interface's carrier from sysfs (inputs/carrier.py)."""

from __future__ import annotations

from pathlib import Path

from polroutd.inputs.carrier import carrier


def test_carrier_reads_the_kernels_answer(tmp_path: Path) -> None:
    (tmp_path / "up0").mkdir()
    (tmp_path / "up0" / "carrier").write_text("1\n")
    (tmp_path / "off0").mkdir()
    (tmp_path / "off0" / "carrier").write_text("0\n")
    (tmp_path / "down0").mkdir()
    (tmp_path / "down0" / "carrier").mkdir()  # reading fails, as EINVAL does for a down link
    assert carrier("up0", tmp_path) is True
    assert carrier("off0", tmp_path) is False
    assert carrier("down0", tmp_path) is False
    assert carrier("gone0", tmp_path) is None
