"""The naive approach a sysadmin writes: ``ip monitor address`` piped into a shell loop that
runs one ``ip rule add/del from ADDR table T`` per event.

It does less than polroutd (no routing tables, no gateways, no repair of ``ip rule del``, no
de-duplication, nothing at start-up for addresses that already exist), so it is a floor for
per-event latency of the "fork an ``ip`` per event" design, not a functional equivalent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

from bench import hosts

# Interface bnN uses table BASE_TABLE + N; the rule priority is polroutd's default.
SCRIPT = r"""
ip -4 -o monitor address | while read -r first rest; do
    case "$first" in
        Deleted) op=del; set -- $rest ;;
        [0-9]*:) op=add; set -- $first $rest ;;
        *) continue ;;
    esac
    dev=$2; addr=${4%%/*}
    ip rule $op from "$addr" table $((%(base)d + ${dev#bn})) priority %(priority)d
done
"""


class NaiveLoop:
    """The loop, running in ``ns`` in its own process group (stopped by that group's id)."""

    def __init__(self, ns: str) -> None:
        script = SCRIPT % {"base": hosts.BASE_TABLE, "priority": hosts.PRIORITY}
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
