"""Reading an interface's carrier from sysfs (inputs/carrier.py)."""

from __future__ import annotations

from pathlib import Path

from polroutd.inputs.carrier import CarrierFiles, carrier


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


def test_carrier_files_read_again_through_the_open_file(tmp_path: Path) -> None:
    (tmp_path / "wan0").mkdir()
    path = tmp_path / "wan0" / "carrier"
    path.write_text("1\n")
    files = CarrierFiles(tmp_path)
    assert files.read("wan0", 5) is True
    with path.open("r+") as same_file:  # the kernel answers afresh at offset 0
        same_file.write("0\n")
    assert files.read("wan0", 5) is False
    assert files.read("gone0", 6) is None
    files.retain(set())
    path.write_text("1\n")
    assert files.read("wan0", 5) is True  # opened again after it was let go
    files.close()
