"""The ownership ledger against the real kube-apiserver and the real Kafka Connect worker.

Each test has its own namespace, so its own ledger (`connect-reconciler-ledger-default` there); the
Connect worker is shared, so every other test's connectors are foreign here and must stay untouched.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from reconciler.entrypoints.main import run
from tests.harness.apiserver_kit import ApiServerKit
from tests.harness.connect_kit import ConnectKit
from tests.integration.test_watcher_kube import Running, configmap, source
from tests.support import Connect, eventually

LEDGER = "connect-reconciler-ledger-default"


@pytest.fixture
def names(connect: Connect) -> Iterator[dict[str, str]]:
    """Unique connector names for this test; whatever is left of them is deleted afterwards."""
    run_id = uuid.uuid4().hex[:6]
    made: dict[str, str] = {}

    class Names(dict[str, str]):
        def __missing__(self, key: str) -> str:
            made[key] = self[key] = f"{run_id}-{key}"
            return self[key]

    yield Names()
    for name in made.values():
        connect.http.delete(f"/connectors/{name}")


def ledger_entries(core: client.CoreV1Api, namespace: str) -> dict[str, Any]:
    try:
        cm = core.read_namespaced_config_map(LEDGER, namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return {}
        raise
    entries: dict[str, Any] = json.loads((cm.data or {}).get("entries.json", "{}"))
    return entries


def problems(running: Running) -> list[str]:
    return [str(p) for r in running.reports for p in r.problems]


def watch(apiserver: ApiServerKit, namespace: str, connect_kit: ConnectKit, **values: Any) -> Running:
    values.setdefault("resync", 2)
    return Running(apiserver, namespace, connect_kit.connect_url, ledger_namespace=namespace, **values)


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), environ={}, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_a_configmap_deleted_while_the_reconciler_is_down_is_pruned_at_the_next_start(
    apiserver: ApiServerKit,
    namespace: str,
    connect_kit: ConnectKit,
    connect: Connect,
    core: client.CoreV1Api,
    names: dict[str, str],
) -> None:
    a, b = names["a"], names["b"]
    with watch(apiserver, namespace, connect_kit):
        core.create_namespaced_config_map(namespace, configmap("a", {a: source(connect_kit, a)}))
        core.create_namespaced_config_map(namespace, configmap("b", {b: source(connect_kit, b)}))
        eventually(lambda: connect.config(a) is not None and connect.config(b) is not None, what="a and b")
    assert sorted(ledger_entries(core, namespace)) == sorted([a, b])
    assert ledger_entries(core, namespace)[b]["owner"] == f"{namespace}/b"
    core.delete_namespaced_config_map("b", namespace)  # nobody is watching: no event, no tombstone
    with watch(apiserver, namespace, connect_kit):
        eventually(lambda: connect.config(b) is None, what="b pruned at the next start")
        eventually(lambda: sorted(ledger_entries(core, namespace)) == [a], what="b forgotten")
    assert connect.state(a) == "RUNNING"


def test_a_rename_deletes_the_old_connector_and_creates_the_new_one(
    apiserver: ApiServerKit,
    namespace: str,
    connect_kit: ConnectKit,
    connect: Connect,
    core: client.CoreV1Api,
    names: dict[str, str],
) -> None:
    old, new = names["old"], names["new"]
    with watch(apiserver, namespace, connect_kit):
        core.create_namespaced_config_map(namespace, configmap("a", {old: source(connect_kit, old)}))
        eventually(lambda: connect.config(old) is not None, what="the old name")
        core.replace_namespaced_config_map("a", namespace, configmap("a", {new: source(connect_kit, old)}))
        eventually(lambda: connect.config(new) is not None and connect.config(old) is None, what="the rename")
        eventually(lambda: sorted(ledger_entries(core, namespace)) == [new], what="the ledger after it")


def test_a_configmap_that_stops_declaring_one_of_its_two_connectors_prunes_it_in_a_targeted_pass(
    apiserver: ApiServerKit,
    namespace: str,
    connect_kit: ConnectKit,
    connect: Connect,
    core: client.CoreV1Api,
    names: dict[str, str],
) -> None:
    """No resync during the test: the edit's own pass, targeted at ConfigMap a, must make the prune a
    full pass would make — and leave b's connector, which it does not read, alone."""
    keep, drop, other = names["keep"], names["drop"], names["other"]
    two = {keep: source(connect_kit, keep), drop: source(connect_kit, drop)}
    with watch(apiserver, namespace, connect_kit, resync=3600) as running:
        core.create_namespaced_config_map(namespace, configmap("a", two))
        core.create_namespaced_config_map(namespace, configmap("b", {other: source(connect_kit, other)}))
        eventually(
            lambda: all(connect.config(n) is not None for n in (keep, drop, other)), what="three connectors"
        )
        eventually(
            lambda: sorted(ledger_entries(core, namespace)) == sorted([keep, drop, other]), what="owned"
        )
        before = len(running.reports)
        core.replace_namespaced_config_map("a", namespace, configmap("a", {keep: source(connect_kit, keep)}))
        eventually(lambda: connect.config(drop) is None, what="the undeclared connector pruned")
        eventually(lambda: sorted(ledger_entries(core, namespace)) == sorted([keep, other]), what="forgotten")
        pruning = [r for r in running.reports[before:] if any(o.action.connector == drop for o in r.outcomes)]
        assert pruning and all(r.scope is not None for r in pruning), "the prune came from a full pass"
        assert other not in pruning[0].scope.get("default", frozenset())  # type: ignore[union-attr]
    assert connect.state(keep) == "RUNNING" and connect.state(other) == "RUNNING"
    assert not problems(running)


