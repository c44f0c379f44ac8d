"""Auto-restart, pure: Strimzi's schedule, the reset rule, max_restarts, who is never restarted, the
template's "autoRestart", the planner's `restart_action`, and how plans and the status show it."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from reconciler.core.planning import restart_action
from reconciler.core.redaction import Redactor
from reconciler.core.rendering import desired_from_document, render_connector
from reconciler.core.restarts import (
    AutoRestart,
    RestartRecord,
    decide,
    describe,
    failing,
    failure_reason,
    interval_minutes,
    supports_restart,
)
from reconciler.errors import RenderError
from reconciler.model import (
    Action,
    ActionKind,
    ClusterState,
    ConnectorPlan,
    ConnectorSpec,
    DesiredConnector,
    DesiredState,
    LiveConnector,
    Plan,
    RenderInputs,
    Report,
    SourceRef,
)
from reconciler.report import render_json, render_status, render_text

T0 = 1_700_000_000.0  # an arbitrary epoch second: nothing here reads the clock
MIN = 60.0
UNLIMITED = AutoRestart()
SRC = SourceRef("ns/cm", "c.json")


def live(state: str | None = "RUNNING", *tasks: str) -> LiveConnector:
    return LiveConnector("c", {"name": "c"}, state, tasks or ("RUNNING",))


FAILED_TASK = live("RUNNING", "FAILED")


def desired(state: DesiredState = DesiredState.RUNNING, **kwargs: Any) -> DesiredConnector:
    return DesiredConnector("c", {"name": "c"}, state, "default", kwargs.pop("enabled", True), SRC, **kwargs)


# --- the schedule ------------------------------------------------------------------------------------

SCHEDULE = [0, 2, 6, 12, 20, 30, 42, 56, 60, 60, 60, 60]


@pytest.mark.parametrize(("count", "minutes"), list(enumerate(SCHEDULE)))
def test_interval_is_min_of_n_squared_plus_n_and_an_hour(count: int, minutes: int) -> None:
    assert interval_minutes(count) == minutes


@pytest.mark.parametrize(("count", "minutes"), list(enumerate(SCHEDULE)))
def test_the_next_restart_waits_exactly_the_interval_after_the_last(count: int, minutes: int) -> None:
    record = RestartRecord(count, last_restart=T0, last_failure=T0)
    if minutes:
        early = decide(FAILED_TASK, record, UNLIMITED, now=T0 + minutes * MIN - 1)
        assert not early.restart and early.next_allowed == T0 + minutes * MIN
        assert early.record == replace(record, last_failure=T0 + minutes * MIN - 1)  # not counted
    due = decide(FAILED_TASK, record, UNLIMITED, now=T0 + minutes * MIN)
    assert due.restart
    assert due.record == RestartRecord(count + 1, T0 + minutes * MIN, T0 + minutes * MIN)
    assert due.next_allowed == T0 + minutes * MIN + interval_minutes(count + 1) * MIN


def test_a_connector_failing_for_good_is_restarted_at_strimzis_cumulative_times() -> None:
    """Polled every minute for five hours: restarts 0, 2, 6, 12, ... minutes after the previous one."""
    record, times = RestartRecord(), []
    for minute in range(5 * 60):
        decision = decide(FAILED_TASK, record, UNLIMITED, now=T0 + minute * MIN)
        record = decision.record
        if decision.restart:
            times.append(minute)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert times[0] == 0 and gaps == [2, 6, 12, 20, 30, 42, 56, 60, 60]
    assert record.count == len(times)


def test_the_first_failure_is_restarted_at_once() -> None:
    decision = decide(live("FAILED"), RestartRecord(), UNLIMITED, now=T0)
    assert decision.restart and decision.record == RestartRecord(1, T0, T0)
    assert decision.next_allowed == T0 + 2 * MIN and decision.reason == "connector failed"


def test_a_clock_that_went_back_only_delays_the_restart() -> None:
    decision = decide(FAILED_TASK, RestartRecord(1, T0, T0), UNLIMITED, now=T0 - 3600)
    assert not decision.restart and decision.next_allowed == T0 + 2 * MIN


# --- the reset rule ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("count", "minutes"), list(enumerate(SCHEDULE)))
def test_the_count_resets_after_longer_than_the_interval_without_failure(count: int, minutes: int) -> None:
    record = RestartRecord(count, last_restart=T0 - 600, last_failure=T0)
    kept = decide(live(), record, UNLIMITED, now=T0 + minutes * MIN)  # not longer than: kept
    assert not kept.restart and kept.record == record
    reset = decide(live(), record, UNLIMITED, now=T0 + minutes * MIN + 1)
    assert not reset.restart and reset.record == RestartRecord()


def test_a_failure_moves_the_reset_and_a_record_without_last_failure_uses_the_restart() -> None:
    record = RestartRecord(3, last_restart=T0)
    assert decide(live(), record, UNLIMITED, now=T0 + 12 * MIN).record == record
    assert decide(live(), record, UNLIMITED, now=T0 + 12 * MIN + 1).record == RestartRecord()
    # Failing again 5 minutes later (still in backoff) records the failure: the reset waits from there.
    seen = decide(FAILED_TASK, record, UNLIMITED, now=T0 + 5 * MIN).record
    assert seen == RestartRecord(3, T0, T0 + 5 * MIN)
    assert decide(live(), seen, UNLIMITED, now=T0 + 13 * MIN).record == seen
    assert decide(live(), seen, UNLIMITED, now=T0 + 17 * MIN + 1).record == RestartRecord()


def test_after_a_reset_the_schedule_starts_over() -> None:
    record = decide(live(), RestartRecord(7, T0, T0), UNLIMITED, now=T0 + 57 * MIN).record
    assert record == RestartRecord()
    assert decide(FAILED_TASK, record, UNLIMITED, now=T0 + 58 * MIN).restart


# --- max_restarts ------------------------------------------------------------------------------------


def test_max_restarts_stops_after_the_limit_and_says_restart_it_by_hand() -> None:
    policy = AutoRestart(max_restarts=3)
    record, restarts = RestartRecord(), 0
    for minute in range(24 * 60):
        decision = decide(FAILED_TASK, record, policy, now=T0 + minute * MIN)
        record = decision.record
        restarts += decision.restart
    assert restarts == 3 and record.count == 3
    assert decision.limit_reached and decision.next_allowed is None and not decision.restart
    assert describe(decision, policy, now=T0) == "task failed; restart limit reached (3): restart it by hand"


def test_the_last_allowed_restart_says_so() -> None:
    policy = AutoRestart(max_restarts=2)
    decision = decide(FAILED_TASK, RestartRecord(1, T0, T0), policy, now=T0 + 2 * MIN)
    assert decision.restart and decision.next_allowed is None
    assert describe(decision, policy, now=T0) == "task failed; restart 2 of 2, the last automatic one"


def test_max_restarts_zero_never_restarts() -> None:
    decision = decide(FAILED_TASK, RestartRecord(), AutoRestart(max_restarts=0), now=T0)
    assert not decision.restart and decision.limit_reached


def test_a_manual_restart_and_a_healthy_interval_rearm_the_limit() -> None:
    policy = AutoRestart(max_restarts=1)
    record = RestartRecord(1, T0, T0 + 10 * MIN)
    assert decide(live(), record, policy, now=T0 + 12 * MIN).record == record
    assert decide(live(), record, policy, now=T0 + 12 * MIN + 1).record == RestartRecord()


# --- never restarted ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "connector",
    [
        live("RUNNING"),
        live("RUNNING", "RUNNING", "RUNNING"),
        live("RUNNING", "RESTARTING"),
        live("RUNNING", "UNASSIGNED"),
        live("PAUSED", "PAUSED"),
        LiveConnector("c", {}, "STOPPED", ()),
        LiveConnector("c", {}, "RUNNING", ()),
    ],
)
def test_healthy_is_never_restarted(connector: LiveConnector) -> None:
    assert not failing(connector)
    decision = decide(connector, RestartRecord(), UNLIMITED, now=T0)
    assert not decision.restart and decision.reason is None and decision.record == RestartRecord()
    assert describe(decision, UNLIMITED, now=T0) is None


@pytest.mark.parametrize("state", ["PAUSED", "STOPPED", "UNASSIGNED", "RESTARTING", None])
def test_a_failed_task_of_a_connector_not_running_or_failed_is_left_alone(state: str | None) -> None:
    decision = decide(live(state, "FAILED"), RestartRecord(), UNLIMITED, now=T0)
    assert not decision.restart and decision.record == RestartRecord(last_failure=T0)
    assert (
        describe(decision, UNLIMITED, now=T0)
        == f"task failed; not restarted while {state or 'without status'}"
    )


def test_auto_restart_disabled_leaves_the_record_alone() -> None:
    decision = decide(FAILED_TASK, RestartRecord(2, T0, T0), AutoRestart(enabled=False), now=T0 + 3600)
    assert not decision.restart and decision.record == RestartRecord(2, T0, T0)
    assert describe(decision, AutoRestart(False), now=T0) == "task failed; auto-restart is disabled"


@pytest.mark.parametrize(
    ("connector", "reason"),
    [
        (live("FAILED"), "connector failed"),
        (live("FAILED", "FAILED"), "connector and its task failed"),
        (live("FAILED", "FAILED", "RUNNING"), "connector and 1 of 2 tasks failed"),
        (live("RUNNING", "FAILED"), "task failed"),
        (live("RUNNING", "FAILED", "RUNNING", "FAILED"), "2 of 3 tasks failed"),
        (LiveConnector("c", {}, "FAILED", ()), "connector failed"),
    ],
)
def test_failure_reasons(connector: LiveConnector, reason: str) -> None:
    assert failing(connector) and failure_reason(connector) == reason


def test_notes_name_the_attempt_and_the_wait() -> None:
    policy = AutoRestart(max_restarts=5)
    now = T0 + 6 * MIN
    restarting = decide(FAILED_TASK, RestartRecord(2, T0, T0), policy, now=now)
    assert describe(restarting, policy, now=now) == "task failed; restart 3 of 5; next allowed in 12 min"
    waiting = decide(FAILED_TASK, restarting.record, policy, now=now + 30)
    assert describe(waiting, policy, now=now + 30) == "task failed; restart 4 of 5 allowed in 12 min"
    unlimited = decide(FAILED_TASK, RestartRecord(), UNLIMITED, now=T0)
    assert describe(unlimited, UNLIMITED, now=T0) == "task failed; restart 1; next allowed in 2 min"


# --- records and policies as JSON (ledger storage) ---------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [RestartRecord(), RestartRecord(3, T0, T0 + 1.5), RestartRecord(1, None, T0), RestartRecord(0, T0)],
)
def test_records_round_trip_through_plain_json(record: RestartRecord) -> None:
    assert RestartRecord.from_json(json.loads(json.dumps(record.to_json()))) == record


def test_record_from_json_defaults_and_refusals() -> None:
    assert RestartRecord.from_json({}) == RestartRecord()
    assert RestartRecord.from_json({"count": 2, "lastRestart": 1}) == RestartRecord(2, 1.0)
    bads: list[Any] = [[], None, {"count": -1}, {"count": True}, {"count": "2"}, {"lastRestart": "x"},
                       {"lastFailure": float("nan")}, {"lastRestart": float("inf")}, {"extra": 1}]  # fmt: skip
    for bad in bads:
        with pytest.raises(ValueError, match="not a restart record"):
            RestartRecord.from_json(bad)


def test_policies_round_trip_through_plain_json() -> None:
    for policy in (AutoRestart(), AutoRestart(False), AutoRestart(True, 0), AutoRestart(True, 7)):
        assert AutoRestart.from_json(json.loads(json.dumps(policy.to_json()))) == policy
    with pytest.raises(ValueError, match="auto-restart policy"):
        AutoRestart.from_json({"maxRestarts": -1})


# --- the template's "autoRestart" --------------------------------------------------------------------


def render(extra: dict[str, Any]) -> DesiredConnector:
    doc = {"name": "c", "config": {"connector.class": "X"}, **extra}
    return desired_from_document(doc, spec=ConnectorSpec(SRC, "", True), redactor=Redactor(frozenset()))


@pytest.mark.parametrize(
    ("value", "policy"),
    [
        (True, AutoRestart()),
        (False, AutoRestart(enabled=False)),
        ({}, AutoRestart()),
        ({"enabled": False}, AutoRestart(enabled=False)),
        ({"maxRestarts": 5}, AutoRestart(max_restarts=5)),
        ({"enabled": True, "maxRestarts": 0}, AutoRestart(max_restarts=0)),
        ({"maxRestarts": Decimal("3.0")}, AutoRestart(max_restarts=3)),
        ({"maxRestarts": Decimal("1E+1")}, AutoRestart(max_restarts=10)),
    ],
)
def test_auto_restart_field(value: Any, policy: AutoRestart) -> None:
    assert render({"autoRestart": value}).auto_restart == policy


def test_auto_restart_absent_means_the_default_policy() -> None:
    assert render({}).auto_restart is None


SHAPE = '"autoRestart" must be true, false or {"enabled": bool, "maxRestarts": int}'


@pytest.mark.parametrize(
    "value",
    [
        None,
        "true",
        1,
        [True],
        {"enabled": "yes"},
        {"enabled": None},
        {"maxRestarts": -1},
        {"maxRestarts": Decimal("2.5")},
        {"maxRestarts": Decimal("1E+999999")},
        {"maxRestarts": 2**31},
        {"maxRestarts": True},
        {"maxRestarts": "3"},
        {"maxRestarts": None},
        {"maxRestarts": {}},
        {"limit": 3},
    ],
)
def test_auto_restart_refusals_are_one_line(value: Any) -> None:
    with pytest.raises(RenderError, match=re.escape(SHAPE)) as caught:
        render({"autoRestart": value})
    assert "\n" not in str(caught.value)


def test_auto_restart_through_jq() -> None:
    program = '{"name": "c", "config": {"connector.class": "X"}, "autoRestart": {"maxRestarts": 4}}'
    rendered = render_connector(ConnectorSpec(SRC, program, True), inputs=RenderInputs())
    assert rendered.auto_restart == AutoRestart(max_restarts=4)


# --- the planner's restart_action --------------------------------------------------------------------


def test_restart_action_plans_the_restart_and_counts_it() -> None:
    action, record, note = restart_action(desired(), FAILED_TASK, RestartRecord(), UNLIMITED, now=T0)
    assert action == Action(ActionKind.RESTART, "c", "default")
    assert action.wire_steps == ("POST /connectors/c/restart?includeTasks=true&onlyFailed=true",)
    assert record == RestartRecord(1, T0, T0) and note == "task failed; restart 1; next allowed in 2 min"


@pytest.mark.parametrize(
    "which",
    [
        desired(DesiredState.PAUSED),
        desired(DesiredState.STOPPED),
        desired(enabled=False),
    ],
)
def test_restart_action_never_touches_paused_stopped_or_disabled(which: DesiredConnector) -> None:
    record = RestartRecord(2, T0, T0)
    assert restart_action(which, FAILED_TASK, record, UNLIMITED, now=T0 + 3600) == (None, record, None)


def test_restart_action_without_a_live_connector_does_nothing() -> None:
    assert restart_action(desired(), None, RestartRecord(1, T0), UNLIMITED, now=T0) == (
        None,
        RestartRecord(1, T0),
        None,
    )


def test_the_connectors_own_policy_overrides_the_default() -> None:
    off = desired(auto_restart=AutoRestart(enabled=False))
    action, record, note = restart_action(off, FAILED_TASK, RestartRecord(), UNLIMITED, now=T0)
    assert action is None and record == RestartRecord() and note == "task failed; auto-restart is disabled"
    limited = desired(auto_restart=AutoRestart(max_restarts=1))
    action, _, note = restart_action(limited, FAILED_TASK, RestartRecord(1, T0), UNLIMITED, now=T0 + 3600)
    assert action is None and note == "task failed; restart limit reached (1): restart it by hand"
    action, _, _ = restart_action(desired(), FAILED_TASK, RestartRecord(), AutoRestart(False), now=T0)
    assert action is None


@pytest.mark.parametrize(("version", "supported"), [("2.8.2", False), ("6.2.0-ccs", False), ("3.0.0", True),
                                                    ("7.0.1-ce", True), ("4.1.1", True), (None, True)])  # fmt: skip
def test_workers_before_kafka_3_get_no_automatic_restart(version: str | None, supported: bool) -> None:
    assert supports_restart(version) is supported
    action, record, note = restart_action(
        desired(), FAILED_TASK, RestartRecord(), UNLIMITED, now=T0, version=version
    )
    assert (action is not None) is supported
    if not supported:
        assert record == RestartRecord() and note is not None and "Kafka 3.0" in note


# --- plans and status --------------------------------------------------------------------------------


def plan_with(actions: tuple[Action, ...], note: str | None, live_state: str = "RUNNING") -> Report:
    cp = ConnectorPlan(
        "c", "default", SRC, actions, live_state=live_state, desired_state=DesiredState.RUNNING, restart=note
    )
    return Report(Plan((cp,)))


def test_a_planned_restart_in_the_text_and_json_plan() -> None:
    report = plan_with(
        (Action(ActionKind.RESTART, "c", "default"),), "task failed; restart 1; next allowed in 2 min"
    )
    redactor = Redactor(frozenset())
    text = render_text(report, redactor=redactor)
    assert (
        "~ restart c @default (task failed; restart 1; next allowed in 2 min)  (ConfigMap ns/cm key c.json)"
        in text
    )
    assert "1 to restart, " in text
    doc = json.loads(render_json(report, redactor=redactor))
    assert doc["summary"]["restart"] == 1
    assert doc["connectors"][0]["restart"] == "task failed; restart 1; next allowed in 2 min"
    assert doc["connectors"][0]["wire_steps"] == [
        "POST /connectors/c/restart?includeTasks=true&onlyFailed=true"
    ]


def test_a_limit_reached_shows_on_an_in_sync_connector() -> None:
    note = "task failed; restart limit reached (5): restart it by hand"
    text = render_text(plan_with((), note), redactor=Redactor(frozenset()))
    assert text.splitlines()[:2] == ["= c @default: in sync [RUNNING]", f"    [RUNNING] ({note})"]
    assert "to restart" not in text


def test_status_shows_the_restart_count_from_the_ledger() -> None:
    from reconciler.core.ledger import Entry, Ledger  # noqa: PLC0415
    from reconciler.core.status import status_rows  # noqa: PLC0415

    state = {"default": ClusterState("default", {"c": FAILED_TASK})}
    ledger = Ledger("default", {"c": Entry("c", "ns/cm", restart={"count": 3, "lastRestart": 1.0})})
    [row] = status_rows([desired()], state, {"default": ledger})
    assert (row.restarts, row.tasks, row.ok) == (3, ("FAILED",), False)
    out = render_status([row], redactor=Redactor(frozenset()))
    assert out.splitlines()[1].split()[:8] == ["c", "default", "running", "RUNNING", "1", "FAILED", "no", "-"]
    assert out.splitlines()[1].split()[-3:] == ["3", "0", "-"]  # RESTARTS, RECREATED, ERROR
