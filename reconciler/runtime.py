"""The composition root of one reconcile: everything it needs, built once from the settings tree.

Edge (reads input files, credential files and the environment through `clients/`). A `Runtime` owns the
selector, the template inputs, the redactor (built once, knowing every secret value), one Connect
client per cluster, the retry policy and the clock; `pipeline.reconcile` takes nothing else. The
long-running entry points open a fresh one for every pass, so rotated Secrets and properties files
take effect without a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import httpx

from reconciler.audit import AuditLog
from reconciler.clients.clusters import connect_clients, credential_values, load_clusters
from reconciler.clients.connect import ConnectClient
from reconciler.clients.inputs import load_inputs
from reconciler.clock import Clock, SystemClock
from reconciler.core.pruning import PruneSettings
from reconciler.core.redaction import Redactor
from reconciler.core.rendering import JqEngine, Renderer
from reconciler.core.selectors import Selector, parse_selector
from reconciler.errors import ConfigError
from reconciler.jq_sandbox import JqSandbox
from reconciler.logs import current_redactor
from reconciler.model import DEFAULT_CLUSTER, AutoRestart, RenderInputs
from reconciler.retrying import RetryPolicy, log_retry
from reconciler.settings import LedgerSettings, RenderSettings, Settings
from reconciler.telemetry import Observer

if TYPE_CHECKING:  # the stores import the kubernetes client: only a run with a ledger pays for it
    from reconciler.clients.ledger_store import LedgerStore

# Where a pod finds its own namespace when POD_NAMESPACE (the downward API) is not set.
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


@dataclass(frozen=True, slots=True)
class Runtime:
    selector: Selector
    inputs: RenderInputs
    redactor: Redactor
    renderer: Renderer
    clients: Mapping[str, ConnectClient] = field(default_factory=dict)
    default_cluster: str = DEFAULT_CLUSTER
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    clock: Clock = field(default_factory=SystemClock)
    warnings: tuple[str, ...] = ()
    ledger: LedgerStore | None = None  # None: no ledger, so no prune and no adoption guard (CLI default)
    prune: PruneSettings = field(default_factory=PruneSettings)
    restart: AutoRestart = field(default_factory=AutoRestart)  # the default policy; templates override
    observers: tuple[Observer, ...] = ()  # audit, Events, metrics (`telemetry.py`)
    may_write: Callable[[], bool] = lambda: True  # leader election: False once the lease may be lost
    max_in_flight: int = 1  # connectors written at once per cluster

    @property
    def should_continue(self) -> bool:
        return not self.clock.stop.is_set() and self.may_write()


def _retry_policy(settings: Settings, clock: Clock, on_progress: Callable[[], None]) -> RetryPolicy:
    def on_retry(exc: BaseException, attempt: int) -> None:
        on_progress()  # a retrying pass is alive: liveness must not go stale during an outage
        log_retry(exc, attempt)

    return RetryPolicy(max_seconds=settings.connect.retry_seconds, sleep=clock.sleep, on_retry=on_retry)


def jq_sandbox(settings: RenderSettings) -> JqSandbox:
    """The process templates run in: a template past its deadline or memory cap is killed, not us. It
    is launched at once, so it loads (~0.08 s) while the ConfigMaps are read."""
    sandbox = JqSandbox(
        deadline_s=settings.timeout_s,
        memory_bytes=settings.memory_mib * 2**20,
        max_output_bytes=settings.max_config_bytes,
    )
    sandbox.launch()
    return sandbox


def prune_settings(settings: LedgerSettings) -> PruneSettings:
    return PruneSettings(
        max_deletes=settings.max_deletes,
        max_delete_ratio=settings.max_delete_ratio,
        grace_seconds=settings.grace_seconds,
        adopt_all="*" in settings.adopt,
        adopt=frozenset(a for a in settings.adopt if a != "*"),
    )


def own_namespace(settings: LedgerSettings, environ: Mapping[str, str]) -> str | None:
    """The ledger's namespace for `run` and the hook: the flag, else the pod's own namespace."""
    if settings.namespace:
        return settings.namespace
    if environ.get("POD_NAMESPACE"):
        return environ["POD_NAMESPACE"]
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE, encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


def identity(settings: Settings, environ: Mapping[str, str]) -> str:
    """This replica's name in audit records, Events and the Lease: --identity, POD_NAME, the hostname."""
    import socket  # noqa: PLC0415

    return settings.telemetry.identity or environ.get("POD_NAME") or socket.gethostname()


