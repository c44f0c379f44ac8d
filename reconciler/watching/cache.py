"""The watcher's view of the selected ConfigMaps: current objects, and tombstones of removed ones.

Thread-safe (watch threads write, the reconcile loop reads). A ConfigMap that is deleted, relabeled
out of the selector, or found missing by a re-list leaves a tombstone (its last state), so the next
reconcile deletes its connectors. A tombstone goes only when a reconcile reports its connectors
confirmed absent by Connect (`Report.settled_deletions`) — never merely because nothing failed: a pass
that could not observe Connect, or could not render the last state, keeps it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from reconciler.core.specs import configmap_from_object
from reconciler.errors import SourceError
from reconciler.model import ConfigMapDoc


def _ref(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


@dataclass(frozen=True, slots=True)
class CacheSnapshot:
    configmaps: tuple[ConfigMapDoc, ...]
    deleted: tuple[ConfigMapDoc, ...]
    errors: tuple[SourceError, ...]
    generation: int


class ConfigMapCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, dict[str, Any]] = {}
        self._tombstones: dict[str, tuple[int, dict[str, Any]]] = {}
        self._generation = 0
        self.listed: set[str | None] = set()  # namespaces (None = all) listed at least once
        self.dirty = threading.Event()

    def _touch(self) -> None:
        self._generation += 1
        self.dirty.set()

    def replace(self, namespace: str | None, items: list[dict[str, Any]]) -> None:
        """A full list of `namespace` (None: all namespaces): anything cached there and now absent is gone."""
        with self._lock:
            fresh = {_ref(o): o for o in items}
            for ref, old in list(self._objects.items()):
                in_scope = namespace is None or ref.startswith(f"{namespace}/")
                if in_scope and ref not in fresh:
                    self._tombstones[ref] = (self._generation + 1, old)
                    del self._objects[ref]
            for ref, obj in fresh.items():
                self._objects[ref] = obj
                self._tombstones.pop(ref, None)
            self.listed.add(namespace)
            self._touch()

    def apply(self, kind: str, obj: dict[str, Any]) -> None:
        ref = _ref(obj)
        with self._lock:
            if kind == "DELETED":
                last = self._objects.pop(ref, obj)  # the last state that matched the selector
                self._tombstones[ref] = (self._generation + 1, last)
            else:
                self._objects[ref] = obj
                self._tombstones.pop(ref, None)
            self._touch()

    def snapshot(self) -> CacheSnapshot:
        with self._lock:
            objects = list(self._objects.values())
            tombstones = [o for _, o in self._tombstones.values()]
            generation = self._generation
        docs: list[ConfigMapDoc] = []
        deleted: list[ConfigMapDoc] = []
        errors: list[SourceError] = []
        for target, source in ((docs, objects), (deleted, tombstones)):
            for obj in source:
                try:
                    target.append(configmap_from_object(obj))
                except SourceError as exc:
                    errors.append(exc)
        return CacheSnapshot(tuple(docs), tuple(deleted), tuple(errors), generation)

    def settle(self, refs: Iterable[str], *, upto: int) -> None:
        """Forget the tombstones of `refs`, confirmed deleted by a reconcile of generation `upto`; a
        tombstone laid after that snapshot (the ConfigMap came back and went again) stays."""
        with self._lock:
            for ref in refs:
                entry = self._tombstones.get(ref)
                if entry is not None and entry[0] <= upto:
                    del self._tombstones[ref]

    @property
    def tombstones(self) -> int:
        with self._lock:
            return len(self._tombstones)