def test_deleting_every_configmap_is_blocked_until_approved(
    apiserver: ApiServerKit,
    namespace: str,
    connect_kit: ConnectKit,
    connect: Connect,
    core: client.CoreV1Api,
    names: dict[str, str],
) -> None:
    c1, c2 = names["c1"], names["c2"]
    with watch(apiserver, namespace, connect_kit) as running:
        core.create_namespaced_config_map(namespace, configmap("a", {c1: source(connect_kit, c1)}))
        core.create_namespaced_config_map(namespace, configmap("b", {c2: source(connect_kit, c2)}))
        eventually(lambda: connect.config(c1) is not None and connect.config(c2) is not None, what="both")
        core.delete_collection_namespaced_config_map(namespace, label_selector="destination=connect")
        eventually(
            lambda: any(
                "prune blocked: the desired set of cluster default would be empty" in p
                for p in problems(running)
            ),
            what="the block to be reported",
        )
        assert connect.config(c1) is not None and connect.config(c2) is not None
        code, out, err = cli(
            "approve-deletes",
            "--ledger-namespace",
            namespace,
            "--kubeconfig",
            str(apiserver.kubeconfig_path),
            "--connect-url",
            connect_kit.connect_url,
        )
        assert code == 0, err
        assert "approved deletes on cluster default" in out and "blocked since" in out
        eventually(
            lambda: connect.config(c1) is None and connect.config(c2) is None, what="the approved deletes"
        )
        eventually(lambda: ledger_entries(core, namespace) == {}, what="an empty ledger")


def test_a_delete_cap_exceeded_by_one_blocks_every_prune(
    apiserver: ApiServerKit,
    namespace: str,
    connect_kit: ConnectKit,
    connect: Connect,
    core: client.CoreV1Api,
    names: dict[str, str],
) -> None:
    keep, x, y = names["keep"], names["x"], names["y"]
    with watch(apiserver, namespace, connect_kit, max_deletes=1, max_delete_ratio=1.0) as running:
        core.create_namespaced_config_map(namespace, configmap("keep", {keep: source(connect_kit, keep)}))
        core.create_namespaced_config_map(
            namespace, configmap("gone", {x: source(connect_kit, x), y: source(connect_kit, y)})
        )
        eventually(lambda: all(connect.config(n) is not None for n in (keep, x, y)), what="three connectors")
        core.delete_namespaced_config_map("gone", namespace)
        eventually(
            lambda: any("prune blocked: 2 deletes exceed --max-deletes 1" in p for p in problems(running)),
            what="the cap to block",
        )
        assert all(connect.config(n) is not None for n in (keep, x, y))


