"""The one retry policy for Kafka Connect calls: 409 (not "already exists"), 5xx, transport errors.

Exponential backoff with full jitter, bounded by total time and attempts. `sleep` comes from the clock:
it raises `ShuttingDown` as soon as a stop is requested, so no retry outlives a SIGTERM, and unit tests
never sleep. Callers decide what a retry must re-check (see `executor` for unknown outcomes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import structlog
import tenacity

from reconciler.errors import ConnectApiError

log = structlog.get_logger("reconciler.retry")

T = TypeVar("T")


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, ConnectApiError) and exc.retryable


def log_retry(exc: BaseException, attempt: int) -> None:
    """Every retried 409/5xx/transport error is visible (connect-operator's 409s were silent)."""
    log.warning("retrying a Kafka Connect request", attempt=attempt, error=str(exc))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_seconds: float = 120.0
    max_attempts: int = 30
    initial_wait: float = 0.2
    max_wait: float = 5.0
    sleep: Callable[[float], None] = field(default=time.sleep)
    on_retry: Callable[[BaseException, int], None] | None = log_retry

    def retrying(self) -> tenacity.Retrying:
        def before_sleep(state: tenacity.RetryCallState) -> None:
            if self.on_retry is not None and state.outcome is not None:
                exc = state.outcome.exception()
                if exc is not None:
                    self.on_retry(exc, state.attempt_number)

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_retryable),
            wait=tenacity.wait_random_exponential(multiplier=self.initial_wait, max=self.max_wait),
            stop=tenacity.stop_after_delay(self.max_seconds) | tenacity.stop_after_attempt(self.max_attempts),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )

    def call(self, fn: Callable[[], T]) -> T:
        return self.retrying()(fn)
