"""Audit records: who changed which connector, from which ConfigMap revision, and what Connect answered.

Pure: no I/O, no clock, no ids of its own (the time and the `auditID` are handed in). The records are
modelled on Kubernetes audit events (`audit.k8s.io/v1` Event): `auditID`, `stage`, `verb`, `objectRef`,
`responseStatus`, plus what a GitOps trail needs: the source ConfigMap at the revision the pass read
(`sourceRef`), its last writer from managedFields (`actor.lastWriter`: `kustomize-controller` for Flux,
`kubectl-edit` for a hand edit), the Flux Kustomization that applied it (`flux`), and the config keys
that change (`changes`; secret values masked). The edge (`reconciler/audit.py`) sends them on.

Secrets: a change flagged secret arrives masked by planning (`ConfigChange`), and is shown as it is, so
the record has the digest the plan shows; a value not flagged that looks secret to the redactor is
masked here. Every string of every record — keys, messages, reasons — goes through
`Redactor.scrub_tree` last, so nothing a secret leaked into (an error message quoting a config, say)
reaches a record.

The events are the model's `ActionEvent` and `PassEvent`, which the pipeline hands every observer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from reconciler.core.redaction import Redactor, mask
from reconciler.model import (
    ActionEvent,
    ConfigChange,
    ConfigMapDoc,
    ConnectorPlan,
    PassEvent,
    SourceRef,
)

API_VERSION: Final = "audit.connect-reconciler.io/v1"
KIND: Final = "Event"

# Stages (Kubernetes has RequestReceived/ResponseStarted/ResponseComplete/Panic; ours are a pass's).
PLANNED: Final = "planned"  # a dry run: nothing was sent
APPLIED: Final = "applied"  # Connect accepted it (or, for an adoption, the ledger took it)
FAILED: Final = "failed"  # sent and refused, or given up on, or skipped (its cluster unavailable)
BLOCKED: Final = "blocked"  # a prune refused by the mass-delete guard until approved

# Verbs beyond the action kinds (create/update/pause/resume/stop/delete/restart).
ADOPT: Final = "adopt"
PRUNE_BLOCKED: Final = "prune-blocked"
APPROVE: Final = "approve"

# The labels kustomize-controller puts on everything it applies.
FLUX_NAME_LABEL: Final = "kustomize.toolkit.fluxcd.io/name"
FLUX_NAMESPACE_LABEL: Final = "kustomize.toolkit.fluxcd.io/namespace"

# How ownership words the reason of a connector held by the mass-delete guard (`core/pruning.py`).
_BLOCKED_REASON_PREFIX: Final = "prune blocked"


def rfc3339(moment: datetime) -> str:
    """`2026-01-02T03:04:05.123456Z`: UTC, microseconds always shown (a naive time is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def flux_ref(labels: Mapping[str, str]) -> dict[str, Any]:
    """The Flux Kustomization that applied an object, from kustomize-controller's labels.

    `revision` (the Git revision of the Kustomization's last apply) is not known from the object itself:
    it would need a read of the Kustomization's status. It is always null for now."""
    name, namespace = labels.get(FLUX_NAME_LABEL), labels.get(FLUX_NAMESPACE_LABEL)
    kustomization = None
    if name:
        kustomization = f"{namespace}/{name}" if namespace else name
    return {"kustomization": kustomization, "revision": None}


def _split_ref(ref: str) -> tuple[str | None, str]:
    namespace, sep, name = ref.partition("/")
    return (namespace, name) if sep else (None, ref)


def source_ref(doc: ConfigMapDoc | None, declared: SourceRef | None) -> dict[str, Any] | None:
    """The declaring ConfigMap at the revision read: the doc if the pass had it, else only its name."""
    if doc is None and declared is None:
        return None
    if doc is not None:
        namespace: str | None = doc.namespace or None
        name = doc.name
    else:
        assert declared is not None
        namespace, name = _split_ref(declared.configmap)
    return {
        "namespace": namespace,
        "name": name,
        "key": declared.key if declared is not None else None,
        "uid": doc.uid if doc is not None else None,
        "resourceVersion": doc.resource_version if doc is not None else None,
        "origin": doc.origin if doc is not None else None,  # a file path when read from files
    }


def actor(identity: str, doc: ConfigMapDoc | None) -> dict[str, Any]:
    return {
        "reconciler": identity,
        "lastWriter": doc.changed_by if doc is not None else None,
        "lastWriteTime": doc.changed_at if doc is not None else None,
    }


def _masked_change(change: ConfigChange, redactor: Redactor) -> dict[str, Any]:
    def shown(value: str | None) -> str | None:
        if value is None:
            return None
        if change.secret:
            return value  # masked by planning already: masking the mask would show another digest
        return mask(value) if redactor.is_secret_field(change.key, value) else value

    return {"key": change.key, "before": shown(change.before), "after": shown(change.after)}


def _base(
    *,
    audit_id: str,
    stage: str,
    verb: str,
    now: datetime,
    cluster: str,
    connector: str | None,
    identity: str,
    doc: ConfigMapDoc | None,
    declared: SourceRef | None,
    dry_run: bool,
) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "auditID": audit_id,
        "stage": stage,
        "verb": verb,
        "time": rfc3339(now),
        "objectRef": {"connectCluster": cluster, "connector": connector},
        "sourceRef": source_ref(doc, declared),
        "actor": actor(identity, doc),
        "flux": flux_ref(doc.labels if doc is not None else {}),
        "changes": [],
        "requests": [],
        "dryRun": dry_run,
        "responseStatus": None,
        "durationSeconds": None,
        "reason": None,
    }


