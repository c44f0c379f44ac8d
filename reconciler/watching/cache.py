"""The watcher's view of the selected ConfigMaps: current objects, and tombstones of removed ones.

Thread-safe (watch threads write, the reconcile loop reads). A ConfigMap that is deleted, relabeled
out of the selector, or found missing by a re-list leaves a tombstone (its last state), so the next
reconcile deletes its connectors. A tombstone goes only when a reconcile reports its connectors
confirmed absent by Connect (`Report.settled_deletions`) — never merely because nothing failed: a pass
that could not observe Connect, or could not render the last state, keeps it.

Each object is converted to a ConfigMapDoc once, when it arrives (an unusable one is kept as its
error): a pass reads the whole set without re-parsing it, and nothing else of the object is held —
not its managedFields history, which is most of a ConfigMap's bytes. The cache also notes which refs
changed since the last pass consumed them (`CacheSnapshot.changed`), so a pass can be targeted; a
re-list counts only the objects whose resourceVersion differs (or that came or went) as changed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from reconciler.core.specs import configmap_from_object
from reconciler.errors import SourceError
from reconciler.model import ConfigMapDoc

Entry = ConfigMapDoc | SourceError  # an object as converted on arrival


def _ref(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _convert(obj: dict[str, Any]) -> Entry:
    try:
        return configmap_from_object(obj)
    except SourceError as exc:
        return exc


def _version(entry: Entry | None) -> str | None:
    return entry.resource_version if isinstance(entry, ConfigMapDoc) else None


@dataclass(frozen=True, slots=True)
class CacheSnapshot:
    configmaps: tuple[ConfigMapDoc, ...]
    deleted: tuple[ConfigMapDoc, ...]
    errors: tuple[SourceError, ...]
    generation: int
    # Refs changed since the last consumed pass; None: everything counts as changed (a full pass).
    changed: frozenset[str] | None = None


class _FullPassRequest:
    """Set by the inputs watch: rotated inputs may change every connector, so the next pass is full."""

    def __init__(self, cache: ConfigMapCache) -> None:
        self._cache = cache

    def set(self) -> None:
        self._cache.request_full()


class ConfigMapCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, Entry] = {}
        self._tombstones: dict[str, tuple[int, Entry]] = {}
        self._changed: dict[str, int] = {}  # ref -> generation of its latest change
        self._generation = 0
        self._full = False  # a full pass was asked for (rotated inputs change every connector)
        self.listed: set[str | None] = set()  # namespaces (None = all) listed at least once
        self.dirty = threading.Event()
        self.full_pass = _FullPassRequest(self)  # the inputs watch's `wake`

    def _touch(self, refs: Iterable[str]) -> None:
        self._generation += 1
        for ref in refs:
            self._changed[ref] = self._generation
        self.dirty.set()

    def replace(self, namespace: str | None, items: list[dict[str, Any]]) -> None:
        """A full list of `namespace` (None: all namespaces): anything cached there and now absent is gone."""
        fresh = {_ref(o): o for o in items}
        with self._lock:
            changed: list[str] = []
            for ref, old in list(self._objects.items()):
                in_scope = namespace is None or ref.startswith(f"{namespace}/")
                if in_scope and ref not in fresh:
                    self._tombstones[ref] = (self._generation + 1, old)
                    del self._objects[ref]
                    changed.append(ref)
            for ref, obj in fresh.items():
                held = self._objects.get(ref)
                version = (obj.get("metadata") or {}).get("resourceVersion")
                if held is None or version is None or _version(held) != version:
                    self._objects[ref] = _convert(obj)
                    changed.append(ref)
                if self._tombstones.pop(ref, None) is not None:
                    changed.append(ref)
            self.listed.add(namespace)
            self._touch(changed)

    def apply(self, kind: str, obj: dict[str, Any]) -> None:
        ref = _ref(obj)
        with self._lock:
            if kind == "DELETED":
                last = self._objects.pop(ref, None)  # the last state that matched the selector
                self._tombstones[ref] = (self._generation + 1, last if last is not None else _convert(obj))
            else:
                self._objects[ref] = _convert(obj)
                self._tombstones.pop(ref, None)
            self._touch([ref])

    def request_full(self) -> None:
        """The next pass is to be a full one; wakes the loop (the inputs watch calls it on a change)."""
        with self._lock:
            self._full = True
        self.dirty.set()

    def snapshot(self, *, full: bool = False) -> CacheSnapshot:
        """The whole set; `changed` lists what changed since the last `consume`, unless the pass is to
        be full (`full`, or `request_full` since the last full snapshot)."""
        with self._lock:
            objects = list(self._objects.values())
            tombstones = [o for _, o in self._tombstones.values()]
            generation = self._generation
            full = full or self._full
            self._full = False
            changed = None if full else frozenset(self._changed)
        docs = tuple(o for o in objects if isinstance(o, ConfigMapDoc))
        deleted = tuple(o for o in tombstones if isinstance(o, ConfigMapDoc))
        errors = tuple(o for o in (*objects, *tombstones) if isinstance(o, SourceError))
        return CacheSnapshot(docs, deleted, errors, generation, changed)

    def consume(self, *, upto: int) -> None:
        """A pass over the snapshot of generation `upto` ran: its changes are done with (a change that
        arrived during the pass stays for the next one)."""
        with self._lock:
            self._changed = {ref: gen for ref, gen in self._changed.items() if gen > upto}

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
