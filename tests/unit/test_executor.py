"""Executor against the in-memory Connect: retries, unknown outcomes, isolation between connectors."""

from __future__ import annotations

import httpx

from reconciler.executor import apply_plan, execute_action
from reconciler.model import Action, ActionKind, ConnectorPlan, CreateMethod, DesiredState, Plan, Report
from reconciler.retrying import RetryPolicy
from tests.fake_connect import FakeConnect

NO_WAIT = RetryPolicy(sleep=lambda s: None, max_attempts=5)
CFG = {"name": "c", "connector.class": "X", "tasks.max": "1"}
POST, PUT = CreateMethod.POST_INITIAL_STATE, CreateMethod.PUT_THEN_STATE


def test_create_uses_post_with_initial_state_on_new_workers() -> None:
    fake = FakeConnect()
    out = execute_action(
        Action(ActionKind.CREATE, "c", "default", CFG, DesiredState.PAUSED, POST),
        fake.client(),
        retry=NO_WAIT,
    )
    assert out.ok and fake.writes() == ["POST /connectors"]
    assert fake.connectors["c"]["state"] == "PAUSED"


def test_create_on_old_workers_puts_config_then_stops() -> None:
    fake = FakeConnect(version="3.6.2")
    out = execute_action(
        Action(ActionKind.CREATE, "c", "default", CFG, DesiredState.STOPPED, PUT),
        fake.client(),
        retry=NO_WAIT,
    )
    assert out.ok and fake.writes() == ["PUT /connectors/c/config", "PUT /connectors/c/stop"]


def test_create_already_exists_converges_through_put_only_if_different() -> None:
    fake = FakeConnect()
    fake.add("c", CFG)
    out = execute_action(
        Action(ActionKind.CREATE, "c", "default", CFG, DesiredState.RUNNING, POST),
        fake.client(),
        retry=NO_WAIT,
    )
    assert out.ok and fake.writes() == ["POST /connectors"]  # same config: no PUT, no restart
    fake2 = FakeConnect()
    fake2.add("c", {**CFG, "tasks.max": "9"})
    execute_action(
        Action(ActionKind.CREATE, "c", "default", CFG, DesiredState.RUNNING, POST),
        fake2.client(),
        retry=NO_WAIT,
    )
    assert fake2.writes() == ["POST /connectors", "PUT /connectors/c/config"]
    assert fake2.connectors["c"]["config"]["tasks.max"] == "1"


def test_409_rebalance_is_retried() -> None:
    fake = FakeConnect()
    fake.add("c", {**CFG, "tasks.max": "2"})
    fake.fail(
        "PUT",
        "/connectors/c/config",
        409,
        {"error_code": 409, "message": "Cannot complete request momentarily due to stale configuration"},
        times=2,
    )
    out = execute_action(Action(ActionKind.UPDATE, "c", "default", CFG), fake.client(), retry=NO_WAIT)
    assert out.ok and fake.writes() == ["PUT /connectors/c/config"] * 3


def test_request_timed_out_rereads_before_retrying_the_write() -> None:
    fake = FakeConnect()
    fake.add("c", {**CFG, "tasks.max": "2"})
    # The worker times out but the write lands anyway: simulate by applying it inside the fault.
    original = fake.handle

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT" and not any(r.method == "PUT" for r in fake.requests):
            original(request)  # the write takes effect...
            return httpx.Response(
                500, json={"error_code": 500, "message": "Request timed out"}
            )  # ...but we don't know
        return original(request)

    client = fake.client()
    client.http._transport = httpx.MockTransport(handle)
    out = execute_action(Action(ActionKind.UPDATE, "c", "default", CFG), client, retry=NO_WAIT)
    assert out.ok
    assert fake.writes() == ["PUT /connectors/c/config"]  # re-read showed it landed: no second PUT
    assert [f"{r.method} {r.url.path}" for r in fake.requests][-2:] == [
        "GET /connectors/c/config",
        "GET /connectors/c/status",
    ]


def test_bad_request_is_not_retried_and_reported() -> None:
    fake = FakeConnect()
    fake.fail(
        "PUT",
        "/connectors/c/config",
        400,
        {"error_code": 400, "message": "Connector configuration is invalid"},
    )
    out = execute_action(Action(ActionKind.UPDATE, "c", "default", CFG), fake.client(), retry=NO_WAIT)
    assert not out.ok and out.http_status == 400 and "invalid" in out.message
    assert fake.writes() == ["PUT /connectors/c/config"]


def test_one_connector_failure_does_not_stop_the_others_and_skips_its_own_later_actions() -> None:
    fake = FakeConnect()
    fake.add("a", CFG)
    fake.fail("PUT", "/connectors/a/config", 400, {"error_code": 400, "message": "nope"})
    plan = Plan(
        (
            ConnectorPlan(
                "a",
                "default",
                None,
                (Action(ActionKind.UPDATE, "a", "default", CFG), Action(ActionKind.PAUSE, "a", "default")),
            ),
            ConnectorPlan(
                "b",
                "default",
                None,
                (
                    Action(
                        ActionKind.CREATE, "b", "default", {**CFG, "name": "b"}, DesiredState.RUNNING, POST
                    ),
                ),
            ),
        )
    )
    outcomes = apply_plan(plan, {"default": fake.client()}, retry=NO_WAIT)
    assert [(o.action.connector, o.action.kind.value, o.ok) for o in outcomes] == [
        ("a", "update", False),
        ("b", "create", True),
    ]
    assert "PUT /connectors/a/pause" not in fake.writes() and "b" in fake.connectors


def test_delete_of_missing_connector_is_success() -> None:
    fake = FakeConnect()
    assert execute_action(Action(ActionKind.DELETE, "gone", "default"), fake.client(), retry=NO_WAIT).ok


def test_shutdown_finishes_the_action_in_flight_and_starts_no_new_one() -> None:
    fake = FakeConnect()
    stop = {"now": False}
    original = fake.handle

    def handle(request: httpx.Request) -> httpx.Response:
        response = original(request)
        if request.method == "POST":
            stop["now"] = True  # SIGTERM arrives while the first create is in flight
        return response

    client = fake.client()
    client.http._transport = httpx.MockTransport(handle)
    plan = Plan(
        tuple(
            ConnectorPlan(
                n,
                "default",
                None,
                (Action(ActionKind.CREATE, n, "default", {**CFG, "name": n}, DesiredState.RUNNING, POST),),
            )
            for n in ("a", "b", "c")
        )
    )
    outcomes = apply_plan(plan, {"default": client}, retry=NO_WAIT, should_continue=lambda: not stop["now"])
    assert [(o.action.connector, o.ok) for o in outcomes] == [("a", True)]
    assert sorted(fake.connectors) == ["a"]


def test_failures_say_whether_running_again_could_help() -> None:
    fake = FakeConnect()
    fake.fail("PUT", "/connectors/c/config", 400, {"error_code": 400, "message": "invalid"})
    fake.fail("PUT", "/connectors/d/config", 503, {"error_code": 503, "message": "unavailable"}, times=10)
    plan = Plan(
        (
            ConnectorPlan("c", "default", None, (Action(ActionKind.UPDATE, "c", "default", CFG),)),
            ConnectorPlan(
                "d", "default", None, (Action(ActionKind.UPDATE, "d", "default", {**CFG, "name": "d"}),)
            ),
        )
    )
    report = Report(plan, tuple(apply_plan(plan, {"default": fake.client()}, retry=NO_WAIT)), dry_run=False)
    assert [(p.connector, p.retryable) for p in report.problems] == [("c", False), ("d", True)]
