"""The two strict YAML loaders of `reconciler.core.specs`: libyaml's (when installed) and the pure-Python
one it hands every doubtful document to. Same documents, same errors, word for word, on either path."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.core import specs

ROOT = Path(__file__).resolve().parents[2]
YAML_FILES = sorted(
    p
    for root in (ROOT / "tests" / "corpus" / "cases", ROOT / "configmaps")
    for p in root.rglob("*")
    if p.is_file() and p.suffix in (".yaml", ".yml", ".json")
)
HEAD = "kind: ConfigMap\nmetadata:\n  name: x\n  namespace: ns\n"
ERR = "ConfigMap ns/x in f.yaml (document 1): invalid YAML"


@pytest.fixture(params=["libyaml", "python"])
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test below runs with libyaml and as if PyYAML had been built without it."""
    if request.param == "python":
        monkeypatch.setattr(specs, "_FastLoader", None)
    else:
        assert specs._FastLoader is not None, "PyYAML without libyaml here: the fast path cannot be tested"
    return str(request.param)


@pytest.fixture
def slow_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The documents the pure-Python loader was asked to read."""
    texts: list[str] = []

    class Counting(specs._StrictLoader):
        def __init__(self, stream: str, *, first_line: int = 0) -> None:
            texts.append(stream)
            super().__init__(stream, first_line=first_line)

    monkeypatch.setattr(specs, "_StrictLoader", Counting)
    return texts


def parsed(text: str) -> tuple[list[str], list[str]]:
    docs, errors = specs.parse_configmap_yaml(text, origin="f.yaml")
    return [f"{d.ref} {sorted(d.data.items())} {sorted(d.labels.items())}" for d in docs], [
        str(e) for e in errors
    ]


def _nested(depth: int) -> str:
    """Mapping entries `depth` levels deep: the top mapping, then flow sequences."""
    return "deep: " + "[" * (depth - 1) + "]" * (depth - 1) + "\n"


def _aliases(nodes: int) -> str:
    """Aliases that expand to `nodes` nodes: of a 100-node sequence, then of a scalar."""
    hundreds, ones = divmod(nodes, 100)
    return (
        "a: &a [" + ", ".join(["v"] * 99) + "]\ns: &s v\n"
        "b: [" + ", ".join(["*a"] * hundreds + ["*s"] * ones) + "]\n"
    )


REFUSED = {
    "duplicate-key": (
        HEAD + "data:\n  a: '1'\n  a: '2'\n",
        f'{ERR} at line 7: duplicate key "a" (first at line 6)',
    ),
    "duplicate-int-key": (
        HEAD + "data:\n  1: a\n  0x1: b\n",
        f"{ERR} at line 7: duplicate key 1 (first at line 6)",
    ),
    "duplicate-bool-key": (
        HEAD + "data:\n  yes: a\n  true: b\n",
        f"{ERR} at line 7: duplicate key True (first at line 6)",
    ),
    "recursive-alias": (
        HEAD + "data: &r {k: *r}\n",
        f"{ERR} at line 5: recursive alias (an anchor used inside itself)",
    ),
    "depth-101": (HEAD + _nested(101), f"{ERR} at line 5: nested deeper than 100 levels"),
    "aliases-10001": (HEAD + _aliases(10_001), f"{ERR} at line 7: aliases expand to more than 10000 nodes"),
    "bad-timestamp": (
        HEAD + "data:\n  k: 2024-13-45\n",
        f"{ERR} at line 6: cannot read timestamp '2024-13-45': month must be in 1..12",
    ),
    "unhashable-key": (
        HEAD + "data:\n  !!map x: 1\n",
        f"{ERR} at line 6: while constructing a mapping found unhashable key",
    ),
    "set-tag-on-scalar": (
        HEAD + "data:\n  k: !!set x\n",
        f"{ERR} at line 6: expected a mapping node, but found scalar",
    ),
    "value-key": (
        HEAD + "data:\n  =: v\n",
        f"{ERR} at line 6: could not determine a constructor for the tag",
    ),
    "python-tag": (
        HEAD + "data: !!python/name:os.system x\n",
        f"{ERR} at line 5: could not determine a constructor",
    ),
    "undefined-alias": (HEAD + "data:\n  k: *nope\n", f"{ERR} at line 6: found undefined alias 'nope'"),
    "syntax": (
        HEAD + "data: {k: [}\n",
        f"{ERR} at line 5: while parsing a flow node expected the node content",
    ),
    "bell-character": (HEAD + "data:\n  k: 'a\x07b'\n", f"{ERR} at line 6: unacceptable character #x0007"),
    "enabled-yaml-bool": (
        HEAD + "  labels: {enabled: no}\ndata: {k: '{}'}\n",
        "ConfigMap ns/x: label enabled must be a string, got bool False (quote it in YAML)",
    ),
}


@pytest.mark.parametrize(("text", "error"), REFUSED.values(), ids=REFUSED.keys())
def test_refused_documents_have_the_same_message_on_both_paths(loader: str, text: str, error: str) -> None:
    docs, errors = parsed(text)
    assert docs == [] and len(errors) == 1
    assert errors[0].startswith(error), errors[0]


@pytest.mark.parametrize(
    "text",
    [
        HEAD + 'data:\n  k: |\n    {"name": "x"}\n',
        "defaults: &d {a.json: '{}'}\n" + HEAD + "data:\n  <<: *d\n  b.json: '{}'\n",
        HEAD + "data: &d\n  k: v\ncopy:\n  <<: *d\n  k: w\n",  # a merged key overridden is no duplicate
        HEAD + "  labels: {destination: connect, enabled: 'false'}\ndata: {k: '1', t: !!str 2024-01-01}\n",
        HEAD + _aliases(10_000),  # exactly the budget
        HEAD + _nested(100),  # exactly the limit
        HEAD + "data: {}\nset: !!set {a, b}\nordered: !!omap [a: 1]\npairs: !!pairs [a: 1, a: 2]\n",
        HEAD + "data: {}\nnumbers: [1, 0x1f, 1.5e3, .nan, -.inf, ~, null, 2024-01-01, !!binary aGk=]\n",
    ],
)
def test_documents_libyaml_loads_never_reach_the_python_loader(text: str, slow_loads: list[str]) -> None:
    assert specs._FastLoader is not None
    assert specs._load_document(text, 0) == specs._load_document(text, 0, fast=False)
    slow_loads.clear()  # the second load above was the pure-Python one, on purpose
    docs, errors = parsed(text)
    assert errors == [] and len(docs) == 1
    assert slow_loads == []


def test_a_refused_document_is_worded_by_the_python_loader(slow_loads: list[str]) -> None:
    text = HEAD + "data:\n  a: '1'\n  a: '2'\n"
    assert parsed(text)[1]
    assert slow_loads == [text]


def test_kind_list_and_per_document_errors(loader: str) -> None:
    items = HEAD.replace("\n", "\n  ").rstrip() + "\n  data: {k: '{}'}\n"
    text = (
        HEAD.replace("name: x", "name: bad") + "data: {k: [}\n---\nkind: List\nitems:\n- " + items + "...\n"
    )
    docs, errors = parsed(text)
    assert docs[0].startswith("ns/x [('k', '{}')]") and len(docs) == 1
    assert errors == [
        "ConfigMap ns/bad in f.yaml (document 1): invalid YAML at line 5: while parsing a flow node "
        "expected the node content, but found '}'"
    ]


def test_control_character_in_a_program_is_refused_after_loading(loader: str) -> None:
    docs, errors = parsed(HEAD + 'data: {k: "a\\x01b"}\n')
    assert docs == [] and errors == [
        "ConfigMap ns/x key k: data value contains control character U+0001 at line 1"
    ]


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.name)
def test_every_corpus_file_parses_the_same_with_and_without_libyaml(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    with_libyaml = parsed(text)
    monkeypatch.setattr(specs, "_FastLoader", None)
    assert parsed(text) == with_libyaml


def _loaded(text: str, *, fast: bool) -> object:
    try:
        return specs._load_document(text, 0, fast=fast)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def _variants(text: str) -> Iterator[str]:
    """Near misses of a valid file: each line dropped, doubled, indented, or cut short."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        yield "".join(lines[:i] + lines[i + 1 :])
        yield "".join([*lines[: i + 1], line, *lines[i + 1 :]])
        yield "".join([*lines[:i], " " + line, *lines[i + 1 :]])
        yield "".join(lines[:i]) + line[: len(line) // 2]


ANCHORS = """defaults: &d
  tasks.max: 1
  tags: [a, &t b, *t]
kind: ConfigMap
metadata: {name: x, labels: {destination: connect}}
data:
  <<: *d
  when: 2024-01-01
  k: |
    {"name": "x"}
"""


@pytest.mark.parametrize(
    "path", [*(ROOT / "configmaps").glob("*.yaml"), "anchors"], ids=lambda p: getattr(p, "name", p)
)
def test_near_misses_load_the_same_on_both_paths(path: Path | str) -> None:
    text = ANCHORS if path == "anchors" else Path(path).read_text()
    for variant in _variants(text):
        assert _loaded(variant, fast=True) == _loaded(variant, fast=False), variant


def test_without_libyaml_the_python_loader_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(yaml, "_yaml")
    monkeypatch.setitem(sys.modules, "yaml._yaml", None)  # what an import of a missing module finds
    assert specs._libyaml_loader() is None


def test_a_libyaml_older_than_0_2_5_is_not_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before 0.2.5 libyaml nests without a limit: its recursive composer could overflow the C stack."""
    monkeypatch.setattr(yaml._yaml, "get_version", lambda: (0, 2, 4))
    assert specs._libyaml_loader() is None
    monkeypatch.setattr(yaml._yaml, "get_version", lambda: (0, 2, 5))
    assert specs._libyaml_loader() is yaml.CSafeLoader


def test_a_recursive_alias_is_refused_before_it_is_walked_forever() -> None:
    loader = yaml.CSafeLoader("a: &r [x, *r]\n")
    node = loader.get_single_node()
    assert node is not None
    with pytest.raises(specs._Unsure, match="recursive alias"):
        specs._LibyamlChecks(loader).size(node)


def test_an_alias_is_one_object_as_with_pyyaml() -> None:
    loaded: Any = specs._load_document("a: &x {k: v}\nb: *x\n", 0)
    assert loaded == yaml.safe_load("a: &x {k: v}\nb: *x\n") and loaded["a"] is loaded["b"]
