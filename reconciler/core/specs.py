"""ConfigMaps -> connector specs: YAML parsing, label selection, the `enabled` label, one spec per data key.

Pure: parses texts and plain dicts handed in by the sources at the edge. Format (connect-operator's):
label `destination=connect` selects (configurable); `enabled: "false"` means "this ConfigMap's connectors
must not exist"; a missing `enabled` label means enabled; every data key holds a jq program.

A broken ConfigMap is one error and never a guess: every error about a ConfigMap whose name is known
starts "ConfigMap <namespace/name>" (`error_ref`), so its connectors can be left alone; errors about a
document whose name cannot be known name the file and the document number instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import takewhile
from typing import TYPE_CHECKING, Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.error import Mark
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from reconciler.core.selectors import Selector
from reconciler.errors import SourceError, SpecError
from reconciler.model import ConfigMapDoc, ConnectorSpec, SourceRef

if TYPE_CHECKING:
    from yaml.cyaml import CSafeLoader

ENABLED_LABEL = "enabled"
CLOUD_LABEL = "destination.cc"
# kubectl's exact strings only: a lenient "False" or "no" once deleted the connectors it meant to keep.
_ENABLED_VALUES = {"true": True, "false": False}
# `kubectl get cm -o yaml` prints a List; the API's own list omits each item's kind.
_LIST_KINDS = {"List": "ConfigMap", "ConfigMapList": None}
MAX_DEPTH = 100
# Nodes that aliases may add to one document: plenty for a few `<<: *defaults`, far below a billion laughs.
ALIAS_BUDGET = 10_000
# libjq reads a program as a C string: it would stop at a NUL. Tab, LF and CR are ordinary text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")  # what PyYAML counts as a line break
_DOC_START = re.compile(r"---(?=[ \t\r\n\x85\u2028\u2029]|$)")  # PyYAML's test for a marker
_DOC_END = re.compile(r"\.\.\.(?=[ \t\r\n\x85\u2028\u2029]|$)")
# Every line that could be a marker, and a few more (`----`): a text with none is split without a loop.
_MAYBE_MARKER = re.compile(r"(?:^|(?<=[\r\n\x85\u2028\u2029]))(?:---|\.\.\.)")
_KIND = re.compile(r"kind:[ \t]*['\"]?(\w+)")
_METADATA = re.compile(r"metadata:[ \t]*(.*)")
_FLOW_FIELD = re.compile(r"(?:^|[\s{,])(name|namespace)[ \t]*:[ \t]*['\"]?([\w.-]+)")
_BLOCK_FIELD = re.compile(r"(name|namespace)[ \t]*:[ \t]*['\"]?([\w.-]+)")
# What the API server accepts for a ConfigMap's name and namespace (RFC 1123 subdomain and label).
_DNS_SUBDOMAIN = re.compile(r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_REF = re.compile(r"ConfigMap ([^\s:]+)(?=[\s:]|$)")
# PyYAML's reader refuses these (yaml.reader.Reader.NON_PRINTABLE): such a text takes the Python path.
_NOT_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE
_TAG = "tag:yaml.org,2002:"
_STR_TAG, _MAP_TAG, _SEQ_TAG, _MERGE_TAG = (_TAG + t for t in ("str", "map", "seq", "merge"))
# SafeConstructor's scalar constructors that return their value at once, not a generator it finishes later.
_SCALAR_TAGS = frozenset(_TAG + t for t in ("str", "null", "bool", "int", "float", "binary", "timestamp"))


def error_ref(error: BaseException) -> str | None:
    """The ConfigMap (namespace/name) an error of this module is about; None when only a file is known."""
    m = _REF.match(str(error))
    return m.group(1) if m else None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _printable(text: str) -> str:
    """A key as it can be shown on one line: control characters spelled out."""
    return _UNPRINTABLE.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if m.group() < "\x80" else f"\\u{ord(m.group()):04x}", text
    )


def _quoted(value: Any) -> str:
    return _printable(json.dumps(value, ensure_ascii=False)) if isinstance(value, str) else repr(value)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool | int | float):
        return f"{type(value).__name__} {value!r}"
    return type(value).__name__


# --- YAML ------------------------------------------------------------------------------------------


class _Strict:
    """The checks of the pure-Python strict loader: refuse what kubectl refuses (a key twice in one
    mapping) and what would exhaust memory or the stack of whoever walks the result (alias bombs,
    recursive aliases, deep nesting), in PyYAML's Python composer and constructor as they go. Its
    messages are the ones users see (and the corpus pins); `_LibyamlChecks` makes the same checks on a
    tree libyaml composed, and hands every document they refuse back here to be worded."""

    def _start_checks(self) -> None:
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) -> nodes it stands for once aliases are expanded
        self._alias_nodes = 0
        self._checked: set[int] = set()

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(AliasEvent):  # type: ignore[attr-defined]
            return self._compose_alias(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self._next_mark()
                raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            node: Node | None = super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self._depth -= 1
        if node is not None:
            self._sizes[id(node)] = 1 + sum(self._sizes[id(child)] for child in _children(node))
        return node

    def _next_mark(self) -> Mark:
        event = self.peek_event()  # type: ignore[attr-defined]
        mark: Mark = event.start_mark
        return mark

    def _compose_alias(self, parent: Node | None, index: int) -> Node | None:
        mark = self._next_mark()
        node: Node | None = super().compose_node(parent, index)  # type: ignore[misc]
        size = self._sizes.get(id(node)) if node is not None else 0
        if size is None:  # the anchored node is still being composed: it would contain itself
            raise ComposerError(None, None, "recursive alias (an anchor used inside itself)", mark)
        self._alias_nodes += size
        if self._alias_nodes > ALIAS_BUDGET:
            raise ComposerError(None, None, f"aliases expand to more than {ALIAS_BUDGET} nodes", mark)
        return node

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)  # type: ignore[misc]
        except (ValueError, OverflowError) as exc:  # PyYAML's own constructors: a 2024-13-45 timestamp
            shown = f" {node.value[:40]!r}" if isinstance(node, ScalarNode) else ""
            problem = f"cannot read {node.tag.rsplit(':', 1)[-1]}{shown}: {exc}"
            raise ConstructorError(None, None, problem, node.start_mark) from None

    def flatten_mapping(self, node: MappingNode) -> None:
        # Every mapping passes here before `<<` merges add keys to it, and only then: the keys it has are
        # the ones written, which construct_mapping no longer sees once a merge has been flattened.
        if id(node) not in self._checked:
            self._checked.add(id(node))
            self._refuse_duplicate_keys(node)
        super().flatten_mapping(node)  # type: ignore[misc]

    def _refuse_duplicate_keys(self, node: MappingNode) -> None:
        seen: dict[tuple[type, Any], Mark] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node)
            ident = (type(key), key)
            try:
                first_mark = seen.get(ident)
            except TypeError:  # `!!map x: 1`: construct_mapping words it ("found unhashable key")
                continue
            if first_mark is not None:
                problem = f"duplicate key {_quoted(key)} (first at line {first_mark.line + 1})"
                raise ConstructorError(None, None, problem, key_node.start_mark)
            seen[ident] = key_node.start_mark


class _StrictLoader(_Strict, yaml.SafeLoader):
    """The pure-Python strict loader."""

    def __init__(self, stream: str, *, first_line: int = 0) -> None:
        super().__init__(stream)
        self.line = first_line  # marks, hence error messages, count the lines of the file
        self._start_checks()


class _Unsure(Exception):
    """A document the libyaml path does not vouch for: the pure-Python loader reads it and words the error."""


def _libyaml_loader() -> type[CSafeLoader] | None:
    """libyaml's scanner, parser and composer (several times faster than PyYAML's), when it can be trusted
    with any input: from 0.2.5 it refuses nesting deeper than 1,000 levels, so its recursive composer
    cannot exhaust the C stack before `_LibyamlChecks` sees the tree."""
    try:
        from yaml import _yaml, cyaml  # noqa: PLC0415 - PyYAML built without libyaml has neither
    except ImportError:
        return None
    return cyaml.CSafeLoader if _yaml.get_version() >= (0, 2, 5) else None


class _LibyamlChecks:
    """`_Strict`'s checks on a tree libyaml composed, where an alias is the node it names met again.

    A document they pass loads exactly as the pure-Python loader loads it; they may refuse more (keys
    with unusual tags, complex keys), since whatever they refuse goes to that loader, which decides."""

    def __init__(self, loader: CSafeLoader) -> None:
        self._loader = loader
        self._sizes: dict[int, int] = {}  # id(node) -> nodes it stands for once aliases are expanded
        self._open: set[int] = set()  # the nodes whose subtrees are being walked
        self._alias_nodes = 0
        # Only maps, sequences and the scalar tags above: `_build` can construct the document alone.
        self.plain = True

    def size(self, node: Node, depth: int = 1) -> int:
        """The nodes `node` stands for; walked in document order, so its first meeting is where it is
        written and any later one an alias."""
        ident = id(node)
        if ident in self._sizes:
            self._alias_nodes += self._sizes[ident]
            if self._alias_nodes > ALIAS_BUDGET:
                raise _Unsure("alias budget")
            return self._sizes[ident]
        if ident in self._open:
            raise _Unsure("recursive alias")
        if depth > MAX_DEPTH:
            raise _Unsure("too deep")
        size = 1
        if isinstance(node, ScalarNode):
            self.plain = self.plain and node.tag in _SCALAR_TAGS
        else:
            self._open.add(ident)
            if isinstance(node, MappingNode):
                self.plain = self.plain and node.tag == _MAP_TAG
                self._refuse_duplicate_keys(node)
                for key, value in node.value:
                    size += self.size(key, depth + 1) + self.size(value, depth + 1)
            else:
                self.plain = self.plain and node.tag == _SEQ_TAG
                for item in node.value:
                    size += self.size(item, depth + 1)
            self._open.discard(ident)
        self._sizes[ident] = size
        return size

    def _refuse_duplicate_keys(self, node: MappingNode) -> None:
        seen: set[tuple[type, Any]] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE_TAG:
                continue  # not plain (no scalar tag of `_SCALAR_TAGS`): SafeConstructor does the merge
            if not isinstance(key_node, ScalarNode) or key_node.tag not in _SCALAR_TAGS:
                raise _Unsure("a complex key or an unusual tag")
            key = key_node.value if key_node.tag == _STR_TAG else self._loader.construct_object(key_node)
            ident = (type(key), key)
            if ident in seen:
                raise _Unsure("duplicate key")
            seen.add(ident)


def _build(node: Node, loader: CSafeLoader, built: dict[int, Any]) -> Any:
    """What SafeConstructor makes of a plain tree (`_LibyamlChecks.plain`), without its generators: a node
    met again (an alias) is the same object, as with PyYAML."""
    ident = id(node)
    if ident in built:
        return built[ident]
    value: Any
    if isinstance(node, ScalarNode):
        value = node.value if node.tag == _STR_TAG else loader.construct_object(node)
    elif isinstance(node, SequenceNode):
        value = [_build(item, loader, built) for item in node.value]
    else:
        value = {
            (key.value if key.tag == _STR_TAG else loader.construct_object(key)): _build(item, loader, built)
            for key, item in node.value
        }
    built[ident] = value
    return value


def _libyaml_load(text: str, loader_type: type[CSafeLoader]) -> Any:
    loader = loader_type(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        checks = _LibyamlChecks(loader)
        checks.size(node)
        return _build(node, loader, {}) if checks.plain else loader.construct_document(node)
    finally:
        loader.dispose()


_FastLoader = _libyaml_loader()


def _children(node: Node) -> Iterator[Node]:
    if isinstance(node, SequenceNode):
        yield from node.value
    elif isinstance(node, MappingNode):
        for key, value in node.value:
            yield key
            yield value


def _lines(text: str) -> Iterator[str]:
    pos = 0
    for m in _BREAK.finditer(text):
        yield text[pos : m.end()]
        pos = m.end()
    if pos < len(text):
        yield text[pos:]


def _is_content(line: str) -> bool:
    stripped = line.strip(" \t\r\n\x85\u2028\u2029\ufeff")
    return bool(stripped) and not stripped.startswith(("#", "%"))


def split_documents(text: str) -> list[tuple[int, str]]:
    """A YAML stream -> (first line, 0-based; text) of each document, so one broken document cannot hide
    the others. Markers are only ever at column 0 (the spec forbids them even inside block scalars);
    comments and directives before a `---` belong to the document it starts."""
    if not _MAYBE_MARKER.search(text):  # most files: one document, or only comments
        return [(0, text)] if any(_is_content(line) for line in _lines(text)) else []
    chunks: list[tuple[int, str]] = []
    current: list[str] = []
    start, has_document = 0, False
    for number, line in enumerate(_lines(text)):
        starts, ends = _DOC_START.match(line) is not None, _DOC_END.match(line) is not None
        if starts and has_document:
            chunks.append((start, "".join(current)))
            current, start, has_document = [], number, False
        current.append(line)
        has_document = has_document or starts or (_is_content(line) and not ends)
        if ends:
            if has_document:  # PyYAML accepts a `...` that ends nothing: no document either
                chunks.append((start, "".join(current)))
            current, start, has_document = [], number + 1, False
    if has_document:
        chunks.append((start, "".join(current)))
    return chunks


def _load_document(text: str, first_line: int, *, fast: bool = True) -> Any:
    """One document. With libyaml (`fast`), a document it loads and the checks pass is loaded by it;
    anything else, and any character PyYAML's reader refuses, goes to the pure-Python loader, so every
    message is exactly that loader's."""
    if fast and _FastLoader is not None and not _NOT_PRINTABLE.search(text):
        try:
            return _libyaml_load(text, _FastLoader)
        except Exception:  # whatever it is, the pure-Python loader decides and words it
            pass
    slow = _StrictLoader(text, first_line=first_line)
    try:
        return slow.get_single_data()
    finally:
        slow.dispose()


