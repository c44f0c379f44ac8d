"""The reconcile pipeline every entry point calls: ConfigMaps -> specs -> desired -> live -> plan -> apply.

A dry run stops after the plan. Per-connector problems (bad template, unknown cluster, rejected write)
are collected in the Report and never stop the other connectors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import structlog

from reconciler.clients.connect import ConnectClient
from reconciler.core.planning import build_plan
from reconciler.core.redaction import Redactor
from reconciler.core.rendering import render_connector
from reconciler.core.selectors import Selector
from reconciler.core.specs import select_specs, specs_from_configmap
from reconciler.errors import ConnectApiError, RenderError, SpecError
from reconciler.executor import apply_plan
from reconciler.model import (
    DEFAULT_CLUSTER,
    ClusterState,
    ConfigMapDoc,
    ConnectorSpec,
    DesiredConnector,
    Outcome,
    Problem,
    RenderInputs,
    Report,
)
from reconciler.retrying import RetryPolicy

log = structlog.get_logger("reconciler")


@dataclass(frozen=True, slots=True)
class Desired:
    connectors: tuple[DesiredConnector, ...]
    problems: tuple[Problem, ...]


def _render_specs(
    specs: Iterable[ConnectorSpec], *, inputs: RenderInputs, default_cluster: str
) -> tuple[list[DesiredConnector], list[Problem]]:
    desired: list[DesiredConnector] = []
    problems: list[Problem] = []
    for spec in specs:
        try:
            desired.append(render_connector(spec, inputs=inputs, default_cluster=default_cluster))
        except RenderError as exc:
            problems.append(Problem(str(exc), spec.source))
    return desired, problems


def render_all(
    docs: Iterable[ConfigMapDoc],
    *,
    inputs: RenderInputs,
    selector: Selector,
    default_cluster: str = DEFAULT_CLUSTER,
    deleted: Iterable[ConfigMapDoc] = (),
) -> Desired:
    """Render the selected ConfigMaps. `deleted` ConfigMaps (last state of a deleted or relabeled one) are
    rendered as disabled, so their connectors are deleted, unless a present ConfigMap declares the name."""
    specs, spec_errors = select_specs(docs, selector=selector)
    problems = [Problem(str(e)) for e in spec_errors]
    desired, render_problems = _render_specs(specs, inputs=inputs, default_cluster=default_cluster)
    problems += render_problems
    gone_specs: list[ConnectorSpec] = []
    for doc in deleted:
        try:
            gone_specs.extend(replace(s, enabled=False) for s in specs_from_configmap(doc))
        except SpecError as exc:
            problems.append(Problem(str(exc)))
    gone, gone_problems = _render_specs(gone_specs, inputs=inputs, default_cluster=default_cluster)
    declared = {(d.cluster, d.name) for d in desired}
    desired += [d for d in gone if (d.cluster, d.name) not in declared]
    problems += gone_problems
    return Desired(tuple(desired), tuple(problems))


def observe_cluster(client: ConnectClient, *, retry: RetryPolicy) -> ClusterState:
    """One expanded listing, cross-checked with the plain listing (expand drops entries with no status)."""
    version = retry.call(client.version)
    connectors = dict(retry.call(client.list_expanded))
    for name in retry.call(client.list_names):
        if name not in connectors:
            found = retry.call(lambda n=name: client.get_connector(n))  # type: ignore[misc]
            if found is not None:
                connectors[name] = found
    return ClusterState(client.cluster, connectors, version)


def observe(
    desired: Sequence[DesiredConnector],
    clients: Mapping[str, ConnectClient],
    *,
    retry: RetryPolicy,
) -> tuple[dict[str, ClusterState], list[Problem]]:
    live: dict[str, ClusterState] = {}
    problems: list[Problem] = []
    for cluster in sorted({d.cluster for d in desired}):
        names = sorted(d.name for d in desired if d.cluster == cluster)
        if cluster not in clients:
            problems.extend(
                Problem(f"unknown Connect cluster {cluster!r}", d.source, d.name, cluster)
                for d in desired
                if d.cluster == cluster
            )
            continue
        try:
            live[cluster] = observe_cluster(clients[cluster], retry=retry)
        except ConnectApiError as exc:
            problems.append(
                Problem(
                    f"cannot read the state of cluster {cluster}: {exc}; skipped {', '.join(names)}",
                    cluster=cluster,
                    retryable=exc.retryable,
                )
            )
    return live, problems


def validate_all(
    desired: Sequence[DesiredConnector], clients: Mapping[str, ConnectClient], *, retry: RetryPolicy
) -> list[Problem]:
    """Connect's own validation of each enabled config: one Problem per field error."""
    problems: list[Problem] = []
    for d in desired:
        if not d.enabled or d.cluster not in clients:
            continue
        if "connector.class" not in d.config:
            problems.append(Problem("config has no connector.class", d.source, d.name, d.cluster))
            continue
        try:
            result = retry.call(lambda d=d: clients[d.cluster].validate(d.config))  # type: ignore[misc]
        except ConnectApiError as exc:
            problems.append(Problem(f"validation failed: {exc}", d.source, d.name, d.cluster))
            continue
        for entry in (result or {}).get("configs", []):
            value = entry.get("value", {}) if isinstance(entry, dict) else {}
            for error in value.get("errors") or []:
                problems.append(
                    Problem(
                        f"invalid {value.get('name')}: {' '.join(str(error).split())}",
                        d.source,
                        d.name,
                        d.cluster,
                    )
                )
    return problems


def reconcile(
    docs: Iterable[ConfigMapDoc],
    *,
    inputs: RenderInputs,
    clients: Mapping[str, ConnectClient],
    selector: Selector,
    default_cluster: str = DEFAULT_CLUSTER,
    dry_run: bool,
    validate: bool = False,
    retry: RetryPolicy | None = None,
    problems: Sequence[Problem] = (),
    deleted: Iterable[ConfigMapDoc] = (),
    should_continue: Callable[[], bool] = lambda: True,
) -> Report:
    retry = retry or RetryPolicy()
    redactor = Redactor(inputs.secret_values)
    desired = render_all(
        docs, inputs=inputs, selector=selector, default_cluster=default_cluster, deleted=deleted
    )
    live, observe_problems = observe(desired.connectors, clients, retry=retry)
    all_problems = [*problems, *desired.problems, *observe_problems]
    if validate:
        all_problems.extend(validate_all(desired.connectors, clients, retry=retry))
    plan = build_plan(desired.connectors, live, redactor=redactor, problems=all_problems)
    if dry_run:
        return Report(plan, dry_run=True)

    def logged(outcome: Outcome) -> None:
        a = outcome.action
        if outcome.ok:
            log.info("connector changed", action=a.kind.value, connector=a.connector, cluster=a.cluster)
        else:
            log.error(
                "connector change failed",
                action=a.kind.value,
                connector=a.connector,
                cluster=a.cluster,
                error=outcome.message,
            )

    outcomes = apply_plan(plan, clients, retry=retry, on_outcome=logged, should_continue=should_continue)
    return Report(plan, tuple(outcomes), dry_run=False)
