"""What the test trees share (tests/unit needs no root, tests/kernel needs the kernel): fakes,
helpers, the article's example. Test modules import from here, never from one another."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "polroutd.service"
SYSUSERS = REPO / "systemd" / "polroutd.sysusers"
TMPFILES = REPO / "systemd" / "polroutd.tmpfiles"
ALERTS = REPO / "contrib" / "prometheus" / "polroutd-alerts.yml"