def audit_log(settings: Settings, environ: Mapping[str, str]) -> AuditLog:
    """The audit trail: the log stream, --audit-file and, under a Knative SinkBinding, CloudEvents."""
    return AuditLog.from_environ(
        environ,
        identity=identity(settings, environ),
        file=settings.telemetry.audit_file,
        redactor_ref=current_redactor,
        log_level="warning",  # audit records must show at the default log level
    )


def ledger_store(settings: Settings, *, namespace: str | None = None) -> LedgerStore | None:
    """The store the settings name: an exported file (read-only), the ConfigMaps of a namespace, or none."""
    if not (settings.ledger.file or namespace or settings.ledger.namespace):
        return None  # and the kubernetes client, ~0.15 s of a hook run's imports, is never imported
    from reconciler.clients.ledger_store import FileLedgerStore, KubeLedgerStore  # noqa: PLC0415

    if settings.ledger.file:
        return FileLedgerStore(settings.ledger.file)
    namespace = namespace or settings.ledger.namespace or ""
    from reconciler.clients.kube import kube_api_client  # noqa: PLC0415

    try:
        api = kube_api_client(settings.watch.kubeconfig)
    except Exception as exc:  # kubernetes' ConfigException and friends: one line, not a traceback
        raise ConfigError(
            f"the ledger in namespace {namespace} needs Kubernetes credentials: {exc}"
        ) from None
    return KubeLedgerStore(api, namespace=namespace)


@contextmanager
def open_runtime(
    settings: Settings,
    *,
    environ: Mapping[str, str],
    clock: Clock | None = None,
    with_clusters: bool = True,
    on_progress: Callable[[], None] = lambda: None,
    http_hooks: Sequence[Callable[[httpx.Request], Any]] = (),
    transport: httpx.BaseTransport | None = None,
    engine: JqEngine | None = None,
    ledger: LedgerStore | None = None,
    observers: Sequence[Observer] = (),
    may_write: Callable[[], bool] | None = None,
) -> Iterator[Runtime]:
    """ConfigError (one line) when a flag, a file or a directory is wrong. Clients are closed on exit,
    and so is the jq sandbox unless the caller passed in its own `engine`."""
    clock = clock or SystemClock()
    selector = parse_selector(settings.selector)
    inputs, warnings = load_inputs(settings.inputs, environ=environ)
    redactor = Redactor(inputs.secret_values)
    clients: dict[str, ConnectClient] = {}
    default_cluster = DEFAULT_CLUSTER
    if with_clusters:
        clusters, default_cluster = load_clusters(settings.connect, environ=environ)
        redactor = redactor.with_values(credential_values(clusters))
        inputs = replace(inputs, secret_values=redactor.secret_values)
        hooks = {"request": list(http_hooks), "response": [lambda _response: on_progress()]}
        clients = connect_clients(clusters, event_hooks=hooks, transport=transport)
    with ExitStack() as stack:
        for client in clients.values():
            stack.callback(client.close)
        if engine is None:
            engine = stack.enter_context(jq_sandbox(settings.render))
        renderer = Renderer(
            inputs,
            default_cluster=default_cluster,
            engine=engine,
            max_config_bytes=settings.render.max_config_bytes,
            redactor=redactor,
        )
        yield Runtime(
            selector=selector,
            inputs=inputs,
            redactor=redactor,
            renderer=renderer,
            clients=clients,
            default_cluster=default_cluster,
            retry=_retry_policy(settings, clock, on_progress),
            clock=clock,
            warnings=tuple(warnings),
            ledger=ledger if ledger is not None else (ledger_store(settings) if with_clusters else None),
            prune=prune_settings(settings.ledger),
            observers=tuple(observers),
            may_write=may_write or (lambda: True),
            max_in_flight=settings.connect.max_in_flight,
            restart=AutoRestart(
                enabled=settings.ledger.auto_restart, max_restarts=settings.ledger.max_restarts
            ),
        )
