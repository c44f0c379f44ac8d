"""Broken input: one clear one-line error naming the ConfigMap (or file and document), nothing else lost.

Every case asserts the exact message, so corpus expectations can be written against it, and that the
ConfigMap concerned yields no spec (no spec: no write, not even a delete) while the others still do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from reconciler.clients.inputs import load_inputs
from reconciler.clients.sources import load_configmaps
from reconciler.core.bindings import BINDING, parse_binding_contexts
from reconciler.core.selectors import parse_selector
from reconciler.core.specs import (
    configmap_from_object,
    error_ref,
    parse_configmap_yaml,
    select_specs,
    split_documents,
)
from reconciler.errors import ConfigError, ReconcilerError, SourceError
from reconciler.model import ConfigMapDoc
from reconciler.settings import InputSettings

SELECT = parse_selector("destination=connect")


def configmap(name: str = "x", *, labels: str = "destination: connect", data: str = "k.json: '{}'") -> str:
    """A block-style ConfigMap document in namespace ns; `labels` and `data` are indented for you."""
    indent = "\n    "
    return (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: "
        f"{name}\n  namespace: ns\n  labels:\n    {labels.replace(chr(10), indent)}\n"
        f"data:\n  {data.replace(chr(10), chr(10) + '  ')}\n"
    )


def parse(text: str, origin: str = "f.yaml") -> tuple[list[ConfigMapDoc], list[str]]:
    docs, errors = parse_configmap_yaml(text, origin=origin)
    return docs, [str(e) for e in errors]


def one_error(text: str) -> str:
    docs, errors = parse(text)
    assert docs == [] and len(errors) == 1, errors
    assert "\n" not in errors[0]
    return errors[0]


def selected(docs: list[ConfigMapDoc]) -> tuple[list[str], list[str]]:
    specs, errors = select_specs(docs, selector=SELECT)
    assert all("\n" not in str(e) for e in errors)
    return [f"{s.source.configmap}/{s.source.key}" for s in specs], [str(e) for e in errors]


# --- 1. the enabled label ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["False", "TRUE", "True", "no", "yes", "0", "1", "", " false", "false "])
def test_enabled_label_accepts_only_the_exact_strings(value: str) -> None:
    docs, errors = parse(configmap(labels=f"destination: connect\nenabled: {value!r}".replace("'", '"')))
    assert errors == []
    quoted = json.dumps(value)
    assert selected(docs) == ([], [f'ConfigMap ns/x: label enabled={quoted} must be exactly "true" or "false"'])


@pytest.mark.parametrize(("value", "expected"), [('"true"', True), ('"false"', False), (None, True)])
def test_enabled_true_false_and_absent(value: str | None, expected: bool) -> None:
    labels = "destination: connect" + (f"\nenabled: {value}" if value else "")
    docs, _ = parse(configmap(labels=labels))
    specs, errors = select_specs(docs, selector=SELECT)
    assert errors == [] and [s.enabled for s in specs] == [expected]


@pytest.mark.parametrize(
    ("value", "shown"),
    [("no", "bool False"), ("false", "bool False"), ("off", "bool False"), ("yes", "bool True"),
     ("0", "int 0"), ("1.5", "float 1.5"), ("", "null"), ("[a]", "list")],
)  # fmt: skip
def test_a_non_string_label_value_is_an_error_never_stringified(value: str, shown: str) -> None:
    message = one_error(configmap(labels=f"destination: connect\nenabled: {value}"))
    assert message == f"ConfigMap ns/x: label enabled must be a string, got {shown} (quote it in YAML)"


def test_api_objects_get_the_same_label_checks() -> None:
    obj = {"metadata": {"name": "x", "namespace": "ns", "labels": {"enabled": False}}, "data": {}}
    with pytest.raises(SourceError) as exc:
        configmap_from_object(obj)
    assert str(exc.value) == "ConfigMap ns/x: label enabled must be a string, got bool False (quote it in YAML)"


# --- 2. duplicate keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            configmap(labels='destination: connect\nenabled: "true"\nenabled: "false"'),
            'ConfigMap ns/x in f.yaml (document 1): invalid YAML at line 9: duplicate key "enabled" (first at line 8)',
        ),
        (
            configmap(data="a.json: '{}'\nb.json: '{}'\na.json: '{}'"),
            'ConfigMap ns/x in f.yaml (document 1): invalid YAML at line 11: duplicate key "a.json" (first at line 9)',
        ),
        (
            "kind: ConfigMap\nmetadata:\n  name: x\n  name: y\ndata: {}\n",
            'ConfigMap x in f.yaml (document 1): invalid YAML at line 4: duplicate key "name" (first at line 3)',
        ),
        (
            "kind: ConfigMap\nmetadata: {name: x, labels: {a: '1', a: '2'}}\n",
            'ConfigMap x in f.yaml (document 1): invalid YAML at line 2: duplicate key "a" (first at line 2)',
        ),
        (
            '{"kind": "ConfigMap", "metadata": {"name": "j"}, "data": {"k": "{}", "k": "{}"}}',
            'f.yaml (document 1): invalid YAML at line 1: duplicate key "k" (first at line 1)',  # no guess in JSON
        ),
    ],
)
def test_a_duplicate_key_anywhere_is_an_error_naming_key_and_line(text: str, message: str) -> None:
    assert one_error(text) == message


def test_merge_keys_are_not_duplicates() -> None:
    text = "kind: Kustomization\nbase: &base {a: 1, b: 2}\nmid: &mid {<<: *base, b: 3}\ntop: {<<: *mid, c: 4}\n"
    docs, errors = parse(text + "---\n" + configmap())
    assert errors == [] and [d.ref for d in docs] == ["ns/x"]


# --- 3. the same ConfigMap twice ---------------------------------------------------------------------


def test_the_same_configmap_twice_in_one_file_applies_neither() -> None:
    docs, errors = parse(configmap("x") + "---\n" + configmap("y") + "---\n" + configmap("x"))
    assert errors == []
    assert selected(docs) == (
        ["ns/y/k.json"],
        [
            "ConfigMap ns/x: declared more than once, in f.yaml (document 1) and f.yaml (document 3); "
            "none of them is applied"
        ],
    )


def test_the_same_configmap_in_two_files_applies_neither_even_if_one_is_not_selected(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(configmap("x"))
    (tmp_path / "b.yaml").write_text(configmap("x", labels="destination: elsewhere"))
    (tmp_path / "c.yaml").write_text(configmap("x", labels="destination: elsewhere").replace("ns", "other"))
    docs, errors = load_configmaps([str(tmp_path)])
    assert errors == []
    specs, spec_errors = selected(docs)
    assert specs == []
    assert spec_errors == [
        f"ConfigMap ns/x: declared more than once, in {tmp_path}/a.yaml (document 1) and "
        f"{tmp_path}/b.yaml (document 1); none of them is applied"
    ]
    assert error_ref(spec_errors[0]) == "ns/x"


def test_copies_neither_selected_are_no_error() -> None:
    docs, _ = parse(configmap("x", labels="destination: no") + "---\n" + configmap("x", labels="a: b"))
    assert selected(docs) == ([], [])


# --- 4. control characters in data -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            configmap(data='k.json: "{\\"name\\": \\"a\\0b\\"}"'),
            "ConfigMap ns/x key k.json: data value contains control character U+0000 at line 1",
        ),
        (
            configmap(data='k.json: "line one\\nline\\x1btwo"'),
            "ConfigMap ns/x key k.json: data value contains control character U+001B at line 2",
        ),
        (
            configmap(data='"k\\0.json": "{}"'),
            "ConfigMap ns/x key k\\x00.json: data key contains control character U+0000",
        ),
        (
            '{"kind": "ConfigMap", "metadata": {"name": "j"}, "data": {"k": "{\\"a\\": \\"\\u0000\\"}"}}',
            "ConfigMap j key k: data value contains control character U+0000 at line 1",
        ),
        (
            'kind: ConfigMap\nmetadata: {name: x}\ndata: {k: "ab\x00c"}\n',  # raw NUL: PyYAML's own refusal
            "ConfigMap x in f.yaml (document 1): invalid YAML at line 3: "
            "unacceptable character #x0000: special characters are not allowed",
        ),
    ],
)
def test_control_characters_in_data_are_an_error_naming_configmap_and_key(text: str, message: str) -> None:
    assert one_error(text) == message


def test_tab_newline_and_carriage_return_are_ordinary_text() -> None:
    docs, errors = parse(configmap(data='k.json: "{\\t\\"a\\": 1\\r\\n}"'))
    assert errors == [] and docs[0].data["k.json"] == '{\t"a": 1\r\n}'


def test_api_and_hook_objects_are_checked_too_and_the_others_still_read() -> None:
    def obj(name: str, program: str) -> dict[str, Any]:
        meta = {"name": name, "namespace": "ns", "labels": {"destination": "connect"}}
        return {"kind": "ConfigMap", "metadata": meta, "data": {"k.json": program}}

    with pytest.raises(SourceError, match=r"^ConfigMap ns/bad key k\.json: data value contains control"):
        configmap_from_object(obj("bad", "{}\x00 | halt"))
    objects = [{"object": obj("bad", "{}\x00"), "filterResult": {}}, {"object": obj("good", "{}")}]
    result = parse_binding_contexts([{"binding": BINDING, "type": "Synchronization", "objects": objects}])
    assert result.configmaps is not None and [d.name for d in result.configmaps] == ["good"]
    assert [error_ref(e) for e in result.errors] == ["ns/bad"]


# --- 5. alias bombs and deep nesting -----------------------------------------------------------------

LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)
BOMB = 'kind: NotAConfigMap\na: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + LAUGHS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BOMB, "f.yaml (document 1): invalid YAML at line 6: aliases expand to more than 10000 nodes"),
        (
            configmap(labels="destination: elsewhere") + "  laughs:\n    " + BOMB.replace("\n", "\n    "),
            "ConfigMap ns/x in f.yaml (document 1): invalid YAML at line 16: aliases expand to more than 10000 nodes",
        ),
        ("a: &a [*a]\n", "f.yaml (document 1): invalid YAML at line 1: recursive alias (an anchor used inside itself)"),
        ("[" * 20_000 + "]" * 20_000, "f.yaml (document 1): invalid YAML at line 1: nested deeper than 100 levels"),
        ("{a: " * 20_000 + "1" + "}" * 20_000, "f.yaml (document 1): invalid YAML at line 1: nested deeper than 100 levels"),
        ("- " * 20_000 + "x\n", "f.yaml (document 1): invalid YAML at line 1: nested deeper than 100 levels"),
    ],
)  # fmt: skip
def test_alias_bombs_and_deep_nesting_are_one_error(text: str, message: str) -> None:
    assert one_error(text) == message


def test_a_bomb_costs_only_its_own_document_and_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(configmap("a") + "---\n" + BOMB + "---\n" + configmap("b"))
    (tmp_path / "deep.yaml").write_text("[" * 20_000 + "]" * 20_000)
    (tmp_path / "z.yaml").write_text(configmap("z"))
    docs, errors = load_configmaps([str(tmp_path)])
    assert [d.name for d in docs] == ["a", "b", "z"]
    assert [str(e).split(": invalid YAML")[0] for e in errors] == [
        f"{tmp_path}/a.yaml (document 2)",
        f"{tmp_path}/deep.yaml (document 1)",
    ]


def test_a_few_scalar_aliases_are_fine() -> None:
    docs, errors = parse(configmap(labels="destination: &d connect\nteam: *d"))
    assert errors == [] and docs[0].labels == {"destination": "connect", "team": "connect"}


# --- 6. one broken document of many ------------------------------------------------------------------


def test_a_yaml_error_drops_only_its_document_with_the_line_in_the_file() -> None:
    broken = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  namespace: ns\n  name: broken\ndata:\n  k: [oops\n"
    text = "# header\n" + configmap("a") + "---\n" + broken + "---\n" + configmap("c")
    docs, errors = parse(text)
    assert [d.name for d in docs] == ["a", "c"]
    assert [d.origin for d in docs] == ["f.yaml (document 1)", "f.yaml (document 3)"]
    assert errors == [
        "ConfigMap ns/broken in f.yaml (document 2): invalid YAML at line 19: "
        "while parsing a flow sequence expected ',' or ']', but got '<stream end>'"
    ]
    assert text.splitlines()[18] == "---"  # where the unclosed [ ran into the end of its document


def test_line_numbers_of_later_documents_are_those_of_the_file() -> None:
    first = "kind: ConfigMap\nmetadata: {name: a}\n---\n"
    assert parse(first + 'kind: ConfigMap\nmetadata: {name: b}\ndata: {k: "x\x00"}\n')[1] == [
        "ConfigMap b in f.yaml (document 2): invalid YAML at line 6: "
        "unacceptable character #x0000: special characters are not allowed"
    ]
    assert parse(first + "kind: ConfigMap\nmetadata:\n  name: b\n  labels:\n    x: '1'\n    x: '2'\n")[1] == [
        'ConfigMap b in f.yaml (document 2): invalid YAML at line 9: duplicate key "x" (first at line 8)'
    ]


def test_the_name_is_guessed_only_for_configmaps() -> None:
    assert one_error("kind: Deployment\nmetadata: {name: web}\nspec: [\n").startswith(
        "f.yaml (document 1): invalid YAML at line 4"
    )
    assert one_error("kind: ConfigMap\nmetadata: {namespace: n, name: web}\ndata: [\n").startswith(
        "ConfigMap n/web in f.yaml (document 1): invalid YAML"
    )


def test_other_constructor_errors_are_one_error_with_a_line() -> None:
    assert one_error(configmap(data="k: 2024-13-45")) == (
        "ConfigMap ns/x in f.yaml (document 1): invalid YAML at line 9: "
        "cannot read timestamp '2024-13-45': month must be in 1..12"
    )


@pytest.mark.parametrize(
    ("text", "chunks"),
    [
        ("a: 1\n", [(0, "a: 1\n")]),
        ("# c\n---\na: 1\n---\nb: 2\n", [(0, "# c\n---\na: 1\n"), (3, "---\nb: 2\n")]),
        ("%YAML 1.1\n---\na: 1\n...\n---\nb: 2\n...\n# end\n", [(0, "%YAML 1.1\n---\na: 1\n...\n"), (4, "---\nb: 2\n...\n")]),
        ("--- |\n  text\n--- >\n  more\n", [(0, "--- |\n  text\n"), (2, "--- >\n  more\n")]),
        ("a: |\n  ---x\n----\n", [(0, "a: |\n  ---x\n----\n")]),
        ("---\n---\n", [(0, "---\n"), (1, "---\n")]),
        ("a: 1\n...\n# c\n...\n", [(0, "a: 1\n...\n")]),
        ("a: 1\r\n---\r\nb: 2", [(0, "a: 1\r\n"), (1, "---\r\nb: 2")]),
    ],
)  # fmt: skip
def test_split_documents(text: str, chunks: list[tuple[int, str]]) -> None:
    assert split_documents(text) == chunks


def test_document_end_markers_and_directives_are_read() -> None:
    text = "%YAML 1.1\n---\n" + configmap("a") + "...\n---\n" + configmap("b") + "...\n"
    docs, errors = parse(text)
    assert errors == [] and [d.name for d in docs] == ["a", "b"]


# --- 7. kind: List -----------------------------------------------------------------------------------


def test_a_kubectl_list_is_read() -> None:
    items = [configmap("a"), "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n", configmap("b")]
    indented = "".join("- " + item.replace("\n", "\n  ").rstrip() + "\n" for item in items)
    docs, errors = parse(f"apiVersion: v1\nkind: List\nmetadata: {{resourceVersion: ''}}\nitems:\n{indented}")
    assert errors == []
    assert [(d.ref, d.origin) for d in docs] == [
        ("ns/a", "f.yaml (document 1, item 1)"),
        ("ns/b", "f.yaml (document 1, item 3)"),
    ]
    assert selected(docs)[0] == ["ns/a/k.json", "ns/b/k.json"]


def test_a_configmap_list_items_need_no_kind() -> None:
    docs, errors = parse("kind: ConfigMapList\nitems:\n- metadata: {name: a}\n  data: {k: '{}'}\n")
    assert errors == [] and [d.ref for d in docs] == ["a"]


def test_list_items_are_checked_one_by_one() -> None:
    text = "kind: List\nitems:\n- {kind: ConfigMap, metadata: {name: a}, data: {k: 1}}\n- {kind: ConfigMap, metadata: {name: b}}\n"
    docs, errors = parse(text)
    assert [d.ref for d in docs] == ["b"]
    assert errors == ["ConfigMap a key k: data values must be strings, got int"]
    assert one_error("kind: List\nitems: {a: b}\n") == "f.yaml (document 1): List items must be a list"


# --- 8. files ----------------------------------------------------------------------------------------


def test_unreadable_configmap_files_are_one_error_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ok.yaml").write_text(configmap("ok"))
    (tmp_path / "broken.yaml").symlink_to(tmp_path / "nowhere.yaml")
    (tmp_path / "latin1.yaml").write_bytes(configmap("l").encode() + b"# caf\xe9\n")
    (tmp_path / "dir.yaml").mkdir()
    (tmp_path / "dir.yaml" / "inner.yml").write_text(configmap("inner"))
    (tmp_path / "locked.yaml").write_text(configmap("locked"))
    os.mkfifo(tmp_path / "fifo.yaml")
    (tmp_path / "bom.yaml").write_bytes(b"\xef\xbb\xbf" + configmap("bom").encode())
    (tmp_path / "..2026_01_01").mkdir()  # a mounted ConfigMap volume's second copy
    (tmp_path / "..2026_01_01" / "ok.yaml").write_text(configmap("ok"))
    real_read_bytes = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == "locked.yaml":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    docs, errors = load_configmaps([str(tmp_path), str(tmp_path / "broken.yaml")])
    assert sorted(d.name for d in docs) == ["bom", "inner", "ok"]  # dir.yaml is walked, no error
    assert sorted(str(e) for e in errors) == [
        f"{tmp_path}/broken.yaml: cannot read: broken symbolic link",
        f"{tmp_path}/broken.yaml: cannot read: broken symbolic link",  # once listed, once given
        f"{tmp_path}/fifo.yaml: cannot read: not a regular file",
        f"{tmp_path}/latin1.yaml: not UTF-8 text (byte 0xe9 at offset {len(configmap('l')) + 5})",
        f"{tmp_path}/locked.yaml: cannot read: Permission denied",
    ]


def test_an_unlistable_directory_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        if str(path).endswith("sub"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    _, errors = load_configmaps([str(tmp_path)])
    assert [str(e) for e in errors] == [f"{tmp_path}/sub: cannot list: Permission denied"]


def props_dir(tmp_path: Path) -> Path:
    props = tmp_path / "props"
    props.mkdir()
    (props / "a.properties").write_text("a=1\n")
    return props


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: (p / "b.properties").symlink_to(p / "gone"), "broken symbolic link"),
        (lambda p: (p / "b.properties").mkdir(), "is a directory"),
        (lambda p: os.mkfifo(p / "b.properties"), "not a regular file"),
        (lambda p: (p / "b.properties").write_text("locked=1"), "Permission denied"),
    ],
)
def test_a_bad_properties_file_is_one_config_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: Any, reason: str
) -> None:
    props = props_dir(tmp_path)
    make(props)
    real_read_bytes = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.read_text(errors="replace") == "locked=1":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(ConfigError) as exc:
        load_inputs(InputSettings(properties_dirs=[str(props)]), environ={})
    assert str(exc.value) == f"properties file {props}/b.properties: cannot read: {reason}"


def test_a_latin1_properties_file_is_read_as_java_reads_it(tmp_path: Path) -> None:
    props = props_dir(tmp_path)
    (props / "b.properties").write_bytes(b"greeting=caf\xe9\nutf8=ok\n")
    (props / "c.properties").write_bytes("name=café\n".encode())
    inputs, _ = load_inputs(InputSettings(properties_dirs=[str(props)]), environ={})
    assert inputs.variables["GREETING"] == "café" and inputs.variables["NAME"] == "café"


def test_an_unlistable_properties_directory_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    props = props_dir(tmp_path)

    def iterdir(self: Path) -> Any:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "iterdir", iterdir)
    with pytest.raises(ConfigError) as exc:
        load_inputs(InputSettings(properties_dirs=[str(props)]), environ={})
    assert str(exc.value) == f"properties directory {props}: cannot list: Permission denied"


def test_mounted_volumes(tmp_path: Path) -> None:
    vol = tmp_path / "creds"
    (vol / "..2026_01_01").mkdir(parents=True)
    (vol / "..2026_01_01" / "password").write_text("pw-1234")
    (vol / "..data").symlink_to(vol / "..2026_01_01")
    (vol / "password").symlink_to(vol / "..data" / "password")
    (vol / "truststore.jks").write_bytes(b"\xfe\xed\xfe\xed\x00\x00")
    (vol / "nested").mkdir()  # a key projected to a sub path
    inputs, warnings = load_inputs(InputSettings(secret_dirs=[str(vol)]), environ={})
    assert inputs.secrets == {"creds": {"password": "pw-1234"}}
    assert warnings == [f"mounted volume {vol}: key truststore.jks is not UTF-8 text; templates cannot use it"]
    (vol / "rotated").symlink_to(vol / "..data" / "rotated")
    with pytest.raises(ConfigError) as exc:
        load_inputs(InputSettings(secret_dirs=[str(vol)]), environ={})
    assert str(exc.value) == f"mounted volume {vol}: key rotated: cannot read: broken symbolic link"


# --- 9. secrets the allow-list keeps out of templates ------------------------------------------------


def test_secrets_outside_the_allow_list_are_still_scrubbed() -> None:
    environ = {
        "APP_STAGE": "dev-stage",
        "DB_PASSWORD": "hidden-pass-1",
        "OPAQUE": "opaque-value-2",
        "HOME": "/root/home",
    }
    settings = InputSettings(env_allow="APP_.*", secret_env=["OPAQUE"])
    inputs, _ = load_inputs(settings, environ=environ)
    assert inputs.env == {"APP_STAGE": "dev-stage"}
    assert {"hidden-pass-1", "opaque-value-2"} <= inputs.secret_values
    assert not {"dev-stage", "/root/home"} & inputs.secret_values


# --- the ref every ConfigMap error carries -----------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "ref"),
    [
        ('ConfigMap ns/x: label enabled="no" must be exactly "true" or "false"', "ns/x"),
        ("ConfigMap ns/x key k.json: data value contains control character U+0000 at line 1", "ns/x"),
        ('ConfigMap x in f.yaml (document 2): invalid YAML at line 3: duplicate key "a"', "x"),
        ("f.yaml (document 1): invalid YAML at line 1: nested deeper than 100 levels", None),
        ("a ConfigMap object has no metadata.name", None),
    ],
)
def test_error_ref(message: str, ref: str | None) -> None:
    assert error_ref(ReconcilerError(message)) == ref


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ('{name: "Bad Name"}', 'f.yaml (document 1): ConfigMap metadata.name "Bad Name" is not a valid Kubernetes name'),
        ('{name: "a\\nb"}', 'f.yaml (document 1): ConfigMap metadata.name "a\\nb" is not a valid Kubernetes name'),
        ("{name: a/b}", 'f.yaml (document 1): ConfigMap metadata.name "a/b" is not a valid Kubernetes name'),
        ("{name: x, namespace: 7}", "f.yaml (document 1): ConfigMap x metadata.namespace 7 is not a valid namespace"),
        ("{name: x, namespace: A_B}", 'f.yaml (document 1): ConfigMap x metadata.namespace "A_B" is not a valid namespace'),
        ('{name: x, labels: {"a\\u2028b": 1}}', "ConfigMap x: label a\\u2028b must be a string, got int 1 (quote it in YAML)"),
        ('{name: x, labels: {enabled: "no\\u2028"}}', None),
    ],
)  # fmt: skip
def test_names_and_keys_are_shown_on_one_line(metadata: str, message: str | None) -> None:
    text = f"kind: ConfigMap\nmetadata: {metadata}\ndata: {{}}\n"
    if message is None:  # a string label: refused later, when selected, still on one line
        docs, _ = parse(text)
        [error] = select_specs(docs, selector=parse_selector(""))[1]
        assert str(error) == 'ConfigMap x: label enabled="no\\u2028" must be exactly "true" or "false"'
        return
    assert one_error(text) == message
    assert error_ref(SourceError(message)) in (None, "x")


def test_an_object_without_a_name_names_no_configmap() -> None:
    with pytest.raises(SourceError) as exc:
        configmap_from_object({"metadata": {}})
    assert str(exc.value) == "a ConfigMap object has no metadata.name"
    assert error_ref(exc.value) is None
