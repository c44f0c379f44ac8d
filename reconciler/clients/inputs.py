"""Template inputs from the outside world: properties directories, mounted volumes, the environment.

I/O edge: the only module that reads template input files and `os.environ`. It returns `RenderInputs`
for the pure renderer, including every value that must be treated as secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from reconciler.core.properties import jaas_credentials, merge_properties
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


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _entries(path: Path, what: str) -> list[Path]:
    # pathlib's glob skips a directory it cannot list without a word: its files would just be missing.
    try:
        return sorted(path.iterdir())
    except OSError as exc:
        raise ConfigError(f"{what}: cannot list: {_why(exc)}") from None


def _file_bytes(path: Path, what: str) -> bytes:
    """The bytes of a regular file; ConfigError naming it for anything else (a FIFO would block forever)."""
    if path.is_dir():
        reason = "is a directory"
    elif path.is_symlink() and not path.exists():
        reason = "broken symbolic link"
    elif not path.is_file():
        reason = "not a regular file" if path.exists() else "no such file or directory"
    else:
        try:
            return path.read_bytes()
        except OSError as exc:
            reason = _why(exc)
    raise ConfigError(f"{what}: cannot read: {reason}")


def read_volume(path: Path) -> tuple[dict[str, str], list[str]]:
    """A mounted Secret/ConfigMap volume: one file per key; returns (values, warnings). Kubernetes' `..data`
    bookkeeping and subdirectories (keys projected to a sub path) are skipped; a broken symbolic link or
    an unreadable file is an error. A key that is not UTF-8 (a keystore next to its password) is left
    out with a warning: templates only handle text, and one binary key must not cost the whole volume."""
    if not path.is_dir():
        raise ConfigError(f"mounted volume {path} is not a directory")
    values: dict[str, str] = {}
    warnings: list[str] = []
    for entry in _entries(path, f"mounted volume {path}"):
        if entry.name.startswith(".") or entry.is_dir():
            continue
        data = _file_bytes(entry, f"mounted volume {path}: key {entry.name}")
        try:
            values[entry.name] = data.decode("utf-8")
        except UnicodeDecodeError:
            warnings.append(
                f"mounted volume {path}: key {entry.name} is not UTF-8 text; templates cannot use it"
            )
    return values, warnings


def _volumes(specs: Iterable[str], warnings: list[str]) -> dict[str, dict[str, str]]:
    volumes: dict[str, dict[str, str]] = {}
    for name, path in map(_volume, specs):
        volumes[name], bad = read_volume(path)
        warnings.extend(bad)
    return volumes


def _decode_properties(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # what java.util.Properties.load(InputStream) reads


def _properties_files(dirs: Iterable[str]) -> list[tuple[str, str]]:
    files: list[tuple[str, str]] = []
    for d in dirs:
        path = Path(d)
        if not path.is_dir():
            raise ConfigError(f"properties directory {d} does not exist")
        for f in _entries(path, f"properties directory {d}"):
            if f.name.endswith(".properties"):
                files.append((str(f), _decode_properties(_file_bytes(f, f"properties file {f}"))))
    return files


def _allowed_env(environ: Mapping[str, str], env_allow: str) -> dict[str, str]:
    try:
        allow = re.compile(env_allow)
    except re.error as exc:
        raise ConfigError(f"--env-allow {env_allow!r} is not a regular expression: {exc}") from None
    return {k: v for k, v in environ.items() if allow.fullmatch(k)}


def _secret_values(
    settings: InputSettings,
    environ: Mapping[str, str],
    variables: Mapping[str, str],
    secrets: Mapping[str, Mapping[str, str]],
) -> frozenset[str]:
    values: set[str] = set()
    # The whole environment, not only what --env-allow lets templates see: a secret kept out of the
    # templates may still sit in a config Connect holds, and must not be printed from there either.
    for name in secret_names(environ, pattern=settings.secret_env_pattern) | set(settings.secret_env):
        if name in environ:
            values.add(environ[name])
    for name in secret_names(variables, pattern=settings.secret_env_pattern):
        # Java keeps a value's trailing whitespace; a template may well strip it: hunt for both.
        values.update({variables[name], variables[name].strip()})
    values.update(jaas_credentials(variables).values())
    for volume in secrets.values():
        for value in volume.values():
            values.update({value, value.strip()})
    return frozenset(v for v in values if v)


def load_inputs(
    settings: InputSettings, *, environ: Mapping[str, str] | None = None
) -> tuple[RenderInputs, list[str]]:
    """Read everything a template may use; returns (inputs, warnings)."""
    environ = dict(os.environ if environ is None else environ)
    env = _allowed_env(environ, settings.env_allow)
    try:
        variables, origins, warnings = merge_properties(_properties_files(settings.properties_dirs))
    except ValueError as exc:
        raise ConfigError(f"properties file {exc}") from None
    for key, value in jaas_credentials(variables).items():
        env.setdefault(key, value)  # connect-operator exported these for Confluent Cloud templates
    secrets = _volumes(settings.secret_dirs, warnings)
    files = _volumes(settings.files_dirs, warnings)
    inputs = RenderInputs(
        env=env,
        variables=_file_placeholders(settings, variables, origins),
        secrets=_placeholders(settings, secrets),
        files=files,
        # The values stay known as secret even as placeholders: an error Connect echoes is still masked.
        secret_values=_secret_values(settings, environ, variables, secrets),
    )
    return inputs, warnings


def _placeholder(provider: str, path: str, key: str, what: str) -> str:
    # Kafka splits `${provider:path:key}` at its first two colons and ends it at the first `}`.
    if any(c in part for c in ":}" for part in (path, key)):
        raise ConfigError(
            f"{what}: cannot be a ${{{provider}:...}} placeholder: its path or key holds ':' or '}}'"
        )
    return f"${{{provider}:{path}:{key}}}"


def _volume_providers(settings: InputSettings) -> dict[str, str]:
    """Each --secret-dir volume's provider: `directory` sets every one, `NAME=...` one (and wins)."""
    names = [name for name, _ in map(_volume, settings.secret_dirs)]
    every = [spec for spec in settings.secret_providers if "=" not in spec]
    chosen = dict.fromkeys(names, every[-1] if every else "none")
    for spec in settings.secret_providers:
        name, sep, provider = spec.partition("=")
        if not sep:
            continue
        if name not in chosen:
            raise ConfigError(f"--secret-provider {spec}: no --secret-dir is named {name}")
        chosen[name] = provider
    return chosen


