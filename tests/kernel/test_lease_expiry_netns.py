"""Issue 11: a default route from a DHCP lease stayed 62 s past the lease's expiry. In the lab,
with a resync of an hour, the route now leaves within a second of the lease's end."""

from __future__ import annotations

import time
from pathlib import Path

from polroutd.lab.lab import ADDR, Lab
from tests.support.lab_tools import HTTP_PORT, owned, routes, start_daemon, write_config

DAEMON = f'http_listen = "127.0.0.1:{HTTP_PORT}"\nresync_interval = 3600'
ROUTER = "10.225.176.1"


def _lease_default(lab: Lab) -> bool:
    return any(r.get("dst") == "default" and r.get("gateway") == ROUTER
               for r in owned(routes(lab, lab.server)))


def test_the_lease_default_route_leaves_when_the_lease_expires(
    lab: Lab, tmp_path: Path
) -> None:
    config = write_config(tmp_path, daemon_extra=DAEMON)
    expires = int(time.time()) + 8  # the start may take seconds on a loaded machine
    (tmp_path / "leases" / "dhclient.leases").write_text(
        f'lease {{\n  interface "ens224";\n  fixed-address {ADDR.server_data4};\n'
        f"  option routers {ROUTER};\n  expire epoch {expires};\n}}\n")
    d = start_daemon(lab, config, tmp_path)
    try:
        d.wait_ready()
        assert _lease_default(lab), "the lease's router is ens224's default route"
        while _lease_default(lab):
            assert time.time() < expires + 10, "the route outlived its lease by 10 s"
            time.sleep(0.02)
        late = time.time() - expires
        print(f"the default route left {late:.3f} s after the lease expired")
        assert -0.05 < late < 1.0
        assert d.state()["last_reconcile"]["reason"] == "lease-expiry"
    finally:
        d.stop()
