"""Hostile and unlucky configuration files (issue 11, defect 1 and the symlink loop): whatever
the file holds, ``check-config`` exits 0 or 2 with one line naming the file, never a traceback,
and never blocks."""

from __future__ import annotations

import os
import string
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polroutd.cli.main import main
from polroutd.config.files import FileRefused, read_regular_file
from polroutd.config.parse import MAX_CONFIG_SIZE, load_config, resolve_config_path
from polroutd.core.errors import ConfigError
from polroutd.inputs.foreign_managers import networkd_config_files, networkd_settings


def check_config(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["check-config", "--config", str(path)])
    err = capsys.readouterr().err
    return code, err


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "polroutd.toml"
    path.write_text(f'[daemon]\nrt_tables_file = ""\n{text}')
    return path


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("resync_interval = 1" + "0" * 400 + "\n", "daemon.resync_interval"),  # OverflowError
        ("resync_interval = 1" + "0" * 5000 + "\n", "daemon.resync_interval"),  # over 4,300 digits
        ("exclude = " + "[" * 2000 + "]" * 2000 + "\n", "syntax"),  # RecursionError
        ("resync_interval = 1e-300\n", "daemon.resync_interval"),  # a resync every 1e-300 s
        ("resync_interval = 1e300\n", "daemon.resync_interval"),
        ("max_delay = 1e-300\n", "daemon.max_delay"),
        ("debounce = 1e300\n", "daemon.debounce"),
    ],
)
def test_absurd_values_are_config_errors_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == key
    code, err = check_config(path, capsys)
    assert code == 2
    assert err.count("\n") == 1 and f"{path}" in err and key in err, err


def test_ranges_accept_their_bounds(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "resync_interval = 1\ndebounce = 0\nmax_delay = 60\n"))
    assert (config.daemon.resync_interval, config.daemon.max_delay) == (1.0, 60.0)
    config = load_config(
        write(tmp_path, "resync_interval = 86400\ndebounce = 10\nmax_delay = 10\n")
    )
    assert config.daemon.resync_interval == 86400.0


def test_rt_tables_file_that_is_a_directory_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "dir").mkdir()
    path = tmp_path / "polroutd.toml"
    path.write_text(f'[daemon]\nrt_tables_file = "{tmp_path / "dir"}"\n')
    code, err = check_config(path, capsys)
    assert code == 2
    assert "daemon.rt_tables_file" in err and "is a directory" in err, err


def test_rt_tables_file_that_is_a_fifo_does_not_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "polroutd.conf"
    os.mkfifo(fifo)
    path = tmp_path / "polroutd.toml"
    path.write_text(f'[daemon]\nrt_tables_file = "{fifo}"\n')
    outcome: list[tuple[int, str]] = []
    started = time.monotonic()
    worker = threading.Thread(target=lambda: outcome.append(check_config(path, capsys)))
    worker.daemon = True  # before the fix it blocks in open() forever
    worker.start()
    worker.join(5)
    assert outcome, "check-config blocked on a FIFO"
    assert time.monotonic() - started < 5
    code, err = outcome[0]
    assert code == 2 and "is a FIFO" in err and "daemon.rt_tables_file" in err, err