def _placeholders(
    settings: InputSettings, secrets: Mapping[str, Mapping[str, str]]
) -> dict[str, dict[str, str]]:
    """Each key of a Secret volume whose provider is `directory` as Kafka's DirectoryConfigProvider
    placeholder, `${directory:PATH:KEY}` (KIP-632): the worker reads the file KEY in PATH when the
    connector starts, so the value never travels over REST, never sits in the config topic and
    `GET /connectors` never returns it."""
    providers = _volume_providers(settings)
    mounts = {name: str(path) for name, path in map(_volume, settings.secret_dirs)}
    for name, path in map(_volume, settings.secret_worker_dirs):
        if name not in mounts:
            raise ConfigError(f"--secret-worker-dir {name}={path}: no --secret-dir is named {name}")
        mounts[name] = str(path)
    return {
        name: (
            {
                key: _placeholder(
                    "directory", mounts[name].rstrip("/") or "/", key, f"--secret-dir {name}: key {key}"
                )
                for key in volume
            }
            if providers.get(name) == "directory"
            else dict(volume)
        )
        for name, volume in secrets.items()
    }


def _file_placeholders(
    settings: InputSettings, variables: Mapping[str, str], origins: Mapping[str, tuple[str, str]]
) -> dict[str, str]:
    """With `--properties-provider file`, each property whose variable name is secret as Kafka's
    FileConfigProvider placeholder, `${file:PATH:key}`, PATH being the file on the worker: a properties
    Secret mounted on both sides then never sends its values over REST."""
    if settings.properties_provider != "file":
        return dict(variables)
    mounts: dict[str, str] = {}
    for spec in settings.properties_worker_dirs:
        local, sep, worker = spec.partition("=")
        if not sep or not worker:
            raise ConfigError(f"--properties-worker-dir {spec}: expected LOCAL=WORKER")
        if Path(local) not in {Path(d) for d in settings.properties_dirs}:
            raise ConfigError(f"--properties-worker-dir {spec}: no --properties-dir is {local}")
        mounts[str(Path(local))] = worker.rstrip("/") or "/"
    secret = secret_names(variables, pattern=settings.secret_env_pattern)
    rendered = dict(variables)
    for var in secret:
        file, key = origins[var]
        source = Path(file)
        worker = f"{mounts.get(str(source.parent), str(source.parent)).rstrip('/')}/{source.name}"
        rendered[var] = _placeholder("file", worker, key, f"properties file {file}: key {key}")
    return rendered
