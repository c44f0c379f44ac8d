"""What every entry point loads before it reconciles: selector, template inputs, clusters, redactor.

Edge (reads files and the environment). Loaded afresh for every reconcile in the long-running entry
points, so rotated Secrets and properties files take effect without a restart.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import httpx

from reconciler.clients.clusters import ClusterSettings, connect_clients, credential_values, load_clusters
from reconciler.clients.connect import ConnectClient
from reconciler.clients.inputs import InputSettings, load_inputs
from reconciler.core.redaction import Redactor
from reconciler.core.selectors import Selector, parse_selector
from reconciler.model import DEFAULT_CLUSTER, ConfigMapDoc, Problem, RenderInputs, Report
from reconciler.pipeline import reconcile
from reconciler.retrying import RetryPolicy


@dataclass(frozen=True, slots=True)
class Runtime:
    selector: Selector
    inputs: RenderInputs
    warnings: tuple[str, ...]
    clusters: Mapping[str, ClusterSettings]
    default_cluster: str
    redactor: Redactor


def load_runtime(
    args: argparse.Namespace, environ: Mapping[str, str], *, with_clusters: bool = True
) -> Runtime:
    """ConfigError (one line) when a flag, a file or a directory is wrong."""
    selector = parse_selector(args.selector)
    inputs, warnings = load_inputs(
        InputSettings(
            properties_dirs=args.properties_dir,
            secret_dirs=args.secret_dir,
            files_dirs=args.files_dir,
            env_allow=args.env_allow,
            secret_env_pattern=args.secret_env_pattern,
            secret_env=args.secret_env,
        ),
        environ=environ,
    )
    redactor = Redactor(inputs.secret_values)
    clusters: dict[str, ClusterSettings] = {}
    default_cluster = DEFAULT_CLUSTER
    if with_clusters:
        clusters, default_cluster = load_clusters(
            args.clusters_file, default_url=args.connect_url, environ=environ
        )
        redactor = redactor.with_values(credential_values(clusters))
        inputs = replace(inputs, secret_values=redactor.secret_values)
    return Runtime(selector, inputs, tuple(warnings), clusters, default_cluster, redactor)


def watched_namespaces(args: argparse.Namespace) -> list[str | None]:
    """`--namespace` (repeatable, or ':'-separated in the env); '*' (None here) means all; default `default`."""
    names = args.namespace or ["default"]
    return [None] if "*" in names else list(names)


@contextmanager
def connected(
    rt: Runtime,
    *,
    event_hooks: Mapping[str, Sequence[Callable[..., Any]]] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Iterator[dict[str, ConnectClient]]:
    """HTTP clients for every configured cluster, closed when the run is over."""
    clients = connect_clients(rt.clusters, event_hooks=event_hooks, transport=transport)
    try:
        yield clients
    finally:
        for client in clients.values():
            client.close()


def reconcile_with(
    rt: Runtime,
    docs: Iterable[ConfigMapDoc],
    clients: Mapping[str, ConnectClient],
    *,
    dry_run: bool,
    retry_seconds: float,
    validate: bool = False,
    deleted: Iterable[ConfigMapDoc] = (),
    problems: Sequence[Problem] = (),
    should_continue: Callable[[], bool] = lambda: True,
) -> Report:
    """`pipeline.reconcile` with the loaded runtime's inputs, selector and default cluster."""
    return reconcile(
        docs,
        deleted=deleted,
        inputs=rt.inputs,
        clients=clients,
        selector=rt.selector,
        default_cluster=rt.default_cluster,
        dry_run=dry_run,
        validate=validate,
        retry=RetryPolicy(max_seconds=retry_seconds),
        problems=problems,
        should_continue=should_continue,
    )
