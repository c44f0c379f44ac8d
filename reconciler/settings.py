"""The reconciler's settings: one typed, frozen tree, built once per process from flags and environment.

Pure data (the pattern of kopf's `OperatorSettings`): `entrypoints/flags.py` builds it, everything else
reads it. Credentials never show in a `repr`: a password written into a Connect URL is split off here,
when the tree is built, and kept in a field that `repr` leaves out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

from reconciler.core.redaction import DEFAULT_SECRET_NAME_PATTERN


@dataclass(frozen=True, slots=True)
class InputSettings:
    """Where template inputs come from (read by `clients/inputs.py`)."""

    properties_dirs: Sequence[str] = ()
    secret_dirs: Sequence[str] = ()
    files_dirs: Sequence[str] = ()
    env_allow: str = ".*"
    secret_env_pattern: str = DEFAULT_SECRET_NAME_PATTERN
    secret_env: Sequence[str] = ()
    # "directory" (every volume) or "NAME=directory" (one volume; "NAME=none" exempts one): a Secret
    # volume's keys render as `${directory:PATH:KEY}`, resolved by the worker's DirectoryConfigProvider,
    # so the value never crosses the REST API. PATH: where the worker mounts it.
    secret_providers: Sequence[str] = ()
    secret_worker_dirs: Sequence[str] = ()  # NAME=PATH: the volume's mount on the worker, if not the same
    # "file": secret-named properties render as `${file:PATH/FILE:key}` for the worker's FileConfigProvider.
    properties_provider: str = "none"
    properties_worker_dirs: Sequence[str] = ()  # LOCAL=WORKER: a --properties-dir's mount on the worker


@dataclass(frozen=True, slots=True)
class RenderSettings:
    """Limits on one template: libjq cannot be interrupted, so templates run in a sandbox process."""

    timeout_s: float = 2.0
    memory_mib: int = 256
    max_config_bytes: int = 1_000_000  # Kafka's config topic takes records of ~1 MB


@dataclass(frozen=True, slots=True)
class ConnectSettings:
    """How to reach Kafka Connect: `url` never carries credentials (see `split_userinfo`)."""

    url: str | None = None
    clusters_file: str | None = None
    retry_seconds: float = 120.0
    max_in_flight: int = 8  # connectors written at once per cluster (docs/benchmarks.md: the curve)
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    """The ownership ledger (`core/ledger.py`) and the prune guard rails (`core/pruning.py`)."""

    namespace: str | None = None  # where the ledger ConfigMaps live; None with no file: no ledger
    file: str | None = None  # `plan --ledger-file`: an export, read-only
    max_deletes: int = 5
    max_delete_ratio: float = 0.5
    grace_seconds: float = 0.0
    adopt: tuple[str, ...] = ()  # connector names to adopt; "*" adopts every declared connector
    auto_restart: bool = True  # restart FAILED connectors and tasks (counters need the ledger)
    max_restarts: int | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.namespace or self.file)


@dataclass(frozen=True, slots=True)
class WatchSettings:
    """The watcher: what to watch, how often to resync, and the list/watch stream's timing."""

    namespaces: tuple[str | None, ...] = ("default",)  # None: all namespaces
    kubeconfig: str | None = None
    resync_seconds: float = 60.0
    debounce_seconds: float = 0.1  # the quiet window that ends a burst of events
    inputs_poll_seconds: float = 5.0  # how often mounted Secrets and properties files are checked for changes
    health_address: str = "0.0.0.0:8080"
    resync_crontab: str = "* * * * *"  # the hook's schedule binding
    hook_index: str = ""  # the hook's declaration index file: "" a private temp dir, "off" none
    window_s: int = 300  # server-side timeoutSeconds of one watch request
    connect_timeout_s: float = 5.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    """Audit log (`audit.py`), Kubernetes Events (`clients/events.py`), metrics (`metrics.py`)."""

    audit_file: str | None = None  # append-only JSON lines; the log stream always gets the records
    metrics_address: str = ""  # HOST:PORT for /metrics ('' disables)
    events: bool = True  # Kubernetes Events on the source ConfigMaps (run and the hook)
    identity: str | None = None  # this replica (audit `actor`, Event reportingInstance, Lease holder)


@dataclass(frozen=True, slots=True)
class LeaderSettings:
    """Lease-based leader election for `run` (client-go's defaults)."""

    enabled: bool = False
    lease_name: str = "connect-reconciler"
    namespace: str | None = None  # None: the ledger's namespace (the pod's own)
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "warning"
    format: str = "console"


@dataclass(frozen=True, slots=True)
class Settings:
    selector: str = "destination=connect"
    inputs: InputSettings = field(default_factory=InputSettings)
    render: RenderSettings = field(default_factory=RenderSettings)
    connect: ConnectSettings = field(default_factory=ConnectSettings)
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    watch: WatchSettings = field(default_factory=WatchSettings)
    logging: LogSettings = field(default_factory=LogSettings)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    leader: LeaderSettings = field(default_factory=LeaderSettings)


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """`https://user:p%40ss@host/` -> (`https://host/`, `user`, `p@ss`): credentials become basic auth, so
    the URL that is printed, logged and passed around never holds them (in any encoding)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port is not None else "")
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return bare, user, password
