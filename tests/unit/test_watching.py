"""The watching package on fakes: the list/watch stream against a fake API (410 as an event and as an
exception, bookmarks, errors with backoff), the ConfigMap cache (tombstones from deletes, relabels and
re-lists, dropped only when settled), and the reconcile loop on a simulated clock."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from reconciler.clients.kube import ConfigMapApi
from reconciler.model import Plan, Report
from reconciler.settings import WatchSettings
from reconciler.watching.cache import CacheSnapshot, ConfigMapCache
from reconciler.watching.health import Health
from reconciler.watching.loop import ReconcileLoop
from reconciler.watching.stream import ConfigMapStream
from tests.fake_clock import FakeClock


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


def run_script(
    script: list[Any], *, on_list: Any = None
) -> tuple[list[tuple[str, Any]], FakeCore, ConfigMapStream, list[Any]]:
    clock = FakeClock()
    seen: list[tuple[str, Any]] = []
    errors: list[Any] = []
    settings = WatchSettings(window_s=7, backoff_initial_s=0.01, backoff_max_s=0.02)
    source = ConfigMapApi(
        None,  # type: ignore[arg-type]  # the API object is replaced by the fake below
        namespace="default",
        selector="destination=connect",
        settings=settings,
    )
    stream = ConfigMapStream(
        source,
        clock=clock,  # type: ignore[arg-type]
        on_list=on_list or (lambda ns, items: seen.append(("LIST", [i["metadata"]["name"] for i in items]))),
        on_event=lambda kind, obj: seen.append((kind, obj["metadata"]["name"])),
        on_error=lambda ns, message: errors.append(message),
        settings=settings,
    )
    core = FakeCore(script, clock.stop)
    source.core = core  # type: ignore[assignment]
    stream.run()
    return seen, core, stream, errors


def listing(*items: dict[str, Any], rv: str) -> FakeResponse:
    return FakeResponse(body={"items": list(items), "metadata": {"resourceVersion": rv}})


def test_list_then_watch_with_bookmarks_and_timeouts() -> None:
    seen, core, _, _ = run_script(
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
    _, core, _, _ = run_script(
        [
            listing(rv="10"),
            FakeResponse([{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "42"}}}]),
        ]
    )
    assert core.calls[2]["resource_version"] == "42"


def test_410_error_event_relists() -> None:
    seen, core, watcher, _ = run_script(
        [
            listing(cm("a", "1"), rv="10"),
            FakeResponse([{"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}}]),
            listing(cm("a", "1"), cm("c", "30"), rv="30"),
        ]
    )
    assert seen == [("LIST", ["a"]), ("LIST", ["a", "c"])] and watcher.lists == 2
    assert "watch" not in core.calls[2]


def test_410_exception_relists_and_other_errors_back_off_and_resume() -> None:
    seen, core, watcher, _ = run_script(
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
    cache.settle([], upto=snap.generation)  # a pass that confirmed nothing keeps the tombstone
    assert [d.name for d in cache.snapshot().deleted] == ["b"]
    cache.settle(["default/b"], upto=snap.generation)
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
    cache.settle(["default/a", "default/b"], upto=snap.generation)
    assert [d.name for d in cache.snapshot().deleted] == ["b"]


def test_broken_object_is_an_error_not_a_crash() -> None:
    cache = ConfigMapCache()
    cache.replace("default", [cm("a", "1"), {"metadata": {"namespace": "default"}, "data": {}}])
    snap = cache.snapshot()
    assert [d.name for d in snap.configmaps] == ["a"] and len(snap.errors) == 1


def test_unexpected_errors_do_not_kill_the_watch_thread() -> None:
    seen, _, watcher, _ = run_script(
        [
            FakeResponse(body={"items": [], "metadata": {}}),  # no resourceVersion: a KeyError while listing
            listing(cm("a", "1"), rv="10"),
        ]
    )
    assert seen == [("LIST", ["a"])] and watcher.lists == 1


def test_a_failing_list_callback_is_reported_and_the_list_retried() -> None:
    calls: list[int] = []

    def flaky(ns: str | None, items: list[dict[str, Any]]) -> None:
        calls.append(len(items))
        if len(calls) == 1:
            raise RuntimeError("cache exploded")

    _, _, stream, errors = run_script(
        [listing(cm("a", "1"), rv="10"), listing(cm("a", "1"), rv="11")], on_list=flaky
    )
    assert calls == [1, 1] and stream.lists == 2  # listed again, not watched from a list nobody took
    assert errors[0] == "unexpected error: RuntimeError: cache exploded" and errors[1] is None


def test_a_forbidden_namespace_is_reported_with_backoff() -> None:
    _, core, _, errors = run_script([ApiException(status=403, reason="Forbidden")] * 3)
    assert errors[:3] == ["Kubernetes API error 403: Forbidden"] * 3
    assert len(core.calls) == 4  # three failures, backed off between them; then the script ran out


# --- the reconcile loop ---------------------------------------------------------------------------


def make_loop(
    clock: FakeClock,
    cache: ConfigMapCache,
    results: list[Any],
    *,
    namespaces: tuple[str | None, ...] = ("default",),
    resync: float = 60,
    debounce: float = 1,
) -> tuple[ReconcileLoop, list[CacheSnapshot]]:
    """`results` are what successive passes return (a Report, None, or an exception to raise)."""
    seen: list[CacheSnapshot] = []

    def reconcile(snap: CacheSnapshot) -> Report | None:
        seen.append(snap)
        result = results.pop(0) if results else Report(Plan(()), dry_run=False)
        if isinstance(result, BaseException):
            raise result
        return result  # type: ignore[no-any-return]

    health = Health(clock=clock, stale_after=120)  # type: ignore[arg-type]
    loop = ReconcileLoop(
        cache=cache,
        clock=clock,  # type: ignore[arg-type]
        health=health,
        reconcile=reconcile,
        namespaces=namespaces,
        resync_seconds=resync,
        debounce_seconds=debounce,
    )
    return loop, seen


def test_the_loop_waits_for_every_namespace_without_spinning() -> None:
    clock = FakeClock(horizon=60)
    cache = ConfigMapCache()
    cache.replace("a", [cm("x", "1", ns="a")])  # "b" is never listed (RBAC forbids it, say)
    loop, seen = make_loop(clock, cache, [], namespaces=("a", "b"))
    loop.run()
    assert seen == []  # a partial view is never reconciled
    assert len(clock.waits) <= 60 / 5 + 2, f"{len(clock.waits)} waits in 60 simulated seconds: spinning"


def test_the_first_pass_runs_once_all_namespaces_are_listed_then_resyncs() -> None:
    clock = FakeClock(horizon=125)
    cache = ConfigMapCache()
    cache.replace("a", [])
    cache.replace("b", [cm("x", "1", ns="b")])
    loop, seen = make_loop(clock, cache, [], namespaces=("a", "b"), resync=60)
    loop.run()
    assert len(seen) == 3  # at 0 s, then resyncs at 60 s and 120 s
    assert [d.name for d in seen[0].configmaps] == ["x"]


def test_tombstones_stay_until_a_pass_confirms_their_connectors_gone() -> None:
    clock = FakeClock(horizon=200)
    cache = ConfigMapCache()
    cache.replace("default", [cm("a", "1")])
    cache.apply("DELETED", cm("a", "2"))
    unsettled = Report(Plan(()), dry_run=False)  # e.g. Connect could not be observed: nothing confirmed
    settled = Report(Plan(()), dry_run=False, settled_deletions=frozenset({"default/a"}))
    loop, seen = make_loop(clock, cache, [unsettled, None, RuntimeError("boom"), settled], resync=30)
    loop.run()
    assert [len(s.deleted) for s in seen[:5]] == [1, 1, 1, 1, 0]
    assert cache.tombstones == 0


def test_a_crashing_pass_is_reported_by_readiness_and_the_loop_goes_on() -> None:
    clock = FakeClock(horizon=45)
    cache = ConfigMapCache()
    cache.replace("default", [])
    loop, seen = make_loop(clock, cache, [RuntimeError("boom")], resync=30)
    loop.run()
    assert len(seen) == 2 and loop.health.ready
    clock2 = FakeClock(horizon=10)
    cache2 = ConfigMapCache()
    cache2.replace("default", [])
    loop2, _ = make_loop(clock2, cache2, [RuntimeError("boom")], resync=30)
    loop2.run()
    assert not loop2.health.ready and "the last pass failed: RuntimeError" in loop2.health.readiness_text()


def test_an_edit_is_debounced_then_reconciled() -> None:
    clock = FakeClock(horizon=20)
    cache = ConfigMapCache()
    cache.replace("default", [cm("a", "1")])
    passes: list[float] = []
    loop, seen = make_loop(clock, cache, [], resync=1000)
    original = loop.reconcile

    def recording(snap: CacheSnapshot) -> Report | None:
        passes.append(clock.t)
        if len(passes) == 1:
            cache.apply("MODIFIED", cm("a", "2"))  # an edit arrives during the first pass
        return original(snap)

    loop.reconcile = recording
    loop.run()
    assert passes == [0.0, 1.0]  # the edit ran after a 1 s quiet window, not at the next resync
    assert seen[1].configmaps[0].data == {"k": "{}"} and len(seen) == 2


def test_a_watch_error_is_cleared_by_the_next_event_without_a_list() -> None:
    seen, _, stream, errors = run_script(
        [
            listing(cm("a", "1"), rv="10"),
            ApiException(status=500, reason="etcd hiccup"),
            FakeResponse([{"type": "MODIFIED", "object": cm("a", "11")}]),
        ]
    )
    assert stream.lists == 1 and ("MODIFIED", "a") in seen
    assert errors[:3] == [None, "Kubernetes API error 500: etcd hiccup", None]  # not stuck "not ready"


@pytest.mark.parametrize(("events_until", "second_pass"), [(1.0, 1.1), (8.0, 2.0)])
def test_a_burst_of_events_becomes_one_pass_and_a_steady_stream_cannot_starve_it(
    events_until: float, second_pass: float
) -> None:
    """Events 50 ms apart (Flux applying many ConfigMaps) end in one pass a 0.1 s quiet window after the
    last of them; a stream that never pauses still gets its pass after MAX_COALESCE_S (2 s)."""
    clock = FakeClock(horizon=30)
    cache = ConfigMapCache()
    cache.replace("default", [cm("a", "1")])
    passes: list[float] = []
    loop, _ = make_loop(clock, cache, [], resync=1000, debounce=0.1)
    original, real_wait = loop.reconcile, clock.wait

    def recording(snap: CacheSnapshot) -> Report | None:
        passes.append(round(clock.t, 2))
        if len(passes) == 1:
            cache.apply("MODIFIED", cm("a", "burst"))  # the burst starts right after the first pass
        return original(snap)

    def wait(event: threading.Event, timeout: float) -> bool:
        if event is cache.dirty and len(passes) == 1 and timeout == 0.1 and clock.t < events_until - 1e-9:
            clock._advance(0.05)
            cache.apply("MODIFIED", cm("a", f"{clock.t:.2f}"))
            return True
        return real_wait(event, timeout)

    loop.reconcile = recording  # type: ignore[method-assign]
    clock.wait = wait  # type: ignore[method-assign]
    loop.run()
    assert passes[:2] == [0.0, second_pass] and len(passes) == 2


# --- targeted passes: what changed, and when a pass must be full ----------------------------------


def test_the_cache_notes_changed_refs_until_a_pass_consumes_them() -> None:
    cache = ConfigMapCache()
    cache.replace("default", [cm("a", "1"), cm("b", "1")])
    first = cache.snapshot()
    assert first.changed == {"default/a", "default/b"}
    cache.consume(upto=first.generation)
    cache.replace("default", [cm("a", "1"), cm("b", "2")])  # a re-list: only b's version moved
    cache.apply("DELETED", cm("a", "1"))
    snap = cache.snapshot()
    assert snap.changed == {"default/a", "default/b"} and [d.name for d in snap.deleted] == ["a"]
    cache.apply("MODIFIED", cm("b", "3"))  # arrives while the pass of `snap` runs
    cache.consume(upto=snap.generation)
    assert cache.snapshot().changed == {"default/b"}
    assert cache.snapshot(full=True).changed is None


def test_the_cache_keeps_converted_objects_without_managed_fields() -> None:
    cache = ConfigMapCache()
    obj = cm("a", "1")
    obj["metadata"]["managedFields"] = [
        {"manager": "kustomize-controller", "time": "2026-01-01T00:00:00Z", "fieldsV1": {"f:data": {}}}
    ]
    cache.replace("default", [obj])
    (held,) = cache._objects.values()
    assert held.changed_by == "kustomize-controller" and not hasattr(
        held, "get"
    )  # a ConfigMapDoc, not the dict


def test_rotated_inputs_ask_for_a_full_pass() -> None:
    cache = ConfigMapCache()
    cache.replace("default", [cm("a", "1")])
    cache.consume(upto=cache.snapshot().generation)
    cache.dirty.clear()
    cache.full_pass.set()
    assert cache.dirty.is_set() and cache.snapshot().changed is None
    assert cache.snapshot().changed == frozenset()  # asked once, granted once


def test_the_loop_targets_event_passes_and_keeps_first_resync_and_after_failure_passes_full() -> None:
    clock = FakeClock(horizon=100)
    cache = ConfigMapCache()
    cache.replace("default", [cm("a", "1"), cm("b", "1")])
    targeted = Report(Plan(()), dry_run=False, scope={})
    results: list[Any] = [Report(Plan(()), dry_run=False), targeted, None, Report(Plan(()), dry_run=False)]
    loop, seen = make_loop(clock, cache, results, resync=60, debounce=0.1)
    original = loop.reconcile
    edits = {1: "2", 2: "3"}  # after pass n, an edit of `a` arrives

    def recording(snap: CacheSnapshot) -> Report | None:
        report = original(snap)
        if len(seen) in edits:
            clock._advance(1)
            cache.apply("MODIFIED", cm("a", edits[len(seen)]))
        return report

    loop.reconcile = recording  # type: ignore[method-assign]
    loop.run()
    changed = [s.changed for s in seen]
    # first: full; the edit: targeted at a; the next edit's pass fails (None) so the one after is full;
    # then the resync, 60 s after the last full pass, is full too.
    assert changed[0] is None and changed[1] == {"default/a"} and changed[2] == {"default/a"}
    assert changed[3] is None and len(seen) >= 4