def _stage(event: ActionEvent) -> str:
    if event.outcome is None:
        return PLANNED
    return APPLIED if event.outcome.ok else FAILED


def audit_record(
    event: ActionEvent, *, now: datetime, identity: str, redactor: Redactor, audit_id: str
) -> dict[str, Any]:
    """The record of one action: planned (a dry run), applied or failed."""
    action, plan, outcome = event.action, event.plan, event.outcome
    record = _base(
        audit_id=audit_id,
        stage=_stage(event),
        verb=action.kind.value,
        now=now,
        cluster=action.cluster,
        connector=action.connector,
        identity=identity,
        doc=event.source,
        declared=plan.source,
        dry_run=event.dry_run or outcome is None,
    )
    record["changes"] = [_masked_change(c, redactor) for c in plan.changes]
    record["requests"] = list(action.wire_steps)
    record["reason"] = plan.reason
    if outcome is not None:
        record["responseStatus"] = {
            "ok": outcome.ok,
            "code": outcome.http_status,
            "message": outcome.message or None,
            "skipped": outcome.skipped,
        }
        record["durationSeconds"] = round(outcome.duration_s, 6)
    scrubbed: dict[str, Any] = redactor.scrub_tree(record)
    return scrubbed


def pass_records(
    event: PassEvent,
    *,
    now: datetime,
    identity: str,
    redactor: Redactor,
    new_id: Callable[[], str],
) -> list[dict[str, Any]]:
    """The records a pass makes beyond its actions: a `prune-blocked` record per connector the
    mass-delete guard held (one per cluster when none is named), and an `adopt` record per connector
    taken into the ledger (`planned` in a dry run, when the ledger is not written)."""
    report = event.report
    plans = {(p.cluster, p.connector): p for p in report.plan.connectors}

    def doc_of(plan: ConnectorPlan | None) -> ConfigMapDoc | None:
        if plan is None or plan.source is None:
            return None
        return event.sources.get(plan.source.configmap)

    records: list[dict[str, Any]] = []
    for cluster, why in sorted(event.blocked.items()):
        held: list[ConnectorPlan | None] = [
            p
            for p in report.plan.connectors
            if p.cluster == cluster and not p.actions and (p.reason or "").startswith(_BLOCKED_REASON_PREFIX)
        ]
        for plan in held or [None]:
            record = _base(
                audit_id=new_id(),
                stage=BLOCKED,
                verb=PRUNE_BLOCKED,
                now=now,
                cluster=cluster,
                connector=plan.connector if plan is not None else None,
                identity=identity,
                doc=doc_of(plan),
                declared=plan.source if plan is not None else None,
                dry_run=report.dry_run,
            )
            record["reason"] = plan.reason if plan is not None and plan.reason else why
            records.append(record)
    for cluster, name in sorted(event.adopted):
        adopted = plans.get((cluster, name))
        record = _base(
            audit_id=new_id(),
            stage=PLANNED if report.dry_run else APPLIED,
            verb=ADOPT,
            now=now,
            cluster=cluster,
            connector=name,
            identity=identity,
            doc=doc_of(adopted),
            declared=adopted.source if adopted is not None else None,
            dry_run=report.dry_run,
        )
        record["reason"] = "adopted into the ledger: the reconciler manages it from now on"
        records.append(record)
    scrubbed: list[dict[str, Any]] = redactor.scrub_tree(records)
    return scrubbed


def approval_record(
    cluster: str,
    stamp: str,
    identity: str,
    *,
    now: datetime,
    redactor: Redactor,
    audit_id: str,
    approved_by: str | None = None,
    blocked_reason: str | None = None,
) -> dict[str, Any]:
    """`approve-deletes`: the ledger of `cluster` stamped with an approval at `stamp`; the deletes
    blocked before it go ahead on the next pass. `approved_by`: who ran it, when known."""
    record = _base(
        audit_id=audit_id,
        stage=APPLIED,
        verb=APPROVE,
        now=now,
        cluster=cluster,
        connector=None,
        identity=identity,
        doc=None,
        declared=None,
        dry_run=False,
    )
    record["actor"]["lastWriter"] = approved_by
    record["actor"]["lastWriteTime"] = stamp
    record["approvedAt"] = stamp
    record["reason"] = blocked_reason
    scrubbed: dict[str, Any] = redactor.scrub_tree(record)
    return scrubbed
