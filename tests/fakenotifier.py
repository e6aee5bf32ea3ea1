"""A systemd notifier that records what the daemon would send (READY=1, STATUS=..., ...)."""

from __future__ import annotations


class FakeNotifier:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def ready(self) -> None:
        self.sent.append("READY=1")

    def reloading(self) -> None:
        self.sent.append("RELOADING=1")

    def stopping(self) -> None:
        self.sent.append("STOPPING=1")

    def status(self, text: str) -> None:
        self.sent.append(f"STATUS={text}")

    def watchdog(self) -> None:
        self.sent.append("WATCHDOG=1")

    def watchdog_interval(self) -> float | None:
        return 0.01