def _error_line(exc: Exception, text: str, first_line: int) -> int | None:
    if isinstance(exc, ReaderError):
        return first_line + text.count("\n", 0, exc.position) + 1
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if isinstance(mark, Mark) else None


def _problem(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, ReaderError):
        return f"unacceptable character #x{exc.character:04x}: {exc.reason}"
    if isinstance(exc, yaml.MarkedYAMLError):
        return " ".join(p for p in (exc.context, exc.problem) if p) or str(exc)
    return str(exc)


def _guess_fields(text: str) -> dict[str, str]:
    """metadata.name and .namespace of a document PyYAML cannot read, for the error message."""
    lines = list(_lines(text))
    start = next((i for i, line in enumerate(lines) if _METADATA.match(line)), None)
    if start is None:
        return {}
    rest = _METADATA.match(lines[start]).group(1)  # type: ignore[union-attr]
    if not rest.strip().startswith("{"):
        body = [line for line in lines[start + 1 :] if _is_content(line)]
        block = list(takewhile(lambda line: line[:1] in (" ", "\t"), body))
        indent = min((len(line) - len(line.lstrip()) for line in block), default=0)
        return _first_fields(m.groups() for line in block if (m := _BLOCK_FIELD.match(line[indent:])))
    return _first_fields(_FLOW_FIELD.findall(rest))


