"""ConfigMaps -> connector specs: YAML parsing, label selection, the `enabled` label, one spec per data key.

Pure: parses texts and plain dicts handed in by the sources at the edge. Format (connect-operator's):
label `destination=connect` selects (configurable); `enabled: "false"` means "this ConfigMap's connectors
must not exist"; a missing `enabled` label means enabled; every data key holds a jq program.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from reconciler.core.selectors import Selector
from reconciler.errors import SourceError, SpecError
from reconciler.model import ConfigMapDoc, ConnectorSpec, SourceRef

ENABLED_LABEL = "enabled"
CLOUD_LABEL = "destination.cc"
_NAME_GUESS = re.compile(r"^metadata:\s*\n(?:\s+.*\n)*?\s+name:\s*['\"]?([\w.-]+)", re.MULTILINE)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _guess_name(text: str) -> str | None:
    m = _NAME_GUESS.search(text)
    return m.group(1) if m else None


def configmap_from_object(obj: Mapping[str, Any], *, origin: str | None = None) -> ConfigMapDoc:
    """A ConfigMap dict (from YAML, the API server or a binding context) -> ConfigMapDoc; SourceError if bad."""
    meta = obj.get("metadata") or {}
    where = origin or "ConfigMap object"
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
        raise SourceError(f"{where}: ConfigMap has no metadata.name")
    name, namespace = meta["name"], meta.get("namespace") or ""
    ref = f"{namespace}/{name}" if namespace else name
    labels = meta.get("labels") or {}
    data = obj.get("data") or {}
    if not isinstance(labels, Mapping) or not isinstance(data, Mapping):
        raise SourceError(f"ConfigMap {ref}: metadata.labels and data must be maps")
    for key, value in data.items():
        if not isinstance(value, str):
            raise SourceError(
                f"ConfigMap {ref} key {key}: data values must be strings, got {type(value).__name__}"
            )
    return ConfigMapDoc(
        name=name,
        namespace=str(namespace),
        labels={str(k): str(v) for k, v in labels.items()},
        data={str(k): v for k, v in data.items()},
        origin=origin,
    )


def parse_configmap_yaml(text: str, *, origin: str) -> tuple[list[ConfigMapDoc], list[SourceError]]:
    """Every `kind: ConfigMap` document in a YAML stream; other kinds (Kustomization, ...) are skipped."""
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        guess = _guess_name(text)
        who = f"ConfigMap {guess} in {origin}" if guess else origin
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return [], [SourceError(f"{who}: invalid YAML{at}: {_one_line(str(problem))}")]
    docs: list[ConfigMapDoc] = []
    errors: list[SourceError] = []
    for doc in documents:
        if not isinstance(doc, Mapping) or doc.get("kind") != "ConfigMap":
            continue
        try:
            docs.append(configmap_from_object(doc, origin=origin))
        except SourceError as exc:
            errors.append(exc)
    return docs, errors


def is_enabled(doc: ConfigMapDoc) -> bool:
    value = doc.labels.get(ENABLED_LABEL)
    if value is None or value.lower() == "true":
        return True
    if value.lower() == "false":
        return False
    raise SpecError(f'ConfigMap {doc.ref}: label {ENABLED_LABEL}={value!r} must be "true" or "false"')


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


def select_specs(
    docs: Iterable[ConfigMapDoc], *, selector: Selector
) -> tuple[list[ConnectorSpec], list[SpecError]]:
    specs: list[ConnectorSpec] = []
    errors: list[SpecError] = []
    seen: set[str] = set()
    for doc in docs:
        if not selector.matches(doc.labels):
            continue
        if doc.ref in seen:
            errors.append(SpecError(f"ConfigMap {doc.ref}: declared more than once ({doc.origin})"))
            continue
        seen.add(doc.ref)
        try:
            specs.extend(specs_from_configmap(doc))
        except SpecError as exc:
            errors.append(exc)
    return specs, errors
