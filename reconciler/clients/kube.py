"""Labeled ConfigMaps from the Kubernetes API: one list, one watch window; and the API client itself.

I/O edge: with `ledger_store.py`, `events.py` and `watching/leader.py`, the only code that calls the
Kubernetes API. The loop that lists, watches, re-lists on
410 and backs off lives in `watching/stream.py`. Why not the client's `SharedInformer` (kubernetes 37.x
ships one): it neither requests bookmarks nor sets a client-side read timeout (a silent network drop
then hangs the watch for good), and it reconnects a failing watch without backoff.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from reconciler.settings import WatchSettings


class WatchExpired(Exception):
    """410 Gone: the resourceVersion is too old, the state must be listed again."""


def kube_api_client(kubeconfig: str | None) -> client.ApiClient:
    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig)
    try:
        config.load_incluster_config()
        return client.ApiClient()
    except config.ConfigException:
        return config.new_client_from_config()


class ConfigMapApi:
    """List and watch the ConfigMaps of one namespace (or all, with `namespace=None`) matching a selector."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str | None,
        selector: str,
        settings: WatchSettings | None = None,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.selector = selector
        self.settings = settings or WatchSettings()

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
