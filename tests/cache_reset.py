"""pytest plugin for mutation testing (``-p tests.cache_reset``, see pyproject's [tool.mutmut]).

mutmut runs each mutant in a process forked from the one that ran the unmutated tests, so a
cache filled then would answer for the mutant; and it maps tests to the functions they call,
which a cache hit hides. Emptying the pure core's caches before every test avoids both.
"""

from __future__ import annotations

import pytest

from polroutd.core import desired


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    for cache in desired.CACHES:
        cache.cache_clear()
