"""``Netlink.apply`` on the real kernel: each operation's own outcome out of batched sendmsgs.

Requests go out without NLM_F_ACK, many per sendmsg, with an acknowledged NOOP as a barrier
(kernel.py), so these tests pin down what that must still give: every failure reported on the
operation that caused it (errno and the kernel's message), the idempotent errnos turned into
success, and the operations after a failure, in the same or a later batch, still carried out.
"""

from __future__ import annotations

import json
import subprocess
import sys

from polroutd.netlink.kernel import BATCH, FIRST_BATCH
from tests.support.lab_tools import ip, namespace

# Runs inside the namespace (eth0 has 10.1.0.2/24); prints [errno, message] per operation.
PROBE = r"""
import json, socket, sys
from polroutd.netlink.kernel import Netlink
from polroutd.core.model import Route, RouteOp, Rule, RuleOp
from polroutd.core.limits import AF_INET, RT_SCOPE_LINK

eth0 = socket.if_nametoindex("eth0")
def rule(src, table=100):
    return Rule(AF_INET, 30000, table, 218, src=src, src_len=32)
def route(dst, dst_len, gateway, oif=eth0):
    return Route(AF_INET, 100, dst, dst_len, 218, oif=oif, gateway=gateway)

failing = RouteOp("add", route("192.0.2.0", 24, "10.99.99.1"))  # gateway not on a link
ops = [
    RuleOp("add", rule("10.1.0.2")),
    RuleOp("add", rule("10.1.0.2")),  # exists: EEXIST is success
    failing,
    RouteOp("add", route("0.0.0.0", 0, "10.1.0.1")),
    RuleOp("delete", rule("10.1.0.77")),  # missing: ENOENT is success
    RouteOp("delete", route("198.51.100.0", 24, "10.1.0.1")),  # missing: ESRCH is success
    RouteOp("add", route("203.0.113.0", 24, None, oif=9999)),  # no such device
]
ops += [RuleOp("add", rule(f"10.2.{i // 250}.{i % 250 + 1}", 200)) for i in range(int(sys.argv[1]))]
ops.insert(int(sys.argv[2]), failing)
ops.append(failing)
with Netlink(pipelined=json.loads(sys.argv[3])) as nl:
    results = nl.apply(ops)
assert [r.operation for r in results] == ops
print(json.dumps([[r.errno, r.message] for r in results]))
"""


Probe = tuple[list[list[object]], list[dict[str, object]], list[dict[str, object]]]


def _probe(many: int, middle: int, pipelined: bool | None) -> Probe:
    """The probe's outcome, and the IPv4 rules and table 100 it leaves (in a namespace of its
    own); ``pipelined`` as ``Netlink`` takes it."""
    with namespace() as ns:
        probe = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", PROBE, str(many), str(middle),
             json.dumps(pipelined)],
            capture_output=True,
            text=True,
        )
        assert probe.returncode == 0, probe.stderr
        return (json.loads(probe.stdout), json.loads(ip(ns, "-j", "-4", "rule", "show")),
                json.loads(ip(ns, "-j", "-4", "route", "show", "table", "100")))


def test_every_operation_gets_its_own_outcome_across_batches() -> None:
    many = 2 * BATCH + 40
    middle = BATCH + 17  # a failure inside the second batch
    outcome, rules, table = _probe(many, middle, None)

    unreachable = 101  # ENETUNREACH
    failed = {i: code for i, (code, _message) in enumerate(outcome) if code}
    last = len(outcome) - 1
    assert failed == {2: unreachable, 6: 19, middle: unreachable, last: unreachable}  # 19: ENODEV
    gateway_failures = [outcome[i] for i, code in failed.items() if code == unreachable]
    assert all(message == "Nexthop has invalid gateway" for _, message in gateway_failures)
    ours = [r for r in rules if r.get("protocol") in ("218", 218)]
    assert len(ours) == 1 + many, "every rule after a failure was still added"
    assert len([r for r in ours if r["src"] == "10.1.0.2"]) == 1, "no duplicate"
    assert [r["dst"] for r in table] == ["default"]


def test_pipelined_and_batch_by_batch_applies_leave_the_same_kernel_state() -> None:
    many = 3 * BATCH + 5
    middle = FIRST_BATCH + 1  # a failure in the second batch pipelined, in the first looped
    pipelined = _probe(many, middle, True)
    looped = _probe(many, middle, False)
    assert pipelined == looped
    assert len(pipelined[1]) > many
