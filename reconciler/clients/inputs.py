"""Template inputs from the outside world: properties directories, mounted volumes, the environment.

I/O edge: the only module that reads template input files and `os.environ`. It returns `RenderInputs`
for the pure renderer, including every value that must be treated as secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from reconciler.core.properties import jaas_credentials, to_jq_vars
from reconciler.core.redaction import secret_names
from reconciler.errors import ConfigError
from reconciler.model import RenderInputs
from reconciler.settings import InputSettings


def _volume(spec: str) -> tuple[str, Path]:
    """`name=path` or `path` (named after its last component)."""
    name, sep, path = spec.partition("=")
    if not sep:
        path, name = spec, Path(spec.rstrip("/")).name
    return name, Path(path)


def read_volume(path: Path) -> dict[str, str]:
    """A mounted Secret/ConfigMap volume: one file per key. Kubernetes' `..data` bookkeeping is skipped."""
    if not path.is_dir():
        raise ConfigError(f"mounted volume {path} is not a directory")
    values: dict[str, str] = {}
    for entry in sorted(path.iterdir()):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        try:
            values[entry.name] = entry.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"mounted volume {path}: cannot read key {entry.name}: {type(exc).__name__}"
            ) from None
    return values


def _properties_files(dirs: Iterable[str]) -> list[tuple[str, str]]:
    files: list[tuple[str, str]] = []
    for d in dirs:
        path = Path(d)
        if not path.is_dir():
            raise ConfigError(f"properties directory {d} does not exist")
        for f in sorted(path.glob("*.properties")):
            try:
                files.append((str(f), f.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"properties file {f}: cannot read: {type(exc).__name__}") from None
    return files


def load_inputs(
    settings: InputSettings, *, environ: Mapping[str, str] | None = None
) -> tuple[RenderInputs, list[str]]:
    """Read everything a template may use; returns (inputs, warnings)."""
    environ = dict(os.environ if environ is None else environ)
    try:
        allow = re.compile(settings.env_allow)
    except re.error as exc:
        raise ConfigError(f"--env-allow {settings.env_allow!r} is not a regular expression: {exc}") from None
    env = {k: v for k, v in environ.items() if allow.fullmatch(k)}
    try:
        variables, warnings = to_jq_vars(_properties_files(settings.properties_dirs))
    except ValueError as exc:
        raise ConfigError(f"properties file {exc}") from None
    for key, value in jaas_credentials(variables).items():
        env.setdefault(key, value)  # connect-operator exported these for Confluent Cloud templates
    secrets = {name: read_volume(path) for name, path in map(_volume, settings.secret_dirs)}
    files = {name: read_volume(path) for name, path in map(_volume, settings.files_dirs)}

    secret_values: set[str] = set()
    for name in secret_names(env, pattern=settings.secret_env_pattern) | set(settings.secret_env):
        if name in env:
            secret_values.add(env[name])
    for name in secret_names(variables, pattern=settings.secret_env_pattern):
        # Java keeps a value's trailing whitespace; a template may well strip it: hunt for both.
        secret_values.update({variables[name], variables[name].strip()})
    secret_values.update(jaas_credentials(variables).values())
    for volume in secrets.values():
        for value in volume.values():
            secret_values.update({value, value.strip()})
    inputs = RenderInputs(
        env=env,
        variables=variables,
        secrets=secrets,
        files=files,
        secret_values=frozenset(v for v in secret_values if v),
    )
    return inputs, warnings
