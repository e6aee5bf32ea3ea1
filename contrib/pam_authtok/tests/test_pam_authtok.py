"""Runs pam_authtok's C test suite (contrib/pam_authtok/Makefile) from pytest.

Plain pytest, no project imports.  Every step is its own test so a failure
names the step; the build goes to a private temp dir (never the source tree).
Nothing is skipped: a missing tool fails with the Debian package to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent.parent  # contrib/pam_authtok
APT = (
    "apt-get install -y libpam0g-dev libpam-wrapper libpamtest0-dev valgrind "
    "pkg-config gcc make binutils clang libclang-rt-14-dev"
)
TIMEOUT = 300  # seconds per make step; the whole suite takes about a minute


def _make(build: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(HERE), f"BUILDDIR={build}", *targets],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=TIMEOUT,
        check=False,
    )


def _run(build: Path, *targets: str) -> str:
    proc = _make(build, *targets)
    if proc.returncode != 0:
        pytest.fail(
            f"make {' '.join(targets)} exited {proc.returncode}:\n{proc.stdout}",
            pytrace=False,
        )
    print(proc.stdout)
    return proc.stdout


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A build dir of our own, after checking every tool is there."""
    if shutil.which("make") is None:
        pytest.fail(f"'make' is missing (Debian package: make). Install: {APT}", pytrace=False)
    path = tmp_path_factory.mktemp("pam_authtok_build")
    proc = _make(path, "check-tools")
    if proc.returncode != 0:
        pytest.fail(
            f"pam_authtok test tools missing:\n{proc.stdout}\nInstall: {APT}", pytrace=False
        )
    _run(path, "all")
    return path


def test_hardening(build: Path) -> None:
    out = _run(build, "hardening")
    assert "exports: pam_sm_authenticate pam_sm_setcred" in out


def test_unit(build: Path) -> None:
    out = _run(build, "unit")
    assert " 0 failed" in out


def test_pam_stack(build: Path) -> None:
    out = _run(build, "stack")
    assert "stack checks:" in out and " 0 failed" in out


def test_valgrind(build: Path) -> None:
    out = _run(build, "valgrind")
    assert out.count(" 0 failed") >= 2  # unit and stack, both under valgrind


def test_fuzz_random(build: Path) -> None:
    out = _run(build, "fuzz-random")
    assert "no invariant violated" in out


def test_fuzz_libfuzzer(build: Path) -> None:
    seconds = os.environ.get("PAM_AUTHTOK_FUZZ_SECONDS", "20")
    out = _run(build, "fuzz-libfuzzer", f"FUZZ_SECONDS={seconds}")
    assert "stat::number_of_executed_units" in out


def test_install_into_destdir(build: Path) -> None:
    out = _run(build, "install-test")
    assert "installed under DESTDIR" in out
