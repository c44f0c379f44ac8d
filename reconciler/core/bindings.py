"""shell-operator binding contexts -> the ConfigMaps to reconcile; and the hook's binding configuration.

Pure. The hook is level-triggered: every run renders the complete set, and a run made only of Event
contexts is targeted at the ConfigMaps they name (`BindingInput.changed`); Synchronization and the
Schedule resync are full. The full set is the newest
snapshot in the array (bindings use `includeSnapshotsFrom`, so Event and Schedule contexts carry one)
or the newest Synchronization's objects. `Deleted` events carry the ConfigMap's last state: when that
ConfigMap is absent from the full set, its connectors are deleted (a relabel out of the selector counts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.core.selectors import Selector
from reconciler.core.specs import configmap_from_object
from reconciler.errors import SourceError
from reconciler.model import ConfigMapDoc

BINDING = "connector-configmaps"
RESYNC = "resync"
QUEUE = "connect-reconciler"


@dataclass(frozen=True, slots=True)
class BindingInput:
    configmaps: tuple[ConfigMapDoc, ...] | None  # None: no context carried the full set
    deleted: tuple[ConfigMapDoc, ...]
    errors: tuple[SourceError, ...]
    # Refs of the ConfigMaps the Event contexts name, when every context is such an Event: the run may
    # be targeted at them. None when any context is a Synchronization, a Schedule (the resync) or else.
    changed: frozenset[str] | None = None


def _objects(items: Any) -> list[Mapping[str, Any]]:
    if not isinstance(items, list):
        return []
    return [i["object"] for i in items if isinstance(i, Mapping) and isinstance(i.get("object"), Mapping)]


def _docs(objects: Sequence[Mapping[str, Any]], errors: list[SourceError]) -> list[ConfigMapDoc]:
    docs = []
    for obj in objects:
        try:
            docs.append(configmap_from_object(obj))
        except SourceError as exc:
            errors.append(exc)
    return docs


def parse_binding_contexts(contexts: Any, *, binding: str = BINDING) -> BindingInput:
    """Every element is read, in order; later full sets replace earlier ones."""
    if not isinstance(contexts, list):
        raise SourceError("binding context: expected a JSON array")
    errors: list[SourceError] = []
    full: list[ConfigMapDoc] | None = None
    deleted: dict[str, ConfigMapDoc] = {}
    changed: set[str] | None = set()
    for ctx in contexts:
        if not isinstance(ctx, Mapping):
            changed = None
            continue
        kind = ctx.get("type")
        ref = _event_ref(ctx, binding) if changed is not None else None
        if ref is None:
            changed = None
        elif changed is not None:
            changed.add(ref)
        snapshots = ctx.get("snapshots")
        if isinstance(snapshots, Mapping) and binding in snapshots:
            full = _docs(_objects(snapshots[binding]), errors)
        elif kind == "Synchronization" and ctx.get("binding") == binding:
            full = _docs(_objects(ctx.get("objects")), errors)
        if kind == "Event" and ctx.get("watchEvent") == "Deleted" and isinstance(ctx.get("object"), Mapping):
            for doc in _docs([ctx["object"]], errors):
                deleted[doc.ref] = doc
    if full is not None:
        present = {d.ref for d in full}
        deleted = {ref: d for ref, d in deleted.items() if ref not in present}
    return BindingInput(
        None if full is None else tuple(full),
        tuple(deleted.values()),
        tuple(errors),
        frozenset(changed) if changed else None,
    )


def _event_ref(ctx: Mapping[str, Any], binding: str) -> str | None:
    """`namespace/name` of an Event context's object; None for any other context."""
    obj = ctx.get("object")
    if ctx.get("type") != "Event" or ctx.get("binding") != binding or not isinstance(obj, Mapping):
        return None
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
        return None
    namespace = meta.get("namespace") or ""
    return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])


def _label_selector(selector: Selector) -> dict[str, Any]:
    match_labels: dict[str, str] = {}
    expressions: list[dict[str, Any]] = []
    ops = {"in": "In", "notin": "NotIn", "exists": "Exists", "!exists": "DoesNotExist", "!=": "NotIn"}
    for r in selector.requirements:
        if r.op == "=":
            match_labels[r.key] = next(iter(r.values))
        else:
            expr: dict[str, Any] = {"key": r.key, "operator": ops[r.op]}
            if r.values:
                expr["values"] = sorted(r.values)
            expressions.append(expr)
    result: dict[str, Any] = {}
    if match_labels:
        result["matchLabels"] = match_labels
    if expressions:
        result["matchExpressions"] = expressions
    return result


def hook_config(*, selector: Selector, namespaces: Sequence[str], resync_crontab: str) -> dict[str, Any]:
    """`--config` output. No `group`: Event contexts must keep `watchEvent` and `object` so deletions are
    seen; `includeSnapshotsFrom` gives every context the full set anyway. One dedicated queue, so a slow
    Connect never blocks other hooks."""
    kube: dict[str, Any] = {
        "name": BINDING,
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "executeHookOnEvent": ["Added", "Modified", "Deleted"],
        "labelSelector": _label_selector(selector),
        # Fire on data and on *any* label change (connect-operator missed destination.cc changes).
        "jqFilter": "{labels: .metadata.labels, data: .data}",
        "includeSnapshotsFrom": [BINDING],
        "queue": QUEUE,
    }
    if namespaces:
        kube["namespace"] = {"nameSelector": {"matchNames": list(namespaces)}}
    return {
        "configVersion": "v1",
        "kubernetes": [kube],
        "schedule": [
            {"name": RESYNC, "crontab": resync_crontab, "includeSnapshotsFrom": [BINDING], "queue": QUEUE}
        ],
        "settings": {"executionMinInterval": "3s", "executionBurst": 1},
    }
