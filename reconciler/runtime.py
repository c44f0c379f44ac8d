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
from typing import Any

import httpx

from reconciler.clients.clusters import connect_clients, credential_values, load_clusters
from reconciler.clients.connect import ConnectClient
from reconciler.clients.inputs import load_inputs
from reconciler.clock import Clock, SystemClock
from reconciler.core.redaction import Redactor
from reconciler.core.rendering import JqEngine, Renderer
from reconciler.core.selectors import Selector, parse_selector
from reconciler.jq_sandbox import JqSandbox
from reconciler.model import DEFAULT_CLUSTER, RenderInputs
from reconciler.retrying import RetryPolicy, log_retry
from reconciler.settings import RenderSettings, Settings


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

    @property
    def should_continue(self) -> bool:
        return not self.clock.stop.is_set()


def _retry_policy(settings: Settings, clock: Clock, on_progress: Callable[[], None]) -> RetryPolicy:
    def on_retry(exc: BaseException, attempt: int) -> None:
        on_progress()  # a retrying pass is alive: liveness must not go stale during an outage
        log_retry(exc, attempt)

    return RetryPolicy(max_seconds=settings.connect.retry_seconds, sleep=clock.sleep, on_retry=on_retry)


def jq_sandbox(settings: RenderSettings) -> JqSandbox:
    """The process templates run in: a template past its deadline or memory cap is killed, not us."""
    return JqSandbox(
        deadline_s=settings.timeout_s,
        memory_bytes=settings.memory_mib * 2**20,
        max_output_bytes=settings.max_config_bytes,
    )


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
        )
