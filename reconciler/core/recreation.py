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


def recreation(entry: Entry, *, now: datetime) -> Recreation | None:
    """For a declared connector about to be created while its entry says it existed: the new count and
    the reason. None when its absence is explained (never created, or deleted by us)."""
    if not existed(entry):
        return None
    at = timestamp(now)
    previous = entry.recreated
    count, first, last = previous.get("count"), previous.get("first"), previous.get("last")
    since = parse_time(last) if isinstance(last, str) else None
    ongoing = (
        isinstance(count, int)
        and count > 0
        and isinstance(first, str)
        and since is not None
        and 0 <= (now - since).total_seconds() <= FIGHT_WINDOW_S
    )
    times = count + 1 if ongoing and isinstance(count, int) else 1
    began = first if ongoing and isinstance(first, str) else at
    seen = entry.last.get("action") or "adoption"
    when = entry.last.get("at") or entry.since
    reason = (
        f"deleted outside connect-reconciler: gone from Connect, though there at its {seen} ({when}); "
        "created again"
    )
    if times >= FIGHT_COUNT:
        reason = (
            f"deleted outside connect-reconciler {times} times since {began}; created again. Another "
            'controller is deleting it: Strimzi with strimzi.io/use-connector-resources: "true", or a '
            "second reconciler managing this Connect cluster (docs/strimzi.md)"
        )
    updated = replace(entry, recreated={"count": times, "first": began, "last": at})
    return Recreation(updated, times, reason)
