"""Which Kafka Connect clusters exist and how to reach them: URL, basic auth, TLS.

I/O edge: reads the clusters file and credential files/env vars, builds one `httpx.Client` per cluster.

    default: main                      # cluster for connectors that name none (default "default")
    clusters:
      main:
        url: https://connect.kafka.svc:8083
        username: reconciler           # or username_file: / username_env:
        password_file: /etc/connect-auth/password   # or password: / password_env:
        ca_file: /etc/connect-tls/ca.crt
        cert_file: /etc/connect-tls/tls.crt
        key_file: /etc/connect-tls/tls.key

`--connect-url` sets (or overrides) the URL of the default cluster. Credentials written into a URL
(`https://user:pass@host`) are moved into basic auth when the file is loaded, so no URL that is kept,
printed or logged holds them.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import yaml

from reconciler.clients.connect import ConnectClient
from reconciler.errors import ConfigError
from reconciler.model import DEFAULT_CLUSTER
from reconciler.settings import ConnectSettings, split_userinfo

_KEYS = frozenset(
    {
        "url",
        "username",
        "username_file",
        "username_env",
        "password",
        "password_file",
        "password_env",
        "ca_file",
        "cert_file",
        "key_file",
        "insecure_skip_verify",
    }
)


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    name: str
    url: str
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True

    def __repr__(self) -> str:  # never print the password
        return f"ClusterSettings(name={self.name!r}, url={self.url!r}, auth={self.username is not None})"


def _credential(
    entry: Mapping[str, Any], what: str, *, cluster: str, environ: Mapping[str, str]
) -> str | None:
    if entry.get(f"{what}_file"):
        path = Path(str(entry[f"{what}_file"]))
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"cluster {cluster}: cannot read {what}_file {path}: {type(exc).__name__}"
            ) from None
    if entry.get(f"{what}_env"):
        var = str(entry[f"{what}_env"])
        if var not in environ:
            raise ConfigError(f"cluster {cluster}: {what}_env names {var}, which is not set")
        return environ[var]
    value = entry.get(what)
    return None if value is None else str(value)


def _with_url_credentials(settings: ClusterSettings) -> ClusterSettings:
    url, user, password = split_userinfo(settings.url)
    if user is None and password is None:
        return settings
    return replace(
        settings,
        url=url,
        username=settings.username if settings.username is not None else user or "",
        password=settings.password if settings.password is not None else password,
    )


def load_clusters(
    connect: ConnectSettings, *, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, ClusterSettings], str]:
    """Returns ({name: settings}, default cluster name)."""
    environ = os.environ if environ is None else environ
    path, default_url = connect.clusters_file, connect.url
    raw: Any = {}
    if path:
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"clusters file {path}: {' '.join(str(exc).split())}") from None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("clusters", {}), Mapping):
        raise ConfigError(f"clusters file {path}: expected a map with a 'clusters' map")
    default = str(raw.get("default", DEFAULT_CLUSTER))
    clusters: dict[str, ClusterSettings] = {}
    for name, entry in (raw.get("clusters") or {}).items():
        if not isinstance(entry, Mapping):
            raise ConfigError(f"clusters file {path}: cluster {name} must be a map")
        unknown = sorted(set(entry) - _KEYS)
        if unknown:
            raise ConfigError(f"clusters file {path}: cluster {name}: unknown key(s) {', '.join(unknown)}")
        url = entry.get("url") or (default_url if name == default else None)
        if not url:
            raise ConfigError(f"clusters file {path}: cluster {name} has no url")
        clusters[str(name)] = ClusterSettings(
            name=str(name),
            url=str(url),
            username=_credential(entry, "username", cluster=name, environ=environ),
            password=_credential(entry, "password", cluster=name, environ=environ),
            ca_file=entry.get("ca_file"),
            cert_file=entry.get("cert_file"),
            key_file=entry.get("key_file"),
            verify=not bool(entry.get("insecure_skip_verify", False)),
        )
    if default_url:
        base = clusters.get(default) or ClusterSettings(name=default, url=default_url)
        clusters[default] = replace(base, url=default_url)
        if connect.username is not None:
            clusters[default] = replace(
                clusters[default], username=connect.username, password=connect.password
            )
    if default not in clusters:
        raise ConfigError(f"no URL for the default cluster {default!r}: set --connect-url or a clusters file")
    return {name: _with_url_credentials(c) for name, c in clusters.items()}, default


def http_client(
    settings: ClusterSettings,
    *,
    event_hooks: Mapping[str, Sequence[Callable[..., Any]]] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    verify: ssl.SSLContext | bool = settings.verify
    if settings.ca_file or settings.cert_file:
        try:
            context = ssl.create_default_context(cafile=settings.ca_file)
            if settings.cert_file:
                context.load_cert_chain(settings.cert_file, settings.key_file)
        except (OSError, ssl.SSLError) as exc:
            files = ", ".join(f for f in (settings.ca_file, settings.cert_file, settings.key_file) if f)
            raise ConfigError(
                f"cluster {settings.name}: cannot load TLS files ({files}): {type(exc).__name__}: "
                f"{getattr(exc, 'strerror', None) or exc}"
            ) from None
        if not settings.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        verify = context
    auth = (
        httpx.BasicAuth(settings.username, settings.password or "") if settings.username is not None else None
    )
    return httpx.Client(
        base_url=settings.url,
        auth=auth,
        verify=verify,
        headers={"Accept": "application/json", "User-Agent": "connect-reconciler"},
        event_hooks={k: list(v) for k, v in (event_hooks or {}).items()},
        follow_redirects=False,
        transport=transport,
    )


def connect_clients(
    clusters: Mapping[str, ClusterSettings],
    *,
    event_hooks: Mapping[str, Sequence[Callable[..., Any]]] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, ConnectClient]:
    clients: dict[str, ConnectClient] = {}
    try:
        for name, s in clusters.items():
            clients[name] = ConnectClient(
                http_client(s, event_hooks=event_hooks, transport=transport), cluster=name
            )
    except BaseException:
        for client in clients.values():
            client.close()
        raise
    return clients


def credential_values(clusters: Mapping[str, ClusterSettings]) -> set[str]:
    """Every Connect password, for the redactor, also in the percent-encoded form a URL would carry."""
    values = {s.password for s in clusters.values() if s.password}
    return values | {quote(v, safe="") for v in values}
