"""A simulated clock for loop tests: waits advance time instantly; the run ends at a horizon."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from reconciler.errors import ShuttingDown


class FakeClock:
    def __init__(self, *, horizon: float = 3600.0, max_waits: int = 10_000) -> None:
        self.t = 0.0
        self.stop = threading.Event()
        self.horizon = horizon
        self.max_waits = max_waits  # a loop that spins hits this instead of hanging the test
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self.t)

    def _advance(self, seconds: float) -> None:
        self.t += max(0.0, seconds)
        if self.t >= self.horizon or len(self.waits) >= self.max_waits:
            self.stop.set()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        self.waits.append(timeout)
        if event.is_set():
            self._advance(0.0)
            return True
        self._advance(timeout)
        return event.is_set()

    def sleep(self, seconds: float) -> None:
        if self.stop.is_set():
            raise ShuttingDown("stopping")
        self.waits.append(seconds)
        self._advance(seconds)
