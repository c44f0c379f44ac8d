"""Desired connectors + live cluster state -> a Plan: which writes, for which connector, and why.

Pure. Rules (see README "What the reconciler changes"):
- a config is written only when it differs from the live one, key by key, as strings;
- a connector that no ConfigMap declares is never touched;
- a connector is deleted only when a present ConfigMap declares it with `enabled: "false"`;
- a name declared by two ConfigMap keys (same cluster) is an error and nothing is written for it;
- a connector UNASSIGNED or RESTARTING gets no state write (its target state is not visible);
- how a create is sent (POST with initial_state, or PUT then pause/stop) follows the worker's version;
- a FAILED connector or task is restarted only when declared, enabled and desired RUNNING, with Strimzi's
  backoff (`restart_action`, `core.restarts`).
`ConfigChange` values are already masked — the live side under the same rules as the desired side (see
`secret_change`) — so a Plan can be printed or serialised as it is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from reconciler.core.redaction import Redactor, mask, references_secret
from reconciler.core.restarts import decide, describe, supports_restart
from reconciler.core.versions import supports_initial_state
from reconciler.model import (
    Action,
    ActionKind,
    AutoRestart,
    ClusterState,
    ConfigChange,
    ConnectorPlan,
    CreateMethod,
    DesiredConnector,
    DesiredState,
    LiveConnector,
    Plan,
    Problem,
    RestartRecord,
)

_STATE_ACTION: Mapping[DesiredState, tuple[ActionKind, frozenset[str]]] = {
    # desired state -> (action, live states that need it). Unknown (None) status never triggers a write.
    DesiredState.RUNNING: (ActionKind.RESUME, frozenset({"PAUSED", "STOPPED"})),
    DesiredState.PAUSED: (ActionKind.PAUSE, frozenset({"RUNNING", "STOPPED", "FAILED"})),
    DesiredState.STOPPED: (ActionKind.STOP, frozenset({"RUNNING", "PAUSED", "FAILED"})),
}
# Right after a rebalance or a worker restart connectors show these for a while; their target state is
# not visible, so a state write would be a guess. The next pass decides.
_TRANSITIONAL = {"UNASSIGNED": "waiting for assignment", "RESTARTING": "waiting for the restart to finish"}


def secret_change(
    key: str, before: str | None, after: str | None, desired: DesiredConnector, *, redactor: Redactor
) -> bool:
    """Whether a change shows digests instead of values. Both sides follow the same rules, so the live
    side is masked even when only it holds the secret: the key is credential-like, or is one of the
    desired connector's `secret_keys`, or either value holds a known secret in any encoding, or either
    value is a config-provider reference to a secret-named item — the value it replaces is then that
    secret in clear, known or not (`${env:API_TOKEN}` after `--env-allow` dropped API_TOKEN)."""
    if key in desired.secret_keys:
        return True
    values = [v for v in (before, after) if v is not None]
    return any(redactor.is_secret_field(key, v) or references_secret(v) for v in values)


def diff_config(
    desired: DesiredConnector, live: Mapping[str, str], *, redactor: Redactor
) -> tuple[ConfigChange, ...]:
    """Added, removed and changed keys, sorted by key, with secret values masked (`secret_change`)."""
    changes: list[ConfigChange] = []
    for key in sorted(set(desired.config) | set(live)):
        before, after = live.get(key), desired.config.get(key)
        if before == after:
            continue
        secret = secret_change(key, before, after, desired, redactor=redactor)
        if secret:
            before = None if before is None else mask(before)
            after = None if after is None else mask(after)
        changes.append(ConfigChange(key, before, after, secret))
    return tuple(changes)


def state_action(desired: DesiredState, live_state: str | None) -> ActionKind | None:
    kind, needs = _STATE_ACTION[desired]
    return kind if live_state in needs else None


def create_method(version: str | None) -> CreateMethod:
    if supports_initial_state(version):
        return CreateMethod.POST_INITIAL_STATE
    return CreateMethod.PUT_THEN_STATE


def plan_connector(
    desired: DesiredConnector, live: LiveConnector | None, *, redactor: Redactor, version: str | None = None
) -> ConnectorPlan:
    """`version` is the worker's (from `GET /`): it decides how a create goes over the wire."""
    name, cluster = desired.name, desired.cluster
    if not desired.enabled:
        deletes = (Action(ActionKind.DELETE, name, cluster),) if live is not None else ()
        return ConnectorPlan(name, cluster, desired.source, deletes, live_state=live.state if live else None)
    if live is None:
        create = Action(
            ActionKind.CREATE,
            name,
            cluster,
            config=desired.config,
            initial_state=desired.state,
            create_via=create_method(version),
        )
        changes = diff_config(desired, {}, redactor=redactor)
        return ConnectorPlan(name, cluster, desired.source, (create,), changes, desired_state=desired.state)
    changes = diff_config(desired, live.config, redactor=redactor)
    actions: list[Action] = []
    if changes:
        actions.append(Action(ActionKind.UPDATE, name, cluster, config=desired.config))
    kind = state_action(desired.state, live.state)
    if kind is not None:
        actions.append(Action(kind, name, cluster))
    waiting = _TRANSITIONAL.get(live.state or "")
    return ConnectorPlan(
        name, cluster, desired.source, tuple(actions), changes, live.state, desired.state, waiting
    )


