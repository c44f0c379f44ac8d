"""Executor against the in-memory Connect: retries, unknown outcomes, isolation between connectors."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from reconciler.clients.connect import ConnectClient
from reconciler.clock import SystemClock
from reconciler.executor import apply_plan, execute_action
from reconciler.model import (
    Action,
    ActionKind,
    ConnectorPlan,
    CreateMethod,
    DesiredState,
    Outcome,
    Plan,
    Report,
)
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


# --- several connectors in flight --------------------------------------------------------------------


def _creates(names: list[str], *, paused: tuple[str, ...] = ()) -> Plan:
    def actions(n: str) -> tuple[Action, ...]:
        create = Action(ActionKind.CREATE, n, "default", {**CFG, "name": n}, DesiredState.RUNNING, POST)
        return (create, Action(ActionKind.PAUSE, n, "default")) if n in paused else (create,)

    return Plan(tuple(ConnectorPlan(n, "default", None, actions(n)) for n in names))


def _locked(fake: FakeConnect, *, cluster: str = "default") -> ConnectClient:
    """A client of `fake` that serialises its requests (FakeConnect itself is not thread-safe)."""
    lock = threading.Lock()

    def handle(request: httpx.Request) -> httpx.Response:
        with lock:
            return fake.handle(request)

    client = fake.client(cluster=cluster)
    client.http._transport = httpx.MockTransport(handle)
    return client


class Gate:
    """A transport that holds each POST until `width` are in flight at once (or `hold` seconds passed),
    recording the most it saw: proof that requests overlap, without a test that can hang."""

    def __init__(self, fake: FakeConnect, width: int, *, hold: float = 5.0) -> None:
        self.fake, self.width, self.hold = fake, width, hold
        self.lock = threading.Lock()
        self.in_flight = self.most = 0
        self.all_in = threading.Event()

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            with self.lock:
                self.in_flight += 1
                self.most = max(self.most, self.in_flight)
                if self.in_flight >= self.width:
                    self.all_in.set()
            self.all_in.wait(self.hold)
            with self.lock:
                self.in_flight -= 1
        with self.lock:  # FakeConnect itself is not thread-safe
            return self.fake.handle(request)


def test_several_connectors_are_written_at_once_each_one_in_order_and_reported_one_at_a_time() -> None:
    fake = FakeConnect()
    gate = Gate(fake, width=4)
    client = fake.client()
    client.http._transport = httpx.MockTransport(gate.handle)
    names = [f"c{i}" for i in range(12)]
    reporting = threading.Lock()
    seen: list[tuple[str, str]] = []

    def on_outcome(outcome: Outcome) -> None:
        assert reporting.acquire(blocking=False), "on_outcome entered by two threads at once"
        try:
            seen.append((outcome.action.connector, outcome.action.kind.value))
            time.sleep(0.001)
        finally:
            reporting.release()

    plan = _creates(names, paused=("c3", "c7"))
    outcomes = apply_plan(plan, {"default": client}, retry=NO_WAIT, on_outcome=on_outcome, max_in_flight=4)
    assert gate.most == 4  # four creates overlapped, never more
    assert [(o.action.connector, o.action.kind.value) for o in outcomes] == [
        (n, k) for n in names for k in (("create", "pause") if n in ("c3", "c7") else ("create",))
    ]  # plan order, whatever order they finished in
    assert all(o.ok for o in outcomes) and sorted(seen) == sorted(
        (o.action.connector, o.action.kind.value) for o in outcomes
    )
    for n in ("c3", "c7"):
        assert seen.index((n, "create")) < seen.index((n, "pause"))  # one connector's steps in order
        assert fake.connectors[n]["state"] == "PAUSED"


def test_in_flight_the_gate_and_the_breaker_still_hold() -> None:
    fake = FakeConnect()
    names = [f"c{i}" for i in range(10)]
    writes = {"n": 0}
    lock = threading.Lock()

    def handle(request: httpx.Request) -> httpx.Response:
        with lock:
            writes["n"] += request.method == "POST"
            return fake.handle(request)

    client = fake.client()
    client.http._transport = httpx.MockTransport(handle)
    outcomes = apply_plan(
        _creates(names),
        {"default": client},
        retry=NO_WAIT,
        should_continue=lambda: writes["n"] < 3,
        max_in_flight=2,
    )
    assert 3 <= len(outcomes) <= 4 and len(fake.connectors) == len(outcomes)  # the ones in flight finish
    down = FakeConnect()
    down.fail("POST", "/connectors", 503, "", times=1000)
    outcomes = apply_plan(_creates(names), {"default": _locked(down)}, retry=NO_WAIT, max_in_flight=3)
    assert len(outcomes) == 10 and not any(o.ok for o in outcomes)
    assert sum(o.skipped for o in outcomes) >= 10 - 3  # once one gave up, the rest were skipped at once


def test_max_in_flight_comes_from_the_flag_or_its_environment_variable_default_8() -> None:
    from reconciler.entrypoints.flags import settings_from_environ  # noqa: PLC0415
    from reconciler.runtime import open_runtime  # noqa: PLC0415

    assert settings_from_environ({}).connect.max_in_flight == 8
    settings = settings_from_environ(
        {"CONNECT_RECONCILER_MAX_IN_FLIGHT": "3", "CONNECT_RECONCILER_CONNECT_URL": "http://connect.test"}
    )
    with open_runtime(settings, environ={}) as rt:
        assert rt.max_in_flight == 3
    assert settings_from_environ({"CONNECT_RECONCILER_MAX_IN_FLIGHT": "0"}).connect.max_in_flight == 1


def test_one_in_flight_asks_the_gate_once_per_action_and_never_overlaps_requests() -> None:
    fake = FakeConnect()
    gate = Gate(fake, width=2, hold=0.05)  # each POST waits 50 ms for a second one that never comes
    client = fake.client()
    client.http._transport = httpx.MockTransport(gate.handle)
    asked: list[int] = []

    def should_continue() -> bool:
        asked.append(1)
        return True

    plan = _creates([f"c{i}" for i in range(6)], paused=("c1", "c4"))
    outcomes = apply_plan(plan, {"default": client}, retry=NO_WAIT, should_continue=should_continue)
    assert len(outcomes) == len(asked) == 8 and all(o.ok for o in outcomes)
    assert gate.most == 1


@pytest.mark.parametrize("width", [1, 4])
def test_once_the_gate_said_no_no_action_starts_even_if_it_says_yes_again(width: int) -> None:
    fake = FakeConnect()
    calls = {"n": 0}
    lock = threading.Lock()

    def should_continue() -> bool:
        with lock:
            calls["n"] += 1
            return calls["n"] != 3  # the lease looked lost once, then regained

    outcomes = apply_plan(
        _creates([f"c{i}" for i in range(8)]),
        {"default": _locked(fake)},
        retry=NO_WAIT,
        should_continue=should_continue,
        max_in_flight=width,
    )
    assert len(outcomes) == 2 and len(fake.connectors) == 2 and calls["n"] == 3


def test_a_stop_ends_the_retry_sleeps_of_every_worker_at_once() -> None:
    fake = FakeConnect()
    fake.fail("POST", "/connectors", 503, "", times=10_000)
    clock = SystemClock()
    retry = RetryPolicy(max_seconds=120, initial_wait=5, max_wait=5, sleep=clock.sleep, on_retry=None)
    timer = threading.Timer(0.3, clock.stop.set)
    timer.start()
    started = time.monotonic()
    try:
        outcomes = apply_plan(
            _creates([f"c{i}" for i in range(12)]),
            {"default": _locked(fake)},
            retry=retry,
            should_continue=lambda: not clock.stop.is_set(),
            max_in_flight=4,
        )
    finally:
        timer.cancel()
    assert time.monotonic() - started < 3  # not one of the four 5 s waits was waited out
    assert len(outcomes) == 4  # the four in flight; the other eight never started
    assert all(not o.ok and o.retryable and o.message.startswith("interrupted") for o in outcomes)
    assert fake.connectors == {}


def test_the_breaker_of_one_cluster_skips_only_its_own_actions() -> None:
    down, up = FakeConnect(), FakeConnect()
    down.fail("POST", "/connectors", 503, "", times=10_000)
    names = [f"c{i}" for i in range(16)]
    plan = Plan(
        tuple(
            ConnectorPlan(
                n,
                cluster,
                None,
                (Action(ActionKind.CREATE, n, cluster, {**CFG, "name": n}, DesiredState.RUNNING, POST),),
            )
            for n in names
            for cluster in ("a", "b")
        )
    )
    clients = {"a": _locked(down, cluster="a"), "b": _locked(up, cluster="b")}
    outcomes = apply_plan(plan, clients, retry=NO_WAIT, max_in_flight=3)
    assert [(o.action.connector, o.action.cluster) for o in outcomes] == [
        (n, c) for n in names for c in ("a", "b")
    ]
    on_a = [o for o in outcomes if o.action.cluster == "a"]
    assert all(o.ok for o in outcomes if o.action.cluster == "b") and sorted(up.connectors) == sorted(names)
    assert not any(o.ok for o in on_a) and sum(o.skipped for o in on_a) >= len(names) - 3
    assert all(o.unavailable for o in on_a if not o.skipped)


def test_a_failing_observer_surfaces_and_stops_the_other_workers_at_once() -> None:
    fake = FakeConnect()
    lock = threading.Lock()

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":  # c0 is slow, so the pass is still waiting on it when c2 fails
            time.sleep(0.5 if b'"c0"' in request.content else 0.01)
        with lock:
            return fake.handle(request)

    client = fake.client()
    client.http._transport = httpx.MockTransport(handle)

    def on_outcome(outcome: Outcome) -> None:
        if outcome.action.connector == "c2":
            raise RuntimeError("observer broke")

    with pytest.raises(RuntimeError, match="observer broke"):
        apply_plan(
            _creates([f"c{i}" for i in range(40)]),
            {"default": client},
            retry=NO_WAIT,
            on_outcome=on_outcome,
            max_in_flight=2,
        )
    assert sorted(fake.connectors) == ["c0", "c1", "c2"]  # not the 37 the other worker could have sent
