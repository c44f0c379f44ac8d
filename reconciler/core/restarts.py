"""Auto-restart of FAILED connectors and tasks: Strimzi's policy, as functions of (live, record, policy, now).

Pure: no I/O and no clock. `now` (epoch seconds) is an argument and the counter (`RestartRecord`) comes in
and goes out as a value, so the whole schedule is testable and the caller decides where records live (the
ownership ledger). The rules, as Strimzi's AbstractConnectOperator has them (users already know them):
- a connector is failing when it or any of its tasks is FAILED;
- a restart is allowed when `(max_restarts is None or count < max_restarts)` and at least
  `interval_minutes(count) = min(count*count + count, 60)` minutes have passed since the last restart:
  restarts 0, 2, 6, 12, 20, 30, 42 and 56 minutes after the previous one, then hourly;
- an attempt is counted when it is planned, not when Connect confirms it. Strimzi counts attempts whose
  REST call failed too; counting at plan time gives the same count and keeps the record a function of what
  was observed, so no executor outcome has to flow back into the ledger. (The caller stores the new record
  only when the plan is applied: a dry run keeps the old one.)
- the count resets once the connector has had no failure for longer than `interval_minutes(count)`;
- after `max_restarts` restarts nothing more is tried: the connector must be restarted by hand;
- a connector whose live state is PAUSED or STOPPED is never restarted (its tasks follow its target state;
  if that is wrong, the planner resumes it first), nor one UNASSIGNED or RESTARTING or without a status
  (its state is not visible yet, or a restart is already under way): the next pass decides.
Whether a connector may be restarted at all (declared, enabled, desired RUNNING, owned) is the caller's
rule: see `planning.restart_action`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from reconciler.core.versions import kafka_version
from reconciler.model import AutoRestart, LiveConnector, RestartRecord

__all__ = [
    "AutoRestart",
    "RestartDecision",
    "RestartRecord",
    "decide",
    "describe",
    "failing",
    "failure_reason",
    "interval_minutes",
    "supports_restart",
]

FAILED = "FAILED"
MAX_INTERVAL_MINUTES = 60
# Live connector states in which a restart request makes sense. PAUSED and STOPPED are target states (a
# restart would not run the tasks); UNASSIGNED, RESTARTING and None are not settled yet.
_RESTARTABLE = frozenset({"RUNNING", FAILED})


def interval_minutes(count: int) -> int:
    """Minutes to wait after the `count`-th restart before the next one (and without a failure before the
    count resets): 0, 2, 6, 12, 20, 30, 42, 56, then 60."""
    return min(count * count + count, MAX_INTERVAL_MINUTES)


def failing(live: LiveConnector) -> bool:
    """The connector or any of its tasks is FAILED."""
    return live.state == FAILED or FAILED in live.tasks


def failure_reason(live: LiveConnector) -> str | None:
    """What failed, for a plan: "connector failed", "task failed", "2 of 3 tasks failed", ..."""
    failed, total = sum(1 for t in live.tasks if t == FAILED), len(live.tasks)
    tasks = "its task" if total == 1 else f"{failed} of {total} tasks"
    if live.state == FAILED:
        return f"connector and {tasks} failed" if failed else "connector failed"
    if failed:
        return "task failed" if total == 1 else f"{tasks} failed"
    return None


def supports_restart(version: str | None) -> bool:
    """`restart?includeTasks=true&onlyFailed=true` exists since Kafka 3.0 (KIP-745). Older workers ignore
    the parameters and restart the Connector instance only, leaving failed tasks failed, so a worker known
    to be older gets no automatic restarts; an unknown version is tried (every supported release has it)."""
    found = kafka_version(version)
    return found is None or found >= (3, 0)


@dataclass(frozen=True, slots=True)
class RestartDecision:
    """One pass's verdict for one connector. `record` is what to store after the pass."""

    restart: bool
    record: RestartRecord
    reason: str | None = None  # what failed (None: nothing)
    next_allowed: float | None = None  # epoch seconds; None when no automatic restart is coming
    limit_reached: bool = False
    held: str | None = None  # why a failing connector is left alone (disabled, PAUSED, ...)

    @property
    def failing(self) -> bool:
        return self.reason is not None


def _healthy(record: RestartRecord, *, now: float) -> RestartRecord:
    # The reset is measured from the last failure seen (a restart is always a failure seen, so
    # `last_restart` stands in for records that have no `last_failure`).
    since = record.last_failure if record.last_failure is not None else record.last_restart
    if since is None or now - since > interval_minutes(record.count) * 60:
        return RestartRecord()
    return record


def decide(live: LiveConnector, record: RestartRecord, policy: AutoRestart, *, now: float) -> RestartDecision:
    """Whether to restart `live` now, and the record to keep. A clock that went back (`now` before
    `last_restart`) only delays the next restart until it catches up."""
    reason = failure_reason(live)
    if reason is None:
        return RestartDecision(False, _healthy(record, now=now))
    if not policy.enabled:
        return RestartDecision(False, record, reason, held="auto-restart is disabled")
    seen = replace(record, last_failure=now)
    if live.state not in _RESTARTABLE:
        return RestartDecision(
            False, seen, reason, held=f"not restarted while {live.state or 'without status'}"
        )
    if policy.max_restarts is not None and record.count >= policy.max_restarts:
        return RestartDecision(False, seen, reason, limit_reached=True)
    allowed_at = (
        now if record.last_restart is None else record.last_restart + interval_minutes(record.count) * 60
    )
    if now < allowed_at:
        return RestartDecision(False, seen, reason, next_allowed=allowed_at)
    count = record.count + 1
    last = policy.max_restarts is not None and count >= policy.max_restarts
    following = None if last else now + interval_minutes(count) * 60
    return RestartDecision(True, RestartRecord(count, now, now), reason, next_allowed=following)


def _minutes(seconds: float) -> int:
    return max(1, math.ceil(seconds / 60))


def describe(decision: RestartDecision, policy: AutoRestart, *, now: float) -> str | None:
    """The note a plan and the status show, e.g. "task failed; restart 3 of 5; next allowed in 12 min";
    None for a healthy connector."""
    if decision.reason is None:
        return None
    if decision.held is not None:
        return f"{decision.reason}; {decision.held}"
    if decision.limit_reached:
        return f"{decision.reason}; restart limit reached ({policy.max_restarts}): restart it by hand"
    of = f" of {policy.max_restarts}" if policy.max_restarts is not None else ""
    if decision.restart:
        count = decision.record.count
        if decision.next_allowed is None:
            return f"{decision.reason}; restart {count}{of}, the last automatic one"
        return f"{decision.reason}; restart {count}{of}; next allowed in {interval_minutes(count)} min"
    wait = _minutes((decision.next_allowed or now) - now)
    return f"{decision.reason}; restart {decision.record.count + 1}{of} allowed in {wait} min"
