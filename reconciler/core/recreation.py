"""Connectors that disappear from Connect behind the reconciler's back, and are created again.

Pure: functions of a ledger entry and the time; no I/O.

A connector of the ledger that an observed listing no longer shows, while its ConfigMap still declares
it, is created again: the ConfigMap is the source of truth. When the ledger's note of the last action
says the connector existed then, somebody else deleted it: a person, another controller (Strimzi with
`strimzi.io/use-connector-resources: "true"` deletes every connector that has no KafkaConnector; a second
reconciler on the same Connect cluster), or a Connect cluster that lost its config topic. Putting it back
silently would hide a fight between two controllers, each undoing the other every pass, so the plan says
why it is created, the ledger counts it, and the entry points turn it into a Warning.

It existed when the last action noted was:
- a create Connect confirmed;
- any other action of ours but a delete: each is planned against the live connector;
- nothing yet, on an adopted entry: adoption takes a connector that runs.

Not counted: an entry written for a create never confirmed (a crash between the ledger write and the
POST, a create refused or whose answer was lost): its connector may never have existed; and a connector
whose last action was our own delete, answered or not. A create whose answer was lost is confirmed by the
first listing that shows its connector (`confirmed_by_listing`), so a later disappearance counts.

One disappearance is counted once. The count is written before the create is sent; when that create
fails (a rebalance 409, a worker restarting), the failure is noted after the count, and the next pass's
create is the same re-creation: it keeps the mark and the reason (so its Warning and the metric come when
it succeeds) and is not counted again. Not told apart: a process that dies between writing the count and
noting the outcome; its next pass counts once more.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from reconciler.core.ledger import Entry, parse_time, timestamp

# Deleted outside again within this time of the previous time: the count goes on, and from the second
# time the reason names the likely cause. A connector deleted by hand once a month is not a fight.
FIGHT_WINDOW_S = 3600.0
FIGHT_COUNT = 2


@dataclass(frozen=True, slots=True)
class Recreation:
    """One connector found deleted outside: its entry with the count updated (written before the create
    is sent), how many times in a row, and the reason a plan shows."""

    entry: Entry
    count: int
    reason: str


def existed(entry: Entry) -> bool:
    """Whether the ledger's last note says the connector was in Connect at that time."""
    action = entry.last.get("action")
    if not action:
        return entry.origin == "adopted"
    if action == "delete":
        return False
    if action == "create":
        return entry.last.get("ok") is True
    return True


def recreated_count(entry: Entry) -> int:
    """The stored count, 0 when there is none or it was edited into something else."""
    count = entry.recreated.get("count")
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 0


def _recorded_at(entry: Entry) -> datetime | None:
    last = entry.recreated.get("last")
    return parse_time(last) if isinstance(last, str) else None


def _pending(entry: Entry) -> bool:
    """A re-creation is recorded and the create noted after it failed: the next create is its retry."""
    recorded = _recorded_at(entry)
    at = entry.last.get("at")
    noted = parse_time(at) if isinstance(at, str) else None
    failed = entry.last.get("action") == "create" and entry.last.get("ok") is not True
    return (
        failed
        and recreated_count(entry) > 0
        and recorded is not None
        and noted is not None
        and noted >= recorded
    )


def confirmed_by_listing(entry: Entry, *, now: datetime) -> Entry | None:
    """The entry of a connector an observed listing shows, when its last note is a create not confirmed
    (refused, or its answer lost): Connect made it after all. None when there is nothing to confirm."""
    last = entry.last
    if last.get("action") != "create" or last.get("ok") is True:
        return None
    return replace(
        entry,
        last={
            "action": "create",
            "at": last.get("at") or timestamp(now),
            "ok": True,
            "listed": timestamp(now),
        },
    )


def _reason(times: int, *, began: str, seen: str) -> str:
    """`seen`: why it existed, e.g. "though there at its create (TIME)"."""
    if times >= FIGHT_COUNT:
        return (
            f"deleted outside connect-reconciler {times} times since {began}; created again. Another "
            'controller is deleting it: Strimzi with strimzi.io/use-connector-resources: "true", or a '
            "second reconciler managing this Connect cluster (docs/strimzi.md)"
        )
    return f"deleted outside connect-reconciler: gone from Connect, {seen}; created again"


def recreation(entry: Entry, *, now: datetime) -> Recreation | None:
    """For a declared connector about to be created: the count and the reason when its entry says it
    existed (the entry with the new count), or when this create repeats a re-creation not yet confirmed
    (the entry as it is). None when its absence is explained (never created, or deleted by us)."""
    record = entry.recreated
    first = record.get("first")
    if _pending(entry):
        times = recreated_count(entry)
        found = str(record.get("last"))
        began = first if isinstance(first, str) else found
        return Recreation(entry, times, _reason(times, began=began, seen=f"found gone at {found}"))
    if not existed(entry):
        return None
    at = timestamp(now)
    since = _recorded_at(entry)
    ongoing = (
        recreated_count(entry) > 0
        and isinstance(first, str)
        and since is not None
        and 0 <= (now - since).total_seconds() <= FIGHT_WINDOW_S
    )
    times = recreated_count(entry) + 1 if ongoing else 1
    began = first if ongoing and isinstance(first, str) else at
    seen = f"though there at its {entry.last.get('action') or 'adoption'} ({entry.last.get('at') or entry.since})"
    updated = replace(entry, recreated={"count": times, "first": began, "last": at})
    return Recreation(updated, times, _reason(times, began=began, seen=seen))
