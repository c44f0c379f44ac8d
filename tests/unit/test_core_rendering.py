"""Pure core: jq rendering with env, $VARS, mounted files; one-line errors; no process env access."""

from __future__ import annotations

import os

import pytest

from reconciler.core.rendering import render_connector
from reconciler.errors import RenderError
from reconciler.model import ConnectorSpec, DesiredState, RenderInputs, SourceRef

INPUTS = RenderInputs(
    env={"STAGE": "dev", "DB_PASSWORD": "pw-Secret-123"},
    variables={"SCHEMA_REGISTRY_URL": "http://sr:8081", "TOPIC": "orders"},
    secrets={"db": {"password": "vol-Secret-456"}},
    files={"common": {"bootstrap": "kafka:9092"}},
    secret_values=frozenset({"pw-Secret-123", "vol-Secret-456"}),
)


def spec(program: str, *, enabled: bool = True) -> ConnectorSpec:
    return ConnectorSpec(SourceRef("ns/cm", "c.json"), program, enabled)


def test_connect_operator_style_template() -> None:
    program = """{
      "name": "c1",
      "config": {
        "name": "c1",
        "connector.class": "X",
        "tasks.max": 1,
        "topics": ($TOPIC + "-" + env.STAGE),
        "sr": $SCHEMA_REGISTRY_URL,
        "pw": env.DB_PASSWORD,
        "vol": $secrets.db.password,
        "bs": $files.common.bootstrap,
        "flag": true
      }
    }"""
    d = render_connector(spec(program), inputs=INPUTS)
    assert d.name == "c1" and d.cluster == "default" and d.state is DesiredState.RUNNING
    assert d.config == {
        "name": "c1",
        "connector.class": "X",
        "tasks.max": "1",
        "topics": "orders-dev",
        "sr": "http://sr:8081",
        "pw": "pw-Secret-123",
        "vol": "vol-Secret-456",
        "bs": "kafka:9092",
        "flag": "true",
    }
    assert d.secret_keys == {"pw", "vol"}


def test_env_is_inputs_env_not_the_process_environment() -> None:
    assert "HOME" in os.environ
    d = render_connector(
        spec('{"name": "c", "config": {"a": (env.HOME // "none"), "b": ($ENV.HOME // "none")}}'),
        inputs=INPUTS,
    )
    assert d.config["a"] == "none" and d.config["b"] == "none"


def test_state_and_cluster_fields() -> None:
    d = render_connector(
        spec('{"name": "c", "config": {}, "state": "PAUSED", "cluster": "east"}'), inputs=INPUTS
    )
    assert d.state is DesiredState.PAUSED and d.cluster == "east"


@pytest.mark.parametrize(
    ("program", "message"),
    [
        ('{"name": "c", "config": {"a": $UNDEFINED}}', "jq compile error: $UNDEFINED is not defined"),
        ('{"name": "c", "config": {"a": 1 +}}', "jq compile error: syntax error"),
        ('{"config": {}}', 'the output has no "name"'),
        ('{"name": "c"}', 'the output has no "config" object'),
        ('{"name": "c", "config": {"a": {"b": 1}}}', 'config key "a" is an object'),
        ('{"name": "c", "config": {"a": env.NOPE}}', 'config key "a" is null'),
        ('{"name": "c", "config": {}, "state": "sleeping"}', '"state" is'),
        ('{"name": "c", "config": {}, "confg": {}}', "unknown field(s) confg"),
        ('{"name": "c", "config": {}}, {"name": "d", "config": {}}', "yields 2 values"),
        ("empty", "yields 0 values"),
        ('"text"', "yields a string"),
        ("   ", "the jq program is empty"),
        ('{"name": " c", "config": {}}', "leading or trailing whitespace"),
        ('error("boom")', "jq error: boom"),
    ],
)
def test_render_errors_are_one_line(program: str, message: str) -> None:
    with pytest.raises(RenderError) as info:
        render_connector(spec(program), inputs=INPUTS)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_syntax_error_column_points_into_the_users_program() -> None:
    with pytest.raises(RenderError, match=r"line 1, column 8"):
        render_connector(spec("{a: 1 +}"), inputs=INPUTS)


def test_render_error_never_carries_a_secret() -> None:
    for program in [
        "error(env.DB_PASSWORD)",
        '{"name": "c", "config": {"a": ($secrets.db.password | tonumber)}}',
    ]:
        with pytest.raises(RenderError) as info:
            render_connector(spec(program), inputs=INPUTS)
        assert "pw-Secret-123" not in str(info.value) and "vol-Secret-456" not in str(info.value)
        assert "<secret sha256:" in str(info.value)
