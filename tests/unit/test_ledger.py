"""The ownership ledger through the pipeline, against the in-memory Connect and an in-memory store:
record before create, prune from the ledger, adoption, protection, the guards and their approval."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.core.ledger import (
    Entry,
    Ledger,
    LedgerError,
    ledger_data,
    ledger_from_configmap,
    ledger_name,
    ledger_to_file,
    ledgers_from_file,
)
from reconciler.core.pruning import ADOPT_ANNOTATION, PROTECT_ANNOTATION, PruneSettings
from reconciler.model import ActionKind, ConfigMapDoc, Problem, Report
from reconciler.pipeline import reconcile
from tests.fake_clock import FakeClock
from tests.fake_connect import FakeConnect
from tests.fake_ledger import MemoryLedgerStore
from tests.support import runtime_for


def doc(cm: str, *connectors: str, annotations: dict[str, str] | None = None, enabled: str | None = None) -> ConfigMapDoc:
    labels = {"destination": "connect", **({"enabled": enabled} if enabled else {})}
    data = {f"{c}.json": json.dumps({"name": c, "config": {"connector.class": "X"}}) for c in connectors}
    return ConfigMapDoc(cm, "apps", labels, data, annotations=annotations or {}, uid=f"uid-{cm}")


class World:
    def __init__(self, **prune: object) -> None:
        self.fake = FakeConnect()
        self.store = MemoryLedgerStore()
        self.clock = FakeClock()
        self.prune = PruneSettings(**prune)  # type: ignore[arg-type]

    def run(self, *docs: ConfigMapDoc, dry_run: bool = False, problems: tuple[Problem, ...] = ()) -> Report:
        self.fake.requests.clear()
        rt = runtime_for(self.fake, ledger=self.store, prune=self.prune, clock=self.clock)
        return reconcile(list(docs), rt=rt, dry_run=dry_run, problems=problems)

    def messages(self, report: Report) -> list[str]:
        return [str(p) for p in report.problems]


def test_an_entry_is_written_before_the_create_is_sent() -> None:
    w = World()
    order: list[str] = []
    w.store.log = order
    real = w.fake.handle

    def handle(request):  # type: ignore[no-untyped-def]
        if request.method != "GET":
            order.append(f"{request.method} {request.url.path}")
        return real(request)

    w.fake.handle = handle  # type: ignore[method-assign]
    report = w.run(doc("a", "c1"))
    assert report.ok, w.messages(report)
    # recorded before the create; noted again afterwards with the create as its last action
    assert order == ["ledger default: c1", "POST /connectors", "ledger default: c1"]
    entry = w.store.read("default").entries["c1"]
    assert (entry.owner, entry.owner_uid, entry.origin) == ("apps/a", "uid-a", "created")
    assert entry.last["action"] == "create" and entry.last["ok"] is True


def test_a_configmap_removed_while_we_were_down_is_pruned_and_forgotten_after_confirmation() -> None:
    w = World()
    w.run(doc("a", "c1"), doc("b", "c2"))
    report = w.run(doc("a", "c1"))  # b is gone: nobody remembers it but the ledger
    assert w.fake.writes() == ["DELETE /connectors/c2"]
    assert w.store.entries() == ["c1"]
    prune = next(c for c in report.plan.connectors if c.connector == "c2")
    assert prune.reason == "pruned: ConfigMap apps/b removed or no longer declares it"


def test_a_rename_deletes_the_old_connector_and_creates_the_new_one() -> None:
    w = World()
    w.run(doc("a", "old-name"))
    report = w.run(doc("a", "new-name"))
    assert report.ok, w.messages(report)
    assert sorted(w.fake.writes()) == ["DELETE /connectors/old-name", "POST /connectors"]
    assert sorted(w.fake.connectors) == ["new-name"] and w.store.entries() == ["new-name"]


def test_a_foreign_connector_is_never_touched_and_a_declared_one_is_a_conflict_until_adopted() -> None:
    w = World()
    w.fake.add("foreign", {"connector.class": "Y"})
    w.fake.add("legacy", {"connector.class": "OLD"})
    report = w.run(doc("a", "legacy"))
    assert w.fake.writes() == [] and w.store.entries() == []
    assert any("connector legacy: exists in Connect but is not managed" in m for m in w.messages(report))
    report = w.run(doc("a", "legacy", annotations={ADOPT_ANNOTATION: "true"}))
    assert w.fake.writes() == ["PUT /connectors/legacy/config"]  # adopted, then its config applied once
    assert w.store.read("default").entries["legacy"].origin == "adopted"
    assert "foreign" in w.fake.connectors and report.ok
    w.run(doc("a", "legacy", annotations={ADOPT_ANNOTATION: "true"}))
    assert w.fake.writes() == []  # in sync: nothing rewritten


def test_adopt_flag_adopts_by_name() -> None:
    w = World(adopt=frozenset({"legacy"}))
    w.fake.add("legacy", {"connector.class": "X"})
    assert w.run(doc("a", "legacy")).ok and w.store.entries() == ["legacy"]


def test_a_dry_run_logs_no_adoption_and_the_apply_logs_it_once() -> None:
    from structlog.testing import capture_logs  # noqa: PLC0415

    w = World(adopt=frozenset({"legacy"}))
    w.fake.add("legacy", {"connector.class": "X"})
    with capture_logs() as logs:
        w.run(doc("a", "legacy"), dry_run=True)
    assert [r for r in logs if r["event"] == "connector adopted into the ledger"] == []
    assert w.store.entries() == []
    with capture_logs() as logs:
        w.run(doc("a", "legacy"))
    assert [r["connector"] for r in logs if r["event"] == "connector adopted into the ledger"] == ["legacy"]


def test_a_protected_connector_is_never_pruned_even_when_its_configmap_is_gone() -> None:
    w = World()
    w.run(doc("a", "keep", annotations={PROTECT_ANNOTATION: "true"}), doc("b", "other"))
    report = w.run(doc("b", "other"))
    assert w.fake.writes() == [] and "keep" in w.fake.connectors
    held = next(c for c in report.plan.connectors if c.connector == "keep")
    assert held.actions == () and "protected by connect-reconciler.io/prevent-delete" in (held.reason or "")
    assert w.store.read("default").entries["keep"].protect  # the protection outlives its ConfigMap


def test_deleting_every_configmap_is_blocked_until_an_approval_newer_than_the_block() -> None:
    w = World()
    w.run(doc("a", "c1"), doc("b", "c2"))
    w.store.approve("default", "2000-01-01T00:00:00Z")  # an old approval must not count
    report = w.run()
    assert w.fake.writes() == [] and sorted(w.fake.connectors) == ["c1", "c2"]
    assert any("prune blocked: the desired set of cluster default would be empty" in m for m in w.messages(report))
    assert not report.ok
    blocked = w.store.read("default").blocked_since
    assert blocked is not None
    w.clock._advance(60)
    w.store.approve("default", (w.clock.now()).strftime("%Y-%m-%dT%H:%M:%SZ"))
    report = w.run()
    assert sorted(w.fake.writes()) == ["DELETE /connectors/c1", "DELETE /connectors/c2"]
    assert w.store.entries() == [] and w.store.read("default").blocked_since is None


def test_a_delete_cap_exceeded_by_one_blocks_every_delete_but_not_the_rest() -> None:
    w = World(max_deletes=2, max_delete_ratio=1.0)
    w.run(doc("a", "c1", "c2", "c3", "keep"))
    report = w.run(doc("a", "keep", "new"))
    assert w.fake.writes() == ["POST /connectors"]  # the create goes ahead
    assert any("3 deletes exceed --max-deletes 2" in m for m in w.messages(report))
    assert sorted(w.fake.connectors) == ["c1", "c2", "c3", "keep", "new"]


def test_the_ratio_cap() -> None:
    w = World(max_deletes=100, max_delete_ratio=0.5)
    w.run(doc("a", "c1", "c2", "c3", "c4"))
    report = w.run(doc("a", "c4"))
    assert w.fake.writes() == [] and any("75% of the cluster" in m for m in w.messages(report))


def test_nothing_is_pruned_from_a_partial_view() -> None:
    w = World()
    w.run(doc("a", "c1"), doc("b", "c2"))
    broken = ConfigMapDoc("b", "apps", {"destination": "connect"}, {"c2.json": "{not jq"})
    report = w.run(doc("a", "c1"), broken)
    assert w.fake.writes() == []
    held = next(c for c in report.plan.connectors if c.connector == "c2")
    assert "the view is partial" in (held.reason or "")
    w.run(doc("a", "c1"), problems=(Problem("namespace other: cannot list"),))
    assert w.fake.writes() == [] and w.store.entries() == ["c1", "c2"]


def test_an_unreadable_ledger_means_no_create_and_no_prune() -> None:
    w = World()
    w.run(doc("a", "c1"))
    w.store.fail_reads = 1
    report = w.run(doc("b", "c2"))
    assert w.fake.writes() == [] and any(p.retryable for p in report.problems)


def test_a_conflicting_ledger_write_sends_nothing_and_the_next_pass_replans() -> None:
    w = World()
    w.store.conflicts = 1
    report = w.run(doc("a", "c1"))
    assert w.fake.writes() == [] and any("409" in m for m in w.messages(report))
    assert w.run(doc("a", "c1")).ok and w.store.entries() == ["c1"]


def test_a_grace_period_cancels_the_delete_when_the_declaration_comes_back() -> None:
    w = World(grace_seconds=600)
    w.run(doc("a", "c1"), doc("b", "c2"))
    report = w.run(doc("a", "c1"))
    assert w.fake.writes() == []
    assert "deleted after" in (next(c for c in report.plan.connectors if c.connector == "c2").reason or "")
    w.clock._advance(300)
    w.run(doc("a", "c1"), doc("c", "c2"))  # moved to another ConfigMap within the grace period
    assert w.store.read("default").entries["c2"].owner == "apps/c"
    w.clock._advance(900)
    w.run(doc("a", "c1"), doc("c", "c2"))
    assert w.fake.writes() == [] and "c2" in w.fake.connectors
    w.run(doc("a", "c1"))
    w.clock._advance(601)
    w.run(doc("a", "c1"))
    assert w.fake.writes() == ["DELETE /connectors/c2"]


def test_a_dry_run_shows_the_prunes_and_writes_neither_connect_nor_the_ledger() -> None:
    w = World()
    w.run(doc("a", "c1"), doc("b", "c2"))
    before = dict(w.store.stored)
    report = w.run(doc("a", "c1"), dry_run=True)
    assert w.fake.writes() == [] and w.store.stored == before
    [delete] = [a for a in report.plan.actions if a.kind is ActionKind.DELETE]
    assert delete.connector == "c2"


def test_enabled_false_deletes_only_an_owned_connector() -> None:
    w = World()
    w.fake.add("foreign", {"connector.class": "X"})
    w.run(doc("a", "mine"))
    report = w.run(doc("a", "mine", enabled="false"), doc("b", "foreign", enabled="false"))
    assert w.fake.writes() == ["DELETE /connectors/mine"]
    assert "foreign" in w.fake.connectors and w.store.entries() == []
    assert any("connector foreign: exists in Connect but is not managed" in str(p) for p in report.problems)


def test_a_connector_already_gone_is_forgotten_without_a_delete() -> None:
    w = World()
    w.run(doc("a", "c1"), doc("b", "c2"))
    del w.fake.connectors["c2"]  # deleted by hand
    w.run(doc("a", "c1"))
    assert w.fake.writes() == [] and w.store.entries() == ["c1"]


def test_the_ledger_round_trips_through_configmap_data_and_the_export_file() -> None:
    ledger = Ledger(
        "east",
        {"c1": Entry("c1", "ns/a", "uid", "adopted", "2026-01-01T00:00:00Z", True, None, {"count": 2})},
        version="7",
        blocked_since="2026-01-02T00:00:00Z",
        blocked_reason="r",
    )
    back = ledger_from_configmap("east", data=ledger_data(ledger), annotations={}, version="7")
    assert back == ledger
    assert ledgers_from_file(ledger_to_file({"east": ledger}), origin="f")["east"].entries == ledger.entries
    assert ledger_name("East_1") == "connect-reconciler-ledger-east-1"
    with pytest.raises(LedgerError, match="is not JSON"):
        ledger_from_configmap("east", data={"entries.json": "{"}, annotations={}, version="1")


def test_an_approval_counts_only_when_not_older_than_the_block() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (now + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert Ledger("c", blocked_since=stamp, approved_at=later).approval_applies
    assert Ledger("c", blocked_since=stamp, approved_at=stamp).approval_applies
    assert not Ledger("c", blocked_since=later, approved_at=stamp).approval_applies
    assert not Ledger("c", approved_at=stamp).approval_applies


def test_a_failed_task_is_restarted_with_backoff_and_the_count_lives_in_the_ledger() -> None:
    w = World()
    w.run(doc("a", "c1"))
    w.fake.fail_task("c1")
    w.run(doc("a", "c1"))
    assert w.fake.writes() == ["POST /connectors/c1/restart"]
    assert w.store.read("default").entries["c1"].restart["count"] == 1
    w.fake.fail_task("c1")
    report = w.run(doc("a", "c1"))  # a new Runtime each pass: only the ledger remembers the count
    assert w.fake.writes() == []
    note = next(c.restart for c in report.plan.connectors if c.connector == "c1")
    assert note is not None and "restart 2 allowed in 2 min" in note
    w.clock._advance(121)
    w.run(doc("a", "c1"))
    assert w.fake.writes() == ["POST /connectors/c1/restart"]
    assert w.store.read("default").entries["c1"].restart["count"] == 2


def test_a_foreign_failed_connector_is_never_restarted() -> None:
    w = World()
    w.fake.add("foreign", {"connector.class": "Y"})
    w.fake.fail_task("foreign")
    w.run(doc("a", "c1"))
    assert w.fake.writes() == ["POST /connectors"]


def test_status_reports_a_prune_block_and_the_restart_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io  # noqa: PLC0415

    import httpx  # noqa: PLC0415

    from reconciler import runtime  # noqa: PLC0415
    from reconciler.entrypoints.main import run  # noqa: PLC0415

    w = World()
    w.run(doc("a", "c1"), doc("b", "c2"))
    w.fake.fail_task("c1")
    w.run(doc("a", "c1"), doc("b", "c2"))  # restarted once
    w.run()  # every ConfigMap gone: blocked
    monkeypatch.setattr(runtime, "ledger_store", lambda _settings, namespace=None: w.store)
    (tmp_path / "a.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: apps, labels: {destination: connect}}\n"
        'data: {c1.json: \'{"name": "c1", "config": {"connector.class": "X"}}\'}\n'
    )
    out, err = io.StringIO(), io.StringIO()
    code = run(
        ["status", str(tmp_path), "--connect-url", "http://connect.test", "--ledger-namespace", "apps"],
        environ={},
        stdout=out,
        stderr=err,
        transport=httpx.MockTransport(w.fake.handle),
    )
    assert code == 1
    assert "prune blocked since" in err.getvalue() and "approve-deletes --cluster default" in err.getvalue()
    row = next(line.split() for line in out.getvalue().splitlines() if line.startswith("c1 "))
    assert row[-3:] == ["1", "0", "-"] and "restart" in row  # the last action, one restart, no recreation


def test_before_a_delete_its_last_config_masked_and_its_offsets_are_logged() -> None:
    from structlog.testing import capture_logs  # noqa: PLC0415

    w = World()
    w.run(doc("a", "c1"), doc("b", "c2"))
    w.fake.connectors["c2"]["config"]["connection.password"] = "Live-Secret-Value-99"
    w.fake.offsets["c2"] = [{"partition": {"file": "/tmp/x"}, "offset": {"position": 42}}]
    with capture_logs() as logs:
        w.run(doc("a", "c1"))
    [record] = [r for r in logs if r["event"] == "deleting connector"]
    assert record["connector"] == "c2" and record["reason"].startswith("pruned: ConfigMap apps/b removed")
    assert record["offsets"] == {"offsets": w.fake.offsets["c2"]}
    assert record["config"]["connection.password"].startswith("<secret sha256:")
    assert w.fake.writes() == ["DELETE /connectors/c2"]


def test_a_prune_answered_by_a_starting_worker_is_not_forgotten_until_connect_confirms_it() -> None:
    """A 404 that is not Connect's JSON (a worker starting, a proxy) is no proof the connector is gone:
    the entry stays owned, and the next pass deletes it for real and only then forgets it."""
    w = World()
    w.run(doc("a", "c1"), doc("b", "c2"))
    html = "<html><body><h2>HTTP ERROR 404 Not Found</h2></body></html>"
    w.fake.fail("DELETE", "/connectors/c2", 404, html, times=50)
    report = w.run(doc("a", "c1"))
    assert not report.ok and "c2" in w.fake.connectors
    assert w.store.entries() == ["c1", "c2"]  # still ours: the next pass prunes it again
    w.fake.faults.clear()
    report = w.run(doc("a", "c1"))
    assert report.ok and "c2" not in w.fake.connectors and w.store.entries() == ["c1"]


def test_a_cluster_that_cannot_be_observed_prunes_and_forgets_nothing() -> None:
    w = World()
    w.run(doc("a", "c1"), doc("b", "c2"))
    w.fake.fail("GET", "/connectors", 503, "<html>unavailable</html>", times=50)
    report = w.run(doc("a", "c1"))
    assert w.fake.writes() == [] and w.store.entries() == ["c1", "c2"]
    assert any(p.retryable for p in report.problems)
