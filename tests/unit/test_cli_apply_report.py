"""``polroutd apply``'s report: a line per operation, in the plan's order, each failure on its
own operation's line, then the count. What the kernel raises comes out of the command as it is
(and nothing is reported)."""

from __future__ import annotations

import errno
from collections.abc import Sequence

import pytest

from polroutd.cli import apply as apply_command
from polroutd.cli.common import EXIT_ERROR
from polroutd.core.describe import operation_text
from polroutd.core.errors import NoNetAdmin
from polroutd.core.model import Operation, OpResult
from polroutd.engine import Engine
from tests.support.fakes import FakeKernel
from tests.unit.test_incremental import CONFIG, _start


def test_each_operation_is_reported_in_plan_order_with_its_own_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    plan = Engine(CONFIG, FakeKernel(_start())).read_and_decide()
    operations = plan.plan.operations
    refused = next(i for i, op in enumerate(operations) if op.kind == "rule")
    kernel = FakeKernel(_start(), fail_next=[("rule", "add", errno.ENETUNREACH)])

    assert apply_command._reconcile(Engine(CONFIG, kernel)) == EXIT_ERROR

    lines = [operation_text(op, plan.names) for op in operations]
    lines[refused] += "  FAILED ENETUNREACH:"
    expected = "".join(f"{line}\n" for line in lines)
    assert len(operations) > 4
    assert capsys.readouterr().out == (
        f"{expected}applied {len(operations) - 1} operation(s), 1 failed\n")


class RefusingKernel(FakeKernel):
    def apply(self, operations: Sequence[Operation]) -> list[OpResult]:
        raise NoNetAdmin("refused", errno.EPERM)


def test_what_the_kernel_raises_comes_out_and_nothing_is_reported(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(NoNetAdmin):
        apply_command._reconcile(Engine(CONFIG, RefusingKernel(_start())))
    assert capsys.readouterr().out == ""
