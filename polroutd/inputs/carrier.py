"""An interface's carrier as the kernel knows it this instant, from sysfs.

Link events carry carrier changes late when the kernel's linkwatch is busy: it reports
non-urgent changes (a physical NIC's carrier among them) at most once a second for the whole
host, so one loss can reach userspace up to a second after it happened. The carrier file reads
``netif_carrier_ok()`` directly; the uplink monitor polls it as a complement to the events
(docs/uplinks.md).
"""

from __future__ import annotations

from pathlib import Path

SYS_CLASS_NET = Path("/sys/class/net")


def carrier(name: str, root: Path = SYS_CLASS_NET) -> bool | None:
    """True with carrier, False without (or administratively down: the kernel then refuses
    the read), None when the interface or sysfs is not there to ask."""
    try:
        with open(root / name / "carrier", "rb") as file:
            return file.read(1) == b"1"
    except FileNotFoundError:
        return None
    except OSError:  # EINVAL: the interface is down
        return False
