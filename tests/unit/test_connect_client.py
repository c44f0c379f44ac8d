"""REST client against httpx.MockTransport: success codes, every error code of kafka-connect-rest.md §5."""

from __future__ import annotations

import json

import httpx
import pytest
from structlog.testing import capture_logs

from reconciler.clients.connect import ConnectClient
from reconciler.errors import (
    ConnectApiError,
    ConnectConflict,
    ConnectNotFound,
    ConnectRequestTimeout,
    ConnectUnavailable,
)
from reconciler.retrying import RetryPolicy, is_retryable
from tests.support import client_for


def test_put_config_reports_created_vs_updated_and_quotes_names() -> None:
    client, seen = client_for(201, {"name": "a b/c"})
    assert client.put_config("a b/c", {"x": "1"}) is True
    assert seen[0].url.raw_path == b"/connectors/a%20b%2Fc/config"
    assert json.loads(seen[0].content) == {"x": "1"}
    client, _ = client_for(200, {"name": "n"})
    assert client.put_config("n", {}) is False


def test_create_sends_initial_state_upper_case() -> None:
    client, seen = client_for(201, {"name": "n"})
    client.create("n", {"name": "n"}, initial_state="paused")
    assert json.loads(seen[0].content) == {"name": "n", "config": {"name": "n"}, "initial_state": "PAUSED"}


def test_expand_query_repeats_the_parameter() -> None:
    client, seen = client_for(
        200,
        {
            "a": {
                "info": {"config": {"name": "a", "tasks.max": 1}},
                "status": {
                    "connector": {"state": "RUNNING"},
                    "tasks": [{"id": 0, "state": "FAILED", "trace": "x"}],
                    "type": "sink",
                    "some_future_field": {"x": 1},
                },
            }
        },
    )
    live = client.list_expanded()
    assert seen[0].url.query == b"expand=info&expand=status"
    assert live["a"].config == {"name": "a", "tasks.max": "1"} and live["a"].state == "RUNNING"
    assert live["a"].tasks == ("FAILED",)


@pytest.mark.parametrize(
    ("status", "body", "text", "exc_type", "retryable", "fragment"),
    [
        (
            400,
            {
                "error_code": 400,
                "message": "Connector configuration is invalid and contains the following 1 error(s):\nX",
            },
            None,
            ConnectApiError,
            False,
            "HTTP 400: Connector configuration is invalid",
        ),
        (
            401,
            None,
            "User cannot access the resource.",
            ConnectApiError,
            False,
            "HTTP 401: User cannot access the resource.",
        ),
        (
            404,
            {"error_code": 404, "message": "Connector x not found"},
            None,
            ConnectNotFound,
            False,
            "HTTP 404",
        ),
        (
            409,
            {
                "error_code": 409,
                "message": "Cannot complete request momentarily due to stale configuration (typically caused by a concurrent config change)",
            },
            None,
            ConnectConflict,
            True,
            "stale configuration",
        ),
        (
            409,
            {
                "error_code": 409,
                "message": "Cannot complete request momentarily due to no known leader URL, likely because a rebalance was underway.",
            },
            None,
            ConnectConflict,
            True,
            "no known leader",
        ),
        (
            409,
            {
                "error_code": 409,
                "message": "Cannot complete request because of a conflicting operation (e.g. worker rebalance)",
            },
            None,
            ConnectConflict,
            True,
            "conflicting operation",
        ),
        (
            409,
            {"error_code": 409, "message": "Connector x already exists"},
            None,
            ConnectConflict,
            False,
            "already exists",
        ),
        (
            500,
            {
                "error_code": 500,
                "message": "Request timed out. The worker is currently ensuring membership in the cluster",
            },
            None,
            ConnectRequestTimeout,
            True,
            "Request timed out",
        ),
        (
            500,
            {"error_code": 500, "message": "IO Error trying to forward REST request: x"},
            None,
            ConnectApiError,
            True,
            "forward",
        ),
        (
            500,
            {"error_code": 500, "message": "Error writing connector configuration to Kafka"},
            None,
            ConnectApiError,
            True,
            "Error writing",
        ),
        (503, None, "starting", ConnectUnavailable, True, "HTTP 503"),
        (
            415,
            {"error_code": 415, "message": "HTTP 415 Unsupported Media Type"},
            None,
            ConnectApiError,
            False,
            "415",
        ),
    ],
)
def test_error_mapping(
    status: int,
    body: object,
    text: str | None,
    exc_type: type[ConnectApiError],
    retryable: bool,
    fragment: str,
) -> None:
    client, _ = client_for(status, body, text=text)
    with pytest.raises(ConnectApiError) as info:
        client.put_config("x", {})
    assert type(info.value) is exc_type
    assert info.value.status == status
    assert is_retryable(info.value) is retryable
    assert fragment in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith("PUT /connectors/x/config: ")


def test_delete_404_is_success() -> None:
    client, seen = client_for(404, {"error_code": 404, "message": "Connector x not found"})
    client.delete("x")
    assert seen[0].method == "DELETE"


@pytest.mark.parametrize(
    "exc", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("reset")]
)
def test_transport_errors_are_unavailable_and_retryable(exc: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    client = ConnectClient(httpx.Client(base_url="http://c", transport=httpx.MockTransport(handler)))
    with pytest.raises(ConnectUnavailable) as info:
        client.list_names()
    assert info.value.retryable and "cannot reach Kafka Connect at http://c" in str(info.value)


def test_non_json_success_body_is_an_error() -> None:
    client, _ = client_for(200, text="<html>")
    with pytest.raises(ConnectApiError, match="not JSON"):
        client.list_names()


def test_get_connector_without_status_has_unknown_state() -> None:
    responses = iter(
        [
            httpx.Response(200, json={"name": "x"}),
            httpx.Response(404, json={"error_code": 404, "message": "No status found"}),
        ]
    )
    client = ConnectClient(
        httpx.Client(base_url="http://c", transport=httpx.MockTransport(lambda r: next(responses)))
    )
    live = client.get_connector("x")
    assert live is not None and live.state is None and live.config == {"name": "x"}


def test_retry_policy_retries_409_then_succeeds_and_stops_on_400() -> None:
    calls = {"n": 0}
    waits: list[float] = []

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectConflict("stale configuration", status=409)
        return "ok"

    assert RetryPolicy(sleep=waits.append).call(flaky) == "ok"
    assert calls["n"] == 3 and len(waits) == 2 and all(0 <= w <= 5 for w in waits)

    def bad() -> None:
        calls["n"] += 1
        raise ConnectApiError("invalid", status=400)

    calls["n"] = 0
    with pytest.raises(ConnectApiError):
        RetryPolicy(sleep=waits.append).call(bad)
    assert calls["n"] == 1


def test_retry_policy_gives_up_after_max_attempts() -> None:
    calls = {"n": 0}

    def always() -> None:
        calls["n"] += 1
        raise ConnectConflict("stale", status=409)

    with pytest.raises(ConnectConflict):
        RetryPolicy(sleep=lambda s: None, max_attempts=4).call(always)
    assert calls["n"] == 4


def test_every_retry_is_logged() -> None:
    calls = {"n": 0}

    def flaky() -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectConflict("PUT /connectors/x/config: HTTP 409: stale configuration", status=409)

    with capture_logs() as logs:
        RetryPolicy(sleep=lambda s: None).call(flaky)
    assert [(e["event"], e["attempt"]) for e in logs] == [("retrying a Kafka Connect request", 1)]
    assert "stale configuration" in logs[0]["error"]
