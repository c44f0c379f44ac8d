"""List, then watch, forever, robustly: the ConfigMaps of one namespace into callbacks.

Orchestration over `clients/kube.ConfigMapApi` (which does the I/O); waits go through the injected
clock, so a stop ends a backoff at once and unit tests never sleep.
- list -> `on_list(namespace, items)`; watch from the list's resourceVersion with bookmarks;
- 410 Gone (as an ERROR event or an ApiException) -> re-list, which is the full state again;
- any other failure (API error, network, a failing callback) -> `on_error(namespace, message)`, capped
  exponential backoff with jitter, then watch again from the last version (or list again if none);
  the next success (a list, a watch event, a watch window that ends normally) reports
  `on_error(namespace, None)`, so health shows which namespace is stuck, and only while it is.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Protocol

import structlog
import urllib3
from kubernetes.client.exceptions import ApiException

from reconciler.clients.kube import WatchExpired
from reconciler.clock import Clock
from reconciler.settings import WatchSettings

log = structlog.get_logger("reconciler.kube")

ListHandler = Callable[[str | None, list[dict[str, Any]]], None]
EventHandler = Callable[[str, dict[str, Any]], None]
ErrorHandler = Callable[[str | None, str | None], None]


class ConfigMapSource(Protocol):
    namespace: str | None

    def list(self) -> tuple[list[dict[str, Any]], str]: ...

    def watch(self, resource_version: str) -> Any: ...


class ConfigMapStream:
    def __init__(
        self,
        source: ConfigMapSource,
        *,
        clock: Clock,
        on_list: ListHandler,
        on_event: EventHandler,
        on_error: ErrorHandler = lambda _ns, _message: None,
        settings: WatchSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.source = source
        self.namespace = source.namespace
        self.clock = clock
        self.on_list = on_list
        self.on_event = on_event
        self.on_error = on_error
        self.settings = settings or WatchSettings()
        self.rng = rng or random.Random()
        self.lists = 0  # how many full lists were made (a 410 causes one more)
        self._failing = False

    def _back_off(self, delay: float, message: str) -> float:
        self._failing = True
        self.on_error(self.namespace, message)
        self.clock.wait(self.clock.stop, delay * self.rng.uniform(0.5, 1.0))
        return min(delay * 2, self.settings.backoff_max_s)

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            self.on_error(self.namespace, None)

    def run(self) -> None:
        """List, then watch window after window, until the clock's stop is set."""
        rv: str | None = None
        delay = self.settings.backoff_initial_s
        stop = self.clock.stop
        while not stop.is_set():
            try:
                if rv is None:
                    items, listed_rv = self.source.list()
                    self.lists += 1
                    self.on_list(self.namespace, items)
                    rv = listed_rv  # only once the callback took the list: a failure lists again
                    self._failing = False
                    self.on_error(self.namespace, None)
                for kind, obj, new_rv in self.source.watch(rv):
                    if kind != "BOOKMARK":
                        self.on_event(kind, obj)
                    rv = new_rv
                    self._recovered()
                    if stop.is_set():
                        return
                self._recovered()
                delay = self.settings.backoff_initial_s
            except WatchExpired as exc:
                log.info("watch expired, listing again", namespace=self.namespace, reason=str(exc))
                rv = None
            except ApiException as exc:
                if exc.status == 410:
                    rv = None
                    continue
                message = f"Kubernetes API error {exc.status}: {exc.reason}"
                log.warning(
                    "kubernetes API error, backing off",
                    namespace=self.namespace,
                    status=exc.status,
                    reason=str(exc.reason),
                    seconds=round(delay, 1),
                )
                delay = self._back_off(delay, message)
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                log.warning(
                    "kubernetes API unreachable, backing off",
                    namespace=self.namespace,
                    error=type(exc).__name__,
                    seconds=round(delay, 1),
                )
                delay = self._back_off(delay, f"Kubernetes API unreachable: {type(exc).__name__}")
            except Exception as exc:  # a watch thread must never die silently
                log.exception(
                    "unexpected error in the watch loop, backing off",
                    namespace=self.namespace,
                    error=type(exc).__name__,
                )
                delay = self._back_off(delay, f"unexpected error: {type(exc).__name__}: {exc}")
