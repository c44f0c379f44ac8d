"""Plan -> writes to Kafka Connect, up to `max_in_flight` connectors per cluster at a time (1: one after
the other); returns an Outcome per action, in plan order.

I/O (through ConnectClient). One connector's failure never stops the others; within a connector, a
failed action skips the ones after it (no pause after a rejected update). Rules that keep "done" true:
- A write whose answer was lost (reset, read timeout, 500 "Request timed out", a gateway's 502/504)
  has an unknown outcome: before it is retried the connector is re-read, and the write is skipped if
  it already took effect. An identical config is never written twice (Connect restarts on each write).
- A restart (auto-restart) whose answer was lost is not sent again: it counts as done, with the unknown
  outcome in its message. Connect runs restarts asynchronously, so a re-read could not tell a restart that
  landed from one still queued, and a second one would restart tasks the first just started; the attempt
  is counted already (see `core.restarts`), and the next pass sees whether the connector still fails.
- A create follows the wire steps the plan chose; a worker that refuses `initial_state` (an old or
  mis-versioned worker) gets PUT-then-pause/stop instead.
- A per-cluster breaker: once one action exhausted its retries because Connect was unavailable, the
  rest of that cluster's actions in this pass are skipped at once (reported, retryable) instead of
  each waiting out the same budget.
- A shutdown ends retry sleeps at once; the actions not started are not sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import structlog

from reconciler.clients.connect import ConnectClient
from reconciler.errors import (
    ConnectApiError,
    ConnectConflict,
    ConnectRequestInvalid,
    ConnectUnavailable,
    ShuttingDown,
)
from reconciler.model import Action, ActionKind, ConnectorPlan, CreateMethod, DesiredState, Outcome, Plan
from reconciler.retrying import RetryPolicy

log = structlog.get_logger("reconciler.executor")

_STATE_AFTER = {ActionKind.PAUSE: "PAUSED", ActionKind.STOP: "STOPPED", ActionKind.RESUME: "RUNNING"}


def _set_initial_state(action: Action, client: ConnectClient) -> None:
    """The second step of a create by PUT (pause and stop are idempotent, so resending one is harmless)."""
    state = action.initial_state or DesiredState.RUNNING
    if state is DesiredState.PAUSED:
        client.pause(action.connector)
    elif state is DesiredState.STOPPED:
        client.stop(action.connector)


def _put_then_state(action: Action, client: ConnectClient) -> None:
    client.put_config(action.connector, action.config or {})
    _set_initial_state(action, client)


def _finished_after_unknown(action: Action, client: ConnectClient) -> bool:
    """After an unknown outcome: re-read; True when the write landed and nothing is left to send. A create
    by PUT whose config landed still needs its pause/stop step, which is sent here (never the config again)."""
    if action.kind is ActionKind.DELETE:
        return action.connector not in client.list_names()
    live = client.get_connector(action.connector)
    if live is None:
        return False
    if action.kind in (ActionKind.CREATE, ActionKind.UPDATE):
        if dict(live.config) != dict(action.config or {}):
            return False
        if action.kind is ActionKind.CREATE and action.create_via is not CreateMethod.POST_INITIAL_STATE:
            _set_initial_state(action, client)
        return True
    return live.state == _STATE_AFTER.get(action.kind)


def _create(action: Action, client: ConnectClient) -> None:
    config = action.config or {}
    state = action.initial_state or DesiredState.RUNNING
    if action.create_via is not CreateMethod.POST_INITIAL_STATE:
        _put_then_state(action, client)
        return
    try:
        client.create(action.connector, config, initial_state=state.value)
    except ConnectRequestInvalid as exc:
        if "initial_state" not in str(exc):
            raise
        log.warning("the worker refused initial_state; creating with PUT", connector=action.connector)
        _put_then_state(action, client)
    except ConnectConflict as exc:
        if not exc.already_exists:
            raise
        # Created meanwhile (or our own earlier attempt landed): converge through the update path.
        if client.get_config(action.connector) != dict(config):
            client.put_config(action.connector, config)


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
        case ActionKind.RESTART:
            client.restart(action.connector)


def execute_action(action: Action, client: ConnectClient, *, retry: RetryPolicy) -> Outcome:
    unknown = False

    def attempt() -> None:
        nonlocal unknown
        if unknown and action.kind is ActionKind.RESTART:
            log.info("a restart's outcome is unknown; not sending it again", connector=action.connector)
            return
        if unknown and _finished_after_unknown(action, client):
            log.info("an earlier attempt took effect; not sending it again", connector=action.connector)
            return
        try:
            _perform(action, client)
        except ConnectApiError as exc:
            unknown = unknown or exc.outcome_unknown
            raise

    try:
        retry.call(attempt)
    except ShuttingDown as exc:
        return Outcome(action, ok=False, message=f"interrupted: {exc}", retryable=True)
    except ConnectApiError as exc:
        return Outcome(
            action,
            ok=False,
            message=str(exc),
            http_status=exc.status,
            retryable=exc.retryable,
            unavailable=isinstance(exc, ConnectUnavailable),
        )
    if unknown and action.kind is ActionKind.RESTART:
        return Outcome(action, ok=True, message="sent; its outcome is unknown (the next pass checks it)")
    return Outcome(action, ok=True, message="done")


def apply_plan(
    plan: Plan,
    clients: Mapping[str, ConnectClient],
    *,
    retry: RetryPolicy,
    on_outcome: Callable[[Outcome], None] | None = None,
    should_continue: Callable[[], bool] = lambda: True,
    max_in_flight: int = 1,
) -> list[Outcome]:
    """`should_continue` is asked before every action: a shutdown finishes the actions in flight only,
    and once it said no, no action of this pass starts (a lease regained mid-pass does not resume it).

    Up to `max_in_flight` connectors per cluster are worked on at once (each connector's actions stay
    in order, one after the other); `on_outcome` is called from one thread at a time, and the outcomes
    come back in plan order whatever order they finished in."""
    breakers: dict[str, str] = {}  # cluster -> the failure that opened it
    lock = threading.Lock()
    halted = threading.Event()

    def may_start() -> bool:
        if halted.is_set():
            return False
        if should_continue():
            return True
        halted.set()
        return False

    def report(outcome: Outcome) -> None:
        if on_outcome is not None:
            with lock:
                on_outcome(outcome)

    def one_connector(connector_plan: ConnectorPlan) -> list[Outcome]:
        client = clients[connector_plan.cluster]
        done: list[Outcome] = []
        for action in connector_plan.actions:
            if not may_start():
                break
            with lock:
                opened = breakers.get(action.cluster)
            if opened is not None:
                outcome = Outcome(
                    action,
                    ok=False,
                    message=f"skipped: cluster {action.cluster} is unavailable ({opened})",
                    retryable=True,
                    skipped=True,
                )
            else:
                started = time.perf_counter()
                outcome = execute_action(action, client, retry=retry)
                outcome = replace(outcome, duration_s=round(time.perf_counter() - started, 6))
                if outcome.unavailable:
                    with lock:
                        breakers.setdefault(action.cluster, outcome.message)
            done.append(outcome)
            report(outcome)
            if not outcome.ok:
                break
        return done

    def guarded(connector_plan: ConnectorPlan) -> list[Outcome]:
        try:
            return one_connector(connector_plan)
        except BaseException:
            # A bug or a failing observer: the caller sees it; the other workers start nothing more.
            halted.set()
            raise

    if max_in_flight <= 1:
        outcomes: list[Outcome] = []
        for connector_plan in plan.connectors:
            if halted.is_set():
                break
            outcomes += one_connector(connector_plan)
        return outcomes
    # One bounded pool per cluster, so a slow cluster never holds up another's share.
    by_cluster: dict[str, list[int]] = {}
    for i, connector_plan in enumerate(plan.connectors):
        if connector_plan.actions:
            by_cluster.setdefault(connector_plan.cluster, []).append(i)
    results: dict[int, list[Outcome]] = {}
    pools = [
        ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix=f"apply-{cluster}")
        for cluster in by_cluster
    ]
    try:
        futures = {
            i: pool.submit(guarded, plan.connectors[i])
            for pool, indexes in zip(pools, by_cluster.values(), strict=True)
            for i in indexes
        }
        for i, future in futures.items():
            results[i] = future.result()
    except BaseException:
        halted.set()  # the workers still running finish their action and start no other
        raise
    finally:
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)
    return [o for i in sorted(results) for o in results[i]]
