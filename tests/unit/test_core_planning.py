"""Pure core: diff and plan, table-driven on plain values."""

from __future__ import annotations

import pytest

from reconciler.core.planning import build_plan, diff_config, state_action, unconverged
from reconciler.core.redaction import Redactor, mask
from reconciler.core.versions import kafka_version
from reconciler.model import (
    ActionKind,
    ClusterState,
    CreateMethod,
    DesiredConnector,
    DesiredState,
    LiveConnector,
    SourceRef,
)

R = Redactor(frozenset({"hunter2-secret"}))


def desired(
    name: str = "c",
    *,
    config: dict[str, str] | None = None,
    state: DesiredState = DesiredState.RUNNING,
    enabled: bool = True,
    cluster: str = "default",
    key: str = "k",
) -> DesiredConnector:
    cfg = {"name": name, "connector.class": "X", **(config or {})}
    return DesiredConnector(name, cfg, state, cluster, enabled, SourceRef("ns/cm", key), R.secret_keys(cfg))


def live(
    name: str = "c", *, config: dict[str, str] | None = None, state: str | None = "RUNNING"
) -> LiveConnector:
    return LiveConnector(name, {"name": name, "connector.class": "X", **(config or {})}, state)


def cluster(*connectors: LiveConnector, name: str = "default") -> dict[str, ClusterState]:
    return {name: ClusterState(name, {c.name: c for c in connectors}, "4.1.1")}


def kinds(plan_: object) -> list[tuple[str, str]]:
    return [(a.connector, a.kind.value) for a in plan_.actions]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("d", "live_connectors", "expected"),
    [
        (desired(), (), [("c", "create")]),
        (desired(), (live(),), []),
        (desired(config={"tasks.max": "2"}), (live(config={"tasks.max": "1"}),), [("c", "update")]),
        (desired(enabled=False), (live(),), [("c", "delete")]),
        (desired(enabled=False), (), []),
        (desired(state=DesiredState.PAUSED), (live(),), [("c", "pause")]),
        (desired(state=DesiredState.STOPPED), (live(state="PAUSED"),), [("c", "stop")]),
        (desired(), (live(state="PAUSED"),), [("c", "resume")]),
        (desired(), (live(state="STOPPED"),), [("c", "resume")]),
        (desired(), (live(state="FAILED"),), []),
        (desired(state=DesiredState.PAUSED), (live(state=None),), []),  # unknown status: no blind write
        (
            desired(state=DesiredState.PAUSED, config={"a": "1"}),
            (live(state="RUNNING"),),
            [("c", "update"), ("c", "pause")],
        ),
    ],
)
def test_plan_table(
    d: DesiredConnector, live_connectors: tuple[LiveConnector, ...], expected: list[tuple[str, str]]
) -> None:
    assert kinds(build_plan([d], cluster(*live_connectors), redactor=R)) == expected


def test_create_carries_initial_state_and_full_config() -> None:
    plan = build_plan([desired(state=DesiredState.STOPPED)], cluster(), redactor=R)
    (action,) = plan.actions
    assert action.kind is ActionKind.CREATE and action.initial_state is DesiredState.STOPPED
    assert action.config == {"name": "c", "connector.class": "X"}


def test_undeclared_live_connectors_are_never_touched() -> None:
    plan = build_plan([desired("a")], cluster(live("a"), live("stranger")), redactor=R)
    assert plan.actions == () and [c.connector for c in plan.connectors] == ["a"]


def test_unobserved_cluster_plans_nothing() -> None:
    plan = build_plan([desired(cluster="east")], cluster(), redactor=R)
    assert plan.connectors == ()


def test_duplicate_names_are_problems_not_writes() -> None:
    plan = build_plan([desired(key="k1"), desired(key="k2")], cluster(), redactor=R)
    assert plan.actions == ()
    assert len(plan.problems) == 2 and "declared more than once" in plan.problems[0].message


def test_diff_masks_secrets_by_key_and_by_value() -> None:
    d = desired(config={"db.password": "new-pass-9", "url": "jdbc://x?p=hunter2-secret", "tasks.max": "2"})
    lv = {"name": "c", "connector.class": "X", "db.password": "old-pass-9", "tasks.max": "1", "gone": "x"}
    changes = {c.key: c for c in diff_config(d, lv, redactor=R)}
    assert set(changes) == {"db.password", "url", "tasks.max", "gone"}
    assert changes["db.password"].before == mask("old-pass-9") and changes["db.password"].after == mask(
        "new-pass-9"
    )
    assert changes["url"].after == mask("jdbc://x?p=hunter2-secret") and changes["url"].secret
    assert (changes["tasks.max"].before, changes["tasks.max"].after) == ("1", "2")
    assert (changes["gone"].before, changes["gone"].after) == ("x", None)


