"""ConfigMaps from files and directories of YAML (what a Git checkout or `kustomize build` gives).

I/O edge: reads files, hands their texts to the pure parser. The Kubernetes API source lives in `kube.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from reconciler.core.specs import parse_configmap_yaml
from reconciler.errors import SourceError
from reconciler.model import ConfigMapDoc

_SUFFIXES = (".yaml", ".yml", ".json")


def yaml_files(paths: Iterable[str]) -> tuple[list[Path], list[SourceError]]:
    files: list[Path] = []
    errors: list[SourceError] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files.extend(f for f in sorted(path.rglob("*")) if f.is_file() and f.suffix in _SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            errors.append(SourceError(f"{p}: no such file or directory"))
    return files, errors


def load_configmaps(paths: Iterable[str]) -> tuple[list[ConfigMapDoc], list[SourceError]]:
    files, errors = yaml_files(paths)
    docs: list[ConfigMapDoc] = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(SourceError(f"{f}: cannot read: {type(exc).__name__}"))
            continue
        found, bad = parse_configmap_yaml(text, origin=str(f))
        docs.extend(found)
        errors.extend(bad)
    return docs, errors