def restart_action(
    desired: DesiredConnector,
    live: LiveConnector | None,
    record: RestartRecord,
    policy: AutoRestart,
    *,
    now: float,
    version: str | None = None,
) -> tuple[Action | None, RestartRecord, str | None]:
    """Auto-restart for one declared connector: (the RESTART action or None, the record to store, the
    note for `ConnectorPlan.restart`). `policy` is the default, which `desired.auto_restart` overrides;
    `now` is epoch seconds; `version` is the worker's (a worker known to predate Kafka 3.0 gets none).

    Only a connector the reconciler would keep is a candidate: enabled (a disabled one is being deleted)
    and desired RUNNING (PAUSED or STOPPED on purpose stays so); otherwise the record is returned as it
    came. The caller appends the action after the connector's other actions: after a config update it is
    harmless, since `onlyFailed=true` leaves whatever the update restarted alone. The record counts the
    restart already (see `core.restarts`): store it only when the plan is applied, not in a dry run."""
    if not desired.enabled or live is None or desired.state is not DesiredState.RUNNING:
        return None, record, None
    effective = desired.auto_restart if desired.auto_restart is not None else policy
    if supports_restart(version):
        decision = decide(live, record, effective, now=now)
    else:  # decided as if disabled, so the record stays as it is; the note says why
        decision = decide(live, record, AutoRestart(enabled=False), now=now)
        if decision.failing:
            decision = replace(decision, held=f"auto-restart needs Kafka 3.0 or later (worker {version})")
    action = Action(ActionKind.RESTART, desired.name, desired.cluster) if decision.restart else None
    return action, decision.record, describe(decision, effective, now=now)


def split_duplicates(desired: Iterable[DesiredConnector]) -> tuple[list[DesiredConnector], list[Problem]]:
    """A name declared twice on one cluster is ambiguous: neither copy is used, each gets a Problem."""
    by_key: dict[tuple[str, str], list[DesiredConnector]] = defaultdict(list)
    for d in desired:
        by_key[(d.cluster, d.name)].append(d)
    unique: list[DesiredConnector] = []
    problems: list[Problem] = []
    for (cluster, name), group in by_key.items():
        if len(group) == 1:
            unique.append(group[0])
            continue
        where = "; ".join(str(d.source) for d in group)
        for d in group:
            problems.append(
                Problem(
                    f"declared more than once ({where}); nothing is written for it", d.source, name, cluster
                )
            )
    return unique, problems


def build_plan(
    desired: Sequence[DesiredConnector],
    live: Mapping[str, ClusterState],
    *,
    redactor: Redactor,
    problems: Sequence[Problem] = (),
) -> Plan:
    """One ConnectorPlan per declared connector that was observed (its cluster listed, or, in a targeted
    pass, the connector read by name), sorted by cluster and name."""
    unique, dup_problems = split_duplicates(desired)
    plans = [
        plan_connector(
            d, live[d.cluster].connectors.get(d.name), redactor=redactor, version=live[d.cluster].version
        )
        for d in unique
        # A placeholder (known by name only) is never planned; the pipeline renders one it would plan.
        if d.cluster in live and live[d.cluster].sees(d.name) and not d.placeholder
    ]
    plans.sort(key=lambda p: (p.cluster, p.connector))
    return Plan(tuple(plans), tuple(problems) + tuple(dup_problems))


_LIVE_STATE = {
    DesiredState.RUNNING: "RUNNING",
    DesiredState.PAUSED: "PAUSED",
    DesiredState.STOPPED: "STOPPED",
}


def unconverged(desired: Sequence[DesiredConnector], live: Mapping[str, ClusterState]) -> list[str]:
    """Names of declared connectors whose live state is not yet the desired one (tasks included)."""
    pending: list[str] = []
    for d in desired:
        cluster = live.get(d.cluster)
        found = cluster.connectors.get(d.name) if cluster else None
        if not d.enabled:
            if found is not None or cluster is None:
                pending.append(d.name)
            continue
        want = _LIVE_STATE[d.state]
        # A running connector is settled only once its tasks exist and share its state. A paused one may
        # have none: Kafka 4.1 gives a connector created paused no tasks until it is resumed.
        no_tasks_yet = d.state is DesiredState.RUNNING and found is not None and not found.tasks
        if found is None or found.state != want or no_tasks_yet or any(t != want for t in found.tasks):
            pending.append(d.name)
    return sorted(pending)
