"""Pure core: jq rendering with env, $VARS, mounted files; one-line errors; no process env access."""

from __future__ import annotations

import os
import re

import pytest

from reconciler.core import rendering
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


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("orders-sink", None),
        ("é-sink ☃", None),
        ("a b", None),
        ("", "is empty"),
        (" a", "has leading or trailing whitespace"),
        ("..", "is a path segment"),
        ("a/b%c", "contains '/'"),
        ("a%b", "contains '%'"),
        ("a\\b", "contains '\\\\'"),
        ("a\tb", "contains the control character U+0009"),
        ("a\x7fb", "contains the control character U+007F"),
        ("a\u200bb", "contains the control character U+200B"),
        ("é\u2028", "has leading or trailing whitespace"),
        ("é\u2028x", "contains the control character U+2028"),
    ],
)
def test_name_problem(name: str, problem: str | None) -> None:
    assert rendering.name_problem(name) == problem


def test_config_size_counts_utf8_bytes_of_the_stored_json() -> None:
    assert rendering._config_size({"a": "é"}) == len('{"a": "é"}'.encode())
    assert rendering._config_size({"a": 'q"\n'}) == len('{"a": "q\\"\\n"}')


def test_variables_of_any_name_jq_can_bind_and_none_other() -> None:
    inputs = RenderInputs(variables={"ns::v": "1", "if": "2", "x.y": "3", "__loc__": "4", "ENV": "5"})
    assert rendering.variable_names(inputs) == {"ns::v", "if"}
    d = render_connector(
        spec('{"name": "c", "config": {"a": $ns::v, "b": $if, "e": ($ENV | length)}}'), inputs=inputs
    )
    assert d.config == {"a": "1", "b": "2", "e": "0", "name": "c"}  # $ENV stays the (empty) environment
    for program, message in [
        ('{"name": "c", "config": {"a": $x.y}}', "$x is not defined"),
        ('{"name": "c", "config": {"a": $__cr_inputs}}', "$__cr_inputs is not defined"),
    ]:
        with pytest.raises(RenderError, match=re.escape(message)):
            render_connector(spec(program), inputs=inputs)


def test_the_inputs_are_jqs_input_not_part_of_the_program() -> None:
    """A compiled program holds the program text only: the same text serves any inputs, and no input
    value (a secret above all) lives in the compile cache."""
    wrapped = rendering.wrap_program(
        '{"a": $TOPIC, "b": env.STAGE}', variables=rendering.variable_names(INPUTS)
    )
    assert "orders" not in wrapped and "dev" not in wrapped
    many = RenderInputs(env={f"V{i}": "x" * 40 for i in range(400)}, variables={"TOPIC": "payments"})
    assert rendering.wrap_program("{}", variables=rendering.variable_names(many)) == rendering.wrap_program(
        "{}"
    )
    program = '{"name": "c", "config": {"t": $TOPIC, "pw": env.DB_PASSWORD}}'
    first = render_connector(spec(program), inputs=INPUTS)
    misses = rendering._compile.cache_info().misses
    other = RenderInputs(env={"DB_PASSWORD": "other-pw"}, variables={"TOPIC": "payments"})
    second = render_connector(spec(program), inputs=other)
    assert rendering._compile.cache_info().misses == misses  # the compiled program served both
    assert (first.config["t"], second.config["t"], second.config["pw"]) == ("orders", "payments", "other-pw")


def test_compiled_programs_are_bounded_by_the_size_of_their_texts() -> None:
    weight = 15 + rendering._PROGRAM_WEIGHT
    cache = rendering._CompiledPrograms(budget=2 * weight)
    first = cache("1 + 1          ")  # 15 characters
    assert cache("1 + 1          ") is first
    cache("2 + 2          ")
    cache("3 + 3          ")  # a third: the least recently used goes
    info = cache.cache_info()
    assert (info.hits, info.misses, info.programs, info.weight) == (1, 3, 2, 2 * weight)
    assert cache("1 + 1          ") is not first  # compiled again
    with pytest.raises(ValueError):
        cache("1 +")
    assert cache.cache_info().programs == 2  # a program that does not compile is not kept
    cache.cache_clear()
    assert cache.cache_info() == (0, 0, 0, 0)
