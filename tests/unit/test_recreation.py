"""Connectors deleted outside the reconciler (`reconciler/core/recreation.py`): the pure rule, then through
the pipeline against the in-memory Connect and ledger store: the plan's reason, the ledger's count across
passes (as across hook runs or a restarted watcher), the window, the cases that are not counted, the log,
the Event and the metric."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from reconciler.clients.events import EventRecorder
from reconciler.core.ledger import Entry, ledger_data, ledger_from_configmap
from reconciler.core.recreation import FIGHT_WINDOW_S, existed, recreation
from reconciler.core.redaction import Redactor
from reconciler.metrics import Metrics
from reconciler.model import ActionKind, ConfigMapDoc, Report
from reconciler.pipeline import reconcile
from reconciler.report import render_json, render_text
from tests.fake_clock import FakeClock
from tests.fake_connect import FakeConnect
from tests.fake_ledger import MemoryLedgerStore
from tests.support import runtime_for
from tests.unit.test_events import FakeApi, make

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def entry(**kw: Any) -> Entry:
    base: dict[str, Any] = {"connector": "c1", "owner": "apps/a", "since": "2026-01-01T00:00:00Z"}
    return Entry(**{**base, **kw})


@pytest.mark.parametrize(
    ("origin", "last", "expected"),
    [
        ("created", {}, False),  # written before a create that never went out (a crash between)
        ("created", {"action": "create", "ok": True}, True),
        ("created", {"action": "create", "ok": False}, False),  # refused, or its answer lost
        ("created", {"action": "update", "ok": False}, True),  # planned against the live connector
        ("created", {"action": "stop", "ok": True}, True),
        ("created", {"action": "restart", "ok": True}, True),
        ("created", {"action": "delete", "ok": False}, False),  # our own delete, answered or not
        ("adopted", {}, True),  # adoption takes a connector that runs
    ],
)
def test_existed_follows_the_ledgers_last_note(origin: str, last: dict[str, Any], expected: bool) -> None:
    assert existed(entry(origin=origin, last=last)) is expected


def test_the_count_goes_on_within_the_window_and_starts_again_after_it() -> None:
    e = entry(last={"action": "create", "ok": True, "at": "2026-01-01T11:00:00Z"})
    first = recreation(e, now=NOW)
    assert first is not None and first.count == 1
    assert first.reason == (
        "deleted outside connect-reconciler: gone from Connect, though there at its create "
        "(2026-01-01T11:00:00Z); created again"
    )
    assert first.entry.recreated == {
        "count": 1,
        "first": "2026-01-01T12:00:00Z",
        "last": "2026-01-01T12:00:00Z",
    }
    second = recreation(first.entry, now=NOW + timedelta(seconds=FIGHT_WINDOW_S))
    assert second is not None and second.count == 2
    assert (
        "2 times since 2026-01-01T12:00:00Z" in second.reason
        and "strimzi.io/use-connector-resources" in second.reason
    )
    later = recreation(second.entry, now=NOW + timedelta(seconds=2 * FIGHT_WINDOW_S + 1))
    assert later is not None and later.count == 1 and later.entry.recreated["first"] == "2026-01-01T14:00:01Z"


@pytest.mark.parametrize("stored", [{"count": "x"}, {"count": 3, "first": 7, "last": "now"}, {"count": -1}])
def test_a_hand_edited_count_starts_again_rather_than_failing(stored: dict[str, Any]) -> None:
    found = recreation(entry(last={"action": "create", "ok": True}, recreated=stored), now=NOW)
    assert found is not None and found.count == 1


def test_the_count_survives_the_ledgers_configmap() -> None:
    from reconciler.core.ledger import Ledger  # noqa: PLC0415

    e = entry(recreated={"count": 2, "first": "a", "last": "b"})
    data = ledger_data(Ledger(cluster="default", entries={"c1": e}))
    back = ledger_from_configmap("default", data=data, annotations=None, version="1").entries["c1"]
    assert back == e and json.loads(data["entries.json"])["c1"]["recreated"]["count"] == 2


# --- through the pipeline ------------------------------------------------------------------------------


def doc(cm: str, *connectors: str) -> ConfigMapDoc:
    data = {f"{c}.json": json.dumps({"name": c, "config": {"connector.class": "X"}}) for c in connectors}
    return ConfigMapDoc(cm, "apps", {"destination": "connect"}, data, uid=f"uid-{cm}", resource_version="1")


class World:
    def __init__(self, *observers: Any) -> None:
        self.fake = FakeConnect()
        self.store = MemoryLedgerStore()
        self.clock = FakeClock(horizon=1e9)
        self.observers = observers

    def run(self, *docs: ConfigMapDoc, dry_run: bool = False) -> Report:
        self.fake.requests.clear()
        rt = runtime_for(self.fake, ledger=self.store, clock=self.clock)
        rt = replace(rt, observers=self.observers)
        return reconcile(list(docs), rt=rt, dry_run=dry_run)

    def plan_of(self, report: Report, name: str = "c1") -> Any:
        return next(c for c in report.plan.connectors if c.connector == name)

    def count(self, name: str = "c1") -> Any:
        return self.store.read("default").entries[name].recreated.get("count")


def test_a_connector_deleted_outside_is_created_again_with_the_reason_and_counted() -> None:
    w = World()
    assert w.run(doc("a", "c1", "c2")).ok
    assert w.count() is None
    del w.fake.connectors["c1"]  # someone else deletes it
    with capture_logs() as logs:
        report = w.run(doc("a", "c1", "c2"))
    assert report.ok and w.fake.writes() == ["POST /connectors"]
    cp = w.plan_of(report)
    assert (
        cp.recreated == 1
        and cp.reason is not None
        and cp.reason.startswith("deleted outside connect-reconciler")
    )
    assert w.plan_of(report, "c2").recreated == 0
    assert w.count() == 1 and "c1" in w.fake.connectors
    warned = [e for e in logs if e["event"] == "connector deleted outside connect-reconciler"]
    assert [(e["connector"], e["times"], e["log_level"]) for e in warned] == [("c1", 1, "warning")]
    text = render_text(report, redactor=Redactor(frozenset()), color=False)
    assert "+ create c1 @default" in text and "    ! deleted outside connect-reconciler" in text
    as_json = json.loads(render_json(report, redactor=Redactor(frozenset())))
    assert next(c for c in as_json["connectors"] if c["connector"] == "c1")["recreated"] == 1

    w.clock.t += 60
    del w.fake.connectors["c1"]
    report = w.run(doc("a", "c1", "c2"))
    cp = w.plan_of(report)
    assert cp.recreated == 2 and w.count() == 2
    assert cp.reason is not None and "2 times since" in cp.reason and "Strimzi" in cp.reason
    assert w.run(doc("a", "c1", "c2")).plan.connectors[0].in_sync  # present again: nothing to say


def test_the_ledger_carries_the_count_to_a_new_process() -> None:
    w = World()
    w.run(doc("a", "c1"))
    del w.fake.connectors["c1"]
    w.run(doc("a", "c1"))
    del w.fake.connectors["c1"]
    fresh = World()  # another hook run, a restarted watcher: only the ledger and Connect are shared
    fresh.fake, fresh.store, fresh.clock = w.fake, w.store, w.clock
    assert fresh.plan_of(fresh.run(doc("a", "c1"))).recreated == 2


def test_a_dry_run_shows_the_reason_but_counts_nothing() -> None:
    w = World()
    w.run(doc("a", "c1"))
    del w.fake.connectors["c1"]
    with capture_logs() as logs:
        report = w.run(doc("a", "c1"), dry_run=True)
    assert w.plan_of(report).recreated == 1 and w.fake.writes() == [] and w.count() is None
    assert not [e for e in logs if e["event"] == "connector deleted outside connect-reconciler"]


def test_a_create_that_failed_is_not_a_delete_made_outside() -> None:
    w = World()
    w.fake.fail("POST", r"^/connectors$", 500, times=10)
    assert not w.run(doc("a", "c1")).ok
    assert w.store.read("default").entries["c1"].last["ok"] is False
    w.fake.faults.clear()
    report = w.run(doc("a", "c1"))
    assert report.ok and w.plan_of(report).recreated == 0 and w.count() is None


def test_a_crash_between_the_ledger_write_and_the_create_is_not_a_delete_made_outside() -> None:
    w = World()
    w.run(doc("a", "c1"))
    ledger = w.store.read("default")
    w.store.write(ledger.with_entries({"c1": replace(ledger.entries["c1"], last={})}))
    del w.fake.connectors["c1"]
    assert w.plan_of(w.run(doc("a", "c1"))).recreated == 0


def test_a_connector_we_deleted_and_that_is_declared_again_is_not_counted() -> None:
    w = World()
    w.run(doc("a", "c1"))
    ledger = w.store.read("default")
    # our own DELETE whose answer was lost: noted as the last action, the entry kept
    last = {"action": "delete", "ok": False, "at": "2026-01-01T00:00:00Z"}
    w.store.write(ledger.with_entries({"c1": replace(ledger.entries["c1"], last=last)}))
    del w.fake.connectors["c1"]
    assert w.plan_of(w.run(doc("a", "c1"))).recreated == 0


def test_an_adopted_connector_deleted_outside_is_counted() -> None:
    w = World()
    w.fake.add("legacy", {"connector.class": "X"})
    w.store.write(
        w.store.read("default").with_entries({"legacy": entry(connector="legacy", origin="adopted")})
    )
    del w.fake.connectors["legacy"]
    assert w.plan_of(w.run(doc("a", "legacy")), "legacy").recreated == 1


def observed_world() -> tuple[World, FakeApi, EventRecorder, Metrics]:
    """A World whose passes an EventRecorder (on a fake Events API) and a Metrics observe."""
    api = FakeApi()
    recorder = make(api, FakeApi(), FakeClock())
    metrics = Metrics(now=lambda: 1.0)
    return World(recorder, metrics), api, recorder, metrics


def test_the_event_is_a_warning_and_the_metric_counts_per_cluster() -> None:
    w, api, recorder, metrics = observed_world()
    try:
        w.run(doc("a", "c1"))
        del w.fake.connectors["c1"]
        w.run(doc("a", "c1"))
        for _ in range(2):
            w.clock.t += 60
            del w.fake.connectors["c1"]
            w.run(doc("a", "c1"))
        assert recorder.flush(10)
    finally:
        recorder.close(5)
    reasons = [(b["type"], b["reason"]) for b in api.of("create")]
    assert reasons == [
        ("Normal", "ConnectorCreated"),
        ("Warning", "ConnectorRecreated"),
        ("Warning", "ConnectorDeletedRepeatedly"),
    ]
    assert "Strimzi" in api.of("create")[2]["note"]
    assert [b["series"]["count"] for b in api.of("patch")] == [2]  # the third time: a repeat of the second
    note = api.of("create")[1]["note"]
    assert note.startswith(
        "Created connector c1 on cluster default again: deleted outside connect-reconciler"
    )
    sample = metrics.registry.get_sample_value(
        "connect_reconciler_connectors_recreated_total", {"cluster": "default"}
    )
    assert sample == 3.0


def test_a_recreate_that_fails_is_not_counted_by_the_metric() -> None:
    metrics = Metrics(now=lambda: 1.0)
    w = World(metrics)
    w.run(doc("a", "c1"))
    del w.fake.connectors["c1"]
    w.fake.fail("POST", r"^/connectors$", 500, times=10)
    report = w.run(doc("a", "c1"))
    assert not report.ok and w.plan_of(report).recreated == 1
    sample = metrics.registry.get_sample_value(
        "connect_reconciler_connectors_recreated_total", {"cluster": "default"}
    )
    assert sample is None
    events = [o for o in report.outcomes if o.action.kind is ActionKind.CREATE]
    assert events and not events[0].ok


def test_a_create_whose_answer_was_lost_is_confirmed_by_the_listing_and_then_counted() -> None:
    w = World()
    w.fake.fail("POST", r"^/connectors$", 500, times=10)
    assert not w.run(doc("a", "c1")).ok
    w.fake.faults.clear()
    w.fake.add("c1", {"connector.class": "X"})  # Connect made it; the answer never came back
    report = w.run(doc("a", "c1"))
    assert report.ok and w.fake.writes() == [] and w.plan_of(report).in_sync
    last = w.store.read("default").entries["c1"].last
    assert last["action"] == "create" and last["ok"] is True and "error" not in last and last["listed"]
    stored = w.store.stored["default"][2]
    assert (
        w.run(doc("a", "c1")).ok and w.store.stored["default"][2] == stored
    )  # confirmed once, not every pass
    del w.fake.connectors["c1"]
    assert w.plan_of(w.run(doc("a", "c1"))).recreated == 1


def test_a_dry_run_confirms_nothing() -> None:
    w = World()
    w.fake.fail("POST", r"^/connectors$", 500, times=10)
    w.run(doc("a", "c1"))
    w.fake.faults.clear()
    w.fake.add("c1", {"connector.class": "X"})
    w.run(doc("a", "c1"), dry_run=True)
    assert w.store.read("default").entries["c1"].last["ok"] is False


def test_a_recreate_whose_create_failed_is_retried_as_the_same_recreation() -> None:
    e = entry(
        last={"action": "create", "ok": False, "at": "2026-01-01T12:00:05Z", "error": "409"},
        recreated={"count": 1, "first": "2026-01-01T12:00:00Z", "last": "2026-01-01T12:00:00Z"},
    )
    retry = recreation(e, now=NOW + timedelta(minutes=5))
    assert retry is not None and retry.count == 1 and retry.entry == e  # not counted again
    assert retry.reason == (
        "deleted outside connect-reconciler: gone from Connect, found gone at 2026-01-01T12:00:00Z; created again"
    )
    # A failed create noted before the count was recorded is not this re-creation's.
    older = replace(e, last={**e.last, "at": "2026-01-01T11:59:00Z"})
    assert recreation(older, now=NOW) is None


def test_a_failed_recreate_keeps_its_mark_until_it_succeeds_then_warns_and_counts_once() -> None:
    w, api, recorder, metrics = observed_world()
    try:
        w.run(doc("a", "c1"))
        del w.fake.connectors["c1"]
        w.clock.t += 10
        w.fake.fail("POST", r"^/connectors$", 409, times=50)  # a rebalance outlasting the retries
        failed = w.run(doc("a", "c1"))
        assert not failed.ok and w.plan_of(failed).recreated == 1 and w.count() == 1
        w.fake.faults.clear()
        w.clock.t += 10
        retried = w.run(doc("a", "c1"))
        assert retried.ok and w.fake.writes() == ["POST /connectors"] and "c1" in w.fake.connectors
        cp = w.plan_of(retried)
        assert cp.recreated == 1 and cp.reason is not None and "deleted outside" in cp.reason
        assert w.count() == 1  # one disappearance, counted once
        assert recorder.flush(10)
    finally:
        recorder.close(5)
    reasons = [(b["type"], b["reason"]) for b in api.of("create")]
    assert ("Warning", "ConnectorRecreated") in reasons and ("Warning", "ConnectorFailed") in reasons
    sample = metrics.registry.get_sample_value(
        "connect_reconciler_connectors_recreated_total", {"cluster": "default"}
    )
    assert sample == 1.0
    w.clock.t += 10
    del w.fake.connectors["c1"]
    assert w.plan_of(w.run(doc("a", "c1"))).recreated == 2 and w.count() == 2
