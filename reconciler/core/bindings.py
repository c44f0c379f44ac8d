"""shell-operator binding contexts -> the ConfigMaps to reconcile; and the hook's binding configuration.

Pure. The hook is level-triggered: every run reconciles the complete set. The full set is the newest
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
    for ctx in contexts:
        if not isinstance(ctx, Mapping):
            continue
        kind = ctx.get("type")
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
    return BindingInput(None if full is None else tuple(full), tuple(deleted.values()), tuple(errors))


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
