"""Prometheus metrics (`reconciler/metrics.py`) driven by real pipeline passes against the in-memory
Connect: every metric on its success path and on its failure path, and the /metrics endpoint."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import httpx
import pytest

from reconciler.clients.connect import ConnectClient
from reconciler.metrics import Metrics, failed_tasks
from reconciler.model import (
    Action,
    ActionKind,
    ConfigMapDoc,
    ConnectorPlan,
    Outcome,
    Plan,
    Report,
)
from reconciler.pipeline import reconcile
from reconciler.retrying import RetryPolicy
from reconciler.runtime import Runtime
from reconciler.telemetry import ActionEvent, PassEvent
from tests.fake_clock import FakeClock
from tests.fake_connect import FakeConnect
from tests.fake_ledger import MemoryLedgerStore
from tests.support import runtime_for

P = "connect_reconciler_"


def doc(cm: str, *connectors: str, version: str = "1", extra: dict[str, str] | None = None) -> ConfigMapDoc:
    config = {"connector.class": "X", **(extra or {})}
    data = {f"{c}.json": json.dumps({"name": c, "config": config}) for c in connectors}
    return ConfigMapDoc(
        cm, "apps", {"destination": "connect"}, data, uid=f"uid-{cm}", resource_version=version
    )


class World:
    """The in-memory Connect, an optional ledger, and one Metrics observing every pass."""

    def __init__(self, *, ledger: bool = False, retry: RetryPolicy | None = None, **kwargs: Any) -> None:
        self.fake = FakeConnect()
        self.store = MemoryLedgerStore() if ledger else None
        self.clock = FakeClock()
        self.metrics = Metrics(now=lambda: 1234.5, **kwargs)
        self.retry = retry

    def runtime(self) -> Runtime:
        rt = runtime_for(self.fake, ledger=self.store, clock=self.clock, retry=self.retry)
        self.metrics.instrument(rt.clients)
        return dataclasses.replace(rt, observers=(self.metrics,))

    def run(self, *docs: ConfigMapDoc, dry_run: bool = False) -> Report:
        return reconcile(list(docs), rt=self.runtime(), dry_run=dry_run)

    def value(self, metric: str, /, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(P + metric, labels)


def test_label_sets_that_are_known_start_at_zero() -> None:
    w = World(version="9.9.9")
    assert w.value("reconcile_total", result="success") == 0
    assert w.value("reconcile_total", result="error") == 0
    assert w.value("reconcile_errors_total") == 0
    assert w.value("last_successful_reconcile_timestamp_seconds") == 0
    for kind in ActionKind:
        for outcome in ("ok", "failed", "skipped"):
            assert w.value("connector_actions_total", action=kind.value, outcome=outcome) == 0
    for drift in ("create", "update", "pause", "resume", "stop"):
        assert w.value("drift_repairs_total", action=drift) == 0
    assert w.value("build_info", version="9.9.9") == 1
    assert w.value("audit_events_dropped_total") == 0


def test_a_successful_pass_counts_its_result_duration_actions_and_requests() -> None:
    w = World()
    report = w.run(doc("a", "c1", "c2"))
    assert report.ok
    assert w.value("reconcile_total", result="success") == 1
    assert w.value("reconcile_total", result="error") == 0
    assert w.value("reconcile_errors_total") == 0
    assert w.value("reconcile_time_seconds_count") == 1
    assert w.value("reconcile_time_seconds_bucket", le="60.0") == 1
    assert w.value("last_successful_reconcile_timestamp_seconds") == 1234.5
    assert w.value("connector_actions_total", action="create", outcome="ok") == 2
    # What the pass saw: both to be created.
    assert w.value("managed_connectors", cluster="default", state="ABSENT") == 2
    assert w.value("managed_connectors", cluster="default", state="RUNNING") == 0
    sent = {(r.method, r.url.path) for r in w.fake.requests}
    assert ("POST", "/connectors") in sent
    assert w.value("connect_requests_total", cluster="default", method="POST", code="201") == 2
    gets = sum(1 for r in w.fake.requests if r.method == "GET")
    assert w.value("connect_requests_total", cluster="default", method="GET", code="200") == gets
    assert w.value("connect_request_duration_seconds_count", cluster="default", method="GET") == gets
    assert w.value("connect_request_duration_seconds_count", cluster="default", method="POST") == 2
    assert w.value("connect_requests_total", cluster="default", method="GET", code="error") is None

    w.run(doc("a", "c1", "c2"))
    assert w.value("reconcile_total", result="success") == 2
    assert w.value("managed_connectors", cluster="default", state="RUNNING") == 2
    assert w.value("managed_connectors", cluster="default", state="ABSENT") == 0
    assert w.value("connector_actions_total", action="create", outcome="ok") == 2  # nothing new to do


def test_a_failed_action_is_counted_failed_and_the_pass_an_error() -> None:
    w = World()
    w.fake.fail("POST", "/connectors", 400, {"error_code": 400, "message": "bad config"})
    report = w.run(doc("a", "c1"))
    assert not report.ok
    assert w.value("connector_actions_total", action="create", outcome="failed") == 1
    assert w.value("connector_actions_total", action="create", outcome="ok") == 0
    assert w.value("reconcile_total", result="error") == 1
    assert w.value("reconcile_total", result="success") == 0
    assert w.value("reconcile_errors_total") == 1
    assert w.value("reconcile_time_seconds_count") == 1  # an error pass is timed too
    assert w.value("last_successful_reconcile_timestamp_seconds") == 0
    assert w.value("connect_requests_total", cluster="default", method="POST", code="400") == 1


def test_a_pass_with_a_problem_is_an_error_even_without_any_action() -> None:
    w = World()
    broken = ConfigMapDoc(
        "b", "apps", {"destination": "connect"}, {"x.json": "{not json"}, resource_version="1"
    )
    report = w.run(broken)
    assert report.problems and not report.ok
    assert w.value("reconcile_total", result="error") == 1
    assert w.value("reconcile_errors_total") == 1


def test_a_503_is_counted_with_its_code_and_the_retry_with_its_own() -> None:
    w = World()
    w.fake.fail("GET", "/", 503, "Service Unavailable")
    report = w.run(doc("a", "c1"))
    assert report.ok  # retried
    assert w.value("connect_requests_total", cluster="default", method="GET", code="503") == 1
    assert (w.value("connect_requests_total", cluster="default", method="GET", code="200") or 0) >= 1


def test_an_unreachable_cluster_counts_error_requests_a_skipped_action_and_an_error_pass() -> None:
    w = World(retry=RetryPolicy(sleep=lambda s: None, max_attempts=3))
    w.run(doc("a", "c1", "c2"))  # both exist
    w.fake.add("c1", {"connector.class": "X", "drifted": "1"})
    w.fake.add("c2", {"connector.class": "X", "drifted": "1"})
    # Both updates answered by a proxy's 503 (no Connect body) until retries run out: the breaker opens.
    w.fake.fail("PUT", "/connectors/c[12]/config", 503, "Service Unavailable", times=10)
    report = w.run(doc("a", "c1", "c2"))
    assert not report.ok
    assert w.value("connector_actions_total", action="update", outcome="failed") == 1
    assert w.value("connector_actions_total", action="update", outcome="skipped") == 1
    assert w.value("connect_requests_total", cluster="default", method="PUT", code="503") == 3


def test_a_request_without_a_response_is_counted_as_error_without_a_duration() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    metrics = Metrics()
    fake = FakeConnect()
    rt = runtime_for(fake, retry=RetryPolicy(sleep=lambda s: None, max_attempts=3))
    http = httpx.Client(base_url="http://connect.test", transport=httpx.MockTransport(refuse))
    rt = dataclasses.replace(rt, clients={"default": ConnectClient(http)}, observers=(metrics,))
    metrics.instrument(rt.clients)
    metrics.instrument(rt.clients)  # a second call adds nothing
    report = reconcile([doc("a", "c1")], rt=rt, dry_run=False)
    assert not report.ok
    # Three attempts: two noticed at the next request, the last at the end of the pass.
    assert (
        metrics.registry.get_sample_value(
            P + "connect_requests_total", {"cluster": "default", "method": "GET", "code": "error"}
        )
        == 3
    )
    assert (
        metrics.registry.get_sample_value(
            P + "connect_request_duration_seconds_count", {"cluster": "default", "method": "GET"}
        )
        is None
    )


def test_the_response_hook_alone_counts_responses_and_times_them_with_elapsed() -> None:
    metrics = Metrics()
    fake = FakeConnect()

    def streamed(request: httpx.Request) -> httpx.Response:
        # A body read from the wire, as on a socket (MockTransport's whole bodies never get `elapsed`).
        answer = fake.handle(request)
        return httpx.Response(answer.status_code, headers=answer.headers, content=iter([answer.content]))

    http = httpx.Client(
        base_url="http://connect.test",
        transport=httpx.MockTransport(streamed),
        event_hooks={"response": [metrics.connect_response_hook("east")]},
    )
    fake.fail("GET", "/", 503, "Service Unavailable")
    assert http.get("/").status_code == 503
    assert http.get("/").json()["version"] == "4.1.1"  # the body is still there for the client
    get = metrics.registry.get_sample_value
    assert get(P + "connect_requests_total", {"cluster": "east", "method": "GET", "code": "503"}) == 1
    assert get(P + "connect_requests_total", {"cluster": "east", "method": "GET", "code": "200"}) == 1
    assert get(P + "connect_request_duration_seconds_count", {"cluster": "east", "method": "GET"}) == 2


def test_a_prune_block_sets_the_gauge_and_counts_until_it_clears() -> None:
    w = World(ledger=True)
    w.run(doc("a", "c1"), doc("b", "c2"))
    assert w.value("prune_blocked", cluster="default") == 0
    assert w.value("prune_blocked_passes_total", cluster="default") is None
    report = w.run()  # every ConfigMap gone: the empty-desired-set guard refuses the prune
    assert any("prune blocked" in str(p) for p in report.problems)
    assert w.value("prune_blocked", cluster="default") == 1
    assert w.value("prune_blocked_passes_total", cluster="default") == 1
    assert w.value("reconcile_total", result="error") == 1
    w.run()
    assert w.value("prune_blocked_passes_total", cluster="default") == 2
    w.run(doc("a", "c1"), doc("b", "c2"))  # declared again: nothing to prune
    assert w.value("prune_blocked", cluster="default") == 0
    assert w.value("prune_blocked_passes_total", cluster="default") == 2


def test_a_failed_task_shows_in_the_gauges_and_its_restart_is_counted() -> None:
    w = World(ledger=True)
    w.run(doc("a", "c1", "c2"))
    assert w.value("failed_tasks", cluster="default") == 0
    assert w.value("failing_connectors", cluster="default") == 0
    w.fake.fail_task("c1")
    report = w.run(doc("a", "c1", "c2"))
    restart = next(cp for cp in report.plan.connectors if cp.connector == "c1")
    assert restart.restart and any(a.kind is ActionKind.RESTART for a in restart.actions)
    assert w.value("failed_tasks", cluster="default") == 1
    assert w.value("failing_connectors", cluster="default") == 1
    assert w.value("auto_restarts_total", cluster="default") == 1
    assert w.value("connector_actions_total", action="restart", outcome="ok") == 1
    w.run(doc("a", "c1", "c2"))  # the restart cleared it
    assert w.value("failed_tasks", cluster="default") == 0
    assert w.value("failing_connectors", cluster="default") == 0
    assert w.value("auto_restarts_total", cluster="default") == 1


def test_a_failed_restart_is_counted_as_sent_and_failed() -> None:
    w = World(ledger=True)
    w.run(doc("a", "c1"))
    w.fake.fail_task("c1")
    w.fake.fail("POST", "/connectors/c1/restart", 400, {"error_code": 400, "message": "no"})
    w.run(doc("a", "c1"))
    assert w.value("auto_restarts_total", cluster="default") == 1
    assert w.value("connector_actions_total", action="restart", outcome="failed") == 1


def test_failed_tasks_reads_the_restart_note() -> None:
    def plan(note: str | None, state: str = "RUNNING") -> ConnectorPlan:
        return ConnectorPlan("c", "default", None, (), live_state=state, restart=note)

    assert failed_tasks(plan(None)) == 0
    assert failed_tasks(plan("task failed; restart 1 of 5; next allowed in 2 min")) == 1
    assert failed_tasks(plan("2 of 3 tasks failed; restart limit reached (3): restart it by hand")) == 2
    assert failed_tasks(plan("connector and its task failed; auto-restart is disabled", "FAILED")) == 1
    assert failed_tasks(plan("connector and 3 of 4 tasks failed; restart 1 allowed in 5 min", "FAILED")) == 3
    assert failed_tasks(plan("connector failed; auto-restart is disabled", "FAILED")) == 0


def test_a_write_on_an_unchanged_configmap_is_a_drift_repair_and_one_on_a_new_version_is_not() -> None:
    w = World()
    w.run(doc("a", "c1", version="1"))  # created: not drift
    assert w.value("drift_repairs_total", action="create") == 0
    w.fake.add("c1", {"connector.class": "X", "edited": "by hand"})
    w.run(doc("a", "c1", version="1"))
    assert w.value("drift_repairs_total", action="update") == 1
    w.fake.connectors["c1"]["state"] = "PAUSED"  # paused behind the reconciler's back
    w.run(doc("a", "c1", version="1"))
    assert w.value("drift_repairs_total", action="resume") == 1
    w.run(doc("a", "c1", version="2", extra={"tasks.max": "2"}))  # the user's edit: not drift
    assert w.value("connector_actions_total", action="update", outcome="ok") == 2
    assert w.value("drift_repairs_total", action="update") == 1
    del w.fake.connectors["c1"]  # deleted by hand: recreated
    w.run(doc("a", "c1", version="2", extra={"tasks.max": "2"}))
    assert w.value("drift_repairs_total", action="create") == 1


def test_retrying_a_failed_write_is_not_a_drift_repair() -> None:
    w = World()
    w.run(doc("a", "c1", version="1"))
    w.fake.fail("PUT", "/connectors/c1/config", 400, {"error_code": 400, "message": "no"})
    w.run(doc("a", "c1", version="2", extra={"tasks.max": "2"}))  # the user's edit fails
    assert w.value("connector_actions_total", action="update", outcome="failed") == 1
    w.run(doc("a", "c1", version="2", extra={"tasks.max": "2"}))  # and lands on the next pass
    assert w.value("connector_actions_total", action="update", outcome="ok") == 1
    assert w.value("drift_repairs_total", action="update") == 0


def test_a_dry_run_counts_the_pass_but_no_action_and_records_nothing_for_drift() -> None:
    w = World()
    w.run(doc("a", "c1"), dry_run=True)
    assert w.value("reconcile_total", result="success") == 1
    assert w.value("connector_actions_total", action="create", outcome="ok") == 0
    w.run(doc("a", "c1"))
    assert w.value("drift_repairs_total", action="create") == 0


def test_the_audit_drop_counter_is_read_at_each_scrape() -> None:
    dropped = [0]
    w = World(audit_dropped=lambda: dropped[0])
    assert w.value("audit_events_dropped_total") == 0
    dropped[0] = 7
    assert w.value("audit_events_dropped_total") == 7

    def broken() -> int:
        raise RuntimeError("sink gone")

    w.metrics.audit_dropped = broken
    assert w.value("audit_events_dropped_total") == 0  # the scrape still works


def test_leader_status_follows_set_leader() -> None:
    w = World()
    assert w.value("leader_election_master_status", name="connect-reconciler") is None
    w.metrics.set_leader("connect-reconciler", True)
    assert w.value("leader_election_master_status", name="connect-reconciler") == 1
    w.metrics.set_leader("connect-reconciler", False)
    assert w.value("leader_election_master_status", name="connect-reconciler") == 0


def test_the_observer_never_raises() -> None:
    metrics = Metrics()
    metrics(PassEvent(report=None, duration_s=0.1))  # type: ignore[arg-type]
    metrics(object())  # type: ignore[arg-type]
    action = Action(ActionKind.CREATE, "c", "default")
    plan = ConnectorPlan("c", "default", None, (action,))
    metrics(ActionEvent(action, plan, None, Outcome(action, ok=True)))
    assert (
        metrics.registry.get_sample_value(
            P + "connector_actions_total", {"action": "create", "outcome": "ok"}
        )
        == 1
    )
    metrics(PassEvent(Report(Plan(()), dry_run=False), duration_s=-1.0))
    assert metrics.registry.get_sample_value(P + "reconcile_total", {"result": "success"}) == 1


def test_each_metrics_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.set_leader("x", True)
    assert b.registry.get_sample_value(P + "leader_election_master_status", {"name": "x"}) is None


def test_the_endpoint_serves_the_text_exposition_on_the_address_given() -> None:
    w = World()
    w.run(doc("a", "c1"))
    server = w.metrics.serve("127.0.0.1:0")
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1" and port != 0
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = response.text
        assert "# TYPE connect_reconciler_reconcile_total counter" in text
        assert 'connect_reconciler_reconcile_total{result="success"} 1.0' in text
        assert (
            'connect_reconciler_connect_requests_total{cluster="default",code="201",method="POST"} 1.0'
            in text
        )
        assert 'connect_reconciler_managed_connectors{cluster="default",state="ABSENT"} 1.0' in text
        assert "connect_reconciler_reconcile_time_seconds_bucket" in text
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 404
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("address", ["127.0.0.1:notaport", "no-port"])
def test_a_bad_address_fails_at_once(address: str) -> None:
    with pytest.raises((ValueError, OSError)):
        Metrics().serve(address)


def test_the_endpoint_speaks_openmetrics_when_asked() -> None:
    server = Metrics().serve("127.0.0.1:0")
    try:
        port = server.server_address[1]
        response = httpx.get(
            f"http://127.0.0.1:{port}/metrics",
            headers={"Accept": "application/openmetrics-text; version=1.0.0"},
            timeout=5,
        )
        assert response.headers["content-type"].startswith("application/openmetrics-text")
        assert "# TYPE connect_reconciler_prune_blocked gauge" in response.text
        assert "# TYPE connect_reconciler_prune_blocked_passes counter" in response.text
        assert response.text.rstrip().endswith("# EOF")
    finally:
        server.shutdown()
        server.server_close()


def test_a_targeted_pass_updates_the_gauges_of_its_connectors_and_keeps_the_others() -> None:
    from reconciler.pass_memory import PassMemory  # noqa: PLC0415

    w = World(ledger=True)
    memory = PassMemory()

    def run(*docs: ConfigMapDoc, changed: set[str] | None = None) -> Report:
        return reconcile(list(docs), rt=w.runtime(), dry_run=False, changed=changed, memory=memory)

    run(doc("a", "c1"), doc("b", "c2", "c3"))
    run(doc("a", "c1"), doc("b", "c2", "c3"))  # in sync: all three RUNNING
    assert w.value("managed_connectors", cluster="default", state="RUNNING") == 3
    w.fake.fail_task("c1")
    w.fake.connectors["c1"]["state"] = "PAUSED"  # seen by a full pass only; a targeted one keeps it
    report = run(doc("a", "c1", extra={"k": "v"}), doc("b", "c2", "c3"), changed={"apps/a"})
    assert report.scope == {"default": frozenset({"c1"})}
    # The targeted pass replaced c1's row with what it knew; c2 and c3 still count, not dropped to 0.
    assert w.value("managed_connectors", cluster="default", state="RUNNING") == 3
    report = run(doc("a", "c1", extra={"k": "v"}), doc("b", "c2", "c3"))
    assert report.scope is None
    assert w.value("managed_connectors", cluster="default", state="RUNNING") == 2
