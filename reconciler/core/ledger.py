"""The ownership ledger: which connectors of one Connect cluster the reconciler manages, and since when.

Pure: the ledger is plain data, (de)serialised here to and from the `data` and `annotations` of one
ConfigMap per cluster (`connect-reconciler-ledger-<cluster>`, in the reconciler's namespace); the store
in `clients/ledger_store.py` reads and writes it with resourceVersion optimistic concurrency.

Why a ledger (Flux's inventory, Terraform's state): Connect has no labels, so "ours" must be recorded
somewhere that outlives the process. An entry is written *before* its create is sent and removed only
*after* Connect confirms the connector absent, so a crash between any two steps loses nothing. A
connector that is not in the ledger is never touched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

LEDGER_PREFIX = "connect-reconciler-ledger-"
ENTRIES_KEY = "entries.json"
STATE_KEY = "state.json"
APPROVAL_ANNOTATION = "connect-reconciler.io/deletion-approved"
LEDGER_LABELS = {"app.kubernetes.io/managed-by": "connect-reconciler", "connect-reconciler.io/ledger": "true"}
_DNS_LABEL = re.compile(r"[^a-z0-9-]+")


class LedgerError(ValueError):
    """The stored ledger cannot be read: never guess what we own, stop pruning and creating for it."""


def ledger_name(cluster: str) -> str:
    """The ConfigMap holding one cluster's ledger; cluster names are lower-cased to a DNS label."""
    slug = _DNS_LABEL.sub("-", cluster.lower()).strip("-") or "default"
    return (LEDGER_PREFIX + slug)[:253]


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Entry:
    """One managed connector. `owner` is the declaring ConfigMap (namespace/name) and its uid, as last
    seen; `protect` is copied from the ConfigMap so deleting the ConfigMap cannot remove the protection."""

    connector: str
    owner: str
    owner_uid: str | None = None
    origin: str = "created"  # or "adopted"
    since: str = ""
    protect: bool = False
    pending_delete_since: str | None = None  # first pass that found it undeclared (grace period)
    restart: Mapping[str, Any] = field(default_factory=dict)  # auto-restart counters, stored as given
    last: Mapping[str, Any] = field(default_factory=dict)  # the last action: {action, at, ok, error?}
    # Found gone from Connect without a delete of ours, and created again: {count, first, last}
    # (core/recreation.py). Stored so that the hook's runs and a restarted watcher keep counting.
    recreated: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"owner": self.owner, "origin": self.origin, "since": self.since}
        if self.owner_uid:
            out["ownerUid"] = self.owner_uid
        if self.protect:
            out["protect"] = True
        if self.pending_delete_since:
            out["pendingDeleteSince"] = self.pending_delete_since
        if self.restart:
            out["restart"] = dict(self.restart)
        if self.last:
            out["last"] = dict(self.last)
        if self.recreated:
            out["recreated"] = dict(self.recreated)
        return out

    @classmethod
    def from_json(cls, connector: str, raw: Any) -> Entry:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("owner"), str):
            raise LedgerError(f"entry {connector!r} has no owner")
        restart, last, recreated = raw.get("restart"), raw.get("last"), raw.get("recreated")
        return cls(
            connector=connector,
            owner=raw["owner"],
            owner_uid=raw.get("ownerUid") if isinstance(raw.get("ownerUid"), str) else None,
            origin=str(raw.get("origin", "created")),
            since=str(raw.get("since", "")),
            protect=raw.get("protect") is True,
            pending_delete_since=raw.get("pendingDeleteSince") or None,
            restart=dict(restart) if isinstance(restart, Mapping) else {},
            last=dict(last) if isinstance(last, Mapping) else {},
            recreated=dict(recreated) if isinstance(recreated, Mapping) else {},
        )


@dataclass(frozen=True, slots=True)
class Ledger:
    """One cluster's ledger as read. `version` is the ConfigMap's resourceVersion (None: not created yet);
    `blocked_since` is when a mass-delete block was first raised; `approved_at` the approval annotation."""

    cluster: str
    entries: Mapping[str, Entry] = field(default_factory=dict)
    version: str | None = None
    blocked_since: str | None = None
    blocked_reason: str | None = None
    approved_at: str | None = None

    def with_entries(self, entries: Mapping[str, Entry]) -> Ledger:
        return replace(self, entries=dict(sorted(entries.items())))

    @property
    def approval_applies(self) -> bool:
        """An approval counts only if it is not older than the block it lifts (Argo CD's rule)."""
        blocked, approved = parse_time(self.blocked_since), parse_time(self.approved_at)
        return blocked is not None and approved is not None and approved >= blocked


def ledger_data(ledger: Ledger) -> dict[str, str]:
    """The ConfigMap `data` of a ledger: sorted, one line per entry, so a `kubectl get -o yaml` diff is
    readable."""
    lines = [
        f"  {json.dumps(n)}: {json.dumps(e.to_json(), sort_keys=True)}" for n, e in ledger.entries.items()
    ]
    entries = "{\n" + ",\n".join(lines) + "\n}\n" if lines else "{}\n"
    data = {ENTRIES_KEY: entries}
    if ledger.blocked_since:
        data[STATE_KEY] = json.dumps(
            {"blockedSince": ledger.blocked_since, "blockedReason": ledger.blocked_reason or ""},
            sort_keys=True,
        )
    return data


def ledger_from_configmap(
    cluster: str,
    *,
    data: Mapping[str, str] | None,
    annotations: Mapping[str, str] | None,
    version: str | None,
) -> Ledger:
    """LedgerError when the stored entries are not what this module writes (a hand edit gone wrong)."""
    data = data or {}
    try:
        raw = json.loads(data.get(ENTRIES_KEY) or "{}")
        state = json.loads(data.get(STATE_KEY) or "{}")
    except ValueError as exc:
        raise LedgerError(f"ledger of cluster {cluster}: {ENTRIES_KEY} is not JSON: {exc}") from None
    if not isinstance(raw, Mapping) or not isinstance(state, Mapping):
        raise LedgerError(f"ledger of cluster {cluster}: {ENTRIES_KEY} must be a JSON object")
    try:
        entries = {name: Entry.from_json(name, value) for name, value in raw.items()}
    except LedgerError as exc:
        raise LedgerError(f"ledger of cluster {cluster}: {exc}") from None
    return Ledger(
        cluster=cluster,
        entries=dict(sorted(entries.items())),
        version=version,
        blocked_since=state.get("blockedSince") or None,
        blocked_reason=state.get("blockedReason") or None,
        approved_at=(annotations or {}).get(APPROVAL_ANNOTATION) or None,
    )


def ledger_to_file(ledgers: Mapping[str, Ledger]) -> str:
    """`connect-reconciler ledger export`: every cluster's ledger as one JSON document for `plan --ledger-file`."""
    return json.dumps(
        {
            "apiVersion": "connect-reconciler.io/v1",
            "kind": "LedgerExport",
            "clusters": {
                c: {"entries": {n: e.to_json() for n, e in lg.entries.items()}, "version": lg.version}
                for c, lg in sorted(ledgers.items())
            },
        },
        indent=2,
        sort_keys=True,
    )


def ledgers_from_file(text: str, *, origin: str) -> dict[str, Ledger]:
    try:
        doc = json.loads(text)
        clusters = doc["clusters"]
        return {
            cluster: Ledger(
                cluster=cluster,
                entries={n: Entry.from_json(n, e) for n, e in sorted(body["entries"].items())},
                version=body.get("version"),
            )
            for cluster, body in clusters.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LedgerError(f"{origin}: not a ledger export ({type(exc).__name__}: {exc})") from None
