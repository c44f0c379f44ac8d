"""500s Connect gives to requests it can never accept are permanent: sent once, reported, never retried,
and the hook exits 0 for them. Transient 500s are retried as before.

The texts are Kafka Connect's own (apache/kafka 4.0 sources, see `_PERMANENT_500` in clients/connect.py):
Connect's ConnectExceptionMapper answers 500 with the message of any exception that carries no status.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from reconciler.clients.connect import ConnectClient, error_for
from reconciler.entrypoints import hook
from reconciler.errors import ConnectRequestInvalid, ConnectRequestTimeout
from reconciler.executor import execute_action
from reconciler.model import Action, ActionKind, CreateMethod, DesiredState
from reconciler.retrying import RetryPolicy
from tests.fake_connect import FakeConnect
from tests.support import route_hook_to

NO_WAIT = RetryPolicy(sleep=lambda s: None, max_attempts=5, on_retry=None)
CFG = {"name": "c", "connector.class": "com.example.NoSuchConnector", "tasks.max": "1"}
PLUGINS = (
    "PluginDesc{klass=class org.apache.kafka.connect.file.FileStreamSinkConnector, "
    "name='org.apache.kafka.connect.file.FileStreamSinkConnector', version='4.0.0', encodedVersion=4.0.0, "
    "type=sink, typeName='sink', location='classpath'}"
)

PERMANENT = {
    # Plugins.connectorClass, thrown while a create or an update validates the config.
    "unknown-class": "Failed to find any class that implements Connector and which name matches "
    f"com.example.NoSuchConnector, available connectors are: {PLUGINS}",
    # The same from PUT /connector-plugins/{class}/config/validate, which wraps it in an ExecutionException.
    "unknown-class-validate": "org.apache.kafka.connect.errors.ConnectException: Failed to find any class "
    f"that implements Connector and which name matches com.example.NoSuchConnector, available connectors are: {PLUGINS}",
    "ambiguous-alias": "More than one connector matches alias FileStream. Please use full package and class "
    f"name instead. Classes found: {PLUGINS}",
    # Plugins.newPlugin, for converters and config providers.
    "unknown-converter": "Failed to find any class that implements interface org.apache.kafka.connect.storage."
    "Converter and which name matches com.example.NoSuchConverter",
    # AbstractHerder.validateConnectorConfig, wrapped by the validate endpoint.
    "no-connector-type": "org.apache.kafka.connect.runtime.rest.errors.BadRequestException: Connector config "
    "{name=c, tasks.max=1} contains no connector type",
    # Jackson reading the body (RestServer registers no Jackson exception mapper).
    "unrecognized-field": 'Unrecognized field "bogus" (class org.apache.kafka.connect.runtime.rest.entities.'
    'CreateConnectorRequest), not marked as ignorable (3 known properties: "config", "initial_state", "name"])\n'
    " at [Source: REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled); line: 1, column: 75] "
    '(through reference chain: org.apache.kafka.connect.runtime.rest.entities.CreateConnectorRequest["bogus"])',
    "cannot-deserialize": "Cannot deserialize value of type `java.lang.String` from Object value (token "
    "`JsonToken.START_OBJECT`)",
    # KafkaProducer.ensureValidRecordSize (RecordTooLargeException).
    "record-too-large": "The message is 5243017 bytes when serialized which is larger than 1048576, which is "
    "the value of the max.request.size configuration.",
    "record-too-large-buffer": "org.apache.kafka.common.errors.RecordTooLargeException: The message is "
    "40000000 bytes when serialized which is larger than the total memory buffer you have configured with "
    "the buffer.memory configuration.",
}
TRANSIENT = {
    # ConnectorsResource / HerderRequestHandler: the worker gave up waiting, the write may still land.
    "timed-out": "Request timed out. The worker is currently writing the connector configuration to the "
    "config topic, which began at 2025-01-01T00:00:00Z",
    # KafkaConfigBackingStore.putConnectorConfig: a broker outage says exactly this, too.
    "config-write": "Error writing connector configuration to Kafka",
    "leader-write": "Failed to write to config topic; this may be due to a transient error and the request "
    "can be safely retried",
    "generic": "Request interrupted",
}


def _counting(fake: FakeConnect) -> tuple[ConnectClient, list[str]]:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(f"{request.method} {request.url.path}")
        return fake.handle(request)

    http = httpx.Client(base_url="http://connect.test", transport=httpx.MockTransport(handler))
    return ConnectClient(http), sent


def _body(message: str) -> dict[str, Any]:
    return {"error_code": 500, "message": message}


@pytest.mark.parametrize("message", PERMANENT.values(), ids=PERMANENT.keys())
def test_a_permanent_500_is_request_invalid(message: str) -> None:
    request = httpx.Request("POST", "http://connect.test/connectors")
    exc = error_for(httpx.Response(500, json=_body(message), request=request))
    assert isinstance(exc, ConnectRequestInvalid)
    assert not exc.retryable and not exc.outcome_unknown


@pytest.mark.parametrize("message", PERMANENT.values(), ids=PERMANENT.keys())
@pytest.mark.parametrize("kind", [ActionKind.CREATE, ActionKind.UPDATE])
def test_a_permanent_500_is_sent_once_and_reported(message: str, kind: ActionKind) -> None:
    fake = FakeConnect()
    if kind is ActionKind.UPDATE:
        fake.add("c", {**CFG, "tasks.max": "2"})
    path = "/connectors" if kind is ActionKind.CREATE else "/connectors/c/config"
    method = "POST" if kind is ActionKind.CREATE else "PUT"
    fake.fail(method, path, 500, _body(message), times=100)
    client, sent = _counting(fake)
    action = Action(kind, "c", "default", CFG, DesiredState.RUNNING, CreateMethod.POST_INITIAL_STATE)
    out = execute_action(action, client, retry=NO_WAIT)
    if kind is ActionKind.CREATE and "initial_state" in message:
        # The executor takes any permanent 500 naming initial_state for an old worker refusing it, and
        # creates by PUT instead: a different request, still no retry of the refused one.
        assert out.ok and sent == ["POST /connectors", "PUT /connectors/c/config"]
        return
    assert not out.ok and not out.retryable and out.http_status == 500
    assert sent == [f"{method} {path}"]  # one request: the retry policy stopped at once


def test_a_permanent_500_stops_the_retry_policy_at_once() -> None:
    fake = FakeConnect()
    fake.fail(
        "PUT",
        "/connector-plugins/NoSuchConnector/config/validate",
        500,
        _body(PERMANENT["unknown-class-validate"]),
        times=100,
    )
    client, sent = _counting(fake)
    with pytest.raises(ConnectRequestInvalid, match="Failed to find any class"):
        NO_WAIT.call(lambda: client.validate(CFG))
    assert sent == ["PUT /connector-plugins/NoSuchConnector/config/validate"]


@pytest.mark.parametrize("message", TRANSIENT.values(), ids=TRANSIENT.keys())
def test_a_transient_500_is_still_retried(message: str) -> None:
    request = httpx.Request("PUT", "http://connect.test/connectors/c/config")
    exc = error_for(httpx.Response(500, json=_body(message), request=request))
    assert not isinstance(exc, ConnectRequestInvalid)
    assert exc.retryable and exc.outcome_unknown
    assert isinstance(exc, ConnectRequestTimeout) is message.startswith("Request timed out")

    fake = FakeConnect()
    fake.add("c", {**CFG, "tasks.max": "2"})
    fake.fail("PUT", "/connectors/c/config", 500, _body(message), times=100)
    client, sent = _counting(fake)
    out = execute_action(Action(ActionKind.UPDATE, "c", "default", CFG), client, retry=NO_WAIT)
    assert not out.ok and out.retryable
    assert sent.count("PUT /connectors/c/config") == NO_WAIT.max_attempts
    assert "GET /connectors/c/config" in sent  # an unknown outcome is re-read before each retry


# --- the hook: a permanent per-connector error must not make shell-operator retry forever --------------

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "binding_contexts"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeConnect]:
    fake = FakeConnect()
    route_hook_to(monkeypatch, httpx.MockTransport(fake.handle))
    yield fake
    # The hook pointed structlog at this test's captured stderr, which pytest closes afterwards.
    structlog.reset_defaults()


def run_hook(tmp_path: Path, **env: str) -> int:
    context = tmp_path / "context.json"
    context.write_text((FIXTURES / "synchronization.json").read_text())
    environ = {
        "BINDING_CONTEXT_PATH": str(context),
        "CONNECT_RECONCILER_CONNECT_URL": "http://connect.test",
        **env,
    }
    return hook.main([], environ=environ)


@pytest.mark.parametrize(
    "message",
    [PERMANENT[k] for k in ("unknown-class", "ambiguous-alias", "record-too-large", "cannot-deserialize")],
    ids=["unknown-class", "ambiguous-alias", "record-too-large", "cannot-deserialize"],
)
def test_the_hook_exits_zero_for_a_permanent_500(fake: FakeConnect, tmp_path: Path, message: str) -> None:
    fake.fail("POST", "/connectors", 500, _body(message), times=100)
    assert run_hook(tmp_path) == 0
    assert fake.writes().count("POST /connectors") == 3  # one per connector of the fixture, none retried


def test_the_hook_exits_one_for_a_transient_500(fake: FakeConnect, tmp_path: Path) -> None:
    fake.fail("POST", "/connectors", 500, _body(TRANSIENT["config-write"]), times=1000)
    assert run_hook(tmp_path, CONNECT_RECONCILER_RETRY_SECONDS="0.3") == 1


@pytest.mark.parametrize("key", ["unknown-class", "unknown-class-validate"])
def test_a_missing_plugin_is_named_without_the_list_of_every_installed_one(key: str) -> None:
    request = httpx.Request("POST", "http://connect.test/connectors")
    exc = error_for(httpx.Response(400, json=_body(PERMANENT[key]), request=request))
    assert str(exc).endswith(
        "which name matches com.example.NoSuchConnector: the plugin is not installed on this worker"
        " (GET /connector-plugins)"
    )
    assert "PluginDesc" not in str(exc)
