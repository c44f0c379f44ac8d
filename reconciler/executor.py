"""Plan -> writes to Kafka Connect, one connector at a time; returns an Outcome per action.

I/O (through ConnectClient). One connector's failure never stops the others; within a connector, a
failed action skips the ones after it (no pause after a rejected update). A 500 "Request timed out"
leaves the outcome unknown, so before retrying such a write the connector is re-read and the write is
skipped if it already took effect.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from reconciler.clients.connect import ConnectClient
from reconciler.core.observation import supports_initial_state
from reconciler.errors import ConnectApiError, ConnectConflict, ConnectRequestTimeout
from reconciler.model import Action, ActionKind, DesiredState, Outcome, Plan
from reconciler.retrying import RetryPolicy

_STATE_AFTER = {ActionKind.PAUSE: "PAUSED", ActionKind.STOP: "STOPPED", ActionKind.RESUME: "RUNNING"}


def _already_done(action: Action, client: ConnectClient) -> bool:
    """After an unknown outcome: did the write land anyway?"""
    if action.kind is ActionKind.DELETE:
        return action.connector not in client.list_names()
    live = client.get_connector(action.connector)
    if live is None:
        return False
    if action.kind in (ActionKind.CREATE, ActionKind.UPDATE):
        return dict(live.config) == dict(action.config or {})
    return live.state == _STATE_AFTER.get(action.kind)


def _create(action: Action, client: ConnectClient) -> None:
    config = action.config or {}
    state = action.initial_state or DesiredState.RUNNING
    if supports_initial_state(client.version()):
        try:
            client.create(action.connector, config, initial_state=state.value)
        except ConnectConflict as exc:
            if not exc.already_exists:
                raise
            # Created meanwhile (or our own earlier attempt landed): converge through the update path.
            if client.get_config(action.connector) != dict(config):
                client.put_config(action.connector, config)
        return
    client.put_config(action.connector, config)
    if state is DesiredState.PAUSED:
        client.pause(action.connector)
    elif state is DesiredState.STOPPED:
        client.stop(action.connector)


def _perform(action: Action, client: ConnectClient) -> None:
    match action.kind:
        case ActionKind.CREATE:
            _create(action, client)
        case ActionKind.UPDATE:
            client.put_config(action.connector, action.config or {})
        case ActionKind.PAUSE:
            client.pause(action.connector)
        case ActionKind.RESUME:
            client.resume(action.connector)
        case ActionKind.STOP:
            client.stop(action.connector)
        case ActionKind.DELETE:
            client.delete(action.connector)


def execute_action(action: Action, client: ConnectClient, *, retry: RetryPolicy) -> Outcome:
    unknown = False

    def attempt() -> None:
        nonlocal unknown
        if unknown and _already_done(action, client):
            return
        try:
            _perform(action, client)
        except ConnectRequestTimeout:
            unknown = True
            raise

    try:
        retry.call(attempt)
    except ConnectApiError as exc:
        return Outcome(action, ok=False, message=str(exc), http_status=exc.status, retryable=exc.retryable)
    return Outcome(action, ok=True, message="done")


def apply_plan(
    plan: Plan,
    clients: Mapping[str, ConnectClient],
    *,
    retry: RetryPolicy,
    on_outcome: Callable[[Outcome], None] | None = None,
    should_continue: Callable[[], bool] = lambda: True,
) -> list[Outcome]:
    """`should_continue` is asked before every action: a shutdown finishes the action in flight only."""
    outcomes: list[Outcome] = []
    for connector_plan in plan.connectors:
        client = clients[connector_plan.cluster]
        for action in connector_plan.actions:
            if not should_continue():
                return outcomes
            outcome = execute_action(action, client, retry=retry)
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
            if not outcome.ok:
                break
    return outcomes
