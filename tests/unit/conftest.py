"""The tree that needs no root: pure code, the fake kernel, HTTP on loopback, files in
temporary directories. No test here may build a network namespace: one that makes a lab (or
leaves a ``polroutd.lab.netns.Namespaces`` namespace behind) fails, as it belongs in
tests/kernel."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from polroutd.lab import lab as lab_module
from polroutd.lab import netns


@pytest.fixture(autouse=True)
def _no_namespaces() -> Iterator[None]:
    before = lab_module.created_namespaces()
    yield
    made = sorted(lab_module.created_namespaces() - before) + netns.teardown_all()
    if made:
        pytest.fail(f"built network namespaces (now removed): {', '.join(made)}; tests that "
                    "need the kernel go in tests/kernel", pytrace=False)
