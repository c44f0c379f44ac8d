"""pipeline.reconcile against the in-memory Connect: deleted ConfigMaps, unknown clusters, dry runs."""

from __future__ import annotations

import json

from reconciler.model import ConfigMapDoc, Problem
from reconciler.pipeline import reconcile
from tests.fake_connect import FakeConnect
from tests.support import runtime_for


def doc(cm: str, connector: str, *, labels: dict[str, str] | None = None, **extra: object) -> ConfigMapDoc:
    program = json.dumps({"name": connector, "config": {"connector.class": "X"}, **extra})
    return ConfigMapDoc(cm, "default", labels or {"destination": "connect"}, {"k.json": program})


def test_deleted_configmap_deletes_its_connectors_even_after_relabel() -> None:
    fake = FakeConnect()
    fake.add("gone", {"connector.class": "X"})
    fake.add("kept", {"connector.class": "X"})
    relabeled = doc("cm-gone", "gone", labels={"app": "x"})  # no longer matches the selector
    report = reconcile(
        [doc("cm-kept", "kept")],
        deleted=[relabeled],
        rt=runtime_for(fake),
        dry_run=False,
    )
    assert report.ok and fake.writes() == ["DELETE /connectors/gone"]


def test_connector_moved_to_another_configmap_is_not_deleted() -> None:
    fake = FakeConnect()
    fake.add("moved", {"connector.class": "X"})
    report = reconcile(
        [doc("cm-new", "moved")],
        deleted=[doc("cm-old", "moved")],
        rt=runtime_for(fake),
        dry_run=False,
    )
    assert report.ok and fake.writes() == [] and report.plan.problems == ()


def test_a_connector_moved_into_a_broken_configmap_is_not_deleted() -> None:
    """The PR moves `moved` from cm-old into cm-new and breaks cm-new: the desired set is partial, so the
    deletion waits (its tombstone stays) until cm-new renders again."""
    fake = FakeConnect()
    fake.add("moved", {"connector.class": "X"})
    broken = ConfigMapDoc("cm-new", "default", {"destination": "connect"}, {"k.json": '{"name": "moved", '})
    rt = runtime_for(fake)
    report = reconcile([broken], deleted=[doc("cm-old", "moved")], rt=rt, dry_run=False)
    assert fake.writes() == [] and report.settled_deletions == frozenset()
    assert any(
        str(p).startswith("ConfigMap default/cm-old: deleted; its connectors are kept")
        for p in report.problems
    )
    # A file the caller could not parse at all makes the set partial too.
    report = reconcile(
        [], deleted=[doc("cm-old", "moved")], rt=rt, dry_run=False, problems=[Problem("x.yaml: bad")]
    )
    assert fake.writes() == [] and report.settled_deletions == frozenset()
    report = reconcile([], deleted=[doc("cm-old", "moved")], rt=rt, dry_run=False)
    assert fake.writes() == ["DELETE /connectors/moved"] and report.settled_deletions == {"default/cm-old"}


def test_unknown_cluster_is_a_problem_for_that_connector_only() -> None:
    fake = FakeConnect()
    report = reconcile(
        [doc("a", "a", cluster="nowhere"), doc("b", "b")],
        rt=runtime_for(fake),
        dry_run=False,
    )
    assert fake.writes() == ["POST /connectors"]
    assert [(p.connector, p.message) for p in report.problems] == [("a", "unknown Connect cluster 'nowhere'")]


def test_dry_run_writes_nothing() -> None:
    fake = FakeConnect()
    report = reconcile(
        [doc("a", "a")],
        rt=runtime_for(fake),
        dry_run=True,
    )
    assert report.plan.has_changes and report.outcomes == () and fake.writes() == []


def test_observers_see_every_action_and_the_pass_and_a_failing_one_breaks_nothing() -> None:
    from dataclasses import replace  # noqa: PLC0415

    from reconciler.telemetry import ActionEvent, PassEvent  # noqa: PLC0415

    fake = FakeConnect()
    seen: list[object] = []

    def broken(_event: object) -> None:
        raise RuntimeError("sink down")

    rt = replace(runtime_for(fake), observers=(broken, seen.append))
    source = ConfigMapDoc(
        "a", "default", {"destination": "connect"}, doc("a", "a").data, uid="u1", resource_version="7",
        changed_by="kustomize-controller", changed_at="2026-12-03T12:00:00Z",
    )
    report = reconcile([source], rt=rt, dry_run=True)
    [planned, finished] = seen
    assert isinstance(planned, ActionEvent) and planned.outcome is None and planned.dry_run
    assert planned.source is not None and planned.source.changed_by == "kustomize-controller"
    assert isinstance(finished, PassEvent) and finished.report is report
    seen.clear()
    report = reconcile([source], rt=rt, dry_run=False)
    [executed, finished] = seen
    assert isinstance(executed, ActionEvent) and executed.outcome is not None and executed.outcome.ok
    assert executed.outcome.duration_s >= 0 and fake.writes() == ["POST /connectors"] and report.ok


def test_managed_fields_name_the_last_writer_of_data() -> None:
    from reconciler.core.specs import configmap_from_object  # noqa: PLC0415

    obj = {
        "metadata": {
            "name": "a",
            "namespace": "ns",
            "uid": "u",
            "resourceVersion": "42",
            "managedFields": [
                {"manager": "kubectl-client-side-apply", "time": "2026-01-01T00:00:00Z", "fieldsV1": {"f:data": {}}},
                {"manager": "kubectl-label", "time": "2026-06-01T00:00:00Z", "fieldsV1": {"f:metadata": {}}},
                {"manager": "kubectl-edit", "time": "2026-03-01T00:00:00Z", "fieldsV1": {"f:data": {"f:k": {}}}},
            ],
        },
        "data": {"k": "{}"},
    }
    cm = configmap_from_object(obj)
    assert (cm.changed_by, cm.changed_at, cm.resource_version) == ("kubectl-edit", "2026-03-01T00:00:00Z", "42")