@pytest.mark.parametrize(
    ("want", "live_state", "kind"),
    [
        (DesiredState.RUNNING, "RUNNING", None),
        (DesiredState.RUNNING, "UNASSIGNED", None),
        (DesiredState.PAUSED, "PAUSED", None),
        (DesiredState.PAUSED, "FAILED", ActionKind.PAUSE),
        (DesiredState.STOPPED, "STOPPED", None),
        (DesiredState.STOPPED, "RUNNING", ActionKind.STOP),
        # Right after a rebalance: the target state is not visible, so no guess is written.
        (DesiredState.PAUSED, "UNASSIGNED", None),
        (DesiredState.STOPPED, "UNASSIGNED", None),
        (DesiredState.STOPPED, "RESTARTING", None),
    ],
)
def test_state_action(want: DesiredState, live_state: str, kind: ActionKind | None) -> None:
    assert state_action(want, live_state) is kind


@pytest.mark.parametrize(
    ("key", "value", "secret"),
    [
        ("connection.password", "x", True),
        ("sasl.jaas.config", "x", True),
        ("basic.auth.user.info", "x", True),
        ("key.converter", "x", False),
        ("ssl.key", "x", True),
        ("topics", "x", False),
        ("topics", "has hunter2-secret inside", True),
    ],
)
def test_secret_fields(key: str, value: str, secret: bool) -> None:
    assert R.is_secret_field(key, value) is secret


def test_scrub_replaces_known_values_only_when_long_enough() -> None:
    r = Redactor(frozenset({"hunter2-secret", "ab"}))
    assert r.scrub("x hunter2-secret y ab") == f"x {mask('hunter2-secret')} y ab"


def test_short_secret_values_do_not_mask_ordinary_fields() -> None:
    r = Redactor(frozenset({"1", "true"}))  # e.g. USE_API_KEY=true matched the *KEY* name pattern
    assert not r.is_secret_field("tasks.max", "1") and not r.is_secret_field("flag", "true")
    assert r.is_secret_field("db.password", "1")  # the key still says it is a credential


def test_ordinary_values_are_never_scrubbed_from_text() -> None:
    r = Redactor(frozenset({"true", "12345", "on"}))
    assert r.scrub("enabled=true tasks=12345 on") == "enabled=true tasks=12345 on"


def test_unassigned_after_a_rebalance_is_waiting_not_a_state_write() -> None:
    plan = build_plan([desired(state=DesiredState.STOPPED)], cluster(live(state="UNASSIGNED")), redactor=R)
    (cp,) = plan.connectors
    assert cp.actions == () and cp.waiting == "waiting for assignment"
    assert unconverged([desired(state=DesiredState.STOPPED)], cluster(live(state="UNASSIGNED"))) == ["c"]


@pytest.mark.parametrize(
    ("version", "via", "steps"),
    [
        ("4.1.2", CreateMethod.POST_INITIAL_STATE, ("POST /connectors (initial_state PAUSED)",)),
        ("3.7.0", CreateMethod.POST_INITIAL_STATE, ("POST /connectors (initial_state PAUSED)",)),
        ("3.6.2", CreateMethod.PUT_THEN_STATE, ("PUT /connectors/c/config", "PUT /connectors/c/pause")),
        # Confluent Platform 7.6 is Kafka 3.6: no initial_state, whatever "7.6" suggests.
        ("7.6.0-ccs", CreateMethod.PUT_THEN_STATE, ("PUT /connectors/c/config", "PUT /connectors/c/pause")),
        ("7.7.1-ce", CreateMethod.POST_INITIAL_STATE, ("POST /connectors (initial_state PAUSED)",)),
        (None, CreateMethod.PUT_THEN_STATE, ("PUT /connectors/c/config", "PUT /connectors/c/pause")),
    ],
)
def test_the_plan_carries_the_wire_steps_of_a_create(
    version: str | None, via: CreateMethod, steps: tuple[str, ...]
) -> None:
    state = {"default": ClusterState("default", {}, version)}
    (cp,) = build_plan([desired(state=DesiredState.PAUSED)], state, redactor=R).connectors
    (action,) = cp.actions
    assert action.create_via is via and action.wire_steps == steps


@pytest.mark.parametrize(
    ("version", "kafka"),
    [
        ("4.1.2", (4, 1)),
        ("3.9.0", (3, 9)),
        ("7.6.0-ccs", (3, 6)),
        ("7.9.1-ce", (3, 9)),
        ("8.0.0-ccs", (4, 0)),
        ("6.2.4-ccs", (2, 8)),
        ("5.5.1-ccs", (2, 5)),
        ("4.1.0-SNAPSHOT", (4, 1)),  # an Apache build: no Confluent suffix
        ("garbage", None),
        ("", None),
    ],
)
def test_kafka_version_maps_confluent_releases(version: str, kafka: tuple[int, int] | None) -> None:
    assert kafka_version(version) == kafka


def test_a_connector_created_paused_without_tasks_is_settled() -> None:
    paused = desired(state=DesiredState.PAUSED)
    assert unconverged([paused], cluster(LiveConnector("c", paused.config, "PAUSED", ()))) == []
    running = desired()
    assert unconverged([running], cluster(LiveConnector("c", running.config, "RUNNING", ()))) == ["c"]
