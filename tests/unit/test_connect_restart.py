"""Restart and offsets over the wire: the client against httpx.MockTransport, the executor against the
in-memory Connect (whose FAILED connectors and tasks a restart clears)."""

from __future__ import annotations

import pytest

from reconciler.clients.connect import READ_TIMEOUT_S, WRITE_TIMEOUT_S
from reconciler.core.planning import restart_action
from reconciler.core.restarts import AutoRestart, RestartRecord
from reconciler.errors import ConnectConflict, ConnectNotFound, ConnectUnavailable
from reconciler.executor import apply_plan, execute_action
from reconciler.model import (
    Action,
    ActionKind,
    ConnectorPlan,
    DesiredConnector,
    DesiredState,
    Plan,
    SourceRef,
)
from reconciler.retrying import RetryPolicy
from tests.fake_connect import FakeConnect
from tests.support import client_for

NO_WAIT = RetryPolicy(sleep=lambda s: None, max_attempts=5)
RESTART = Action(ActionKind.RESTART, "c", "default")
CFG = {"name": "c", "connector.class": "X", "tasks.max": "1"}


# --- the client --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 202, 204])
def test_restart_posts_only_failed_with_tasks_and_quotes_the_name(status: int) -> None:
    client, seen = client_for(status, {"name": "a b/c", "connector": {"state": "RESTARTING"}, "tasks": []})
    client.restart("a b/c")
    (request,) = seen
    assert request.method == "POST"
    assert request.url.raw_path == b"/connectors/a%20b%2Fc/restart?includeTasks=true&onlyFailed=true"
    assert request.extensions["timeout"]["read"] == WRITE_TIMEOUT_S  # a write: Connect may take 90 s


def test_restart_errors_map_as_everywhere() -> None:
    client, _ = client_for(404, {"error_code": 404, "message": "Connector c not found"})
    with pytest.raises(ConnectNotFound):
        client.restart("c")
    client, _ = client_for(409, {"error_code": 409, "message": "Cannot complete request momentarily"})
    with pytest.raises(ConnectConflict) as conflict:
        client.restart("c")
    assert conflict.value.retryable
    client, _ = client_for(404, text="<html>Not Found</html>")
    with pytest.raises(ConnectUnavailable):
        client.restart("c")


def test_offsets_returns_connects_body() -> None:
    body = {"offsets": [{"partition": {"filename": "/x"}, "offset": {"position": 7}}]}
    client, seen = client_for(200, body)
    assert client.offsets("a b") == body
    assert seen[0].method == "GET" and seen[0].url.raw_path == b"/connectors/a%20b/offsets"
    assert seen[0].extensions["timeout"]["read"] == READ_TIMEOUT_S


@pytest.mark.parametrize(
    ("status", "body"),
    [(404, {"error_code": 404, "message": "HTTP 404 Not Found"}), (405, {"error_code": 405, "message": "x"})],
)
def test_offsets_is_none_when_the_worker_has_no_such_endpoint(status: int, body: object) -> None:
    client, _ = client_for(status, body)
    assert client.offsets("c") is None


def test_offsets_of_an_unknown_connector_is_not_found() -> None:
    client, _ = client_for(404, {"error_code": 404, "message": "Connector c not found"})
    with pytest.raises(ConnectNotFound):
        client.offsets("c")
    # A name that reads like JAX-RS's message is still Connect's "not found" for the connector.
    client, _ = client_for(404, {"error_code": 404, "message": "Connector HTTP 404 Not Found not found"})
    with pytest.raises(ConnectNotFound):
        client.offsets("HTTP 404 Not Found")


def test_offsets_from_a_starting_worker_stays_unavailable() -> None:
    client, _ = client_for(404, text="<html>Not Found</html>")
    with pytest.raises(ConnectUnavailable):
        client.offsets("c")


def test_offsets_on_the_fake_by_version() -> None:
    fake = FakeConnect()
    fake.add("c", CFG)
    fake.offsets["c"] = [
        {"partition": {"kafka_topic": "t", "kafka_partition": 0}, "offset": {"kafka_offset": 3}}
    ]
    assert fake.client().offsets("c") == {"offsets": fake.offsets["c"]}
    old = FakeConnect(version="3.4.1")
    old.add("c", CFG)
    assert old.client().offsets("c") is None


# --- the in-memory Connect ---------------------------------------------------------------------------


