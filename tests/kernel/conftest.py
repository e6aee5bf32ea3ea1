"""The tree that needs the kernel: every test here runs as root, in throwaway network namespaces
(``polroutd.lab``), with a real systemd, Prometheus or DHCP where it says so.

* Every test here is marked ``netns`` (so ``pytest -m "not netns"`` runs what needs no root)
  and is skipped unless namespaces can be created (root / CAP_NET_ADMIN).
* ``lab`` yields a built ``Lab(prefix="polroutd-t")`` and tears it down afterwards.
* At the end of the session the root namespace's rules must be unchanged, and any namespace
  a lab (or ``polroutd.lab.netns.Namespaces``) of this test process created that still exists
  is removed and the session fails loudly. (Namespaces of concurrently running test
  processes, which share the prefix, are not this session's and are left alone.)
"""

from __future__ import annotations

import functools
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from polroutd.lab import lab as lab_module
from polroutd.lab import netns
from polroutd.lab.daemon import LabDaemon
from polroutd.lab.lab import ADDR, Lab
from polroutd.lab.uplinks import UplinkLab
from tests.support.lab_tools import (
    DAEMON_SETTINGS,
    LAB_PREFIX,
    start_daemon,
    write_config,
    write_lease,
)

NETADMIN_REASON = "needs CAP_NET_ADMIN (run as root)"


@functools.cache
def _can_make_netns() -> bool:
    if os.geteuid() != 0:
        return False
    probe = f"polroutd-probe-{secrets.token_hex(3)}"
    try:
        made = subprocess.run(
            ["ip", "netns", "add", probe], capture_output=True, check=False, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return False
    if made.returncode != 0:
        return False
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False, timeout=10)
    return True


KERNEL_TREE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if KERNEL_TREE in item.path.parents:
            item.add_marker(pytest.mark.netns)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("netns") is not None and not _can_make_netns():
        pytest.skip(NETADMIN_REASON)


@pytest.fixture
def require_netadmin() -> None:
    """Skip the test unless network namespaces can be created here."""
    if not _can_make_netns():
        pytest.skip(NETADMIN_REASON)


@pytest.fixture
def lab(require_netadmin: None) -> Iterator[Lab]:
    """A built figure-3 lab (server, router, client), torn down after the test."""
    with Lab(prefix=LAB_PREFIX) as built:
        yield built


@pytest.fixture
def uplink_lab(require_netadmin: None) -> Iterator[UplinkLab]:
    """The uplink lab (a server behind two routers, polroutd/lab/uplinks.py), torn down after
    the test; the uplink test modules take it as their ``lab``."""
    built = UplinkLab(LAB_PREFIX)
    try:
        yield built
    finally:
        built.close()


def _root_rules() -> str:
    """The root namespace's policy rules (read only), to prove the tests never touched them."""
    out = []
    for family in ("-4", "-6"):
        proc = subprocess.run(
            ["ip", family, "rule", "show"], capture_output=True, text=True, check=False, timeout=10
        )
        out.append(proc.stdout)
    return "".join(out)


@pytest.fixture
def daemon(lab: Lab, tmp_path: Path) -> Iterator[LabDaemon]:
    """``polroutd run`` in the lab's server with the article's configuration (ens224's gateway
    from a lease), HTTP on :data:`HTTP_PORT`, no resync during the test; ready and in sync."""
    config = write_config(tmp_path, daemon_extra=DAEMON_SETTINGS)
    write_lease(tmp_path, "ens224", ADDR.server_data4, "10.225.176.1")
    d = start_daemon(lab, config, tmp_path)
    try:
        d.wait_ready()
        d.wait_for(lambda: d.state()["in_sync"], what="in sync")
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="session", autouse=True)
def _no_leftover_namespaces() -> Iterator[None]:
    rules_before = _root_rules()
    yield
    assert _root_rules() == rules_before, "the root network namespace's rules changed"
    existing = set(lab_module.netns_names_with_prefix(LAB_PREFIX))
    leftovers = sorted(existing & lab_module.created_namespaces()) + netns.teardown_all()
    if leftovers:
        for ns in leftovers:
            lab_module.delete_netns(ns)
        pytest.fail(
            f"network namespaces left over by the tests (now removed): {', '.join(leftovers)}",
            pytrace=False,
        )
