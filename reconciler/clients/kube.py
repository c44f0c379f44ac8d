"""Labeled ConfigMaps from the Kubernetes API: list, then watch, forever, robustly.

I/O edge. Why not the client's `SharedInformer` (kubernetes 37.x ships one): it neither requests
bookmarks nor sets a client-side read timeout (a silent network drop then hangs the watch for good),
and it reconnects a failing watch without backoff. This loop is small and does all three:
- list -> `on_list(items)`; watch from the list's resourceVersion with `allowWatchBookmarks`, a
  server-side `timeoutSeconds` and a client-side read timeout;
- 410 Gone (as an ERROR event or an ApiException) -> re-list, which is the full state again;
- other API or network errors -> exponential backoff (capped), then watch again from the last version.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import structlog
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = structlog.get_logger("reconciler.kube")

ListHandler = Callable[[str | None, list[dict[str, Any]]], None]
EventHandler = Callable[[str, dict[str, Any]], None]


class WatchExpired(Exception):
    """410 Gone: the resourceVersion is too old, the state must be listed again."""


@dataclass(frozen=True, slots=True)
class WatchSettings:
    window_s: int = 300  # server-side timeoutSeconds of one watch request
    connect_timeout_s: float = 5.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0


class ConfigMapWatcher:
    """Lists and watches one namespace (or all, with `namespace=None`) and reports to two callbacks."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str | None,
        selector: str,
        on_list: ListHandler,
        on_event: EventHandler,
        settings: WatchSettings | None = None,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.selector = selector
        self.on_list = on_list
        self.on_event = on_event
        self.settings = settings or WatchSettings()
        self.lists = 0  # how many full lists were made (a 410 causes one more)

    def _call(self, **kwargs: Any) -> Any:
        if self.namespace is None:
            return self.core.list_config_map_for_all_namespaces(label_selector=self.selector, **kwargs)
        return self.core.list_namespaced_config_map(self.namespace, label_selector=self.selector, **kwargs)

    def list(self) -> tuple[list[dict[str, Any]], str]:
        response = self._call(_preload_content=False, _request_timeout=(self.settings.connect_timeout_s, 60))
        body = json.loads(response.data)
        return list(body.get("items") or []), str(body["metadata"]["resourceVersion"])

    def watch(self, resource_version: str) -> Iterator[tuple[str, dict[str, Any], str]]:
        """Yields (type, object, resourceVersion) until the server ends the window; WatchExpired on 410."""
        window = self.settings.window_s
        response = self._call(
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=window,
            _preload_content=False,
            _request_timeout=(self.settings.connect_timeout_s, window + 30),
        )
        try:
            for line in _lines(response):
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchExpired(obj.get("message", "410 Gone"))
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                yield str(kind), obj, str(obj.get("metadata", {}).get("resourceVersion", resource_version))
        finally:
            response.close()
            response.release_conn()

    def run(self, stop: threading.Event) -> None:
        """List, then watch window after window, until `stop` is set."""
        rv: str | None = None
        delay = self.settings.backoff_initial_s
        while not stop.is_set():
            try:
                if rv is None:
                    items, rv = self.list()
                    self.lists += 1
                    self.on_list(self.namespace, items)
                for kind, obj, new_rv in self.watch(rv):
                    rv = new_rv
                    if kind != "BOOKMARK":
                        self.on_event(kind, obj)
                    if stop.is_set():
                        return
                delay = self.settings.backoff_initial_s
            except WatchExpired as exc:
                log.info("watch expired, listing again", namespace=self.namespace, reason=str(exc))
                rv = None
            except ApiException as exc:
                if exc.status == 410:
                    rv = None
                    continue
                log.warning(
                    "kubernetes API error, backing off",
                    namespace=self.namespace,
                    status=exc.status,
                    reason=str(exc.reason),
                    seconds=round(delay, 1),
                )
                stop.wait(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self.settings.backoff_max_s)
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                log.warning(
                    "kubernetes API unreachable, backing off",
                    namespace=self.namespace,
                    error=type(exc).__name__,
                    seconds=round(delay, 1),
                )
                stop.wait(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self.settings.backoff_max_s)
            except Exception as exc:  # a watch thread must never die silently
                log.exception(
                    "unexpected error in the watch loop, backing off",
                    namespace=self.namespace,
                    error=type(exc).__name__,
                )
                stop.wait(delay)
                delay = min(delay * 2, self.settings.backoff_max_s)


def _lines(response: Any) -> Iterator[str]:
    """Newline-delimited JSON from a streaming urllib3 response."""
    buffer = b""
    for chunk in response.stream(amt=65536, decode_content=True):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line.decode("utf-8")
    if buffer.strip():
        yield buffer.decode("utf-8")
