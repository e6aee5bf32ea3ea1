"""ICMP probes (polroutd.inputs.probes.IcmpProbes) in the uplink lab: each leaves from its own
source address through that address's own route, also when the IPv4 probes of every uplink
share one socket, so a dead upstream fails only the probes of its own uplink."""

from __future__ import annotations

import json
import sys

import pytest

from polroutd.lab.uplinks import SERVER, SERVER6, UplinkLab

# Probes every (source, target) pair once, all in the same round; prints the results.
PROBE_ALL = r"""
import asyncio, json, sys
from polroutd.inputs.probes import IcmpProbes
async def main():
    pairs = json.loads(sys.argv[1])
    probes, results, done = IcmpProbes(), {}, asyncio.Event()
    def report(key):
        def on_result(result):
            results[key] = {"ok": result.ok, "reason": result.reason}
            if len(results) == len(pairs):
                done.set()
        return on_result
    for source, target, ifindex in pairs:
        probes.probe(source, target, ifindex, 0.5, report(source))
    await asyncio.wait_for(done.wait(), 5)
    probes.close()
    print(json.dumps(results))
asyncio.run(main())
"""


@pytest.fixture
def lab(uplink_lab: UplinkLab) -> UplinkLab:
    return uplink_lab


def source_routing(lab: UplinkLab) -> None:
    """What polroutd's per-address rules do, by hand: each address looks up its own table,
    whose default goes through its own interface."""
    for n, name in enumerate(("wan1", "wan2"), 1):
        for family, source, gateway in (("-4", f"10.{n}.0.2", f"10.{n}.0.1"),
                                        ("-6", f"2001:db8:{n}::2", f"2001:db8:{n}::1")):
            lab.ip(lab.host, family, "rule", "add", "from", source, "lookup", str(100 + n),
                   "priority", "100")
            lab.ip(lab.host, family, "route", "add", "default", "via", gateway, "dev", name,
                   "table", str(100 + n))


def probe_all(lab: UplinkLab) -> dict[str, dict[str, object]]:
    index = {name: json.loads(lab.sh(lab.host, "ip", "-j", "link", "show", name))[0]["ifindex"]
             for name in ("wan1", "wan2")}
    pairs = [(f"10.{n}.0.2", SERVER, index[f"wan{n}"]) for n in (1, 2)]
    pairs += [(f"2001:db8:{n}::2", SERVER6, index[f"wan{n}"]) for n in (1, 2)]
    out = lab.sh(lab.host, sys.executable, "-c", PROBE_ALL, json.dumps(pairs))
    results: dict[str, dict[str, object]] = json.loads(out)
    return results


def test_each_probe_takes_its_own_sources_route(lab: UplinkLab) -> None:
    source_routing(lab)
    assert all(r["ok"] for r in probe_all(lab).values())
    # wan2's router drops everything for the server; main's default still goes by wan1
    lab.ip(lab.routers["wan2"], "route", "replace", "blackhole", f"{SERVER}/32")
    lab.ip(lab.routers["wan2"], "-6", "route", "replace", "blackhole", f"{SERVER6}/128")
    results = probe_all(lab)
    assert results == {
        "10.1.0.2": {"ok": True, "reason": None},
        "10.2.0.2": {"ok": False, "reason": "timeout"},
        "2001:db8:1::2": {"ok": True, "reason": None},
        "2001:db8:2::2": {"ok": False, "reason": "timeout"},
    }
