"""Ownership decisions for one Connect cluster: what to record, adopt, prune, hold or refuse.

Pure: takes the ledger as read, the declared connectors, the observed cluster and the time, and returns
the ledger to write *before* any request is sent plus the deletes to make. The rules (Flux's inventory,
Argo CD's guards, Terraform's state; ../shared/reference/ownership-and-safety.md):

- a connector not in the ledger is never touched: declared and already in Connect, it is a conflict
  until adopted (`connect-reconciler.io/adopt: "true"` on its ConfigMap, or `--adopt`);
- a ledger entry that no present ConfigMap declares is pruned (deleted in Connect), unless protected
  (`connect-reconciler.io/prevent-delete: "true"`, copied into the entry), inside its grace period, or
  the view is partial (a namespace not listed, a ConfigMap unreadable, the cluster not observed);
- a pass whose prunes would empty the cluster's desired set, or exceed the caps, prunes nothing until
  an approval newer than the block (`connect-reconciler.io/deletion-approved: <RFC3339>` on the ledger);
- an entry is forgotten only once Connect shows the connector absent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from reconciler.core.ledger import Entry, Ledger, parse_time, timestamp
from reconciler.model import ClusterState, ConfigMapDoc, DesiredConnector

ADOPT_ANNOTATION = "connect-reconciler.io/adopt"
PROTECT_ANNOTATION = "connect-reconciler.io/prevent-delete"


@dataclass(frozen=True, slots=True)
class PruneSettings:
    max_deletes: int = 5  # per pass and cluster
    max_delete_ratio: float = 0.5  # of the cluster's managed and declared connectors, from 2 deletes up
    grace_seconds: float = 0.0
    adopt_all: bool = False
    adopt: frozenset[str] = frozenset()  # connector names adopted by `--adopt NAME`


@dataclass(frozen=True, slots=True)
class Held:
    connector: str
    reason: str


@dataclass(frozen=True, slots=True)
class Ownership:
    """What one cluster's pass may do. `ledger` is written before any request; `managed` are the declared
    connectors the pass may write; `prunes` the connectors to delete, with the reason shown in a plan."""

    ledger: Ledger
    managed: tuple[DesiredConnector, ...]
    prunes: tuple[Held, ...] = ()
    held: tuple[Held, ...] = ()
    conflicts: tuple[Held, ...] = ()
    adopted: tuple[str, ...] = ()
    blocked: str | None = None
    changed: bool = False  # the ledger differs from the one read: write it
    owners: Mapping[str, str] = field(default_factory=dict)  # connector -> owner ref, for prunes


def _flag(doc: ConfigMapDoc | None, annotation: str) -> bool:
    return doc is not None and doc.annotations.get(annotation) == "true"


def _declared_entry(
    d: DesiredConnector, entry: Entry | None, doc: ConfigMapDoc | None, *, now: datetime, origin: str
) -> Entry:
    """The entry of a connector a present ConfigMap declares: owner (a move is an owner transfer) and
    protection follow the ConfigMap; a pending delete is cancelled."""
    base = entry or Entry(connector=d.name, owner=d.source.configmap, origin=origin, since=timestamp(now))
    return replace(
        base,
        owner=d.source.configmap,
        owner_uid=doc.uid if doc is not None else base.owner_uid,
        protect=_flag(doc, PROTECT_ANNOTATION),
        pending_delete_since=None,
    )


def _guard(
    prunes: Sequence[Held], *, ledger: Ledger, declared_enabled: int, universe: int, settings: PruneSettings
) -> str | None:
    if not prunes:
        return None
    if declared_enabled == 0:
        return f"the desired set of cluster {ledger.cluster} would be empty ({len(prunes)} deletes)"
    if len(prunes) > settings.max_deletes:
        return f"{len(prunes)} deletes exceed --max-deletes {settings.max_deletes}"
    ratio = len(prunes) / max(universe, 1)
    if len(prunes) >= 2 and ratio > settings.max_delete_ratio:
        return f"{len(prunes)} deletes are {ratio:.0%} of the cluster, over --max-delete-ratio {settings.max_delete_ratio:g}"
    return None


def decide(
    ledger: Ledger,
    declared: Sequence[DesiredConnector],
    live: ClusterState | None,
    *,
    configmaps: Mapping[str, ConfigMapDoc],
    complete: bool,
    now: datetime,
    settings: PruneSettings,
) -> Ownership:
    """`declared`: this cluster's connectors from present ConfigMaps (enabled or not); `configmaps`: the
    present ConfigMaps by ref (annotations, uid); `complete`: every namespace listed and every ConfigMap
    readable. `live` None: the cluster could not be observed."""
    entries = dict(ledger.entries)
    managed: list[DesiredConnector] = []
    conflicts: list[Held] = []
    adopted: list[str] = []
    held: list[Held] = []
    names = {d.name for d in declared}
    enabled = {d.name for d in declared if d.enabled}
    for d in declared:
        if live is not None and not live.sees(d.name):
            continue  # a targeted pass did not read it: its entry stays as it is, nothing is written
        doc = configmaps.get(d.source.configmap)
        exists = live is not None and d.name in live.connectors
        if d.name in entries:
            entries[d.name] = _declared_entry(d, entries[d.name], doc, now=now, origin="created")
            if not d.enabled and entries[d.name].protect and exists:
                held.append(
                    Held(d.name, f'enabled: "false", but not deleted: protected by {PROTECT_ANNOTATION}')
                )
                continue
            managed.append(d)
        elif not exists:
            if d.enabled and live is not None:
                entries[d.name] = _declared_entry(d, None, doc, now=now, origin="created")
                managed.append(d)
        elif settings.adopt_all or d.name in settings.adopt or _flag(doc, ADOPT_ANNOTATION):
            entries[d.name] = _declared_entry(d, None, doc, now=now, origin="adopted")
            managed.append(d)
            adopted.append(d.name)
        else:
            conflicts.append(
                Held(
                    d.name,
                    "exists in Connect but is not managed by connect-reconciler; left alone until adopted "
                    f'(annotate its ConfigMap {ADOPT_ANNOTATION}: "true", or --adopt {d.name})',
                )
            )
    prunes, undeclared = _prunes(entries, names, live, complete=complete, now=now, settings=settings)
    held += undeclared
    blocked = _guard(
        prunes,
        ledger=ledger,
        declared_enabled=len(enabled),
        universe=len(set(entries) | names),
        settings=settings,
    )
    blocked_since, blocked_reason = ledger.blocked_since, ledger.blocked_reason
    if blocked is not None and ledger.approval_applies:
        blocked = None  # approved after the block was raised: the deletes proceed, the block is cleared
    if blocked is not None:
        held += [Held(p.connector, f"prune blocked: {blocked}") for p in prunes]
        prunes = []
        blocked_since = blocked_since or timestamp(now)
        blocked_reason = blocked
    else:
        blocked_since = blocked_reason = None
    owners = {p.connector: entries[p.connector].owner for p in prunes if p.connector in entries}
    for name in list(entries):
        if name not in enabled and live is not None and live.absent(name) and complete:
            del entries[name]  # Connect shows it absent and nobody wants it: nothing left to own
    new = replace(ledger.with_entries(entries), blocked_since=blocked_since, blocked_reason=blocked_reason)
    changed = (new.entries, new.blocked_since, new.blocked_reason) != (
        dict(ledger.entries),
        ledger.blocked_since,
        ledger.blocked_reason,
    )
    return Ownership(
        ledger=new,
        managed=tuple(managed),
        prunes=tuple(prunes),
        held=tuple(held),
        conflicts=tuple(conflicts),
        adopted=tuple(adopted),
        blocked=blocked,
        changed=changed,
        owners=owners,
    )


def _prunes(
    entries: dict[str, Entry],
    declared: set[str],
    live: ClusterState | None,
    *,
    complete: bool,
    now: datetime,
    settings: PruneSettings,
) -> tuple[list[Held], list[Held]]:
    """Entries nobody declares any more: prune candidates, or held with the reason. Marks grace periods."""
    prunes: list[Held] = []
    held: list[Held] = []
    for name, entry in sorted(entries.items()):
        if name in declared or (live is not None and not live.sees(name)):
            continue
        if live is None or not complete:
            held.append(
                Held(
                    name,
                    "not pruned: the view is partial (a namespace, a ConfigMap or the cluster could not be read)",
                )
            )
            continue
        if name not in live.connectors:
            continue  # already gone: forgotten below
        removed = f"ConfigMap {entry.owner} removed or no longer declares it"
        if entry.protect:
            held.append(Held(name, f"{removed}; not deleted: protected by {PROTECT_ANNOTATION}"))
            continue
        if settings.grace_seconds > 0:
            pending = parse_time(entry.pending_delete_since)
            if pending is None:
                entries[name] = replace(entry, pending_delete_since=timestamp(now))
                pending = now
            due = pending + timedelta(seconds=settings.grace_seconds)
            if now < due:
                held.append(Held(name, f"{removed}; deleted after {timestamp(due)} unless declared again"))
                continue
        prunes.append(Held(name, removed))
    return prunes, held
