"""Time for the long-running parts, injectable: monotonic time, wall time, and waits that end on stop.

Edge (reads the clocks). Every wait in the reconciler goes through a `Clock`, so a shutdown wakes
every retry sleep at once and unit tests run a loop through hours of simulated time without sleeping.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Protocol

from reconciler.errors import ShuttingDown


class Clock(Protocol):
    stop: threading.Event

    def monotonic(self) -> float: ...

    def now(self) -> datetime: ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Wait until `event` is set (True) or `timeout` seconds pass (False); a stop also ends it."""
        ...

    def sleep(self, seconds: float) -> None:
        """Sleep, unless a stop is requested: then raise ShuttingDown at once."""
        ...


class SystemClock:
    def __init__(self, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait(self, event: threading.Event, timeout: float) -> bool:
        if event is self.stop:
            return self.stop.wait(max(0.0, timeout))
        deadline = time.monotonic() + max(0.0, timeout)
        # Wake on either event: poll the stop flag in short slices rather than adding a second waiter.
        while not event.is_set() and not self.stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            event.wait(min(left, 0.05))
        return event.is_set()

    def sleep(self, seconds: float) -> None:
        if self.stop.wait(max(0.0, seconds)):
            raise ShuttingDown("stopping: no further retries")
