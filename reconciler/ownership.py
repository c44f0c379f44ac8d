"""The ownership ledger in a pass: read it, decide per cluster, record before acting, forget after.

Orchestration (I/O through the Runtime's ledger store). The order is what makes a crash harmless:
the ledger naming every connector about to be created or adopted is written *before* any request to
Connect; an entry goes only after Connect confirmed its connector gone (an observed listing without
it, or its DELETE answered by Connect). A ledger that cannot be read means "unknown": that cluster
gets no create, no adoption and no prune in this pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from reconciler.core.ledger import Entry, Ledger, timestamp
from reconciler.core.planning import restart_action
from reconciler.core.pruning import Ownership, PruneSettings, decide
from reconciler.core.recreation import confirmed_by_listing, recreation
from reconciler.errors import LedgerConflict, LedgerUnavailable
from reconciler.model import (
    Action,
    ActionKind,
    AutoRestart,
    ClusterState,
    ConfigMapDoc,
    ConnectorPlan,
    DesiredConnector,
    Outcome,
    Plan,
    Problem,
    RestartRecord,
    SourceRef,
)

if TYPE_CHECKING:
    from reconciler.clients.ledger_store import LedgerStore

log = structlog.get_logger("reconciler.ledger")


@dataclass(frozen=True, slots=True)
class Decisions:
    """Every cluster's ownership decision, and what the plan gains from them."""

    by_cluster: Mapping[str, Ownership]
    managed: tuple[DesiredConnector, ...]
    plans: tuple[ConnectorPlan, ...]  # prunes (DELETE) and held connectors, with their reasons
    problems: tuple[Problem, ...]
    unreadable: frozenset[str]  # clusters whose ledger could not be read: nothing of theirs is written


def read_ledgers(store: LedgerStore, clusters: Sequence[str]) -> tuple[dict[str, Ledger], list[Problem]]:
    ledgers: dict[str, Ledger] = {}
    problems: list[Problem] = []
    for cluster in clusters:
        try:
            ledgers[cluster] = store.read(cluster)
        except LedgerUnavailable as exc:
            problems.append(
                Problem(
                    f"{exc}; nothing is created, adopted or pruned there", cluster=cluster, retryable=True
                )
            )
    return ledgers, problems


def blocked_problem(ledger: Ledger) -> Problem:
    """A cluster's prune block as plan, apply, the watcher and `status` all report it."""
    cluster = ledger.cluster
    return Problem(
        f"prune blocked: {ledger.blocked_reason}; nothing is deleted on cluster {cluster} until approved "
        f"(connect-reconciler approve-deletes --cluster {cluster}; prune blocked since {ledger.blocked_since})",
        cluster=cluster,
    )


def decide_all(
    desired: Sequence[DesiredConnector],
    ledgers: Mapping[str, Ledger],
    live: Mapping[str, ClusterState],
    *,
    configmaps: Mapping[str, ConfigMapDoc],
    clusters: Sequence[str],
    complete: bool,
    now: datetime,
    settings: PruneSettings,
) -> Decisions:
    by_cluster: dict[str, Ownership] = {}
    managed: list[DesiredConnector] = []
    plans: list[ConnectorPlan] = []
    problems: list[Problem] = []
    for cluster in clusters:
        declared = [d for d in desired if d.cluster == cluster]
        if cluster not in ledgers:
            # Unknown ownership: keep managing nothing new; existing connectors are left as they are.
            continue
        own = decide(
            ledgers[cluster],
            declared,
            live.get(cluster),
            configmaps=configmaps,
            complete=complete,
            now=now,
            settings=settings,
        )
        by_cluster[cluster] = own
        managed += own.managed
        state = live.get(cluster)
        for p in own.prunes:
            plans.append(
                ConnectorPlan(
                    p.connector,
                    cluster,
                    SourceRef(own.owners.get(p.connector, "?")),
                    (Action(ActionKind.DELETE, p.connector, cluster),),
                    live_state=state.connectors[p.connector].state if state else None,
                    reason=f"pruned: {p.reason}",
                )
            )
        for h in own.held:
            entry = own.ledger.entries.get(h.connector)
            plans.append(
                ConnectorPlan(
                    h.connector, cluster, SourceRef(entry.owner) if entry else None, (), reason=h.reason
                )
            )
        sources = {d.name: d.source for d in declared}
        problems += [Problem(c.reason, sources.get(c.connector), c.connector, cluster) for c in own.conflicts]
        if own.blocked:
            problems.append(blocked_problem(replace(own.ledger, blocked_reason=own.blocked)))
    unreadable = frozenset(c for c in clusters if c not in ledgers)
    return Decisions(by_cluster, tuple(managed), tuple(plans), tuple(problems), unreadable)


def record_before(
    store: LedgerStore, decisions: Decisions
) -> tuple[dict[str, Ledger], set[str], list[Problem]]:
    """Write every changed ledger before any request. Returns the ledgers as stored, the clusters whose
    write failed (their actions must not be sent), and the problems."""
    stored: dict[str, Ledger] = {}
    failed: set[str] = set()
    problems: list[Problem] = []
    for cluster, own in decisions.by_cluster.items():
        if not own.changed:
            stored[cluster] = own.ledger
            continue
        try:
            stored[cluster] = store.write(own.ledger)
        except LedgerUnavailable as exc:
            failed.add(cluster)
            what = (
                "changed since it was read: the next pass re-plans" if isinstance(exc, LedgerConflict) else ""
            )
            problems.append(
                Problem(
                    f"{exc}{'; ' + what if what else ''}; nothing sent to cluster {cluster}",
                    cluster=cluster,
                    retryable=True,
                )
            )
            continue
        # Logged once the ledger says so, not when planned: a dry run adopts nothing.
        for name in own.adopted:
            log.warning("connector adopted into the ledger", connector=name, cluster=cluster)
    return stored, failed, problems


