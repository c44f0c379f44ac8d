"""Pure core: properties, selectors, specs (YAML + labels), normalisation. Table-driven, no I/O."""

from __future__ import annotations

import pytest

from reconciler.core.normalize import normalize_config, normalize_value
from reconciler.core.properties import jaas_credentials, parse_properties, to_jq_vars, variable_name
from reconciler.core.selectors import parse_selector
from reconciler.core.specs import parse_configmap_yaml, select_specs
from reconciler.errors import ConfigError, RenderError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=b", {"a": "b"}),
        ("schema.registry.url=http://sr:8081", {"schema.registry.url": "http://sr:8081"}),
        ("k=v=w==", {"k": "v=w=="}),  # base64 padding survives (connect-operator cut it)
        ("# comment\n\n! also comment\nx = y  ", {"x": "y  "}),  # Java keeps trailing whitespace
        ("key: value", {"key": "value"}),
        ("url=http://h:1/p", {"url": "http://h:1/p"}),
        ('p=`id -u` $HOME "q"', {"p": '`id -u` $HOME "q"'}),  # never shell-evaluated
        ("lonely", {"lonely": ""}),
    ],
)
def test_parse_properties(text: str, expected: dict[str, str]) -> None:
    assert parse_properties(text) == expected


@pytest.mark.parametrize(
    ("key", "var"),
    [("schema.registry.url", "SCHEMA_REGISTRY_URL"), ("basic-auth.user", "BASIC_AUTH_USER"), ("x", "X")],
)
def test_variable_name(key: str, var: str) -> None:
    assert variable_name(key) == var


def test_to_jq_vars_later_file_wins_and_warns() -> None:
    merged, warnings = to_jq_vars([("a.properties", "x.y=1\nz=2"), ("b.properties", "x.y=3")])
    assert merged == {"X_Y": "3", "Z": "2"}
    assert len(warnings) == 1 and "b.properties wins" in warnings[0]


def test_jaas_credentials() -> None:
    jaas = 'org.apache.kafka.common.security.plain.PlainLoginModule required username="K1" password="S=1";'
    assert jaas_credentials({"SASL_JAAS_CONFIG": jaas}) == {"KAFKA_API_KEY": "K1", "KAFKA_API_SECRET": "S=1"}
    assert jaas_credentials({}) == {}


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ("destination=connect", {"destination": "connect"}, True),
        ("destination=connect", {"destination": "other"}, False),
        ("destination=connect", {}, False),
        ("destination==connect,tier!=gold", {"destination": "connect", "tier": "gold"}, False),
        ("destination=connect,tier!=gold", {"destination": "connect"}, True),
        ("env in (dev, prod)", {"env": "prod"}, True),
        ("env notin (dev,prod)", {"env": "prod"}, False),
        ("managed", {"managed": ""}, True),
        ("!legacy", {"legacy": "x"}, False),
        ("", {"anything": "x"}, True),
    ],
)
def test_selectors(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert parse_selector(selector).matches(labels) is matches


def test_selector_rejects_garbage() -> None:
    with pytest.raises(ConfigError, match="label selector"):
        parse_selector("a b=c")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("x", "x"), (1, "1"), (True, "true"), (False, "false"), (1.0, "1"), (1.5, "1.5"), ("", "")],
)
def test_normalize_value(value: object, expected: str) -> None:
    assert normalize_value("k", value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [(None, "is null"), ({"a": 1}, "is an object"), ([1], "is an array")],
)
def test_normalize_value_rejects(value: object, message: str) -> None:
    with pytest.raises(RenderError, match=message):
        normalize_value("k", value)


def test_normalize_config_adds_name_and_checks_it() -> None:
    assert normalize_config({"tasks.max": 1}, name="c") == {"tasks.max": "1", "name": "c"}
    assert normalize_config({"name": "c"}, name="c") == {"name": "c"}
    with pytest.raises(RenderError, match=r'config\.name "d" differs'):
        normalize_config({"name": "d"}, name="c")


CM = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: cm1
  namespace: ns
  labels: {destination: connect, enabled: "%s"}
data:
  b.json: '{"name": "b", "config": {}}'
  a.json: '{"name": "a", "config": {}}'
---
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [x.yaml]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other, labels: {destination: elsewhere}}
data: {x: "{}"}
"""


def test_configmap_yaml_selects_every_key_in_order() -> None:
    docs, errors = parse_configmap_yaml(CM % "true", origin="f.yaml")
    assert errors == [] and [d.ref for d in docs] == ["ns/cm1", "other"]
    specs, spec_errors = select_specs(docs, selector=parse_selector("destination=connect"))
    assert spec_errors == []
    assert [(s.source.configmap, s.source.key, s.enabled) for s in specs] == [
        ("ns/cm1", "a.json", True),
        ("ns/cm1", "b.json", True),
    ]


@pytest.mark.parametrize(("label", "enabled"), [("true", True), ("false", False)])
def test_enabled_label(label: str, enabled: bool) -> None:
    docs, _ = parse_configmap_yaml(CM % label, origin="f.yaml")
    specs, _ = select_specs(docs, selector=parse_selector("destination=connect"))
    assert {s.enabled for s in specs} == {enabled}


def test_missing_enabled_label_means_enabled() -> None:
    docs, _ = parse_configmap_yaml(
        "kind: ConfigMap\nmetadata: {name: x, labels: {destination: connect}}\ndata: {k: '{}'}", origin="f"
    )
    specs, _ = select_specs(docs, selector=parse_selector("destination=connect"))
    assert specs[0].enabled is True


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (
            '{destination: connect, enabled: "maybe"}',
            'ConfigMap x: label enabled="maybe" must be exactly "true" or "false"',
        ),
        ("{destination: connect, destination.cc: cc-env}", "ConfigMap x: label destination.cc"),
    ],
)
def test_unusable_configmap_is_one_error(labels: str, message: str) -> None:
    docs, _ = parse_configmap_yaml(
        f"kind: ConfigMap\nmetadata: {{name: x, labels: {labels}}}\ndata: {{k: '{{}}'}}", origin="f"
    )
    specs, errors = select_specs(docs, selector=parse_selector("destination=connect"))
    assert specs == [] and len(errors) == 1 and str(errors[0]).startswith(message)


def test_invalid_yaml_names_file_and_configmap_in_one_line() -> None:
    text = "kind: ConfigMap\nmetadata:\n  name: broken-cm\ndata:\n  k: [unclosed\n"
    docs, errors = parse_configmap_yaml(text, origin="cms/broken.yaml")
    assert docs == [] and len(errors) == 1
    message = str(errors[0])
    assert "\n" not in message
    assert message.startswith("ConfigMap broken-cm in cms/broken.yaml (document 1): invalid YAML at line 6")


def test_non_string_data_value_is_an_error() -> None:
    docs, errors = parse_configmap_yaml("kind: ConfigMap\nmetadata: {name: x}\ndata: {k: 1}", origin="f")
    assert docs == [] and "ConfigMap x key k: data values must be strings" in str(errors[0])