def test_foreign_and_protected_connectors_are_never_touched_and_adoption_is_explicit(
    apiserver: ApiServerKit,
    namespace: str,
    connect_kit: ConnectKit,
    connect: Connect,
    core: client.CoreV1Api,
    names: dict[str, str],
) -> None:
    foreign, legacy, guarded, other = names["foreign"], names["legacy"], names["guarded"], names["other"]
    for name in (foreign, legacy):
        body = {"name": name, "config": {**source(connect_kit, name)["config"], "tasks.max": "1"}}
        assert connect.http.post("/connectors", json=body).status_code == 201
    protected = configmap("guarded", {guarded: source(connect_kit, guarded)})
    protected["metadata"]["annotations"] = {"connect-reconciler.io/prevent-delete": "true"}
    declared = configmap("legacy", {legacy: source(connect_kit, f"{legacy}-v2")})
    with watch(apiserver, namespace, connect_kit) as running:
        core.create_namespaced_config_map(namespace, protected)
        core.create_namespaced_config_map(namespace, configmap("other", {other: source(connect_kit, other)}))
        core.create_namespaced_config_map(namespace, declared)
        eventually(lambda: connect.config(guarded) is not None, what="the protected connector")
        eventually(
            lambda: any(
                f"connector {legacy}: exists in Connect but is not managed" in p for p in problems(running)
            ),
            what="the adoption conflict",
        )
        assert connect.config(legacy)["topic"] == legacy  # left alone: not adopted
        declared["metadata"]["annotations"] = {"connect-reconciler.io/adopt": "true"}
        core.replace_namespaced_config_map("legacy", namespace, declared)
        eventually(lambda: (connect.config(legacy) or {}).get("topic") == f"{legacy}-v2", what="the adoption")
        assert ledger_entries(core, namespace)[legacy]["origin"] == "adopted"
        core.delete_namespaced_config_map("guarded", namespace)
        running.reports.clear()
        eventually(lambda: len(running.reports) >= 2, what="two passes after the delete")
        assert connect.config(guarded) is not None  # protected: the ledger kept the flag
        assert ledger_entries(core, namespace)[guarded]["protect"] is True
    assert connect.config(foreign) is not None and foreign not in ledger_entries(core, namespace)


def test_plan_of_a_directory_missing_one_file_shows_its_deletes_from_the_ledger(
    apiserver: ApiServerKit,
    namespace: str,
    connect_kit: ConnectKit,
    connect: Connect,
    names: dict[str, str],
    tmp_path: Path,
) -> None:
    a, b = names["a"], names["b"]
    repo = tmp_path / "repo"
    repo.mkdir()
    for cm, name in (("a", a), ("b", b)):
        body = configmap(cm, {name: source(connect_kit, name)})
        body["metadata"]["namespace"] = namespace
        (repo / f"{cm}.yaml").write_text(yaml.safe_dump(body))
    remote = [
        "--ledger-namespace",
        namespace,
        "--kubeconfig",
        str(apiserver.kubeconfig_path),
        "--connect-url",
        connect_kit.connect_url,
    ]
    code, out, err = cli("apply", str(repo), *remote)
    assert code == 0, out + err
    # `status` against the cluster alone: the ledger says what is managed, Connect how it is.
    eventually(lambda: cli("status", *remote)[0] == 0, what="status from the ledger to settle")
    print(cli("status", *remote)[1])  # the README's sample table
    code, out, err = cli("status", *remote, "--output", "json")
    rows = {r["connector"]: r for r in json.loads(out)}
    assert {a, b} <= set(rows) and rows[a]["managed"] and rows[a]["live"] == "RUNNING"
    assert rows[a]["last_action"] == "create" and rows[a]["desired"] == "unknown"
    (repo / "b.yaml").unlink()  # the pull request removes one file
    code, out, err = cli("plan", str(repo), *remote)
    assert code == 2, out + err
    assert f"- delete {b} @default (pruned: ConfigMap {namespace}/b removed or no longer declares it)" in out
    code, exported, err = cli("ledger", "export", *remote)
    assert code == 0, err
    (tmp_path / "ledger.json").write_text(exported)
    code, offline, err = cli(
        "plan",
        str(repo),
        "--ledger-file",
        str(tmp_path / "ledger.json"),
        "--connect-url",
        connect_kit.connect_url,
    )
    assert code == 2 and f"- delete {b} @default" in offline, offline + err
    code, out, err = cli("plan", str(repo), "--connect-url", connect_kit.connect_url)
    assert "prunes cannot be shown" in err or "cannot be shown" in err
    assert connect.config(b) is not None  # plans never write
