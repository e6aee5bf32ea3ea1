"""pytest plugin for mutation testing (``-p tests.support.mutmut_plugin``, see
[tool.mutmut]
and docs/testing.md).

mutmut runs each mutant in a process forked from the one that ran the unmutated tests, so a
cache filled then would answer for the mutant; and it maps tests to the functions they call,
which a cache hit hides. Emptying the pure core's caches before every test avoids both.
Hypothesis runs without deadlines (mutmut's indirection and a shared machine slow every call)
and derandomized, so a mutant's verdict does not depend on the run.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

from polroutd.core import desired

settings.register_profile("mutmut", deadline=None, derandomize=True, database=None)
settings.load_profile("mutmut")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    for cache in desired.CACHES:
        cache.cache_clear()