def test_config_that_is_a_fifo_or_too_large_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    code, err = check_config(fifo, capsys)
    assert code == 2 and "is a FIFO" in err, err
    big = tmp_path / "big.toml"
    big.write_text("# padding\n" * (MAX_CONFIG_SIZE // 10 + 1))
    started = time.monotonic()
    code, err = check_config(big, capsys)
    assert code == 2 and "larger than" in err, err
    assert time.monotonic() - started < 1


def test_a_symlink_loop_says_symlink_loop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loop = tmp_path / "loop.toml"
    loop.symlink_to(loop)
    with pytest.raises(ConfigError, match="symlink loop"):
        resolve_config_path(str(loop), {})
    code, err = check_config(loop, capsys)
    assert code == 2 and "symlink loop" in err and "not found" not in err, err


def test_a_symlinked_config_is_fine(tmp_path: Path) -> None:
    real = write(tmp_path, "")
    link = tmp_path / "link.toml"
    link.symlink_to(real)
    assert load_config(link).daemon.rt_tables_file == ""


def test_read_regular_file_bounds(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert read_regular_file(path, 10)[0] == b"x" * 10
    with pytest.raises(FileRefused, match="larger than 9 bytes"):
        read_regular_file(path, 9)
    with pytest.raises(FileRefused, match="is a directory"):
        read_regular_file(tmp_path, 10)
    with pytest.raises(FileNotFoundError):
        read_regular_file(tmp_path / "missing", 10)


# --- Hypothesis: hostile TOML through check-config ---------------------------------------------

_KEYS = ("resync_interval", "debounce", "max_delay", "protocol", "mode", "rule_priority",
         "table_range", "exclude", "cleanup_on_exit", "log_format", "log_level",
         "dhcp_lease_paths", "http_listen", "name", "table", "gateway", "gateway6", "priority",
         "routes", "to", "via", "metric", "bogus")
_SCALARS = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["1" + "0" * 400, "1" + "0" * 4400, "1e-300", "1e308", "-1e308", "inf",
                     "nan", "-0.0", "0x7fffffff", "0o777", "0b1", "true", "1979-05-27",
                     "07:32:00", "1979-05-27T07:32:00Z"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20).map(
        lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        .replace("\r", "\\r").replace("\t", "\\t") + '"'),
)


def _value(depth: int) -> st.SearchStrategy[str]:
    if depth <= 0:
        return _SCALARS
    inner = _value(depth - 1)
    return st.one_of(
        _SCALARS,
        st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
        st.dictionaries(st.sampled_from(_KEYS), inner, max_size=3).map(
            lambda d: "{" + ", ".join(f"{k} = {v}" for k, v in d.items()) + "}"),
        st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
    )


_HEADERS = st.sampled_from(["[daemon]", "[[interface]]", "[[interface.routes]]", "[interface]",
                            "[daemon.x]", ""])
_LINES = st.one_of(
    st.tuples(st.sampled_from(_KEYS), _value(2)).map(lambda kv: f"{kv[0]} = {kv[1]}"),
    _HEADERS,
    st.text(alphabet=string.printable, max_size=30),  # garbage
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_LINES, max_size=12))
def test_hostile_configs_exit_0_or_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: list[str]
) -> None:
    path = tmp_path / "hostile.toml"
    text = "\n".join(lines) + "\n"
    # Nothing is written anyway (check-config only reads), but keep even reads in the test's
    # own directory where the file has a [daemon] table.
    text = text.replace("[daemon]\n", '[daemon]\nrt_tables_file = ""\n', 1)
    path.write_text(text)
    code, err = check_config(path, capsys)
    assert code in (0, 2), err
    assert "Traceback" not in err
    if code == 2:
        assert err.count("\n") == 1 and err.startswith(f"polroutd: error: {path}"), err


def test_a_fifo_among_the_network_managers_files_does_not_block(tmp_path: Path) -> None:
    drop_ins = tmp_path / "etc" / "systemd" / "networkd.conf.d"
    drop_ins.mkdir(parents=True)
    os.mkfifo(drop_ins / "50-fifo.conf")
    (drop_ins / "60-real.conf").write_text("[Network]\nManageForeignRoutes=no\n")
    files = networkd_config_files(tmp_path / "etc", tmp_path / "run", tmp_path / "lib")
    outcome: list[dict[str, bool]] = []
    worker = threading.Thread(target=lambda: outcome.append(networkd_settings(files)))
    worker.daemon = True  # before the fix it blocks in open() forever
    worker.start()
    worker.join(5)
    assert outcome and outcome[0]["ManageForeignRoutes"] is False
