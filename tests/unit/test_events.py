"""EventRecorder (reconciler/clients/events.py) against fake Events APIs: dedup into series, the rate
limit on a simulated clock, the bounded queue, note cutting and scrubbing, MicroTime, the core/v1
fallback. No network."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from reconciler.clients.events import (
    BURST,
    NOTE_LIMIT,
    REFILL_S,
    SERIES_FINISH_S,
    EventRecorder,
    cut_middle,
)
from reconciler.core.redaction import Redactor
from reconciler.model import (
    Action,
    ActionKind,
    ConfigChange,
    ConfigMapDoc,
    ConnectorPlan,
    Outcome,
    Plan,
    Report,
    SourceRef,
)
from reconciler.telemetry import ActionEvent, PassEvent
from tests.fake_clock import FakeClock

SECRET = "hunter2-very-secret-Pa55"
MICROTIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
WIRE = client.ApiClient()


class FakeApi:
    """create/patch_namespaced_event as the client has them; bodies kept as they would go on the wire."""

    def __init__(self, refuse: int | None = None, gate: threading.Event | None = None) -> None:
        self.calls: list[tuple[str, str, str, dict[str, Any]]] = []
        self.refuse = refuse
        self.gate = gate
        self.entered = threading.Event()
        self.kwargs: list[dict[str, Any]] = []

    def create_namespaced_event(self, namespace: str, body: Any, **kwargs: Any) -> None:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.refuse is not None:
            raise ApiException(status=self.refuse, reason="refused")
        wire = WIRE.sanitize_for_serialization(body)
        self.calls.append(("create", namespace, wire["metadata"]["name"], wire))
        self.kwargs.append(kwargs)

    def patch_namespaced_event(self, name: str, namespace: str, body: Any, **kwargs: Any) -> None:
        self.calls.append(("patch", namespace, name, WIRE.sanitize_for_serialization(body)))
        self.kwargs.append(kwargs)

    def of(self, verb: str) -> list[dict[str, Any]]:
        return [body for v, _, _, body in self.calls if v == verb]


def doc(name: str = "orders", rv: str = "1", uid: str | None = "uid-orders") -> ConfigMapDoc:
    return ConfigMapDoc(name=name, namespace="team-a", labels={}, data={}, uid=uid, resource_version=rv)


def plan_for(connector: str, kind: ActionKind, *, cm: str = "team-a/orders", **extra: Any) -> ConnectorPlan:
    action = Action(kind, connector, "default")
    return ConnectorPlan(connector, "default", SourceRef(cm, f"{connector}.json"), (action,), **extra)


def action_event(
    connector: str = "orders-sink",
    kind: ActionKind = ActionKind.CREATE,
    *,
    ok: bool = True,
    message: str = "",
    source: ConfigMapDoc | None = None,
    dry_run: bool = False,
    **extra: Any,
) -> ActionEvent:
    cp = plan_for(connector, kind, **extra)
    outcome = Outcome(cp.actions[0], ok=ok, message=message, http_status=None if ok else 400)
    return ActionEvent(cp.actions[0], cp, source or doc(), None if dry_run else outcome, dry_run)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def core() -> FakeApi:
    return FakeApi()


@pytest.fixture
def recorder(api: FakeApi, core: FakeApi, clock: FakeClock) -> Iterator[EventRecorder]:
    r = make(api, core, clock)
    yield r
    r.close(5)


def make(api: FakeApi, core: FakeApi, clock: FakeClock, **kwargs: Any) -> EventRecorder:
    return EventRecorder(
        None,
        instance="connect-reconciler-7d9f-abcde",
        redactor=lambda: Redactor(frozenset({SECRET})),
        clock=clock,
        events_api=api,
        core_api=core,
        idle_s=30,  # no background flush of held-back series counts during a test
        **kwargs,
    )


def send(r: EventRecorder, *events: object) -> None:
    for e in events:
        r(e)
    assert r.flush(10)


def test_a_created_connector_is_one_normal_event_on_its_configmap(
    recorder: EventRecorder, api: FakeApi
) -> None:
    send(recorder, action_event())
    [body] = api.of("create")
    assert body["type"] == "Normal" and body["reason"] == "ConnectorCreated" and body["action"] == "Create"
    assert body["regarding"] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "namespace": "team-a",
        "name": "orders",
        "uid": "uid-orders",
    }
    assert body["metadata"]["namespace"] == "team-a" and body["metadata"]["name"].startswith("orders.")
    assert body["reportingController"] == "connect-reconciler"
    assert body["reportingInstance"] == "connect-reconciler-7d9f-abcde"
    assert body["note"] == "Created connector orders-sink on cluster default"
    assert recorder.emitted == 1 and recorder.failures == 0


def test_a_repeat_becomes_a_series_patch_not_a_new_event(
    recorder: EventRecorder, api: FakeApi, clock: FakeClock
) -> None:
    failed = action_event(kind=ActionKind.UPDATE, ok=False, message="tasks.max: not a number")
    send(recorder, failed)
    clock.t += 30
    send(recorder, failed)
    clock.t += 30
    # The note is not part of the key: another message of the same failure still extends the series.
    send(recorder, action_event(kind=ActionKind.UPDATE, ok=False, message="another message"))
    [created] = api.of("create")
    assert created["type"] == "Warning" and created["reason"] == "ConnectorFailed"
    assert created["note"] == "Update of connector orders-sink on cluster default failed (HTTP 400): " + (
        "tasks.max: not a number"
    )
    patches = [(name, body) for verb, _, name, body in api.calls if verb == "patch"]
    assert [name for name, _ in patches] == [created["metadata"]["name"]] * 2
    assert [body["series"]["count"] for _, body in patches] == [2, 3]
    assert all(MICROTIME.match(body["series"]["lastObservedTime"]) for _, body in patches)
    assert patches[-1][1]["series"]["lastObservedTime"] == "2026-01-01T00:01:00.000000Z"
    assert api.kwargs[1]["_content_type"] == "application/merge-patch+json"
    assert recorder.emitted == 3


def test_what_differs_in_reason_action_or_connector_is_another_event(
    recorder: EventRecorder, api: FakeApi
) -> None:
    send(
        recorder,
        action_event("a"),
        action_event("b"),  # same ConfigMap, another connector
        action_event("a", ActionKind.PAUSE, live_state="RUNNING"),
        action_event("a", ActionKind.STOP, live_state="PAUSED"),
        action_event("a", ok=False, message="boom"),
    )
    assert [(b["reason"], b["action"]) for b in api.of("create")] == [
        ("ConnectorCreated", "Create"),
        ("ConnectorCreated", "Create"),
        ("ConnectorStateChanged", "Pause"),
        ("ConnectorStateChanged", "Stop"),
        ("ConnectorFailed", "Create"),
    ]
    assert api.of("create")[2]["note"] == "State of connector a on cluster default: RUNNING -> PAUSED"
    assert api.of("patch") == []


def test_a_series_ends_after_six_quiet_minutes(
    recorder: EventRecorder, api: FakeApi, clock: FakeClock
) -> None:
    send(recorder, action_event())
    clock.t += SERIES_FINISH_S + 1
    send(recorder, action_event())
    assert len(api.of("create")) == 2 and api.of("patch") == []


def test_burst_then_one_per_five_minutes_per_configmap(
    recorder: EventRecorder, api: FakeApi, clock: FakeClock
) -> None:
    send(recorder, *(action_event(f"c{i}") for i in range(BURST + 5)))
    assert len(api.calls) == BURST and recorder.limited == 5
    other = doc("payments", uid="uid-payments")
    send(recorder, action_event("p", source=other))  # another ConfigMap has its own bucket
    assert len(api.calls) == BURST + 1
    clock.t += REFILL_S - 1
    send(recorder, action_event("late-1"))
    assert len(api.calls) == BURST + 1 and recorder.limited == 6
    clock.t += 1
    send(recorder, action_event("late-2"), action_event("late-3"))
    assert [b["note"].split()[2] for b in api.of("create")[-1:]] == ["late-2"]
    assert recorder.limited == 7
    clock.t += 10 * REFILL_S  # ten tokens, never more than the burst
    send(recorder, *(action_event(f"d{i}") for i in range(12)))
    assert len(api.calls) == BURST + 2 + 10


def test_held_back_repeats_are_folded_into_the_next_series_patch(
    api: FakeApi, core: FakeApi, clock: FakeClock
) -> None:
    r = make(api, core, clock)
    try:
        failed = action_event(ok=False, message="refused")
        send(r, *([failed] * (BURST + 10)))
        assert len(api.calls) == BURST and r.limited == 10
        clock.t += REFILL_S
        send(r, failed)
        assert api.of("patch")[-1]["series"]["count"] == BURST + 11
    finally:
        r.close(5)


def test_a_full_queue_drops_and_counts(api: FakeApi, core: FakeApi, clock: FakeClock) -> None:
    gate = threading.Event()
    blocked = FakeApi(gate=gate)
    r = make(blocked, core, clock, queue_size=3)
    try:
        r(action_event("first"))
        assert blocked.entered.wait(5)  # the worker holds "first"; the queue is empty again
        for i in range(10):
            r(action_event(f"c{i}"))  # returns at once although the API call hangs
        assert r.dropped == 7
        gate.set()
        assert r.flush(10)
        assert len(blocked.calls) == 4 and r.emitted == 4
    finally:
        gate.set()
        r.close(5)


def test_note_is_cut_in_the_middle_to_1024_bytes(recorder: EventRecorder, api: FakeApi) -> None:
    message = "HEAD-" + "é" * 3000 + "x" * 3000 + "-TAIL"
    send(recorder, action_event(ok=False, message=message))
    note = api.of("create")[0]["note"]
    assert len(note.encode("utf-8")) <= NOTE_LIMIT
    assert note.startswith("Create of connector orders-sink") and note.endswith("-TAIL")
    assert "..." in note and "HEAD-" in note
    assert cut_middle("short") == "short"
    cut = cut_middle("a" * 600 + "b" * 600)
    assert len(cut) == NOTE_LIMIT and cut == "a" * 511 + "..." + "b" * 510


def test_event_time_is_a_microtime_on_the_wire(clock: FakeClock) -> None:
    # The real EventsV1Api and ApiClient, stopped just before the network: what the server would get.
    sent: list[dict[str, Any]] = []

    def call_api(
        method: str, url: str, header_params: Any = None, body: Any = None, *_: Any, **__: Any
    ) -> Any:
        sent.append({"method": method, "url": url, "body": body})
        raise ApiException(status=599, reason="stop here")

    wire = client.ApiClient()
    wire.call_api = call_api  # type: ignore[method-assign]
    r = EventRecorder(
        wire, instance="x" * 300, redactor=lambda: Redactor(frozenset()), clock=clock, idle_s=30
    )
    try:
        send(r, action_event())  # the fake clock stands at 2026-01-01T00:00:00.000000: no fraction to drop
    finally:
        r.close(5)
    [request] = sent
    assert request["method"] == "POST" and request["url"].endswith(
        "/apis/events.k8s.io/v1/namespaces/team-a/events"
    )
    assert request["body"]["eventTime"] == "2026-01-01T00:00:00.000000Z"
    assert MICROTIME.match(request["body"]["eventTime"])
    assert request["body"]["reportingInstance"] == "x" * 128
    assert r.failures == 1 and r.emitted == 0  # a 599 is a failure, not a fallback


def test_no_secret_in_any_note(recorder: EventRecorder, api: FakeApi, clock: FakeClock) -> None:
    cp = plan_for("s", ActionKind.UPDATE, changes=(ConfigChange("connection.password", "a", "b", True),))
    pruned_why = f"the ledger is unreadable: token={SECRET}"
    send(
        recorder,
        action_event("s", ok=False, message=f'Invalid value {SECRET} for configuration "tasks.max"'),
        action_event("t", ok=False, message=f"jq error:\n  {SECRET}\n  at line 3"),  # lines collapsed
        action_event("t2", ok=False, message=f"jq: cannot add {SECRET[:12]}..."),  # a cut-off secret
        action_event("u", ok=False, message=json.dumps({"error": SECRET})),
        action_event("v", ActionKind.RESTART, restart=f"restart 1 of 5 {SECRET}"),
        action_event("w", ActionKind.DELETE, reason=f"pruned: {SECRET}"),
        ActionEvent(cp.actions[0], cp, doc(), Outcome(cp.actions[0], ok=True)),
        PassEvent(
            Report(Plan((plan_for("x", ActionKind.CREATE),)), dry_run=False),
            0.1,
            sources={"team-a/orders": doc()},
            blocked={"default": pruned_why},
        ),
    )
    everything = json.dumps(api.calls)
    assert len(api.of("create")) == 8
    assert SECRET not in everything and "hunter2" not in everything
    assert "<secret sha256:" in everything
    notes = [b["note"] for b in api.of("create")]
    assert any("connection.password" in n for n in notes)  # a key name is no secret


def test_translation_skips_dry_runs_gone_configmaps_and_files(recorder: EventRecorder, api: FakeApi) -> None:
    cp = plan_for("gone", ActionKind.DELETE)
    send(
        recorder,
        action_event(dry_run=True),
        ActionEvent(cp.actions[0], cp, None, Outcome(cp.actions[0], ok=True)),  # pruned, ConfigMap gone
        action_event(source=doc(uid=None)),  # from a file: no object to regard
        PassEvent(Report(Plan(()), dry_run=True), 0.1, blocked={"default": "x"}),
        "not an event",
    )
    assert api.calls == [] and recorder.failures == 0


def test_drift_repaired_is_an_update_at_an_unchanged_resource_version(
    recorder: EventRecorder, api: FakeApi
) -> None:
    update = ActionKind.UPDATE
    send(
        recorder,
        action_event("c", ActionKind.CREATE, source=doc(rv="1")),
        action_event("c", update, source=doc(rv="1")),  # the ConfigMap did not change: drift repaired
        action_event("c", update, source=doc(rv="2")),  # the ConfigMap changed
        # A failed update at rv 3, retried in the next pass at the same rv, is an update, not drift.
        action_event("e", ActionKind.CREATE, source=doc(rv="2")),
        action_event("e", update, ok=False, message="x", source=doc(rv="3")),
        action_event("e", update, source=doc(rv="3")),
    )
    # Known only from a pass in which it was in sync (no actions), then changed in Connect.
    in_sync = ConnectorPlan("d", "default", SourceRef("team-a/orders", "d.json"), ())
    sources = {"team-a/orders": doc(rv="7")}
    send(recorder, PassEvent(Report(Plan((in_sync,)), dry_run=False), 0.1, sources=sources))
    send(recorder, action_event("d", update, source=doc(rv="7")))
    assert [b["reason"] for b in api.of("create")] == [
        "ConnectorCreated",
        "DriftRepaired",
        "ConnectorUpdated",
        "ConnectorCreated",
        "ConnectorFailed",
        "ConnectorUpdated",
        "DriftRepaired",
    ]
    assert api.of("create")[1]["note"] == (
        "Repaired drift of connector c on cluster default, changed outside its ConfigMap: config rewritten"
    )


def test_prune_blocked_goes_on_every_configmap_of_that_cluster(recorder: EventRecorder, api: FakeApi) -> None:
    plans = (
        plan_for("a", ActionKind.CREATE, cm="team-a/orders"),
        plan_for("b", ActionKind.CREATE, cm="team-a/payments"),
        ConnectorPlan("c", "eu", SourceRef("team-a/eu-only", "c.json"), ()),
    )
    sources = {
        "team-a/orders": doc(),
        "team-a/payments": doc("payments", uid="uid-payments"),
        "team-a/eu-only": doc("eu-only", uid="uid-eu"),
    }
    blocked = PassEvent(
        Report(Plan(plans), dry_run=False), 0.1, sources=sources, blocked={"default": "a ConfigMap is broken"}
    )
    send(recorder, blocked, blocked)
    created = api.of("create")
    assert sorted(b["regarding"]["name"] for b in created) == ["orders", "payments"]
    assert {(b["type"], b["reason"], b["action"]) for b in created} == {("Warning", "PruneBlocked", "Prune")}
    assert created[0]["note"] == "Prunes on cluster default are blocked: a ConfigMap is broken"
    assert [b["series"]["count"] for b in api.of("patch")] == [2, 2]


@pytest.mark.parametrize("status", [403, 404])
def test_falls_back_to_core_v1_when_events_k8s_io_refuses(
    status: int, core: FakeApi, clock: FakeClock
) -> None:
    refusing = FakeApi(refuse=status)
    r = make(refusing, core, clock)
    try:
        send(r, action_event(ok=False, message="boom"))
        clock.t += 5
        send(r, action_event(ok=False, message="boom"), action_event("other"))
    finally:
        r.close(5)
    assert r.core_only and r.failures == 0 and r.emitted == 3
    assert [v for v, *_ in core.calls] == ["create", "patch", "create"]
    first = core.of("create")[0]
    assert first["apiVersion"] == "v1" and first["involvedObject"]["uid"] == "uid-orders"
    assert first["reason"] == "ConnectorFailed" and first["type"] == "Warning" and first["count"] == 1
    assert first["message"].endswith("failed (HTTP 400): boom")
    assert first["firstTimestamp"] == first["lastTimestamp"] == "2026-01-01T00:00:00Z"
    assert first["source"] == {"component": "connect-reconciler"} and first["action"] == "Create"
    assert core.of("patch") == [{"count": 2, "lastTimestamp": "2026-01-01T00:00:05Z"}]
    assert refusing.entered.is_set()  # tried once, then core/v1 only


def test_an_expired_event_is_created_again(recorder: EventRecorder, api: FakeApi) -> None:
    def gone(name: str, namespace: str, body: Any, **kwargs: Any) -> None:
        raise ApiException(status=404, reason="NotFound")

    send(recorder, action_event())
    api.patch_namespaced_event = gone  # type: ignore[method-assign]
    send(recorder, action_event())
    assert len(api.of("create")) == 2 and recorder.failures == 0


def test_the_observer_never_raises(api: FakeApi, core: FakeApi, clock: FakeClock) -> None:
    def broken() -> Redactor:
        raise RuntimeError("no redactor")

    r = EventRecorder(
        None, instance="i", redactor=broken, clock=clock, events_api=api, core_api=core, idle_s=30
    )
    try:
        send(r, action_event())  # a note that cannot be scrubbed is never sent
        r(object())
        send(r, ActionEvent(None, None, None, None))  # type: ignore[arg-type]
    finally:
        r.close(5)
    assert api.calls == [] and r.failures >= 1
    r(action_event())  # after close: dropped, counted
    assert r.dropped == 1
