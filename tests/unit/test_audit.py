"""Audit records (`core/audit.py`) and their delivery (`audit.py`): the log stream, a JSON-lines file, and
CloudEvents to a sink, checked with a real HTTP receiver that parses every request with the SDK."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from pathlib import Path
from typing import Any

import pytest
import structlog
import structlog.testing
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat

from reconciler.audit import AuditLog, parse_ce_overrides
from reconciler.core.audit import approval_record, audit_record, pass_records, rfc3339
from reconciler.core.redaction import Redactor, mask
from reconciler.core.specs import configmap_from_object
from reconciler.errors import ConfigError
from reconciler.model import (
    Action,
    ActionKind,
    ConfigChange,
    ConfigMapDoc,
    ConnectorPlan,
    Outcome,
    Plan,
    Report,
    SourceRef,
)
from reconciler.telemetry import ActionEvent, PassEvent

SECRET = "hunter2-Sup3rSecret-9f1c"
OLD_SECRET = "old-Pa55w0rd-Value-77ab"
NOW = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
FLUX_LABELS = {
    "destination": "connect",
    "kustomize.toolkit.fluxcd.io/name": "connectors",
    "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
}


def doc(**overrides: Any) -> ConfigMapDoc:
    values: dict[str, Any] = {
        "name": "cm",
        "namespace": "apps",
        "labels": FLUX_LABELS,
        "data": {},
        "uid": "0b5c0a52-1111-4a4a-9d9d-000000000001",
        "resource_version": "4242",
        "changed_by": "kustomize-controller",
        "changed_at": "2026-03-04T05:00:00Z",
        **overrides,
    }
    return ConfigMapDoc(**values)


def event(
    kind: ActionKind = ActionKind.UPDATE,
    *,
    outcome: bool | None = True,
    changes: tuple[ConfigChange, ...] = (),
    reason: str | None = None,
    message: str = "",
    source: ConfigMapDoc | None = None,
    connector: str = "orders-sink",
) -> ActionEvent:
    action = Action(kind, connector, "main")
    plan = ConnectorPlan(
        connector, "main", SourceRef("apps/cm", f"{connector}.json"), (action,), changes, reason=reason
    )
    out = None
    if outcome is not None:
        out = Outcome(
            action, ok=outcome, message=message, http_status=200 if outcome else 500, duration_s=0.25
        )
    return ActionEvent(action, plan, source if source is not None else doc(), out, dry_run=outcome is None)


def record_of(ev: ActionEvent, redactor: Redactor | None = None) -> dict[str, Any]:
    return audit_record(
        ev, now=NOW, identity="reconciler-0", redactor=redactor or Redactor(), audit_id="id-1"
    )


# Records --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(ActionKind))
def test_a_record_for_each_action_verb(kind: ActionKind) -> None:
    r = record_of(event(kind))
    assert r["verb"] == kind.value
    assert r["stage"] == "applied"
    assert r["auditID"] == "id-1"
    assert r["time"] == "2026-03-04T05:06:07.890123Z"
    assert r["objectRef"] == {"connectCluster": "main", "connector": "orders-sink"}
    assert r["sourceRef"] == {
        "namespace": "apps",
        "name": "cm",
        "key": "orders-sink.json",
        "uid": "0b5c0a52-1111-4a4a-9d9d-000000000001",
        "resourceVersion": "4242",
        "origin": None,
    }
    assert r["actor"] == {
        "reconciler": "reconciler-0",
        "lastWriter": "kustomize-controller",
        "lastWriteTime": "2026-03-04T05:00:00Z",
    }
    assert r["responseStatus"] == {"ok": True, "code": 200, "message": None, "skipped": False}
    assert r["durationSeconds"] == 0.25
    assert r["dryRun"] is False
    assert r["requests"] == list(Action(kind, "orders-sink", "main").wire_steps)
    json.dumps(r)  # plain JSON


def test_planned_failed_and_skipped_stages() -> None:
    planned = record_of(event(outcome=None))
    assert (planned["stage"], planned["dryRun"], planned["responseStatus"]) == ("planned", True, None)
    failed = record_of(event(outcome=False, message="Connector configuration is invalid"))
    assert failed["stage"] == "failed"
    assert failed["responseStatus"]["message"] == "Connector configuration is invalid"
    action = Action(ActionKind.CREATE, "c", "main")
    skipped = ActionEvent(
        action,
        ConnectorPlan("c", "main", None, (action,)),
        None,
        Outcome(action, ok=False, message="cluster unavailable", skipped=True),
    )
    r = record_of(skipped)
    assert r["stage"] == "failed" and r["responseStatus"]["skipped"] is True
    assert r["sourceRef"] is None and r["actor"]["lastWriter"] is None


def test_a_prune_carries_its_reason_and_the_owner_it_was_recorded_under() -> None:
    pruned = record_of(
        event(ActionKind.DELETE, reason="pruned: its ConfigMap no longer declares it", source=None)
    )
    assert pruned["verb"] == "delete"
    assert pruned["reason"] == "pruned: its ConfigMap no longer declares it"
    # The ConfigMap is gone: only its name, from the plan, is known.
    pruned_doc = ActionEvent(
        Action(ActionKind.DELETE, "x", "main"),
        ConnectorPlan(
            "x", "main", SourceRef("apps/old"), (Action(ActionKind.DELETE, "x", "main"),), reason="pruned"
        ),
        None,
    )
    assert record_of(pruned_doc)["sourceRef"] == {
        "namespace": "apps",
        "name": "old",
        "key": None,
        "uid": None,
        "resourceVersion": None,
        "origin": None,
    }


def test_secrets_are_masked_in_changes_and_scrubbed_everywhere_else() -> None:
    redactor = Redactor(frozenset({SECRET, OLD_SECRET}))
    changes = (
        ConfigChange("connection.password", OLD_SECRET, SECRET, secret=True),
        ConfigChange("topic", "a", "b", secret=False),
        # Not flagged secret, but its value embeds one (a JDBC URL with the password in it).
        ConfigChange("connection.url", None, f"jdbc:postgresql://db/app?password={SECRET}", secret=False),
    )
    ev = event(
        changes=changes,
        outcome=False,
        message=f'Connector config {{"connection.password"="{SECRET}"}} is invalid',
        reason=f"reason quoting {SECRET}",
        source=doc(changed_by=f"manager-{SECRET}"),
    )
    r = record_of(ev, redactor)
    text = json.dumps(r)
    for secret in (SECRET, OLD_SECRET):
        assert secret not in text
        assert json.dumps(secret)[1:-1] not in text
    assert r["changes"][0] == {
        "key": "connection.password",
        "before": mask(OLD_SECRET),
        "after": mask(SECRET),
    }
    assert r["changes"][1] == {"key": "topic", "before": "a", "after": "b"}
    # A value holding a known secret is masked whole, like a secret key's.
    assert r["changes"][2]["after"] == mask(f"jdbc:postgresql://db/app?password={SECRET}")
    assert mask(SECRET) in r["responseStatus"]["message"]


def test_a_secret_named_key_is_masked_even_when_unknown_to_the_redactor() -> None:
    ev = event(
        changes=(ConfigChange("sasl.jaas.config", None, "org.apache...Login password=xyz;", secret=False),)
    )
    assert record_of(ev)["changes"][0]["after"] == mask("org.apache...Login password=xyz;")


def test_flux_fields_come_from_kustomize_controller_labels() -> None:
    assert record_of(event())["flux"] == {"kustomization": "flux-system/connectors", "revision": None}
    plain = record_of(event(source=doc(labels={"destination": "connect"})))
    assert plain["flux"] == {"kustomization": None, "revision": None}


def test_the_last_writer_is_read_from_managed_fields() -> None:
    obj = {
        "metadata": {
            "name": "cm",
            "namespace": "apps",
            "uid": "u-1",
            "resourceVersion": "77",
            "labels": {"destination": "connect"},
            "managedFields": [
                {
                    "manager": "kustomize-controller",
                    "operation": "Apply",
                    "time": "2026-03-01T00:00:00Z",
                    "fieldsV1": {"f:data": {"f:a.json": {}}, "f:metadata": {}},
                },
                {
                    "manager": "kubectl-edit",
                    "operation": "Update",
                    "time": "2026-03-02T00:00:00Z",
                    "fieldsV1": {"f:data": {"f:a.json": {}}},
                },
                {  # later, but not a write of data
                    "manager": "kubectl-label",
                    "operation": "Update",
                    "time": "2026-03-03T00:00:00Z",
                    "fieldsV1": {"f:metadata": {"f:labels": {}}},
                },
            ],
        },
        "data": {"a.json": "{}"},
    }
    r = record_of(event(source=configmap_from_object(obj)))
    assert r["actor"]["lastWriter"] == "kubectl-edit"
    assert r["actor"]["lastWriteTime"] == "2026-03-02T00:00:00Z"
    assert (r["sourceRef"]["uid"], r["sourceRef"]["resourceVersion"]) == ("u-1", "77")


def test_pass_records_for_blocked_prunes_and_adoptions() -> None:
    held = ConnectorPlan("old-1", "main", SourceRef("apps/gone"), (), reason="prune blocked: 3 of 4 (75%)")
    adopted = ConnectorPlan("legacy", "main", SourceRef("apps/cm", "legacy.json"), ())
    report = Report(Plan((adopted, held)), dry_run=False)
    ids = (f"p-{n}" for n in count())
    records = pass_records(
        PassEvent(
            report,
            0.1,
            sources={"apps/cm": doc()},
            blocked={"main": "3 of 4 (75%)", "other": f"too many {SECRET}"},
            adopted=(("main", "legacy"),),
        ),
        now=NOW,
        identity="reconciler-0",
        redactor=Redactor(frozenset({SECRET})),
        new_id=lambda: next(ids),
    )
    by_verb = [
        (r["verb"], r["stage"], r["objectRef"]["connectCluster"], r["objectRef"]["connector"])
        for r in records
    ]
    assert by_verb == [
        ("prune-blocked", "blocked", "main", "old-1"),
        ("prune-blocked", "blocked", "other", None),  # no held connector named: one per cluster
        ("adopt", "applied", "main", "legacy"),
    ]
    assert [r["auditID"] for r in records] == ["p-0", "p-1", "p-2"]
    assert records[0]["reason"] == "prune blocked: 3 of 4 (75%)"
    assert records[0]["sourceRef"]["name"] == "gone"
    assert SECRET not in json.dumps(records)
    assert records[2]["actor"]["lastWriter"] == "kustomize-controller"
    assert records[2]["sourceRef"]["uid"] == doc().uid
    dry = pass_records(
        PassEvent(Report(Plan((adopted,)), dry_run=True), 0.1, adopted=(("main", "legacy"),)),
        now=NOW,
        identity="r",
        redactor=Redactor(),
        new_id=lambda: "x",
    )
    assert [(r["verb"], r["stage"], r["dryRun"]) for r in dry] == [("adopt", "planned", True)]


def test_approval_record() -> None:
    r = approval_record(
        "main",
        "2026-03-04T05:06:07Z",
        "cli@laptop",
        now=NOW,
        redactor=Redactor(),
        audit_id="a-1",
        approved_by="alice",
        blocked_reason="3 of 4 (75%)",
    )
    assert (r["verb"], r["stage"], r["objectRef"]) == (
        "approve",
        "applied",
        {"connectCluster": "main", "connector": None},
    )
    assert r["actor"] == {
        "reconciler": "cli@laptop",
        "lastWriter": "alice",
        "lastWriteTime": "2026-03-04T05:06:07Z",
    }
    assert (r["approvedAt"], r["reason"]) == ("2026-03-04T05:06:07Z", "3 of 4 (75%)")


def test_rfc3339_always_shows_microseconds_in_utc() -> None:
    assert rfc3339(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000000Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", rfc3339(datetime(2026, 1, 2)))


# The log stream and the file ------------------------------------------------------------------------


class FixedClock:
    stop = threading.Event()

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return NOW

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(timeout)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@pytest.fixture
def logs() -> Iterator[list[Any]]:
    wrapper = structlog.get_config()["wrapper_class"]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with structlog.testing.capture_logs() as events:
            yield events
    finally:
        structlog.configure(wrapper_class=wrapper)


def test_every_record_goes_to_the_log_stream(logs: list[dict[str, Any]]) -> None:
    ids = iter(["l-1", "l-2"])
    audit = AuditLog(identity="r-0", clock=FixedClock(), new_id=lambda: next(ids))
    audit(event(ActionKind.CREATE))
    audit(event(ActionKind.PAUSE, outcome=None))
    audit.close()
    records = [e for e in logs if e["event"] == "audit"]
    assert [(r["auditID"], r["verb"], r["stage"]) for r in records] == [
        ("l-1", "create", "applied"),
        ("l-2", "pause", "planned"),
    ]
    assert records[0]["objectRef"] == {"connectCluster": "main", "connector": "orders-sink"}
    assert records[0]["log_level"] == "info"


def test_the_file_gets_one_json_line_per_record_appended(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"earlier":"line"}\n')
    secret = Redactor(frozenset({SECRET}))
    with AuditLog(identity="r-0", file=str(path), redactor_ref=lambda: secret) as audit:
        audit(event(ActionKind.CREATE, changes=(ConfigChange("db.password", None, SECRET, secret=True),)))
        audit(event(ActionKind.DELETE, reason="pruned: gone"))
        # Flushed at once: readable while the log is still open.
        assert len(path.read_text().splitlines()) == 3
    with AuditLog(identity="r-1", file=str(path)) as again:
        again.approval("main", "2026-03-04T05:06:07Z", approved_by="alice")
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {"earlier": "line"}
    verbs = [json.loads(line)["verb"] for line in lines[1:]]
    assert verbs == ["create", "delete", "approve"]
    assert SECRET not in path.read_text()
    assert audit.write_errors == 0


def test_a_file_write_error_is_counted_and_logged_once(logs: list[dict[str, Any]]) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    audit = AuditLog(identity="r-0", file="/dev/full")
    for _ in range(3):
        audit(event())  # never raises
    audit.close()
    assert audit.write_errors >= 3
    assert len([e for e in logs if e["event"].startswith("cannot write the audit file")]) == 1
    assert len([e for e in logs if e["event"] == "audit"]) == 3  # the log stream still has them all


def test_an_unopenable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot open the audit file"):
        AuditLog(identity="r-0", file=str(tmp_path / "missing-dir" / "audit.jsonl"))


def test_an_observer_never_raises(logs: list[dict[str, Any]]) -> None:
    def broken() -> Redactor:
        raise RuntimeError("boom")

    audit = AuditLog(identity="r-0", redactor_ref=broken)
    audit(event())
    assert [e["event"] for e in logs] == ["audit record not made"]


# CloudEvents --------------------------------------------------------------------------------------


class Receiver:
    """A CloudEvents sink on 127.0.0.1: every request parsed with the SDK (`from_http`). `fail_first`
    requests are answered 503; then 202."""

    def __init__(self, port: int = 0, *, fail_first: int = 0, status: int = 202) -> None:
        self.events: list[BaseCloudEvent] = []
        self.raw: list[tuple[dict[str, str], bytes]] = []
        self.requests = 0
        self.fail_first, self.status = fail_first, status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                outer.requests += 1
                if outer.requests <= outer.fail_first:
                    self.send_response(503)
                    self.end_headers()
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.raw.append((headers, body))
                outer.events.append(from_http(HTTPMessage(headers, body), JSONFormat()))
                self.send_response(outer.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def by_id(self) -> dict[str, BaseCloudEvent]:
        return {e.get_id(): e for e in self.events}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_each_record_is_a_cloudevent_with_the_overrides_extensions() -> None:
    with Receiver() as sink:
        audit = AuditLog.from_environ(
            {
                "K_SINK": sink.url,
                "K_CE_OVERRIDES": json.dumps({"extensions": {"team": "data", "tier": 2}}),
            },
            identity="reconciler-0",
            clock=FixedClock(),
            new_id=lambda: "ce-1",
            redactor_ref=lambda: Redactor(frozenset({SECRET})),
        )
        audit(
            event(ActionKind.UPDATE, changes=(ConfigChange("db.password", OLD_SECRET, SECRET, secret=True),))
        )
        audit.close(timeout=10)
    assert (audit.sent, audit.dropped, audit.failures) == (1, 0, 0)
    [ce] = sink.events
    assert ce.get_specversion() == "1.0"
    assert ce.get_id() == "ce-1"
    assert ce.get_source() == "/connect-reconciler/reconciler-0"
    assert ce.get_type() == "io.connectreconciler.connector.update.v1"
    assert ce.get_subject() == "orders-sink"
    assert ce.get_time() == NOW
    assert ce.get_datacontenttype() == "application/json"
    assert ce.get_extension("connectcluster") == "main"
    assert ce.get_extension("team") == "data"
    assert ce.get_extension("tier") == "2"  # binary mode: headers carry strings
    data = ce.get_data()
    assert isinstance(data, dict)
    assert data["auditID"] == "ce-1" and data["verb"] == "update"
    headers, body = sink.raw[0]
    assert SECRET not in body.decode() and SECRET not in json.dumps(headers)


def test_records_queued_while_the_sink_is_down_are_all_delivered_once_it_is_back() -> None:
    port = free_port()
    ids = (f"down-{n}" for n in count())
    audit = AuditLog(
        identity="r-0",
        sink_url=f"http://127.0.0.1:{port}/",
        ce_overrides={"team": "data"},
        new_id=lambda: next(ids),
        backoff_initial_s=0.05,
        backoff_max_s=0.4,
    )
    kinds = list(ActionKind)
    for n in range(20):
        audit(event(kinds[n % len(kinds)], connector=f"c-{n}"))
    time.sleep(1.5)  # connection refused all along: retried with backoff
    assert audit.sent == 0 and audit.failures >= 2 and audit.pending == 20
    with Receiver(port, fail_first=2) as sink:  # back, but answering 503 twice first
        audit.close(timeout=20)
    assert audit.dropped == 0 and audit.pending == 0
    assert audit.sent == 20
    got = sink.by_id()
    assert sorted(got) == sorted(f"down-{n}" for n in range(20))
    assert len(sink.events) == 20  # each once: nothing was acknowledged twice
    assert [e.get_subject() for e in sink.events] == [f"c-{n}" for n in range(20)]  # in order
    assert all(e.get_extension("team") == "data" for e in sink.events)


def test_a_full_queue_drops_the_newest_and_never_blocks_the_caller() -> None:
    # A sink that accepts connections and never answers: every request hangs until its timeout.
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(100)
        audit = AuditLog(
            identity="r-0",
            sink_url=f"http://127.0.0.1:{hole.getsockname()[1]}/",
            queue_size=5,
            request_timeout_s=2.0,
        )
        took = []
        for n in range(50):
            started = time.perf_counter()
            audit(event(connector=f"c-{n}"))
            took.append(time.perf_counter() - started)
        assert max(took) < 0.010, f"slowest __call__ {max(took) * 1000:.1f} ms"
        assert audit.dropped == 45 and audit.pending == 5
        started = time.perf_counter()
        audit.close(timeout=0.2)
        assert time.perf_counter() - started < 0.2 + 2.0 + 1.0  # the deadline plus one request in flight
    assert audit.sent == 0 and audit.dropped == 50 and audit.pending == 0


def test_a_permanent_refusal_is_not_retried() -> None:
    with Receiver(status=400) as sink:
        audit = AuditLog(identity="r-0", sink_url=sink.url)
        audit(event())
        audit.close(timeout=10)
    assert (audit.sent, audit.failures, audit.dropped, sink.requests) == (0, 1, 1, 1)


def test_records_after_close_go_to_the_log_only(logs: list[dict[str, Any]]) -> None:
    with Receiver() as sink:
        audit = AuditLog(identity="r-0", sink_url=sink.url)
        audit.close(timeout=1)
        audit(event())
    assert sink.events == [] and audit.dropped == 1
    assert [e["event"] for e in logs] == ["audit"]


def test_bad_overrides_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="not JSON"):
        parse_ce_overrides("{nope")
    with pytest.raises(ConfigError, match="extensions"):
        parse_ce_overrides('{"extensions": []}')
    assert parse_ce_overrides('{"extensions": {"a1": "x"}}') == {"a1": "x"}
    assert parse_ce_overrides(None) == {}
    for name in ("Team", "team-name", "id", "data"):
        with pytest.raises(ConfigError, match="CloudEvent extension"):
            AuditLog(identity="r-0", sink_url="http://127.0.0.1:9/", ce_overrides={name: "x"})


def test_a_secret_change_has_the_same_digest_in_the_plan_and_the_audit_record(tmp_path: Path) -> None:
    """Planning masks a secret change's values; the audit record must not mask the mask (it did: the
    record showed the digest of `<secret sha256:...>`, matching no other output)."""
    import io  # noqa: PLC0415

    import httpx  # noqa: PLC0415

    from reconciler.entrypoints.main import run  # noqa: PLC0415
    from tests.fake_connect import FakeConnect  # noqa: PLC0415

    fake = FakeConnect()
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "password").write_text(SECRET)
    (tmp_path / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\n"
        "metadata: {name: cm, namespace: default, labels: {destination: connect}}\ndata:\n  c.json: |\n"
        '    {"name": "c", "config": {"connector.class": "X", "connection.password": $secrets.db.password}}\n'
    )
    out, err = io.StringIO(), io.StringIO()
    argv = ["apply", str(tmp_path / "cm.yaml"), "--secret-dir", f"db={tmp_path / 'db'}"]
    argv += ["--connect-url", "http://connect.test", "--audit-file", str(tmp_path / "audit.jsonl")]
    code = run(argv, environ={}, stdout=out, stderr=err, transport=httpx.MockTransport(fake.handle))
    assert code == 0, err.getvalue()
    assert f'+ connection.password = "{mask(SECRET)}"' in out.getvalue()
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    changes = [c for r in records if r["stage"] == "applied" for c in r["changes"]]
    assert {"key": "connection.password", "before": None, "after": mask(SECRET)} in changes
    assert SECRET not in (tmp_path / "audit.jsonl").read_text() + out.getvalue() + err.getvalue()
