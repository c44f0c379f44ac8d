"""What a pass tells the outside world about itself: the seam for the audit log, Kubernetes Events and
metrics.

Orchestration. The pipeline emits an `ActionEvent` for every action it executes (and, when asked, for
every action it only plans) and one `PassEvent` at the end; observers turn them into audit records,
Events and metric samples. An observer never slows or breaks a pass: it must return fast (queue
anything slow) and whatever it raises is logged and dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from reconciler.model import ActionEvent, PassEvent

__all__ = ["ActionEvent", "Event", "Observer", "PassEvent", "notify"]

log = structlog.get_logger("reconciler.telemetry")


Event = ActionEvent | PassEvent
Observer = Callable[[Event], None]


def notify(observers: Sequence[Observer], event: Event) -> None:
    for observer in observers:
        try:
            observer(event)
        except Exception as exc:  # an audit sink or a metric must never fail the pass
            log.warning(
                "an observer failed; event dropped", observer=repr(observer), error=type(exc).__name__
            )
