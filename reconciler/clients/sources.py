"""ConfigMaps from files and directories of YAML (what a Git checkout or `kustomize build` gives).

I/O edge: reads files, hands their texts to the pure parser. The Kubernetes API source lives in `kube.py`.
A file that cannot be read is one error naming it; the other files are still read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from reconciler.core.specs import parse_configmap_yaml
from reconciler.errors import SourceError
from reconciler.model import ConfigMapDoc

_SUFFIXES = (".yaml", ".yml", ".json")


def _not_a_file(path: Path) -> str:
    """Why `path` (which is not a regular file) cannot be read."""
    if path.is_symlink():
        return "cannot read: broken symbolic link"
    if not path.exists():
        return "no such file or directory"
    return "cannot read: not a regular file"  # a FIFO would block the run forever


def _tree(root: Path) -> tuple[list[Path], list[SourceError]]:
    files: list[Path] = []
    errors: list[SourceError] = []

    def unlistable(exc: OSError) -> None:
        # pathlib's rglob skips such a directory silently: its ConfigMaps would just vanish.
        errors.append(SourceError(f"{exc.filename}: cannot list: {exc.strerror or type(exc).__name__}"))

    for parent, dirs, names in os.walk(root, onerror=unlistable):
        # A ConfigMap volume's `..data` and `..<timestamp>` hold a second copy of every file.
        dirs[:] = [d for d in dirs if not d.startswith("..")]
        for name in names:  # a directory named x.yaml is walked like any other
            path = Path(parent, name)
            if path.suffix not in _SUFFIXES:
                continue
            if path.is_file():
                files.append(path)
            else:
                errors.append(SourceError(f"{path}: {_not_a_file(path)}"))
    return sorted(files), errors


def yaml_files(paths: Iterable[str]) -> tuple[list[Path], list[SourceError]]:
    files: list[Path] = []
    errors: list[SourceError] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found, bad = _tree(path)
            files.extend(found)
            errors.extend(bad)
        elif path.is_file():
            files.append(path)
        else:
            errors.append(SourceError(f"{p}: {_not_a_file(path)}"))
    return files, errors


def _read_text(path: Path) -> str | SourceError:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return SourceError(f"{path}: cannot read: {exc.strerror or type(exc).__name__}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return SourceError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})")


def load_configmaps(paths: Iterable[str]) -> tuple[list[ConfigMapDoc], list[SourceError]]:
    files, errors = yaml_files(paths)
    docs: list[ConfigMapDoc] = []
    for f in files:
        text = _read_text(f)
        if isinstance(text, SourceError):
            errors.append(text)
            continue
        found, bad = parse_configmap_yaml(text, origin=str(f))
        docs.extend(found)
        errors.extend(bad)
    return docs, errors
