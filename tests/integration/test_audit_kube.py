"""The audit log against a real kube-apiserver and a real Kafka Connect worker.

ConfigMaps are read from the API server, so `uid`, `resourceVersion` and managedFields are real: created
by field manager `kustomize-controller` (as Flux does), then edited by `kubectl-edit`. Each pass runs
the pipeline with an `AuditLog` observer writing a file and sending CloudEvents to a local receiver that
parses them with the CloudEvents SDK. (The watcher takes no observers yet: the pipeline is called as
`run` would call it.)
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any, cast

from kubernetes import client

from reconciler.audit import AuditLog
from reconciler.core.redaction import Redactor
from reconciler.core.specs import configmap_from_object
from reconciler.model import ConfigMapDoc
from reconciler.pipeline import reconcile
from reconciler.runtime import open_runtime
from tests.harness.apiserver_kit import ApiServerKit
from tests.harness.connect_kit import ConnectKit
from tests.integration.test_watcher_kube import configmap, kubelet_volume, source, watcher_settings
from tests.support import Connect, eventually
from tests.unit.test_audit import Receiver

FLUX = {
    "kustomize.toolkit.fluxcd.io/name": "connectors",
    "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
}


def read_docs(api: client.ApiClient, namespace: str) -> list[ConfigMapDoc]:
    items = client.CoreV1Api(api).list_namespaced_config_map(namespace).items
    serialize: Any = api.sanitize_for_serialization  # the client leaves it unannotated
    return [configmap_from_object(serialize(item)) for item in items]


def test_audit_records_name_the_configmap_revision_and_its_last_writer(
    tmp_path: Path, apiserver: ApiServerKit, namespace: str, connect_kit: ConnectKit
) -> None:
    name = f"audit-{uuid.uuid4().hex[:6]}"
    old, new = f"old-{uuid.uuid4().hex}", f"new-{uuid.uuid4().hex}"
    vol = tmp_path / "db"
    kubelet_volume(vol, {"password": old}, version=0)
    connector = source(connect_kit, f"{name}-t1")
    connector["config"]["connection.password"] = "PASSWORD_PLACEHOLDER"  # FileStream ignores it
    body = configmap("cm-audit", {name: connector}, labels={"destination": "connect", **FLUX})
    body["data"] = {
        k: v.replace('"PASSWORD_PLACEHOLDER"', "$secrets.db.password") for k, v in body["data"].items()
    }
    settings = watcher_settings(namespace, connect_kit.connect_url, secret_dir=[f"db={vol}"])
    audit_file = tmp_path / "audit.jsonl"
    connect = Connect(connect_kit.connect_url)
    redactor = {"current": Redactor()}
    with (
        apiserver.api_client() as api,
        Receiver() as sink,
    ):
        core = client.CoreV1Api(api)
        audit = AuditLog.from_environ(
            {"K_SINK": sink.url, "K_CE_OVERRIDES": json.dumps({"extensions": {"team": "data"}})},
            identity="connect-reconciler-0",
            file=str(audit_file),
            redactor_ref=lambda: redactor["current"],
        )

        def one_pass() -> list[ConfigMapDoc]:
            docs = read_docs(api, namespace)
            with open_runtime(settings, environ={}, observers=[audit]) as rt:
                redactor["current"] = rt.redactor.with_values([old])  # the rotated-out value stays secret
                report = reconcile(docs, rt=rt, dry_run=False)
            assert report.ok, [str(p) for p in report.problems]
            return docs

        try:
            core.create_namespaced_config_map(
                namespace, cast(Any, body), field_manager="kustomize-controller"
            )
            [created] = one_pass()
            assert created.changed_by == "kustomize-controller"
            eventually(
                lambda: (connect.config(name) or {}).get("connection.password") == old, what="the value"
            )
            time.sleep(1.1)  # managedFields times have one-second resolution: the edit must be later
            # A hand edit: a new topic; and the Secret rotated under it.
            edited = core.read_namespaced_config_map("cm-audit", namespace)
            edited.data = {k: v.replace(f"{name}-t1", f"{name}-t2") for k, v in (edited.data or {}).items()}
            core.replace_namespaced_config_map("cm-audit", namespace, edited, field_manager="kubectl-edit")
            kubelet_volume(vol, {"password": new}, version=1)
            [after] = one_pass()
            # The config write starts a rebalance; a read during it may get a 409, not the config.
            eventually(
                lambda: (connect.config(name) or {}).get("connection.password") == new, what="the new value"
            )
        finally:
            audit.close(timeout=20)
            connect.http.delete(f"/connectors/{name}")
            connect.http.close()
        live = core.read_namespaced_config_map("cm-audit", namespace).metadata
        assert live is not None

    records = [json.loads(line) for line in audit_file.read_text().splitlines()]
    assert [(r["verb"], r["stage"]) for r in records] == [("create", "applied"), ("update", "applied")]
    create, update = records
    assert create["actor"] == {
        "reconciler": "connect-reconciler-0",
        "lastWriter": "kustomize-controller",
        "lastWriteTime": created.changed_at,
    }
    assert update["actor"]["lastWriter"] == "kubectl-edit"
    assert update["actor"]["lastWriteTime"] == after.changed_at
    assert update["sourceRef"] == {
        "namespace": namespace,
        "name": "cm-audit",
        "key": f"{name}.json",
        "uid": live.uid,
        "resourceVersion": live.resource_version,
        "origin": None,
    }
    assert create["sourceRef"]["uid"] == live.uid
    assert int(create["sourceRef"]["resourceVersion"]) < int(update["sourceRef"]["resourceVersion"])
    assert update["flux"] == {"kustomization": "flux-system/connectors", "revision": None}
    assert update["objectRef"] == {"connectCluster": "default", "connector": name}
    # The executor records a status code only for failures (Outcome.http_status): a success has none.
    assert update["responseStatus"] == {"ok": True, "code": None, "message": "done", "skipped": False}
    assert update["durationSeconds"] > 0
    changes = {c["key"]: c for c in update["changes"]}
    assert changes["topic"] == {"key": "topic", "before": f"{name}-t1", "after": f"{name}-t2"}
    assert changes["connection.password"]["before"].startswith("<secret sha256:")
    assert changes["connection.password"]["after"].startswith("<secret sha256:")

    # The sink got both, parsed by the SDK, carrying the same records.
    assert (audit.sent, audit.dropped) == (2, 0)
    got = sink.by_id()
    assert sorted(got) == sorted(r["auditID"] for r in records)
    ce = got[update["auditID"]]
    assert ce.get_type() == "io.connectreconciler.connector.update.v1"
    assert ce.get_source() == "/connect-reconciler/connect-reconciler-0"
    assert ce.get_subject() == name
    assert ce.get_extension("connectcluster") == "default"
    assert ce.get_extension("team") == "data"
    data: Any = ce.get_data()
    assert data["actor"]["lastWriter"] == "kubectl-edit"
    assert data == update

    # No secret anywhere: the file, the CloudEvents' headers and bodies.
    said = audit_file.read_text() + "".join(json.dumps(h) + b.decode() for h, b in sink.raw)
    assert old not in said and new not in said

    headers, raw_body = next((h, b) for h, b in sink.raw if h.get("ce-id") == update["auditID"])
    print("\n--- audit record (file line) ---")
    print(json.dumps(update, indent=2))
    print("--- CloudEvent (HTTP binary mode) ---")
    for key in sorted(headers):
        if key.startswith("ce-") or key == "content-type":
            print(f"{key}: {headers[key]}")
    print()
    print(json.dumps(json.loads(raw_body), indent=2))
