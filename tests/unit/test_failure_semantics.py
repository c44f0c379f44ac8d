"""What the reconciler promises when things go wrong, on the in-memory Connect (issue 6's defects):
only Connect's own 404 means "gone"; lost answers are re-read, never rewritten; permanent 500s are not
retried; a refused initial_state falls back; one unavailable cluster opens a breaker; a stop ends every
retry sleep; deletions are settled only when Connect confirms them."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from reconciler.clock import SystemClock
from reconciler.entrypoints.flags import settings_from_values
from reconciler.errors import ConnectRequestInvalid, ShuttingDown
from reconciler.executor import apply_plan, execute_action
from reconciler.model import Action, ActionKind, ConfigMapDoc, ConnectorPlan, CreateMethod, DesiredState, Plan
from reconciler.pipeline import reconcile
from reconciler.retrying import RetryPolicy
from reconciler.runtime import open_runtime
from tests.fake_clock import FakeClock
from tests.fake_connect import FakeConnect
from tests.support import runtime_for

NO_WAIT = RetryPolicy(sleep=lambda s: None, max_attempts=6)
CFG = {"name": "c", "connector.class": "X", "tasks.max": "1"}
STARTING_404 = "<html><body><h2>HTTP ERROR 404 Not Found</h2></body></html>"


def with_handler(fake: FakeConnect, handler: object) -> object:
    client = fake.client()
    client.http._transport = httpx.MockTransport(handler)  # type: ignore[arg-type]
    return client


# --- defect 1: a 404 that is not Connect's --------------------------------------------------------


@pytest.mark.parametrize("body", [STARTING_404, ""])
def test_a_starting_workers_404_on_delete_is_retried_not_taken_for_gone(body: str) -> None:
    fake = FakeConnect()
    fake.add("c", CFG)
    fake.fail("DELETE", "/connectors/c", 404, body, times=2)
    out = execute_action(Action(ActionKind.DELETE, "c", "default"), fake.client(), retry=NO_WAIT)
    assert out.ok and "c" not in fake.connectors
    assert fake.writes() == ["DELETE /connectors/c"] * 3


def test_a_delete_answered_only_by_foreign_404s_fails_and_says_so() -> None:
    fake = FakeConnect()
    fake.add("c", CFG)
    fake.fail("DELETE", "/connectors/c", 404, STARTING_404, times=100)
    out = execute_action(Action(ActionKind.DELETE, "c", "default"), fake.client(), retry=NO_WAIT)
    assert not out.ok and out.retryable and "not Kafka Connect's answer" in out.message
    assert "c" in fake.connectors


def test_connects_own_404_on_delete_means_gone() -> None:
    fake = FakeConnect()
    out = execute_action(Action(ActionKind.DELETE, "ghost", "default"), fake.client(), retry=NO_WAIT)
    assert out.ok and fake.writes() == ["DELETE /connectors/ghost"]


def test_a_create_inside_the_starting_window_is_retried() -> None:
    fake = FakeConnect()
    fake.fail("POST", "/connectors", 404, STARTING_404, times=2)
    action = Action(
        ActionKind.CREATE, "c", "default", CFG, DesiredState.RUNNING, CreateMethod.POST_INITIAL_STATE
    )
    out = execute_action(action, fake.client(), retry=NO_WAIT)
    assert out.ok and "c" in fake.connectors


# --- defect 4: Confluent Platform workers and permanent 500s --------------------------------------

UNRECOGNIZED = {
    "error_code": 500,
    "message": 'Unrecognized field "initial_state" (class org.apache.kafka.connect.runtime.rest.entities.'
    'CreateConnectorRequest), not marked as ignorable (2 known properties: "config", "name"])',
}


def test_a_refused_initial_state_falls_back_to_put_then_pause() -> None:
    fake = FakeConnect()
    fake.fail("POST", "/connectors", 500, UNRECOGNIZED)
    action = Action(
        ActionKind.CREATE, "c", "default", CFG, DesiredState.PAUSED, CreateMethod.POST_INITIAL_STATE
    )
    out = execute_action(action, fake.client(), retry=NO_WAIT)
    assert out.ok and fake.connectors["c"]["state"] == "PAUSED"
    assert fake.writes() == ["POST /connectors", "PUT /connectors/c/config", "PUT /connectors/c/pause"]


def test_a_500_reporting_a_body_error_is_permanent() -> None:
    fake = FakeConnect()
    fake.add("c", {**CFG, "tasks.max": "2"})
    body = {"error_code": 500, "message": 'Unrecognized field "bogus" ... not marked as ignorable'}
    fake.fail("PUT", "/connectors/c/config", 500, body, times=100)
    out = execute_action(Action(ActionKind.UPDATE, "c", "default", CFG), fake.client(), retry=NO_WAIT)
    assert not out.ok and not out.retryable and fake.writes() == ["PUT /connectors/c/config"]
    client = fake.client()
    with pytest.raises(ConnectRequestInvalid):
        client.put_config("c", CFG)


# --- defect 5: identical rewrites after a lost response -------------------------------------------


@pytest.mark.parametrize(
    "lost",
    [
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadTimeout("timed out"),
        httpx.ReadError("connection reset by peer"),
    ],
)
def test_a_write_whose_answer_was_lost_is_reread_not_rewritten(lost: Exception) -> None:
    fake = FakeConnect()
    fake.add("c", {**CFG, "tasks.max": "2"})

    def handle(request: httpx.Request) -> httpx.Response:
        first_put = request.method == "PUT" and not any(r.method == "PUT" for r in fake.requests)
        response = fake.handle(request)  # the write takes effect...
        if first_put:
            raise lost  # ...but its answer never arrives
        return response

    out = execute_action(
        Action(ActionKind.UPDATE, "c", "default", CFG), with_handler(fake, handle), retry=NO_WAIT
    )  # type: ignore[arg-type]
    assert out.ok and fake.writes() == ["PUT /connectors/c/config"]  # no identical second PUT


def test_a_refused_connection_is_known_not_sent_and_retried_without_a_reread() -> None:
    fake = FakeConnect()
    fake.add("c", {**CFG, "tasks.max": "2"})
    attempts: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        attempts.append(f"{request.method} {request.url.path}")
        if len(attempts) == 1:
            raise httpx.ConnectError("connection refused")
        return fake.handle(request)

    out = execute_action(
        Action(ActionKind.UPDATE, "c", "default", CFG), with_handler(fake, handle), retry=NO_WAIT
    )  # type: ignore[arg-type]
    assert out.ok and attempts == ["PUT /connectors/c/config"] * 2


# --- defect 10: shutdown and the per-cluster breaker ----------------------------------------------


def test_retry_sleeps_end_at_once_on_stop() -> None:
    clock = SystemClock()
    retry = RetryPolicy(max_seconds=600, initial_wait=30, max_wait=60, sleep=clock.sleep, on_retry=None)
    fake = FakeConnect()
    fake.fail("PUT", "/connectors/c/config", 503, "down", times=1000)
    threading.Timer(0.3, clock.stop.set).start()
    started = time.monotonic()
    out = execute_action(Action(ActionKind.UPDATE, "c", "default", CFG), fake.client(), retry=retry)
    assert time.monotonic() - started < 5 and not out.ok and out.message.startswith("interrupted")
    with pytest.raises(ShuttingDown):
        clock.sleep(10)


def test_one_exhausted_unavailable_cluster_skips_its_other_actions_at_once() -> None:
    down, up = FakeConnect(), FakeConnect()
    down.fail("POST", "/connectors", 503, "<html>503 Service Unavailable</html>", times=1000)
    creates = [
        ConnectorPlan(
            n,
            cluster,
            None,
            (
                Action(
                    ActionKind.CREATE,
                    n,
                    cluster,
                    {**CFG, "name": n},
                    DesiredState.RUNNING,
                    CreateMethod.POST_INITIAL_STATE,
                ),
            ),
        )
        for cluster, n in [("down", "a"), ("down", "b"), ("down", "c"), ("up", "d")]
    ]
    clients = {"down": down.client(cluster="down"), "up": up.client(cluster="up")}
    outcomes = apply_plan(Plan(tuple(creates)), clients, retry=NO_WAIT)
    assert [(o.action.connector, o.ok, o.skipped) for o in outcomes] == [
        ("a", False, False),
        ("b", False, True),
        ("c", False, True),
        ("d", True, False),
    ]
    assert len(down.writes()) == NO_WAIT.max_attempts  # only the first action spent the retry budget
    assert "skipped: cluster down is unavailable" in outcomes[1].message and outcomes[1].retryable


# --- defect 2: deletions settle only when Connect confirms them -----------------------------------


def doc(cm: str, connector: str) -> ConfigMapDoc:
    program = json.dumps({"name": connector, "config": {"connector.class": "X"}})
    return ConfigMapDoc(cm, "default", {"destination": "connect"}, {"k.json": program})


def test_a_deletion_is_not_settled_while_connect_cannot_be_observed() -> None:
    fake = FakeConnect()
    fake.add("gone", {"connector.class": "X"})
    fake.fail("GET", "/", 503, "down", times=1000)
    report = reconcile([], deleted=[doc("cm", "gone")], rt=runtime_for(fake), dry_run=False)
    assert report.settled_deletions == frozenset() and not report.ok
    fake.faults.clear()
    report = reconcile([], deleted=[doc("cm", "gone")], rt=runtime_for(fake), dry_run=False)
    assert report.settled_deletions == {"default/cm"} and "gone" not in fake.connectors


def test_a_failed_delete_or_an_unrenderable_last_state_is_not_settled() -> None:
    fake = FakeConnect()
    fake.add("gone", {"connector.class": "X"})
    fake.fail("DELETE", "/connectors/gone", 500, {"error_code": 500, "message": "boom"}, times=1000)
    report = reconcile([], deleted=[doc("cm", "gone")], rt=runtime_for(fake), dry_run=False)
    assert report.settled_deletions == frozenset() and "gone" in fake.connectors
    broken = ConfigMapDoc("cm2", "default", {"destination": "connect"}, {"k.json": "{name: $NOPE}"})
    report = reconcile([], deleted=[broken], rt=runtime_for(fake), dry_run=False)
    assert report.settled_deletions == frozenset()
    assert any("deleted, but its last state cannot be rendered (kept)" in p.message for p in report.problems)


def test_a_deletion_already_done_is_settled_by_observation() -> None:
    fake = FakeConnect()  # the connector is simply not there
    report = reconcile([], deleted=[doc("cm", "gone")], rt=runtime_for(fake), dry_run=False)
    assert report.settled_deletions == {"default/cm"} and fake.writes() == []


def test_a_create_by_put_whose_answer_was_lost_still_gets_its_pause_and_no_second_put() -> None:
    fake = FakeConnect(version="3.6.2")

    def handle(request: httpx.Request) -> httpx.Response:
        first_put = request.method == "PUT" and not any(r.method == "PUT" for r in fake.requests)
        response = fake.handle(request)
        if first_put:
            raise httpx.ReadTimeout("timed out")  # the config landed; the client never heard
        return response

    action = Action(ActionKind.CREATE, "c", "default", CFG, DesiredState.PAUSED, CreateMethod.PUT_THEN_STATE)
    out = execute_action(action, with_handler(fake, handle), retry=NO_WAIT)  # type: ignore[arg-type]
    assert out.ok and fake.connectors["c"]["state"] == "PAUSED"
    assert fake.writes() == ["PUT /connectors/c/config", "PUT /connectors/c/pause"]


def test_liveness_ticks_on_every_connect_answer_and_every_retry() -> None:
    """A pass slowed by an outage is still alive: the kubelet must not restart the pod mid-apply."""
    fake = FakeConnect()
    fake.fail("GET", "/", 503, "down", times=2)
    beats: list[int] = []
    settings = settings_from_values({"connect_url": "http://connect.test", "retry_seconds": 60})
    with open_runtime(
        settings,
        environ={},
        clock=FakeClock(),  # type: ignore[arg-type]
        transport=httpx.MockTransport(fake.handle),
        on_progress=lambda: beats.append(1),
    ) as rt:
        assert rt.retry.call(rt.clients["default"].version) == "4.1.1"
    assert len(beats) == 3 + 2  # three answers (two 503s and the 200) and two retries
