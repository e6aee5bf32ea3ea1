"""The command line: one module per command, imported only when it runs, and one handler that
turns every error into one line on stderr and its exit code (polroutd.cli.main)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from polroutd.cli.main import command_named, describe_failure, main, run_line
from polroutd.cli.parser import build_parser
from polroutd.core.errors import (
    ConfigError,
    DumpInterrupted,
    KernelError,
    PolroutdError,
    TableRangeExhausted,
    UsageError,
)

COMMANDS = ("run", "plan", "apply", "check-config", "render", "flush", "status", "demo")


@pytest.mark.parametrize(("error", "command", "code"), [
    (ConfigError("f.toml", "daemon.mode", "bad"), "apply", 2),
    (ConfigError("f.toml", "daemon.mode", "bad"), "check-config", 2),
    (ConfigError("f.toml", "daemon.mode", "bad"), "plan", 1),  # 2 means "changes pending"
    (ConfigError("f.toml", "daemon.mode", "bad"), "flush", 1),  # flush knows 0 and 1
    (TableRangeExhausted("f.toml", "daemon.table_range", "full"), "apply", 2),
    (UsageError("wrong"), "demo", 2),
    (KernelError("refused", 1), "apply", 1),
    (DumpInterrupted("busy"), "plan", 1),
    (PolroutdError("something"), "apply", 1),
    (PermissionError(1, "Operation not permitted"), "apply", 1),
    (RuntimeError("bug"), "apply", 1),
])
def test_each_error_family_has_its_exit_code(error: Exception, command: str, code: int) -> None:
    message, got = describe_failure(error, command)
    assert got == code
    assert "\n" not in message and message


def test_a_kernel_error_says_what_to_check() -> None:
    message, _ = describe_failure(KernelError("netlink send failed"), "apply")
    assert "CAP_NET_ADMIN" in message


@pytest.mark.parametrize("argv", [
    [], ["bogus"], ["plan", "--bogus"], ["render"], ["render", "--format", "nope"],
    ["demo", "--keep", "--cleanup"],
])
def test_wrong_usage_is_exit_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("polroutd: error: "), err
    assert "Traceback" not in err


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert main(["plan", "--help"]) == 0
    assert "polroutd" in capsys.readouterr().out


def test_every_command_runs_from_its_own_module() -> None:
    parser = build_parser()
    for name in COMMANDS:
        argv = [name, "--format", "ip-batch"] if name == "render" else [name]
        module = parser.parse_args(argv).module
        assert module == f"polroutd.cli.{name.replace('-', '_')}"
        assert callable(importlib.import_module(module).command)


def test_an_invalid_configuration_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "polroutd.toml"
    config.write_text('[daemon]\nmode = "sometimes"\n')
    assert main(["check-config", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"polroutd: error: {config}:2: daemon.mode: ") and err.count("\n") == 1


def test_plan_and_check_config_load_no_daemon_libraries(tmp_path: Path) -> None:
    """Both commands run for real (plan reads this namespace's kernel, changing nothing); none
    of the daemon's libraries is loaded: not aiohttp, prometheus_client, structlog (nor its
    rich integration), nor polroutd's daemon, adapters or lab."""
    config = tmp_path / "polroutd.toml"
    config.write_text('[daemon]\nrt_tables_file = ""\n')
    probe = (
        "import contextlib, io, sys\n"
        "from polroutd.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['check-config', '--config', {str(config)!r}]) == 0\n"
        f"    main(['plan', '--config', {str(config)!r}])\n"
        "loaded = [m for m in sys.modules"
        " if m.split('.')[0] in ('aiohttp', 'prometheus_client', 'structlog', 'rich')"
        " or m.startswith(('polroutd.daemon', 'polroutd.adapters', 'polroutd.lab'))]\n"
        "assert 'polroutd.engine' in sys.modules  # plan ran, up to its engine\n"
        "print(loaded)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=60)
    assert proc.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("argv", [
    ["run"], ["--debug", "run", "--config", "x.toml"], ["plan", "--json"],
    ["render", "--format", "networkd", "--out", "d", "--debug"], ["status", "--url", "http://h:1"],
    ["demo", "--keep"], ["check-config"], ["flush", "--config", "f"], ["apply"],
])
def test_the_parser_built_for_the_named_command_reads_its_line_as_the_whole_one(
    argv: list[str],
) -> None:
    assert command_named(argv) == next(a for a in argv if not a.startswith("-"))
    assert build_parser(command_named(argv)).parse_args(argv) == build_parser().parse_args(argv)


def test_a_line_naming_no_known_command_gets_the_whole_parser() -> None:
    assert command_named(["--help"]) is None
    assert command_named(["bogus", "run"]) is None


@pytest.mark.parametrize("argv", [
    ["run"], ["--debug", "run"], ["run", "--debug"], ["--debug", "run", "--debug"],
    ["run", "--config", "x.toml"], ["run", "--config=x.toml"], ["run", "--config="],
    ["run", "--config", ""], ["--debug", "run", "--config", "x.toml", "--debug"],
    ["run", "--config", "run"], ["run", "--config", "x=y.toml"],
])
def test_a_plain_run_line_is_read_as_the_parser_reads_it(argv: list[str]) -> None:
    read = run_line(argv)
    assert read is not None
    assert vars(read) == vars(build_parser().parse_args(argv))


@pytest.mark.parametrize("argv", [
    [], ["--debug"], ["--help"], ["--version"], ["run", "--help"], ["run", "-h"],
    ["plan"], ["check-config", "--config", "x"], ["run", "--config"], ["run", "--config", "-"],
    ["run", "--config", "a", "--config", "b"], ["run", "--conf", "x"], ["run", "extra"],
    ["--config", "x", "run"], ["run", "run"], ["run", "--", "x"], ["run", "--debug=1"],
])
def test_any_other_line_is_left_to_the_parser(argv: list[str]) -> None:
    """Help, errors, abbreviations, repetitions and other commands: argparse's to read."""
    assert run_line(argv) is None


def polroutd(*argv: str, stdout: int = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    """The executable's own entry point (``python -m polroutd``), as operators run it."""
    return subprocess.run([sys.executable, "-m", "polroutd", *argv], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=60)


def test_a_one_shot_command_ends_at_once_with_its_output_and_its_exit_code(
    tmp_path: Path,
) -> None:
    """The quick exit (``entry``) skips the interpreter's teardown, not the output: a pipe's
    buffer is flushed, the exit code is the command's."""
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text('[daemon]\nrt_tables_file = ""\n')
    bad.write_text('[daemon]\nmode = "loud"\n')
    ok = polroutd("check-config", "--config", str(good))
    assert (ok.returncode, ok.stderr) == (0, "")
    assert str(good) in ok.stdout and ok.stdout.endswith("\n")
    refused = polroutd("check-config", "--config", str(bad))
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"polroutd: error: {bad}:2: daemon.mode: ")
    assert refused.stderr.count("\n") == 1


# ``entry`` around a command that leaves its output in stdout's buffer (a pipe's is flushed at
# exit only) and exits 3.
BUFFERED = (
    "import sys\n"
    "import polroutd.cli.main as cli\n"
    "def buffered(argv=None):\n"
    "    sys.stdout.write('the report\\n')\n"
    "    return 3\n"
    "cli.main = buffered\n"
    "sys.argv = ['polroutd', 'plan']\n"
    "cli.entry()\n"
)


def test_the_quick_exit_flushes_what_is_buffered_and_keeps_the_exit_code() -> None:
    proc = subprocess.run([sys.executable, "-c", BUFFERED], capture_output=True, text=True,
                          timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "the report\n", "")


def test_output_that_cannot_be_written_at_the_end_is_exit_120_as_at_pythons_own_exit() -> None:
    full_disk = (
        "import io, sys\n"
        "class FullDisk(io.StringIO):\n"
        "    def flush(self):\n"
        "        raise OSError(28, 'No space left on device')\n"
        "sys.stdout = FullDisk()\n"
    )
    proc = subprocess.run([sys.executable, "-c", full_disk + BUFFERED], capture_output=True,
                          text=True, timeout=60)
    assert (proc.returncode, proc.stderr) == (120, "")
