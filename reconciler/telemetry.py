"""What a pass tells the outside world about itself: the seam for the audit log, Kubernetes Events and
metrics.

Orchestration. The pipeline emits an `ActionEvent` for every action it executes (and, when asked, for
every action it only plans) and one `PassEvent` at the end; observers turn them into audit records,
Events and metric samples. An observer never slows or breaks a pass: it must return fast (queue
anything slow) and whatever it raises is logged and dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from reconciler.model import Action, ConfigMapDoc, ConnectorPlan, Outcome, Report

log = structlog.get_logger("reconciler.telemetry")


@dataclass(frozen=True, slots=True)
class ActionEvent:
    """One action: executed (`outcome` set) or, in a dry run, planned (`outcome` None)."""

    action: Action
    plan: ConnectorPlan
    source: ConfigMapDoc | None  # the declaring ConfigMap as last seen (None: pruned, or from a file)
    outcome: Outcome | None = None
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class PassEvent:
    """The end of a pass. `blocked`: cluster -> why its prunes were refused; `adopted`: (cluster, name)."""

    report: Report
    duration_s: float
    sources: Mapping[str, ConfigMapDoc] = field(default_factory=dict)
    blocked: Mapping[str, str] = field(default_factory=dict)
    adopted: tuple[tuple[str, str], ...] = ()


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
