"""Kubernetes Events on the source ConfigMap, on a real kube-apiserver and a real Kafka Connect worker.

The pipeline is driven directly (one `reconcile` per step) with an `EventRecorder` observing it: a
ConfigMap is created, edited, its connector changed behind its back in Connect, then made invalid (Connect
answers 400 quoting the secret value). `kubectl describe configmap` must show the Events, and no Event
may hold the secret.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from typing import Any

from kubernetes import client

from reconciler.clients.events import EventRecorder
from reconciler.core.redaction import Redactor
from reconciler.core.specs import configmap_from_object
from reconciler.entrypoints.flags import settings_from_values
from reconciler.model import ConfigMapDoc, Report
from reconciler.pipeline import reconcile
from reconciler.runtime import Runtime, open_runtime
from tests.harness.apiserver_kit import ApiServerKit
from tests.harness.connect_kit import ConnectKit
from tests.support import Connect

SECRET = f"evt-S3cr3t-{uuid.uuid4().hex[:8]}"


def program(name: str, kit: ConnectKit, topic: str, extra: str = "") -> str:
    """A connect-operator style jq program reading the password from the environment."""
    return textwrap.dedent(f"""\
        {{"name": "{name}", "config": {{
          "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
          "tasks.max": 1,
          "file": "{kit.data_dir / f"{name}.txt"}",
          "topic": "{topic}",
          "connection.password": env.DB_PASSWORD{extra}
        }}}}""")


def body(cm: str, name: str, text: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": cm, "labels": {"destination": "connect"}},
        "data": {f"{name}.json": text},
    }


def docs(api: client.ApiClient, namespace: str) -> list[ConfigMapDoc]:
    items = client.CoreV1Api(api).list_namespaced_config_map(namespace, label_selector="destination=connect")
    return [configmap_from_object(api.sanitize_for_serialization(i)) for i in items.items]


def test_events_on_the_source_configmap(
    apiserver: ApiServerKit, namespace: str, connect_kit: ConnectKit
) -> None:
    name = f"ev-{uuid.uuid4().hex[:6]}"
    cm = f"cm-{name}"
    connect = Connect(connect_kit.connect_url)
    settings = settings_from_values({"connect_url": connect_kit.connect_url})
    with apiserver.api_client() as api:
        core = client.CoreV1Api(api)
        runtimes: list[Runtime] = []

        def redactor() -> Redactor:
            return runtimes[0].redactor

        recorder = EventRecorder(api, instance=f"test-{name}", redactor=redactor)
        with open_runtime(settings, environ={"DB_PASSWORD": SECRET}, observers=[recorder]) as rt:
            runtimes.append(rt)

            def run() -> Report:
                return reconcile(docs(api, namespace), rt=rt, dry_run=False)

            core.create_namespaced_config_map(namespace, body(cm, name, program(name, connect_kit, "t1")))
            assert [o.ok for o in run().outcomes] == [True]  # created
            core.replace_namespaced_config_map(
                cm, namespace, body(cm, name, program(name, connect_kit, "t2"))
            )
            assert [o.ok for o in run().outcomes] == [True]  # updated
            assert run().outcomes == ()  # in sync: no Event
            # Changed behind the reconciler's back: the next pass repairs it, the ConfigMap did not change.
            live = connect.config(name)
            assert live is not None
            assert connect.http.put(f"/connectors/{name}/config", json={**live, "topic": "drift"}).is_success
            assert [o.ok for o in run().outcomes] == [True]  # drift repaired
            # Connect refuses the write, quoting the (secret) value it did not like; twice.
            invalid = program(name, connect_kit, "t2", ', "tasks.max": env.DB_PASSWORD')
            core.replace_namespaced_config_map(cm, namespace, body(cm, name, invalid))
            for _ in range(2):
                [failed] = run().outcomes
                assert not failed.ok and failed.http_status == 400 and "tasks.max" in failed.message
        assert recorder.flush(30)
        recorder.close(10)
        assert (recorder.emitted, recorder.dropped, recorder.failures, recorder.core_only) == (5, 0, 0, False)

        describe = apiserver.kubectl("describe", "configmap", cm, "-n", namespace)
        print(f"\n$ kubectl describe configmap {cm} -n {namespace}\n{describe}")
        events_section = describe[describe.index("Events:") :]
        for reason in ("ConnectorCreated", "ConnectorUpdated", "DriftRepaired", "ConnectorFailed"):
            assert reason in events_section, (reason, describe)
        assert SECRET not in describe

        listed = client.EventsV1Api(api).list_namespaced_event(namespace).items
        mine = [e for e in listed if e.regarding.name == cm]
        by_reason = {e.reason: e for e in mine}
        assert sorted(by_reason) == [
            "ConnectorCreated",
            "ConnectorFailed",
            "ConnectorUpdated",
            "DriftRepaired",
        ]
        assert len(mine) == 4  # the second failure is the first one's series, not a new Event
        failed_event = by_reason["ConnectorFailed"]
        assert failed_event.type == "Warning" and failed_event.action == "Update"
        assert failed_event.series is not None and failed_event.series.count == 2
        assert "<secret sha256:" in failed_event.note and "tasks.max" in failed_event.note
        assert by_reason["DriftRepaired"].note.startswith(f"Repaired drift of connector {name}")
        for e in mine:
            assert e.reporting_controller == "connect-reconciler" and e.reporting_instance == f"test-{name}"
            assert e.regarding.uid and e.regarding.kind == "ConfigMap"
        raw = json.dumps([api.sanitize_for_serialization(e) for e in mine])
        assert SECRET not in raw
        connect.http.delete(f"/connectors/{name}")
        connect.http.close()
