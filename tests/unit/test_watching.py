"""The list/watch loop against a fake API (410 as an event and as an exception, bookmarks, errors with
backoff) and the ConfigMap cache (tombstones from deletes, relabels and re-lists)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from reconciler.clients.kube import ConfigMapWatcher, WatchSettings
from reconciler.configmap_cache import ConfigMapCache


def cm(name: str, rv: str, *, ns: str = "default", label: str = "connect") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns, "resourceVersion": rv, "labels": {"destination": label}},
        "data": {"k": "{}"},
    }


class FakeResponse:
    def __init__(self, lines: list[dict[str, Any]] | None = None, body: dict[str, Any] | None = None) -> None:
        self.data = json.dumps(body).encode() if body is not None else b""
        self._payload = b"".join(json.dumps(line).encode() + b"\n" for line in lines or [])
        self.closed = False

    def stream(self, amt: int, decode_content: bool) -> Iterator[bytes]:
        # Split mid-line to prove the line reassembly.
        yield self._payload[:7]
        yield self._payload[7:]

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        pass


class FakeCore:
    """Scripted answers: each call to the list endpoint pops the next one (an exception is raised)."""

    def __init__(self, script: list[Any], stop: threading.Event) -> None:
        self.script = script
        self.calls: list[dict[str, Any]] = []
        self.stop = stop

    def list_namespaced_config_map(self, namespace: str, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        if not self.script:
            self.stop.set()
            return FakeResponse([])
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


def run_script(script: list[Any]) -> tuple[list[tuple[str, Any]], FakeCore, ConfigMapWatcher]:
    stop = threading.Event()
    seen: list[tuple[str, Any]] = []
    watcher = ConfigMapWatcher(
        None,  # type: ignore[arg-type]  # the API object is replaced by the fake below
        namespace="default",
        selector="destination=connect",
        on_list=lambda ns, items: seen.append(("LIST", [i["metadata"]["name"] for i in items])),
        on_event=lambda kind, obj: seen.append((kind, obj["metadata"]["name"])),
        settings=WatchSettings(window_s=7, backoff_initial_s=0.01, backoff_max_s=0.02),
    )
    core = FakeCore(script, stop)
    watcher.core = core  # type: ignore[assignment]
    watcher.run(stop)
    return seen, core, watcher


def listing(*items: dict[str, Any], rv: str) -> FakeResponse:
    return FakeResponse(body={"items": list(items), "metadata": {"resourceVersion": rv}})


def test_list_then_watch_with_bookmarks_and_timeouts() -> None:
    seen, core, _ = run_script(
        [
            listing(cm("a", "1"), rv="10"),
            FakeResponse(
                [
                    {"type": "ADDED", "object": cm("b", "11")},
                    {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}},
                    {"type": "MODIFIED", "object": cm("a", "16")},
                ]
            ),
        ]
    )
    assert seen == [("LIST", ["a"]), ("ADDED", "b"), ("MODIFIED", "a")]
    watch_call = core.calls[1]
    assert watch_call["watch"] is True and watch_call["allow_watch_bookmarks"] is True
    assert watch_call["resource_version"] == "10" and watch_call["timeout_seconds"] == 7
    assert watch_call["_request_timeout"] == (5.0, 37)
    assert core.calls[2]["resource_version"] == "16"  # the next window resumes after the last event


def test_bookmark_advances_the_resource_version() -> None:
    _, core, _ = run_script(
        [
            listing(rv="10"),
            FakeResponse([{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "42"}}}]),
        ]
    )
    assert core.calls[2]["resource_version"] == "42"


def test_410_error_event_relists() -> None:
    seen, core, watcher = run_script(
        [
            listing(cm("a", "1"), rv="10"),
            FakeResponse([{"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}}]),
            listing(cm("a", "1"), cm("c", "30"), rv="30"),
        ]
    )
    assert seen == [("LIST", ["a"]), ("LIST", ["a", "c"])] and watcher.lists == 2
    assert "watch" not in core.calls[2]


def test_410_exception_relists_and_other_errors_back_off_and_resume() -> None:
    seen, core, watcher = run_script(
        [
            listing(rv="10"),
            ApiException(status=500, reason="etcd unavailable"),
            urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out"),  # type: ignore[arg-type]
            FakeResponse([{"type": "ADDED", "object": cm("x", "12")}]),
            ApiException(status=410, reason="Gone"),
            listing(rv="50"),
        ]
    )
    assert seen == [("LIST", []), ("ADDED", "x"), ("LIST", [])] and watcher.lists == 2
    assert [c.get("resource_version") for c in core.calls[1:4]] == ["10", "10", "10"]  # kept across errors


def test_cache_tombstones() -> None:
    cache = ConfigMapCache()
    cache.replace("default", [cm("a", "1"), cm("b", "1")])
    cache.apply(
        "DELETED", cm("b", "2", label="elsewhere")
    )  # relabel out: the event's object no longer matches
    snap = cache.snapshot()
    assert [d.name for d in snap.configmaps] == ["a"]
    assert [(d.name, d.labels["destination"]) for d in snap.deleted] == [
        ("b", "connect")
    ]  # last matching state
    cache.forget_tombstones(upto=snap.generation)
    assert cache.snapshot().deleted == ()


def test_relist_turns_missing_objects_into_tombstones_and_recreation_clears_them() -> None:
    cache = ConfigMapCache()
    cache.replace("default", [cm("a", "1"), cm("b", "1")])
    cache.replace("default", [cm("a", "2")])  # b vanished while the watch was expired
    assert [d.name for d in cache.snapshot().deleted] == ["b"]
    cache.apply("ADDED", cm("b", "3"))
    snap = cache.snapshot()
    assert snap.deleted == () and sorted(d.name for d in snap.configmaps) == ["a", "b"]


def test_tombstones_newer_than_the_reconciled_snapshot_are_kept() -> None:
    cache = ConfigMapCache()
    cache.replace("default", [cm("a", "1"), cm("b", "1")])
    cache.apply("DELETED", cm("a", "2"))
    snap = cache.snapshot()
    cache.apply("DELETED", cm("b", "2"))  # arrives while the reconcile of `snap` runs
    cache.forget_tombstones(upto=snap.generation)
    assert [d.name for d in cache.snapshot().deleted] == ["b"]


def test_broken_object_is_an_error_not_a_crash() -> None:
    cache = ConfigMapCache()
    cache.replace("default", [cm("a", "1"), {"metadata": {"namespace": "default"}, "data": {}}])
    snap = cache.snapshot()
    assert [d.name for d in snap.configmaps] == ["a"] and len(snap.errors) == 1


def test_unexpected_errors_do_not_kill_the_watch_thread() -> None:
    seen, _, watcher = run_script(
        [
            FakeResponse(body={"items": [], "metadata": {}}),  # no resourceVersion: a KeyError while listing
            listing(cm("a", "1"), rv="10"),
        ]
    )
    assert seen == [("LIST", ["a"])] and watcher.lists == 1