def _first_fields(pairs: Iterable[Sequence[str]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for key, value in pairs:
        fields.setdefault(key, value)
    return fields


def _who(text: str, where: str) -> str:
    kind = next((m.group(1) for line in _lines(text) if (m := _KIND.match(line))), None)
    fields = _guess_fields(text)
    if "name" not in fields or kind not in (None, "ConfigMap"):
        return where
    ref = f"{fields['namespace']}/{fields['name']}" if "namespace" in fields else fields["name"]
    return f"ConfigMap {ref} in {where}"


def _yaml_error(exc: Exception, text: str, first_line: int, where: str) -> SourceError:
    line = _error_line(exc, text, first_line)
    at = f" at line {line}" if line is not None else ""
    return SourceError(f"{_who(text, where)}: invalid YAML{at}: {_one_line(_problem(exc))}")


# --- ConfigMap objects -----------------------------------------------------------------------------


def _labels(raw: Any, ref: str) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise SourceError(f"ConfigMap {ref}: metadata.labels and data must be maps")
    for key, value in raw.items():
        if not isinstance(key, str):
            raise SourceError(f"ConfigMap {ref}: label keys must be strings, got {_describe(key)}")
        if not isinstance(value, str):
            # YAML 1.1 reads an unquoted no/off/false as a boolean; str() of it would be a new value.
            raise SourceError(
                f"ConfigMap {ref}: label {_printable(key)} must be a string, got {_describe(value)} (quote it in YAML)"
            )
    return dict(raw)


def _data(raw: Any, ref: str) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise SourceError(f"ConfigMap {ref}: metadata.labels and data must be maps")
    for key, value in raw.items():
        if not isinstance(key, str):
            raise SourceError(f"ConfigMap {ref}: data keys must be strings, got {_describe(key)}")
        where = f"ConfigMap {ref} key {_printable(key)}"
        if not isinstance(value, str):
            raise SourceError(f"{where}: data values must be strings, got {type(value).__name__}")
        if m := _CONTROL.search(key):
            raise SourceError(f"{where}: data key contains control character U+{ord(m.group()):04X}")
        if m := _CONTROL.search(value):
            line = value.count("\n", 0, m.start()) + 1
            raise SourceError(
                f"{where}: data value contains control character U+{ord(m.group()):04X} at line {line}"
            )
    return dict(raw)


def _identity(meta: Any, origin: str | None) -> tuple[str, str]:
    """(name, namespace), both as Kubernetes accepts them: every message and ref can then show them as is."""
    where = f"{origin}: ConfigMap" if origin else "a ConfigMap object"
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise SourceError(f"{where} has no metadata.name")
    name, namespace = meta["name"], meta.get("namespace") or ""
    if not _DNS_SUBDOMAIN.fullmatch(name):
        raise SourceError(f"{where} metadata.name {_quoted(name)} is not a valid Kubernetes name")
    if not isinstance(namespace, str) or (namespace and not _DNS_LABEL.fullmatch(namespace)):
        raise SourceError(f"{where} {name} metadata.namespace {_quoted(namespace)} is not a valid namespace")
    return name, namespace


def configmap_from_object(obj: Mapping[str, Any], *, origin: str | None = None) -> ConfigMapDoc:
    """A ConfigMap dict (from YAML, the API server or a binding context) -> ConfigMapDoc; SourceError if bad."""
    meta = obj.get("metadata") or {}
    name, namespace = _identity(meta, origin)
    ref = f"{namespace}/{name}" if namespace else name
    return ConfigMapDoc(
        name=name,
        namespace=namespace,
        labels=_labels(meta.get("labels") or {}, ref),
        data=_data(obj.get("data") or {}, ref),
        origin=origin,
        annotations=_annotations(meta.get("annotations") or {}, ref),
        uid=meta["uid"] if isinstance(meta.get("uid"), str) else None,
        resource_version=meta["resourceVersion"] if isinstance(meta.get("resourceVersion"), str) else None,
        **_last_data_writer(meta.get("managedFields")),
    )


def _last_data_writer(managed: Any) -> dict[str, str | None]:
    """The managedFields entry that owns `data` and wrote last: the manager and the time (audit's "who")."""
    best: tuple[str, str] | None = None
    for entry in managed if isinstance(managed, list) else []:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("manager"), str):
            continue
        fields = entry.get("fieldsV1")
        if not isinstance(fields, Mapping) or "f:data" not in fields:
            continue
        when = str(entry["time"]) if isinstance(entry.get("time"), str) else ""
        if best is None or when >= best[1]:
            best = (str(entry["manager"]), when)
    return {"changed_by": best[0] if best else None, "changed_at": (best[1] or None) if best else None}


def _annotations(annotations: Any, ref: str) -> dict[str, str]:
    if not isinstance(annotations, Mapping):
        raise SourceError(f"ConfigMap {ref}: metadata.annotations must be a map")
    # Only ours matter; a non-string value among someone else's annotations is not our error.
    return {k: v for k, v in annotations.items() if isinstance(k, str) and isinstance(v, str)}


def _configmap_objects(document: Any, origin: str, number: int) -> list[tuple[Mapping[str, Any], str]]:
    """The ConfigMaps a document holds: itself, or the items of a List; other kinds hold none."""
    if not isinstance(document, Mapping):
        return []
    kind = document.get("kind")
    if kind == "ConfigMap":
        return [(document, f"{origin} (document {number})")]
    if not isinstance(kind, str) or kind not in _LIST_KINDS:
        return []
    items = document.get("items") or []
    if not isinstance(items, list):
        raise SourceError(f"{origin} (document {number}): {kind} items must be a list")
    default_kind = _LIST_KINDS[kind]
    return [
        (item, f"{origin} (document {number}, item {i})")
        for i, item in enumerate(items, 1)
        if isinstance(item, Mapping) and item.get("kind", default_kind) in ("ConfigMap", None)
    ]


def _parse_document(
    text: str, first_line: int, origin: str, number: int
) -> tuple[list[ConfigMapDoc], list[SourceError]]:
    try:
        document = _load_document(text, first_line)
    except (yaml.YAMLError, RecursionError, ValueError) as exc:  # the last two as a last resort
        return [], [_yaml_error(exc, text, first_line, f"{origin} (document {number})")]
    docs: list[ConfigMapDoc] = []
    errors: list[SourceError] = []
    try:
        objects = _configmap_objects(document, origin, number)
    except SourceError as exc:
        return [], [exc]
    for obj, where in objects:
        try:
            docs.append(configmap_from_object(obj, origin=where))
        except SourceError as exc:
            errors.append(exc)
    return docs, errors


def parse_configmap_yaml(text: str, *, origin: str) -> tuple[list[ConfigMapDoc], list[SourceError]]:
    """Every ConfigMap in a YAML stream (`kind: ConfigMap`, or items of a List); other kinds (Kustomization,
    ...) are skipped. A broken document is one error naming it; the other documents are still read."""
    docs: list[ConfigMapDoc] = []
    errors: list[SourceError] = []
    for number, (first_line, chunk) in enumerate(split_documents(text), 1):
        found, bad = _parse_document(chunk, first_line, origin, number)
        docs.extend(found)
        errors.extend(bad)
    return docs, errors


# --- specs -----------------------------------------------------------------------------------------


def is_enabled(doc: ConfigMapDoc) -> bool:
    value = doc.labels.get(ENABLED_LABEL)
    if value is None:
        return True
    if value in _ENABLED_VALUES:
        return _ENABLED_VALUES[value]
    raise SpecError(
        f'ConfigMap {doc.ref}: label {ENABLED_LABEL}={_quoted(value)} must be exactly "true" or "false"'
    )


def specs_from_configmap(doc: ConfigMapDoc) -> list[ConnectorSpec]:
    """One spec per data key; SpecError when the ConfigMap as a whole cannot be honoured."""
    if CLOUD_LABEL in doc.labels:
        raise SpecError(
            f"ConfigMap {doc.ref}: label {CLOUD_LABEL} (Confluent Cloud managed connectors) is not supported; "
            "refusing to apply it to a self-managed Connect cluster"
        )
    enabled = is_enabled(doc)
    return [
        ConnectorSpec(SourceRef(doc.ref, key), program, enabled) for key, program in sorted(doc.data.items())
    ]


def _declared_twice(ref: str, copies: Sequence[ConfigMapDoc]) -> SpecError:
    origins = [d.origin or "the Kubernetes API" for d in copies]
    where = f"{', '.join(origins[:-1])} and {origins[-1]}"
    return SpecError(f"ConfigMap {ref}: declared more than once, in {where}; none of them is applied")


def select_specs(
    docs: Iterable[ConfigMapDoc], *, selector: Selector
) -> tuple[list[ConnectorSpec], list[SpecError]]:
    """Specs of the selected ConfigMaps. One declared twice (same namespace/name) is ambiguous, even when
    only one copy matches the selector: neither is used."""
    copies: dict[str, list[ConfigMapDoc]] = {}
    for doc in docs:
        copies.setdefault(doc.ref, []).append(doc)
    specs: list[ConnectorSpec] = []
    errors: list[SpecError] = []
    for ref, group in copies.items():
        if not any(selector.matches(d.labels) for d in group):
            continue
        if len(group) > 1:
            errors.append(_declared_twice(ref, group))
            continue
        try:
            specs.extend(specs_from_configmap(group[0]))
        except SpecError as exc:
            errors.append(exc)
    return specs, errors