def test_fake_shows_failures_and_a_restart_clears_only_failed_ones() -> None:
    fake = FakeConnect()
    fake.add("c", CFG)
    fake.fail_task("c")
    client = fake.client()
    live = client.get_connector("c")
    assert live is not None and (live.state, live.tasks) == ("RUNNING", ("FAILED",))
    fake.fail_connector("c")
    assert client.list_expanded()["c"].state == "FAILED"
    client.restart("c")
    live = client.get_connector("c")
    assert live is not None and (live.state, live.tasks) == ("RUNNING", ("RUNNING",))
    assert fake.restarts == ["c?includeTasks=true&onlyFailed=true"]
    assert fake.writes() == ["POST /connectors/c/restart"]


def test_fake_restart_keeps_a_paused_target_state() -> None:
    fake = FakeConnect()
    fake.add("c", CFG, state="PAUSED")
    fake.fail_task("c")
    fake.client().restart("c")
    assert fake._status("c")["tasks"][0]["state"] == "PAUSED"


def test_fake_before_kafka_3_restarts_the_connector_instance_only() -> None:
    fake = FakeConnect(version="2.8.2")
    fake.add("c", CFG)
    fake.fail_task("c")
    fake.fail_connector("c")
    fake.client().restart("c")
    status = fake._status("c")
    assert status["connector"]["state"] == "RUNNING" and status["tasks"][0]["state"] == "FAILED"


# --- the executor ------------------------------------------------------------------------------------


def test_executor_sends_the_restart() -> None:
    fake = FakeConnect()
    fake.add("c", CFG)
    fake.fail_task("c")
    out = execute_action(RESTART, fake.client(), retry=NO_WAIT)
    assert out.ok and out.message == "done"
    assert fake.writes() == ["POST /connectors/c/restart"] and not fake.connectors["c"].get("failed_task")


def test_a_409_during_a_rebalance_is_retried() -> None:
    fake = FakeConnect()
    fake.add("c", CFG)
    fake.fail("POST", "/connectors/c/restart", 409, times=2)
    out = execute_action(RESTART, fake.client(), retry=NO_WAIT)
    assert out.ok and fake.writes() == ["POST /connectors/c/restart"] * 3


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, {"error_code": 500, "message": "Request timed out"}),
        (504, "<html>Gateway Timeout</html>"),
        (500, {"error_code": 500, "message": "boom"}),
    ],
)
def test_a_restart_with_an_unknown_outcome_is_not_sent_again(status: int, body: object) -> None:
    fake = FakeConnect()
    fake.add("c", CFG)
    fake.fail("POST", "/connectors/c/restart", status, body)
    out = execute_action(RESTART, fake.client(), retry=NO_WAIT)
    assert out.ok and "outcome is unknown" in out.message
    assert fake.writes() == ["POST /connectors/c/restart"]  # once; no re-read needed either
    assert [r.method for r in fake.requests] == ["POST"]


def test_a_restart_never_sent_is_retried_and_a_missing_connector_fails() -> None:
    fake = FakeConnect()
    fake.add("c", CFG)
    fake.fail("POST", "/connectors/c/restart", 503, "<html>Service Unavailable</html>")  # a proxy's 503
    assert execute_action(RESTART, fake.client(), retry=NO_WAIT).ok
    assert fake.writes() == ["POST /connectors/c/restart"] * 2
    out = execute_action(Action(ActionKind.RESTART, "gone", "default"), fake.client(), retry=NO_WAIT)
    assert not out.ok and out.http_status == 404 and not out.retryable


def test_plan_restart_apply_round_trip() -> None:
    """restart_action's action, appended to a connector plan, goes through apply_plan to the fake."""
    fake = FakeConnect()
    fake.add("c", CFG)
    fake.fail_task("c")
    client = fake.client()
    declared = DesiredConnector("c", CFG, DesiredState.RUNNING, "default", True, SourceRef("ns/cm", "c"))
    now = 1_700_000_000.0
    action, record, note = restart_action(
        declared, client.get_connector("c"), RestartRecord(), AutoRestart(), now=now
    )
    assert action is not None and record.count == 1
    plan = Plan((ConnectorPlan("c", "default", declared.source, (action,), restart=note),))
    outcomes = apply_plan(plan, {"default": client}, retry=NO_WAIT)
    assert [o.ok for o in outcomes] == [True]
    healthy = client.get_connector("c")
    assert healthy is not None
    assert restart_action(declared, healthy, record, AutoRestart(), now=now + 60) == (None, record, None)
