"""The reconcile pipeline every entry point calls: ConfigMaps -> specs -> desired -> live -> plan -> apply.

Orchestration (I/O through the Runtime's clients). A dry run stops after the plan. Per-connector problems
(bad template, unknown cluster, rejected write) are collected in the Report and never stop the other
connectors. A deleted ConfigMap's connectors count as deleted only once Connect confirms it: absent
from an observed listing, or their DELETE answered by Connect itself (`Report.settled_deletions`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import structlog

from reconciler.clients.connect import ConnectClient
from reconciler.core.ledger import Ledger
from reconciler.core.planning import build_plan, split_duplicates
from reconciler.core.rendering import Renderer
from reconciler.core.selectors import Selector
from reconciler.core.specs import select_specs, specs_from_configmap
from reconciler.core.targeting import targeted_names
from reconciler.errors import ConnectApiError, ConnectNotFound, RenderError, SpecError
from reconciler.executor import apply_plan
from reconciler.model import (
    ActionKind,
    ClusterState,
    ConfigMapDoc,
    ConnectorPlan,
    ConnectorSpec,
    DesiredConnector,
    LiveConnector,
    Outcome,
    Plan,
    Problem,
    Report,
    SourceRef,
)
from reconciler.ownership import (
    decide_all,
    read_ledgers,
    record_after,
    record_before,
    with_recreations,
    with_restarts,
    without_clusters,
)
from reconciler.pass_memory import DeclarationIndex, LiveMemo, PassMemory, RenderMany, RenderMemo
from reconciler.retrying import RetryPolicy
from reconciler.runtime import Runtime
from reconciler.telemetry import ActionEvent, PassEvent, notify

log = structlog.get_logger("reconciler")

Key = tuple[str, str]  # (cluster, connector)


@dataclass(frozen=True, slots=True)
class Desired:
    connectors: tuple[DesiredConnector, ...]
    problems: tuple[Problem, ...]
    # Deleted ConfigMap ref -> the connectors its last state declares; None when that cannot be known.
    gone: Mapping[str, tuple[Key, ...] | None]


def _render_specs(
    specs: Sequence[ConnectorSpec], *, render: RenderMany
) -> tuple[list[DesiredConnector], list[Problem]]:
    desired: list[DesiredConnector] = []
    problems: list[Problem] = []
    for spec, result in zip(specs, render(specs), strict=True):
        if isinstance(result, RenderError):
            problems.append(Problem(str(result), spec.source))
        else:
            desired.append(result)
    return desired, problems


def render_all(
    docs: Iterable[ConfigMapDoc],
    *,
    renderer: Renderer,
    selector: Selector,
    deleted: Iterable[ConfigMapDoc] = (),
    complete: bool = True,
    memo: RenderMemo | None = None,
    render: RenderMany | None = None,
) -> Desired:
    """Render the selected ConfigMaps. `deleted` ConfigMaps (last state of a deleted or relabeled one) are
    rendered as disabled, so their connectors are deleted, unless a present ConfigMap declares the name.

    While any present ConfigMap cannot be read or rendered (or the caller had some it could not parse:
    `complete=False`), the desired set is partial: a deleted ConfigMap's connector may have moved into the
    broken one, so no deletion is made for it and its tombstone stays.

    With a `memo` (the watcher's), a template already rendered with the same inputs is not run again:
    every pass still renders the whole set, so partial views and duplicates are found as before.
    `render` replaces both (the hook's `DeclarationIndex.bind`)."""
    if render is None:
        render = memo.bind(renderer) if memo is not None else renderer.render_many
    specs, spec_errors = select_specs(docs, selector=selector)
    problems = [Problem(str(e)) for e in spec_errors]
    desired, render_problems = _render_specs(specs, render=render)
    problems += render_problems
    partial = bool(problems) or not complete
    declared = {(d.cluster, d.name) for d in desired}
    gone: dict[str, tuple[Key, ...] | None] = {}
    for doc in deleted:
        if partial:
            problems.append(
                Problem(
                    "deleted; its connectors are kept while another ConfigMap cannot be read "
                    "(it might declare them now)",
                    SourceRef(doc.ref),
                )
            )
            gone[doc.ref] = None
            continue
        try:
            doc_specs = [replace(s, enabled=False) for s in specs_from_configmap(doc)]
        except SpecError as exc:
            problems.append(Problem(f"deleted, and its last state is unusable: {exc}"))
            gone[doc.ref] = None
            continue
        rendered, failed = _render_specs(doc_specs, render=render)
        problems += [
            replace(p, message=f"deleted, but its last state cannot be rendered (kept): {p.message}")
            for p in failed
        ]
        gone[doc.ref] = None if failed else tuple((d.cluster, d.name) for d in rendered)
        desired += [d for d in rendered if (d.cluster, d.name) not in declared]
    unique, duplicates = split_duplicates(desired)
    return Desired(tuple(unique), tuple(problems + duplicates), gone)


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


def observe_named(
    client: ConnectClient,
    names: Iterable[str],
    *,
    retry: RetryPolicy,
    version: str | None,
    known: Mapping[str, LiveConnector],
) -> ClusterState:
    """A targeted pass's observation: each connector's config read by name (Connect's own 404: absent).
    Its state and task states come from `known` (the last observation, see `pass_memory.py`), or from
    its status when nothing is known of it."""
    connectors: dict[str, LiveConnector] = {}
    observed = frozenset(names)
    for name in sorted(observed):
        seen = known.get(name)
        if seen is None:
            found = retry.call(lambda n=name: client.get_connector(n))  # type: ignore[misc]
            if found is not None:
                connectors[name] = found
            continue
        try:
            config = retry.call(lambda n=name: client.get_config(n))  # type: ignore[misc]
        except ConnectNotFound:
            continue
        connectors[name] = replace(seen, config=config)
    return ClusterState(client.cluster, connectors, version, observed=observed)


def observe(
    desired: Sequence[DesiredConnector],
    clients: Mapping[str, ConnectClient],
    *,
    retry: RetryPolicy,
    also: Iterable[str] = (),
    targets: Mapping[str, frozenset[str]] | None = None,
    memo: LiveMemo | None = None,
) -> tuple[dict[str, ClusterState], list[Problem]]:
    """The clusters the desired connectors name, and `also` those (clusters the ledger owns some in),
    each listed whole; or, with `targets` (cluster -> names, see `core/targeting.py`), only those
    connectors, read by name (their states from the `memo` when it has them)."""
    live: dict[str, ClusterState] = {}
    problems: list[Problem] = []
    if targets is not None:
        desired = [d for d in desired if d.name in targets.get(d.cluster, ())]
        clusters = {c for c, names in targets.items() if names}
    else:
        clusters = {d.cluster for d in desired} | set(also)
    for cluster in sorted(clusters):
        names = sorted(d.name for d in desired if d.cluster == cluster)
        if cluster not in clients:
            problems.extend(
                Problem(f"unknown Connect cluster {cluster!r}", d.source, d.name, cluster)
                for d in desired
                if d.cluster == cluster
            )
            continue
        try:
            if targets is not None:
                client = clients[cluster]
                live[cluster] = observe_named(
                    client,
                    targets[cluster],
                    retry=retry,
                    version=memo.version(cluster) if memo is not None else retry.call(client.version),
                    known=memo.known(cluster) if memo is not None else {},
                )
            else:
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


def settled_deletions(
    gone: Mapping[str, tuple[Key, ...] | None],
    live: Mapping[str, ClusterState],
    outcomes: Sequence[Outcome],
    *,
    declared: set[Key],
) -> frozenset[str]:
    """Deleted ConfigMaps all of whose connectors are confirmed gone (or now declared elsewhere)."""
    deleted_ok = {
        (o.action.cluster, o.action.connector)
        for o in outcomes
        if o.ok and o.action.kind is ActionKind.DELETE
    }

    def confirmed(key: Key) -> bool:
        cluster, name = key
        observed_absent = cluster in live and live[cluster].absent(name)
        return key in declared or observed_absent or key in deleted_ok

    return frozenset(ref for ref, keys in gone.items() if keys is not None and all(map(confirmed, keys)))


def _log_outcome(outcome: Outcome) -> None:
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


def _log_deletes(plan: Plan, live: Mapping[str, ClusterState], rt: Runtime) -> None:
    """Before a delete, its last config (secrets masked) and its offsets go to the log: a mistaken delete
    can then be recreated where it left off (`PATCH /connectors/{name}/offsets`)."""
    for c in plan.connectors:
        for a in c.actions:
            if a.kind is not ActionKind.DELETE or a.cluster not in rt.clients:
                continue
            held = live.get(a.cluster)
            current = held.connectors.get(a.connector) if held is not None else None
            try:
                offsets = rt.clients[a.cluster].offsets(a.connector)
            except ConnectApiError as exc:
                offsets = {"unavailable": str(exc)}
            log.warning(
                "deleting connector",
                connector=a.connector,
                cluster=a.cluster,
                reason=c.reason or "enabled: false",
                config=rt.redactor.mask_config(current.config) if current is not None else None,
                offsets=offsets,
            )


def reconcile(
    docs: Iterable[ConfigMapDoc],
    *,
    rt: Runtime,
    dry_run: bool,
    validate: bool = False,
    problems: Sequence[Problem] = (),
    deleted: Iterable[ConfigMapDoc] = (),
    changed: Iterable[str] | None = None,
    memory: PassMemory | None = None,
    index: DeclarationIndex | None = None,
) -> Report:
    """One pass. With a ledger (`rt.ledger`), ownership decides what may be written and what is pruned,
    and `deleted` (the watcher's tombstones) is not needed: the ledger remembers across restarts.

    `changed` (refs of the ConfigMaps that changed since the last pass: the watcher's events, the hook's
    Event contexts) makes the pass targeted: only their connectors, and every prune candidate, are
    observed and planned (`core/targeting.py`). It is full when `changed` is None, when the scope is
    large, or when `memory` (the watcher's, across passes: renders and observations) has never seen a
    cluster of the scope listed whole.

    `index` (the hook's, across runs) lets a targeted pass skip rendering the unchanged ConfigMaps: it
    knows what they declare, and that is all a targeted pass needs of them. Should one of them fall in
    the scope after all, or the pass be full, the whole set is rendered."""
    started = time.perf_counter()
    docs = list(docs)
    deleted = list(deleted)
    sources = {d.ref: d for d in docs}
    store = rt.ledger
    refs = None if changed is None else frozenset(changed)

    def render(*, placeholders: bool) -> Desired:
        return render_all(
            docs,
            renderer=rt.renderer,
            selector=rt.selector,
            deleted=deleted if store is None else (),
            complete=not problems,
            memo=memory.renders if memory is not None else None,
            render=index.bind(rt.renderer, changed=refs) if placeholders and index is not None else None,
        )

    desired = render(placeholders=True)
    ledger_problems: list[Problem] = []
    ledgers: dict[str, Ledger] = {}
    if store is not None:
        ledgers, ledger_problems = read_ledgers(store, sorted(rt.clients))
    owned = [c for c, lg in ledgers.items() if lg.entries]
    targets = None
    if refs is not None:
        targets = targeted_names(
            {*refs, *(d.ref for d in deleted)}, desired=desired.connectors, ledgers=ledgers
        )
        clusters = [c for c, names in (targets or {}).items() if names]
        if memory is not None and not memory.live.covers(clusters):
            targets = None
    if any(d.placeholder for d in desired.connectors) and (
        targets is None
        or any(d.placeholder and d.name in targets.get(d.cluster, ()) for d in desired.connectors)
    ):
        desired = render(placeholders=False)  # a placeholder must never be planned: render them all
        if targets is not None and refs is not None:
            targets = targeted_names(
                {*refs, *(d.ref for d in deleted)}, desired=desired.connectors, ledgers=ledgers
            )
    if index is not None:
        index.save()
    live, observe_problems = observe(
        desired.connectors,
        rt.clients,
        retry=rt.retry,
        also=owned,
        targets=targets,
        memo=memory.live if memory is not None else None,
    )
    scope = None if targets is None else {c: live[c].observed or frozenset() for c in live}
    all_problems = [*problems, *desired.problems, *ledger_problems, *observe_problems]
    if validate:
        all_problems.extend(validate_all(desired.connectors, rt.clients, retry=rt.retry))
    to_plan: Sequence[DesiredConnector] = desired.connectors
    extra: tuple[ConnectorPlan, ...] = ()
    decisions = None
    if store is not None:
        decisions = decide_all(
            desired.connectors,
            ledgers,
            live,
            configmaps={d.ref: d for d in docs},
            clusters=sorted(rt.clients),
            complete=not problems and not desired.problems,
            now=rt.clock.now(),
            settings=rt.prune,
        )
        to_plan, extra = decisions.managed, decisions.plans
        all_problems.extend(decisions.problems)
    plan = build_plan(to_plan, live, redactor=rt.redactor, problems=all_problems)
    if decisions is not None:
        plan, decisions = with_restarts(
            plan, decisions, live, policy=rt.restart, now=rt.clock.now().timestamp()
        )
        plan, decisions = with_recreations(plan, decisions, live, now=rt.clock.now())
    if extra:
        merged = sorted((*plan.connectors, *extra), key=lambda p: (p.cluster, p.connector))
        plan = replace(plan, connectors=tuple(merged))
    declared = {(d.cluster, d.name) for d in desired.connectors if d.source.configmap not in desired.gone}

    def finish(report: Report) -> Report:
        own = decisions.by_cluster if decisions is not None else {}
        notify(
            rt.observers,
            PassEvent(
                report,
                duration_s=time.perf_counter() - started,
                sources=sources,
                blocked={c: o.blocked for c, o in own.items() if o.blocked},
                adopted=tuple((c, name) for c, o in own.items() for name in o.adopted),
            ),
        )
        return report

    def source_of(cp: ConnectorPlan) -> ConfigMapDoc | None:
        return sources.get(cp.source.configmap) if cp.source is not None else None

    if dry_run:
        for cp in plan.connectors:
            for action in cp.actions:
                notify(rt.observers, ActionEvent(action, cp, source_of(cp), dry_run=True))
        return finish(Report(plan, dry_run=True, scope=scope))
    stored: dict[str, Ledger] = {}
    if not rt.should_continue:  # stopping, or the lease may be lost: not even the ledger is written
        return finish(Report(plan, dry_run=False, scope=scope))
    if store is not None and decisions is not None:
        stored, failed, write_problems = record_before(store, decisions)
        plan = replace(without_clusters(plan, failed), problems=plan.problems + tuple(write_problems))
    _log_deletes(plan, live, rt)
    for cp in plan.connectors:
        if cp.recreated:  # logged once its ledger counts it, as adoption is: a dry run recreates nothing
            log.warning(
                "connector deleted outside connect-reconciler",
                connector=cp.connector,
                cluster=cp.cluster,
                times=cp.recreated,
                reason=cp.reason,
            )
    by_key = {(cp.cluster, cp.connector): cp for cp in plan.connectors}

    def on_outcome(outcome: Outcome) -> None:
        _log_outcome(outcome)
        cp = by_key[(outcome.action.cluster, outcome.action.connector)]
        notify(rt.observers, ActionEvent(outcome.action, cp, source_of(cp), outcome))

    outcomes = apply_plan(
        plan,
        rt.clients,
        retry=rt.retry,
        on_outcome=on_outcome,
        should_continue=lambda: rt.should_continue,
        max_in_flight=rt.max_in_flight,
    )
    if memory is not None:
        memory.live.remember(live, outcomes)
    if store is not None and rt.should_continue:
        after = record_after(store, stored, outcomes, now=rt.clock.now(), scrub=rt.redactor.scrub)
        plan = replace(plan, problems=plan.problems + tuple(after))
        # The ledger prunes what tombstones used to: every one handed in is settled.
        settled = frozenset(d.ref for d in deleted)
    else:
        settled = settled_deletions(desired.gone, live, outcomes, declared=declared)
    return finish(Report(plan, tuple(outcomes), dry_run=False, settled_deletions=settled, scope=scope))
