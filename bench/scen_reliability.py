"""Reliability, the long versions of issue 11's suite (docs/reliability.md), on the article's
lab: 100 kill -9 cycles during address bursts, 1,000 link flaps, 1,000 concurrent ``GET
/state``, and a churn soak (10 minutes unless ``--soak-minutes`` says otherwise) with RSS and
descriptors sampled. Not part of ``--quick``; the figures are recorded, and the properties
(no duplicate or orphan rule, foreign objects untouched, no drift from flaps, in sync after
the soak) are checked: a broken one fails the scenario."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import PREFIX, BenchError
from bench.common import Context, Row
from polroutd.lab import reliability
from polroutd.lab.daemon import LabDaemon
from polroutd.lab.lab import ADDR, Lab

HTTP_PORT = 19653
DAEMON = f'http_listen = "127.0.0.1:{HTTP_PORT}"\nresync_interval = 3600'
KILLS, FLAP_STORM, FLAPS_PACED, STATE_REQUESTS, STATE_THREADS = 100, 500, 500, 1000, 100


def _check(ok: bool, what: str, figures: Any) -> None:
    if not ok:
        raise BenchError(f"reliability: {what}: {figures}")


def run(ctx: Context) -> None:
    directory = ctx.workdir / "reliability"
    directory.mkdir(exist_ok=True)
    details: dict[str, Any] = {}
    ctx.details["reliability"] = details
    with Lab(prefix=PREFIX, narrate=None) as lab:
        config = reliability.write_config(directory, daemon_extra=DAEMON)
        reliability.write_lease(directory, "ens224", ADDR.server_data4,
                                reliability.LEASE_ROUTER)

        def start() -> LabDaemon:
            return LabDaemon(lab, lab.server, config, directory=directory,
                             http_listen=f"127.0.0.1:{HTTP_PORT}")

        ctx.say(f"   {KILLS} kill -9 cycles during address bursts")
        kills = details["kill_9"] = reliability.kill_cycles(lab, start, directory, KILLS)
        ctx.say(f"   {kills}")
        _check(kills["duplicate_rules"] == 0 and kills["orphan_rules"] == 0
               and not kills["foreign_changed"], "kill -9 left the kernel wrong", kills)
        ctx.add(Row("reliability", f"kill -9 cycles ({KILLS}): duplicate + orphan rules",
                    "count", float(kills["duplicate_rules"] + kills["orphan_rules"])))
        daemon = start()
        try:
            daemon.wait_ready()
            daemon.wait_for(lambda: bool(daemon.state()["in_sync"]), what="in sync")
            _flaps_state_soak(ctx, lab, daemon, directory, details)
        finally:
            daemon.stop()


def _flaps_state_soak(ctx: Context, lab: Lab, daemon: LabDaemon, directory: Path,
                      details: dict[str, Any]) -> None:
    ctx.say(f"   {FLAP_STORM + FLAPS_PACED} link flaps")
    flaps = details["flaps"] = reliability.flap_storm(
        lab, daemon, directory, storm=FLAP_STORM, paced=FLAPS_PACED, pace=0.05)
    ctx.say(f"   {flaps}")
    counters = flaps["counters"]
    _check(counters["drift"] == 0 and counters["repairs"] == 0 and flaps["in_sync"],
           "flaps counted as drift", flaps)
    ctx.add(Row("reliability", f"flaps ({flaps['flaps']}): drift", "count",
                float(counters["drift"])))
    ctx.add(Row("reliability", "flaps: RSS growth", "KiB",
                float(flaps["rss_kib"][1] - flaps["rss_kib"][0])))
    ctx.add(Row("reliability", "flaps: descriptor growth", "count",
                float(flaps["fds"][1] - flaps["fds"][0])))

    ctx.say(f"   {STATE_REQUESTS} concurrent GET /state ({STATE_THREADS} client threads)")
    state = details["state"] = reliability.concurrent_state(
        lab, HTTP_PORT, STATE_REQUESTS, STATE_THREADS)
    ctx.say(f"   {state}")
    _check(state["ok"] == STATE_REQUESTS, "GET /state not all answered", state)
    ctx.add(Row("reliability", f"concurrent /state ({STATE_REQUESTS}): slowest", "ms",
                state["max_s"] * 1000))

    seconds = ctx.soak_seconds
    ctx.say(f"   churn soak, {seconds:.0f} s")
    soak = details["soak"] = reliability.churn_soak(lab, daemon, directory, seconds=seconds,
                                                    sample_every=max(5.0, seconds / 60),
                                                    say=ctx.say)
    ctx.say(f"   {({k: v for k, v in soak.items() if k != 'samples'})}")
    _check(bool(soak["in_sync"]), "not in sync after the soak", soak)
    ctx.add(Row("reliability", f"soak ({soak['seconds']:.0f} s): RSS growth after warm-up",
                "KiB", float(soak["rss_kib_settled_growth"])))
    ctx.add(Row("reliability", "soak: descriptors max - min", "count",
                float(soak["fds_min_max"][1] - soak["fds_min_max"][0])))
