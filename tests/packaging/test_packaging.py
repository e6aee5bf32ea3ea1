"""Packaging: man pages, shell completion, the Debian package, the sdist and the wheel.

Self-contained (imports nothing from other test modules). The first part runs everywhere and
checks the sources: man pages generated from the parser and the configuration dataclasses,
complete and up to date; completion files that know every command and option; debian/control
in step with pyproject.toml. The second part checks built artefacts and runs only when
``POLROUTD_DIST_DIR`` names a directory ``./dev package`` filled:

    DIR/python/polroutd-*.tar.gz, DIR/python/polroutd-*.whl, DIR/python-build.log
    DIR/deb/polroutd_*_all.deb, DIR/deb/polroutd_*.changes

Nothing here installs anything on the machine or starts anything: the .deb is unpacked into a
temporary directory and run from there with Debian's /usr/bin/python3.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from polroutd import __version__
from polroutd.cli import manpages
from polroutd.cli.parser import build_parser
from polroutd.config import uplinks
from polroutd.core import limits, record, settings

ROOT = Path(__file__).resolve().parents[2]
MAN_DIR = ROOT / "contrib" / "man"
BASH_COMPLETION = ROOT / "contrib" / "completion" / "polroutd.bash"
ZSH_COMPLETION = ROOT / "contrib" / "completion" / "_polroutd"
DEBIAN_PYTHON = Path("/usr/bin/python3")
# Debian 12's packages the .deb depends on, with the versions pyproject.toml must accept.
DEBIAN_DEPENDENCIES = {
    "aiohttp": ("python3-aiohttp", "3.8"),
    "structlog": ("python3-structlog", "22.3"),
    "prometheus-client": ("python3-prometheus-client", "0.16"),
    "systemd-python": ("python3-systemd", "235"),
}


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def option_flags(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for a in parser._actions for flag in a.option_strings if flag.startswith("--")}


def format_choices() -> list[str]:
    render = subcommands()["render"]
    action = next(a for a in render._actions if "--format" in a.option_strings)
    assert action.choices
    return [str(c) for c in action.choices]


def rendered(page: str) -> str:
    """The page as man shows it, hyphenation and justification off, one space between words."""
    if shutil.which("groff") is None:
        text = manpages.render_all()[page]
        return re.sub(r"\\f[BIR]|\\&|\\e", "", text).replace("\\-", "-")
    result = subprocess.run(
        ["groff", "-man", "-Tutf8", "-P-cbou", "-rHY=0", "-dAD=l", "-rLL=200n"],
        input=manpages.render_all()[page], capture_output=True, text=True, check=True,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    )
    return " ".join(result.stdout.replace("\u2010", "-").split())


# --- man pages --------------------------------------------------------------------------------


def test_the_committed_man_pages_are_the_generated_ones() -> None:
    for name, text in manpages.render_all().items():
        committed = (MAN_DIR / name).read_text(encoding="utf-8")
        assert committed == text, f"run: python3 -m polroutd.cli.manpages --out {MAN_DIR}"


def test_every_command_and_option_is_in_polroutd_8() -> None:
    page = rendered("polroutd.8")
    for name, sub in subcommands().items():
        assert f"polroutd {name}" in page, name
        assert sub.description and sub.description.lower() in page.lower(), name
        for flag in option_flags(sub) - {"--help"}:
            assert re.search(rf"polroutd {re.escape(name)} [^\n]*?{re.escape(flag)}\b", page) \
                or flag == "--debug", (name, flag)
    for flag in option_flags(build_parser()):
        assert flag in page, flag
    for choice in format_choices():
        assert choice in page, choice
    for section in ("EXIT STATUS", "SIGNALS", "ENVIRONMENT", "FILES", "EXAMPLES"):
        assert section in page, section
    for variable in ("POLROUTD_CONFIG", "POLROUTD_EVENT_RCVBUF", "NOTIFY_SOCKET"):
        assert variable in page, variable
    for signal_name in ("SIGHUP", "SIGTERM"):
        assert signal_name in page


def test_every_command_has_its_exit_codes_in_polroutd_8() -> None:
    page = rendered("polroutd.8")
    exit_section = page.split("EXIT STATUS", 1)[1].split("SIGNALS", 1)[0]
    for name in subcommands():
        assert name in manpages.COMMANDS, name
        assert re.search(rf"\b{re.escape(name)} 0 ", exit_section), name


def test_a_command_without_documentation_fails_the_generation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(manpages.COMMANDS, "flush")
    with pytest.raises(KeyError, match="flush"):
        manpages.render_polroutd8()


@pytest.mark.parametrize("section, cls", [
    ("daemon", settings.DaemonSettings),
    ("interface", settings.InterfaceSpec),
    ("interface.routes", settings.RouteSpec),
])
def test_every_config_key_is_described_with_its_default_in_polroutd_toml_5(
    section: str, cls: type
) -> None:
    page = rendered("polroutd.toml.5")
    keys = {k.path: k for k in manpages.config_keys()}
    for f in record.fields(cls):
        if f"{section}.{f.name}" == "interface.uplink":
            continue  # the file spells it as flat keys: below
        key = keys[f"{section}.{f.name}"]  # a field without a description fails config_keys()
        assert key.description
        assert re.search(rf"\b{re.escape(f.name)}\b", page), key.path
        if f.default is not record.MISSING and key.path not in manpages.DEFAULT_WORDS:
            for part in manpages.toml_value(f.default).strip("[]").split(", "):
                assert part in page, (key.path, part)
    if section == "interface":  # the keys the parser takes for an uplink
        for name in uplinks.UPLINK_KEYS:
            assert keys[f"interface.{name}"].description
            assert re.search(rf"\b{re.escape(name)}\b", page), name


def test_a_config_key_without_a_description_fails_the_generation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(manpages.KEYS, "daemon.max_delay")
    with pytest.raises(KeyError, match=r"daemon\.max_delay"):
        manpages.render_polroutd_toml5()


def test_the_toml_page_states_the_codes_limits() -> None:
    page = rendered("polroutd.toml.5")
    lowest = max(limits.RESERVED_PROTOCOLS) + 1
    assert f"a number from {lowest} to {limits.MAX_PROTOCOL}" in page
    assert f"from 1 to {limits.MAX_RULE_PRIORITY}" in page
    for word in (*settings.MODES, *settings.LOG_FORMATS, *settings.LOG_LEVELS):
        assert word in page, word


@pytest.mark.skipif(shutil.which("groff") is None, reason="needs groff")
@pytest.mark.parametrize("page", sorted(manpages.PAGES))
def test_the_man_pages_render_without_warnings(page: str) -> None:
    result = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-z", str(MAN_DIR / page)],
        capture_output=True, text=True, env={**os.environ, "LC_ALL": "C.UTF-8"},
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr


@pytest.mark.skipif(shutil.which("man") is None, reason="needs man-db")
def test_man_l_shows_the_page() -> None:
    result = subprocess.run(
        ["man", "-l", str(MAN_DIR / "polroutd.8")], capture_output=True, text=True,
        env={**os.environ, "MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "80"},
    )
    assert result.returncode == 0, result.stderr
    assert "check-config" in result.stdout


def test_the_unit_points_to_the_man_pages() -> None:
    unit = (ROOT / "systemd" / "polroutd.service").read_text()
    documentation = next(line for line in unit.splitlines() if line.startswith("Documentation="))
    for page in ("man:polroutd(8)", "man:polroutd.toml(5)"):
        assert page in documentation.removeprefix("Documentation=").split(), documentation


# --- shell completion -------------------------------------------------------------------------


@pytest.mark.parametrize("path", [BASH_COMPLETION, ZSH_COMPLETION], ids=["bash", "zsh"])
def test_completion_knows_every_command_option_and_format(path: Path) -> None:
    text = path.read_text()
    words = set(re.findall(r"[\w-]+", text))
    for name, sub in subcommands().items():
        assert name in words, name
        for flag in option_flags(sub):
            assert re.search(rf"{re.escape(flag)}\b", text), (name, flag)
    for flag in option_flags(build_parser()):
        assert flag in text, flag
    for choice in format_choices():
        assert choice in words, choice


BASH_COMPLETION_LIBRARY = Path("/usr/share/bash-completion/bash_completion")


@pytest.mark.skipif(not BASH_COMPLETION_LIBRARY.exists(), reason="needs bash-completion")
@pytest.mark.parametrize("line, expected", [
    ("polroutd ", {*subcommands()}),
    ("polroutd re", {"render"}),
    ("polroutd render --format ", set(format_choices())),
    ("polroutd render --", {"--config", "--format", "--out", "--help", "--debug"}),
    ("polroutd plan --", {"--config", "--json", "--help", "--debug"}),
    ("polroutd --", {"--help", "--version", "--debug"}),
])
def test_bash_completion_completes(line: str, expected: set[str]) -> None:
    words = line.split() + ([""] if line.endswith(" ") else [])
    script = (
        f"source {BASH_COMPLETION_LIBRARY}; source {BASH_COMPLETION}; "
        f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}; "
        f"COMP_LINE={line!r}; COMP_POINT={len(line)}; _polroutd; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert set(result.stdout.split()) == expected


@pytest.mark.skipif(not BASH_COMPLETION_LIBRARY.exists(), reason="needs bash-completion")
def test_bash_completion_offers_toml_files_for_config(tmp_path: Path) -> None:
    (tmp_path / "polroutd.toml").write_text("")
    (tmp_path / "notes.txt").write_text("")
    script = (
        f"source {BASH_COMPLETION_LIBRARY}; source {BASH_COMPLETION}; cd {tmp_path}; "
        "COMP_WORDS=(polroutd plan --config ''); COMP_CWORD=3; _polroutd; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["polroutd.toml"]


# --- the Debian sources agree with pyproject.toml ---------------------------------------------


def test_pyproject_accepts_and_debian_control_requires_debian_12s_versions() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    control = (ROOT / "debian" / "control").read_text()
    assert project["license"] == "MIT"
    bounds = {}
    for requirement in project["dependencies"]:
        match = re.match(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9.]+)", requirement)
        assert match, requirement
        bounds[match.group(1)] = match.group(2)
    for name, (package, version) in DEBIAN_DEPENDENCIES.items():
        assert bounds[name] == version, (name, bounds[name])
        assert f"{package} (>= {version})" in control, package


def test_the_debian_changelog_has_the_package_version() -> None:
    first = (ROOT / "debian" / "changelog").read_text().splitlines()[0]
    assert first.startswith(f"polroutd ({__version__})"), first


def test_the_example_protocol_range_is_the_codes() -> None:
    example = (ROOT / "contrib" / "polroutd.example.toml").read_text()
    lowest = max(limits.RESERVED_PROTOCOLS) + 1
    assert f"a number {lowest}..{limits.MAX_PROTOCOL}" in example
    assert "1..255" not in example


# --- built artefacts (./dev package) ----------------------------------------------------------

DIST = Path(os.environ["POLROUTD_DIST_DIR"]) if os.environ.get("POLROUTD_DIST_DIR") else None
needs_dist = pytest.mark.skipif(DIST is None, reason="POLROUTD_DIST_DIR not set (./dev package)")


def artefact(pattern: str) -> Path:
    assert DIST is not None
    found = sorted(DIST.glob(pattern))
    assert len(found) == 1, (pattern, found)
    return found[0]


@needs_dist
def test_the_sdist_is_complete() -> None:
    sdist = artefact("python/polroutd-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
        pkg_info = tar.extractfile(f"polroutd-{__version__}/PKG-INFO")
        assert pkg_info is not None
        metadata = pkg_info.read().decode()
    expected = {
        "LICENSE", "README.md", "pyproject.toml",
        "systemd/polroutd.service", "systemd/polroutd.sysusers", "systemd/polroutd.tmpfiles",
        "contrib/polroutd.example.toml", "contrib/README.md",
        "contrib/iproute2/rt_protos.d/polroutd.conf",
        "contrib/systemd-networkd/10-polroutd-foreign.conf",
        "contrib/NetworkManager/90-polroutd.conf",
        "contrib/prometheus/polroutd-alerts.yml", "contrib/grafana/polroutd-dashboard.json",
        "contrib/man/polroutd.8", "contrib/man/polroutd.toml.5",
        "contrib/completion/polroutd.bash", "contrib/completion/_polroutd",
        "docs/architecture.md", "polroutd/cli/main.py", "polroutd/cli/manpages.py",
        "polroutd/openapi.json", "debian/control",
    }
    assert expected <= names, sorted(expected - names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert "License-Expression: MIT" in metadata


@needs_dist
def test_the_wheel_carries_the_data_files_and_the_license() -> None:
    with zipfile.ZipFile(artefact("python/polroutd-*.whl")) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(f"polroutd-{__version__}.dist-info/METADATA").decode()
    for name in ("polroutd/py.typed", "polroutd/openapi.json", "polroutd/state.schema.json",
                 "polroutd/cli/manpages.py", f"polroutd-{__version__}.dist-info/entry_points.txt"):
        assert name in names, name
    assert any(n.endswith("licenses/LICENSE") or n.endswith("/LICENSE") for n in names)
    assert "License-Expression: MIT" in metadata
    assert "License ::" not in metadata  # no classifier next to the expression


@needs_dist
def test_the_build_backend_warned_about_nothing() -> None:
    assert DIST is not None
    log = (DIST / "python-build.log").read_text()
    assert "Successfully built" in log
    # pip's complaints about this machine's index configuration are not the backend's
    warnings = [line for line in log.splitlines() if re.search(r"(?i)warn|deprecat", line)
                and not re.match(r"WARNING: Location '.*' is ignored", line)]
    assert not warnings, warnings


def deb() -> Path:
    return artefact("deb/polroutd_*_all.deb")


def dpkg_deb(*args: str) -> str:
    return subprocess.run(["dpkg-deb", *args], capture_output=True, text=True,
                          check=True).stdout


@needs_dist
def test_the_deb_depends_on_debian_12s_packages() -> None:
    depends = dpkg_deb("-f", str(deb()), "Depends")
    for package, version in DEBIAN_DEPENDENCIES.values():
        assert re.search(rf"\b{re.escape(package)} \(>= {re.escape(version)}\)", depends), \
            (package, depends)
    assert "python3" in depends
    assert dpkg_deb("-f", str(deb()), "Architecture").strip() == "all"


@needs_dist
def test_the_deb_installs_every_file_where_it_belongs() -> None:
    listing = {line.split()[-1].lstrip(".") for line in dpkg_deb("-c", str(deb())).splitlines()}
    expected = {
        "/usr/bin/polroutd",
        "/usr/lib/python3/dist-packages/polroutd/cli/main.py",
        "/usr/lib/python3/dist-packages/polroutd/openapi.json",
        "/lib/systemd/system/polroutd.service",
        "/usr/lib/sysusers.d/polroutd.conf",
        "/usr/lib/tmpfiles.d/polroutd.conf",
        "/etc/iproute2/rt_protos.d/polroutd.conf",
        "/etc/polroutd/polroutd.toml",
        "/usr/share/polroutd/systemd-networkd/10-polroutd-foreign.conf",
        "/usr/share/polroutd/NetworkManager/90-polroutd.conf",
        "/usr/share/polroutd/prometheus/polroutd-alerts.yml",
        "/usr/share/polroutd/grafana/polroutd-dashboard.json",
        "/usr/share/man/man8/polroutd.8.gz",
        "/usr/share/man/man5/polroutd.toml.5.gz",
        "/usr/share/bash-completion/completions/polroutd",
        "/usr/share/zsh/vendor-completions/_polroutd",
        "/usr/share/doc/polroutd/README.Debian",
        "/usr/share/doc/polroutd/copyright",
    }
    assert expected <= listing, sorted(expected - listing)
    # The networkd and NetworkManager drop-ins change other daemons: shipped, never active.
    assert not any(p.startswith(("/etc/systemd/", "/etc/NetworkManager/")) for p in listing)


@needs_dist
def test_the_deb_marks_the_configuration_as_conffiles(tmp_path: Path) -> None:
    subprocess.run(["dpkg-deb", "-e", str(deb()), str(tmp_path / "control")], check=True)
    conffiles = (tmp_path / "control" / "conffiles").read_text().split()
    assert "/etc/polroutd/polroutd.toml" in conffiles
    assert "/etc/iproute2/rt_protos.d/polroutd.conf" in conffiles


@needs_dist
def test_installing_the_deb_neither_enables_nor_starts_the_service(tmp_path: Path) -> None:
    control = tmp_path / "control"
    subprocess.run(["dpkg-deb", "-e", str(deb()), str(control)], check=True)
    scripts = {p.name: p.read_text() for p in control.iterdir()
               if p.name in ("preinst", "postinst", "prerm", "postrm")}
    assert "postinst" in scripts
    for name, text in scripts.items():
        lines = [line.strip() for line in text.splitlines()
                 if line.strip() and not line.strip().startswith("#")]
        for n, line in enumerate(lines):
            assert not re.search(r"deb-systemd-invoke\s+(start|restart|try-restart|reload)",
                                 line), (name, line)
            assert not re.search(r"systemctl\s+(\S+\s+)*(start|restart|enable)\b", line), \
                (name, line)
            if re.search(r"deb-systemd-helper\s+enable", line):
                # only re-creates links an administrator enabled before (an upgrade)
                assert "was-enabled" in lines[n - 1], (name, lines[n - 1])
    readme = (ROOT / "debian" / "README.Debian").read_text()
    assert "does NOT enable or start" in readme


@needs_dist
def test_the_unpacked_deb_runs_with_debians_python(tmp_path: Path) -> None:
    if not DEBIAN_PYTHON.exists():
        pytest.skip("needs Debian's /usr/bin/python3")
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb()), str(root)], check=True)
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8",
           "PYTHONPATH": str(root / "usr/lib/python3/dist-packages")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(DEBIAN_PYTHON), *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path)

    where = run("-c", "import polroutd, aiohttp; print(polroutd.__file__, aiohttp.__file__)")
    assert where.returncode == 0, where.stderr
    ours, theirs = where.stdout.split()
    assert ours.startswith(str(root)), ours  # the unpacked package, not the source tree
    assert theirs.startswith("/usr/lib/python3/dist-packages/"), theirs  # Debian's aiohttp
    version = run(str(root / "usr/bin/polroutd"), "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"polroutd {__version__}", \
        version
    example = root / "etc/polroutd/polroutd.toml"
    checked = run(str(root / "usr/bin/polroutd"), "check-config", "--config", str(example))
    assert checked.returncode == 0, checked.stderr
    assert "configuration is valid" in checked.stdout
    # the imports the daemon needs, against Debian's library versions
    imports = run("-c", "import polroutd.adapters.http, polroutd.daemon.service, "
                        "polroutd.adapters.sdnotify, polroutd.adapters.logs, "
                        "polroutd.adapters.metrics")
    assert imports.returncode == 0, imports.stderr


@needs_dist
def test_lintian_finds_nothing_unexplained() -> None:
    assert DIST is not None
    log = DIST / "lintian.log"  # ./dev package runs lintian once and keeps what it said
    if log.exists():
        output = log.read_text()
    elif shutil.which("lintian") is None:
        pytest.skip("needs lintian")
    else:
        output = subprocess.run(
            ["lintian", "--display-info", "--display-experimental", "--pedantic",
             "--show-overrides",
             str(artefact("deb/polroutd_*.changes"))],
            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
        ).stdout
    # Overridden tags (O:) carry their reason in debian/polroutd.lintian-overrides.
    tags = [line for line in output.splitlines() if re.match(r"^[EWIPX]: ", line)]
    assert not tags, "\n".join(tags)
    overrides = (ROOT / "debian" / "polroutd.lintian-overrides").read_text().splitlines()
    for n, line in enumerate(overrides):
        if line and not line.startswith("#"):
            assert n > 0 and overrides[n - 1].startswith("#"), f"no reason given for {line}"


@needs_dist
def test_the_wheel_in_a_fresh_venv_runs_help(tmp_path: Path) -> None:
    python = DEBIAN_PYTHON if DEBIAN_PYTHON.exists() else Path(sys.executable)
    venv = tmp_path / "venv"
    subprocess.run([str(python), "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin/python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    installed = subprocess.run([*pip, str(artefact("python/polroutd-*.whl"))],
                               capture_output=True, text=True)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    result = subprocess.run([str(venv / "bin/polroutd"), "--help"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    for name in subcommands():
        assert name in result.stdout, name
