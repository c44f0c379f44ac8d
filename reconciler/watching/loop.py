"""The watcher's reconcile loop: when to run a pass, and whether it may be targeted.

Orchestration with an injected clock (unit-tested on simulated time). Rules:
- never reconcile a partial view: nothing runs until every watched namespace has been listed once —
  and the loop *waits* for that (on the cache's change event), it does not spin;
- after a change, wait until no event has come for `debounce_seconds` (a `kubectl apply -k` is many
  events a few milliseconds apart), at most MAX_COALESCE_S, then run;
- a pass after events is targeted at the ConfigMaps they changed (`CacheSnapshot.changed`); the first
  pass, every resync, the pass after a failed one and the pass after rotated inputs are full;
- with no change, run a full pass every `resync_seconds` anyway, which repairs drift made directly in
  Connect;
- a pass reports which deleted ConfigMaps Connect confirmed gone; only those tombstones are dropped;
- a pass that fails unexpectedly is logged and retried at the next tick; the loop never dies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from reconciler.clock import Clock
from reconciler.model import Report
from reconciler.watching.cache import CacheSnapshot, ConfigMapCache
from reconciler.watching.health import Health

log = structlog.get_logger("reconciler.watcher")

Pass = Callable[[CacheSnapshot], Report | None]  # None: the pass could not run (settings not loadable)

TICK_S = 5.0  # the longest the loop waits without ticking liveness
MAX_COALESCE_S = 2.0  # the longest a burst of events delays its pass


class ReconcileLoop:
    def __init__(
        self,
        *,
        cache: ConfigMapCache,
        clock: Clock,
        health: Health,
        reconcile: Pass,
        namespaces: Sequence[str | None],
        resync_seconds: float,
        debounce_seconds: float,
    ) -> None:
        self.cache = cache
        self.clock = clock
        self.health = health
        self.reconcile = reconcile
        self.namespaces = tuple(namespaces)
        self.resync_seconds = resync_seconds
        self.debounce_seconds = debounce_seconds
        self.passes = 0

    def _all_listed(self) -> bool:
        return all(ns in self.cache.listed for ns in self.namespaces)

    def run_pass(self, *, full: bool = True) -> Report | None:
        snap = self.cache.snapshot(full=full)
        try:
            report = self.reconcile(snap)
        except Exception as exc:  # one broken pass must not end the watcher
            log.exception("reconcile pass failed", error=f"{type(exc).__name__}: {exc}")
            self.health.problem("reconcile", f"the last pass failed: {type(exc).__name__}")
            return None
        self.passes += 1
        if report is None:
            return None
        self.health.problem("reconcile", None)
        self.health.ready_once = True
        self.cache.settle(report.settled_deletions, upto=snap.generation)
        self.cache.consume(upto=snap.generation)
        return report

    def _await_quiet(self) -> None:
        """Let a burst of events end: wait until none has arrived for `debounce_seconds` (a short quiet
        window, so one edit is reconciled almost at once), but never longer than MAX_COALESCE_S, so a
        steady stream of events cannot starve the passes. Flux applying 200 ConfigMaps sends its events
        a few milliseconds apart: they become one pass."""
        deadline = self.clock.monotonic() + MAX_COALESCE_S
        while not self.clock.stop.is_set():
            self.cache.dirty.clear()
            quiet = not self.clock.wait(self.cache.dirty, self.debounce_seconds)
            if quiet or self.clock.monotonic() >= deadline:
                return

    def run(self) -> None:
        stop = self.clock.stop
        last: float | None = None
        full = True  # the first pass, and the one after a pass that could not run
        while not stop.is_set():
            self.health.beat()
            if not self._all_listed():
                # Cleared before the check, so a list that lands after it wakes the wait below.
                self.cache.dirty.clear()
                if not self._all_listed():
                    self.clock.wait(self.cache.dirty, TICK_S)
                    continue
                self.cache.dirty.set()
            now = self.clock.monotonic()
            due = 0.0 if last is None else last + self.resync_seconds - now
            if not self.cache.dirty.is_set() and due > 0:
                self.clock.wait(self.cache.dirty, min(due, TICK_S))
                continue
            full = full or due <= 0
            if self.cache.dirty.is_set() and last is not None:
                self._await_quiet()
            self.cache.dirty.clear()
            if stop.is_set():
                break
            report = self.run_pass(full=full)
            full = report is None
            if report is None or report.scope is None:
                last = self.clock.monotonic()  # the resync timer counts from the last full pass