def without_clusters(plan: Plan, clusters: set[str]) -> Plan:
    return replace(plan, connectors=tuple(c for c in plan.connectors if c.cluster not in clusters))


def _after(
    ledger: Ledger, outcomes: Sequence[Outcome], *, at: str, scrub: Callable[[str], str]
) -> dict[str, Entry]:
    """The entries once the pass is done: confirmed deletes gone, each other action noted as the last."""
    entries = dict(ledger.entries)
    for o in outcomes:
        name = o.action.connector
        if o.action.cluster != ledger.cluster or name not in entries:
            continue
        if o.ok and o.action.kind is ActionKind.DELETE:
            del entries[name]
            continue
        last: dict[str, Any] = {"action": o.action.kind.value, "at": at, "ok": o.ok}
        if not o.ok:
            last["error"] = scrub(o.message)[:500]  # Connect's 400s may quote a config value
        entries[name] = replace(entries[name], last=last)
    return entries


def record_after(
    store: LedgerStore,
    stored: Mapping[str, Ledger],
    outcomes: Sequence[Outcome],
    *,
    now: datetime,
    scrub: Callable[[str], str],
) -> list[Problem]:
    """Forget the connectors Connect confirmed deleted and note every other action as the connector's
    last (what `status` shows). On a conflict the ledger is re-read and the same change made again:
    removing a confirmed-gone name and noting an action are both safe to repeat."""
    problems: list[Problem] = []
    for cluster in sorted({o.action.cluster for o in outcomes}):
        ledger = stored.get(cluster)
        for _attempt in range(3):
            if ledger is None:
                break
            entries = _after(ledger, outcomes, at=timestamp(now), scrub=scrub)
            if entries == dict(ledger.entries):
                break
            try:
                store.write(ledger.with_entries(entries))
                break
            except LedgerConflict:
                ledger = store.read(cluster)
            except LedgerUnavailable as exc:
                # The next pass sees them absent from the listing and forgets them then.
                problems.append(
                    Problem(
                        f"{exc}; deleted connectors stay recorded until the next pass",
                        cluster=cluster,
                        retryable=True,
                    )
                )
                break
    return problems


def with_restarts(
    plan: Plan,
    decisions: Decisions,
    live: Mapping[str, ClusterState],
    *,
    policy: AutoRestart,
    now: float,
) -> tuple[Plan, Decisions]:
    """Auto-restart for every managed connector: the counters live in its ledger entry, so a restart of
    the reconciler neither resets the backoff nor forgets the limit. The changed records make the
    ledger `changed`, so they are written with the rest before any request."""
    desired = {(d.cluster, d.name): d for d in decisions.managed}
    by_cluster = dict(decisions.by_cluster)
    plans: list[ConnectorPlan] = []
    for cp in plan.connectors:
        own = by_cluster.get(cp.cluster)
        d = desired.get((cp.cluster, cp.connector))
        entry = own.ledger.entries.get(cp.connector) if own is not None else None
        state = live.get(cp.cluster)
        if own is None or d is None or entry is None or state is None:
            plans.append(cp)
            continue
        try:
            record = RestartRecord.from_json(entry.restart) if entry.restart else RestartRecord()
        except ValueError:
            record = RestartRecord()  # a hand-edited counter: start again rather than guess
            log.warning("restart counter unreadable; reset", connector=cp.connector, cluster=cp.cluster)
        action, new, note = restart_action(
            d, state.connectors.get(cp.connector), record, policy, now=now, version=state.version
        )
        if new != record:
            stored = {} if new == RestartRecord() else new.to_json()
            entries = {**own.ledger.entries, cp.connector: replace(entry, restart=stored)}
            own = replace(own, ledger=own.ledger.with_entries(entries), changed=True)
            by_cluster[cp.cluster] = own
        actions = cp.actions + ((action,) if action is not None else ())
        plans.append(replace(cp, actions=actions, restart=note or cp.restart))
    return replace(plan, connectors=tuple(plans)), replace(decisions, by_cluster=by_cluster)


def with_recreations(
    plan: Plan, decisions: Decisions, live: Mapping[str, ClusterState], *, now: datetime
) -> tuple[Plan, Decisions]:
    """Mark every create of a connector its ledger entry says existed (`core/recreation.py`): the plan
    gets the reason and the count, the entry the new count, so the ledger is written with it before the
    create is sent and the next pass, run or replica goes on counting. An unconfirmed create whose
    connector the listing shows is noted confirmed, so that a later disappearance counts too."""
    by_cluster = dict(decisions.by_cluster)
    plans: list[ConnectorPlan] = []
    for cp in plan.connectors:
        own = by_cluster.get(cp.cluster)
        entry = own.ledger.entries.get(cp.connector) if own is not None else None
        state = live.get(cp.cluster)
        if own is None or entry is None or state is None:
            plans.append(cp)
            continue
        found = None
        if any(a.kind is ActionKind.CREATE for a in cp.actions):
            found = recreation(entry, now=now)
            updated = found.entry if found is not None else None
        else:
            updated = confirmed_by_listing(entry, now=now) if cp.connector in state.connectors else None
        if updated is not None:
            entries = {**own.ledger.entries, cp.connector: updated}
            by_cluster[cp.cluster] = replace(own, ledger=own.ledger.with_entries(entries), changed=True)
        plans.append(replace(cp, reason=found.reason, recreated=found.count) if found is not None else cp)
    return replace(plan, connectors=tuple(plans)), replace(decisions, by_cluster=by_cluster)
