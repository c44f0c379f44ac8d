"""Connectors deleted outside the reconciler, as Strimzi's operator with `use-connector-resources` deletes
them, against the real kube-apiserver (ledger, Events) and the real Kafka Connect worker.

- the watcher puts the connector back, counts each time in the ledger, and its Events say so, naming
  the likely cause from the second time;
- the CLI through the fault proxy: the answer to the re-create is lost (the connection reset after Connect
  made it, every read of it refused by a load balancer): apply exits non-zero, no second POST is sent,
  the next listing confirms the create, and the next delete made outside is counted again; `status`
  shows the count; the secret appears in no output.
"""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from reconciler.entrypoints.main import run
from tests.harness.apiserver_kit import ApiServerKit
from tests.harness.connect_kit import ConnectKit
from tests.harness.fault_proxy import Fault, FaultProxy, FaultRule
from tests.integration.test_ledger_kube import ledger_entries, watch
from tests.integration.test_watcher_kube import configmap, source
from tests.support import Connect, eventually

SECRET = f"recreate-S3cret-{uuid.uuid4().hex[:8]}"


def recreated(core: client.CoreV1Api, namespace: str, name: str) -> int:
    count = ledger_entries(core, namespace).get(name, {}).get("recreated", {}).get("count", 0)
    return int(count)


def events(api: client.ApiClient, namespace: str, cm: str) -> dict[str, Any]:
    listed = client.EventsV1Api(api).list_namespaced_event(namespace).items
    return {e.reason: e for e in listed if e.regarding.name == cm}


def test_the_watcher_counts_each_delete_made_outside_and_says_so_in_events(
    apiserver: ApiServerKit,
    namespace: str,
    connect_kit: ConnectKit,
    connect: Connect,
    core: client.CoreV1Api,
) -> None:
    name = f"rc-{uuid.uuid4().hex[:6]}"
    try:
        with watch(apiserver, namespace, connect_kit, resync=1):
            core.create_namespaced_config_map(namespace, configmap("cm", {name: source(connect_kit, name)}))
            eventually(lambda: connect.state(name) == "RUNNING", what="the connector to run")
            for times in (1, 2):
                # The other controller: straight to the worker, no Kubernetes event at all.
                assert connect.http.delete(f"/connectors/{name}").status_code == 204
                eventually(
                    lambda t=times: recreated(core, namespace, name) == t,  # type: ignore[misc]
                    what=f"the ledger to count delete {times}",
                )
                eventually(lambda: connect.config(name) is not None, what=f"the connector back after {times}")
        with apiserver.api_client() as api:
            eventually(
                lambda: (
                    {"ConnectorRecreated", "ConnectorDeletedRepeatedly"} <= set(events(api, namespace, "cm"))
                ),
                what="both Warnings on the ConfigMap",
            )
            by_reason = events(api, namespace, "cm")
        first, again = by_reason["ConnectorRecreated"], by_reason["ConnectorDeletedRepeatedly"]
        assert first.type == again.type == "Warning" and first.action == "Create"
        assert first.note.startswith(f"Created connector {name} on cluster default again: deleted outside")
        assert "2 times since" in again.note and "strimzi.io/use-connector-resources" in again.note
        describe = apiserver.kubectl("describe", "configmap", "cm", "-n", namespace)
        assert "ConnectorDeletedRepeatedly" in describe[describe.index("Events:") :]
        entry = ledger_entries(core, namespace)[name]
        assert entry["last"]["action"] == "create" and entry["last"]["ok"] is True
    finally:
        connect.http.delete(f"/connectors/{name}")


def test_a_recreate_whose_answer_is_lost_is_sent_once_confirmed_and_then_counted(
    apiserver: ApiServerKit,
    namespace: str,
    connect_kit: ConnectKit,
    connect: Connect,
    core: client.CoreV1Api,
    tmp_path: Path,
) -> None:
    name = f"rl-{uuid.uuid4().hex[:6]}"
    body = configmap("cm", {name: source(connect_kit, name)})
    body["metadata"]["namespace"] = namespace
    data = json.loads(body["data"][f"{name}.json"])
    data["config"]["connection.password"] = "SECRET-REF"
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "password").write_text(SECRET)
    # a jq program: the password is read from the mounted Secret, never written in the ConfigMap
    body["data"][f"{name}.json"] = json.dumps(data).replace('"SECRET-REF"', "$secrets.db.password")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "cm.yaml").write_text(yaml.safe_dump(body))
    outputs: list[str] = []

    def cli(cmd: str, url: str, *extra: str) -> tuple[int, str]:
        out, err = io.StringIO(), io.StringIO()
        argv = [cmd, str(repo), "--secret-dir", f"db={tmp_path / 'secrets'}", "--connect-url", url]
        argv += ["--ledger-namespace", namespace, "--kubeconfig", str(apiserver.kubeconfig_path), *extra]
        code = run(argv, environ={}, stdout=out, stderr=err)
        outputs.extend([out.getvalue(), err.getvalue()])
        return code, out.getvalue() if "json" in extra else out.getvalue() + err.getvalue()

    try:
        with FaultProxy(connect_kit.connect_url, seed=3) as proxy:
            code, text = cli("apply", proxy.url)
            assert code == 0, text
            assert connect.http.delete(f"/connectors/{name}").status_code == 204
            eventually(lambda: connect.config(name) is None, what="the delete made outside")
            proxy.clear_records()
            # The create reaches Connect, its answer is lost, and every read of the connector fails until
            # the retry budget is spent: the outcome stays unknown, and apply must say so.
            proxy.set_rules(
                [
                    FaultRule(Fault.RESET, method="POST", path="/connectors", times=1),
                    FaultRule(Fault.LB_503, method="GET", path=f"/connectors/{name}(/.*)?"),
                ]
            )
            code, text = cli("apply", proxy.url, "--retry-seconds", "2")
            assert code != 0 and proxy.injected()[Fault.RESET] == 1, text
            assert "deleted outside connect-reconciler" in text
            assert [(r.method, r.path) for r in proxy.forwarded_writes()] == [("POST", "/connectors")]
            assert recreated(core, namespace, name) == 1
            assert ledger_entries(core, namespace)[name]["last"]["ok"] is False
            eventually(lambda: connect.config(name) is not None, what="Connect made it despite the reset")
            proxy.clear_records()
            proxy.set_rules([])
            code, text = cli("apply", proxy.url)
            assert code == 0, text
            assert proxy.forwarded_writes() == []  # re-read, not re-sent
            last = ledger_entries(core, namespace)[name]["last"]
            assert last["action"] == "create" and last["ok"] is True and "error" not in last
            assert "listed" in last  # confirmed by the listing, not by an answer
            assert connect.http.delete(f"/connectors/{name}").status_code == 204
            eventually(lambda: connect.config(name) is None, what="the second delete made outside")
            code, text = cli("apply", proxy.url)
            assert code == 0, text
            assert "2 times since" in text and "Strimzi" in text
            assert recreated(core, namespace, name) == 2
            eventually(lambda: connect.state(name) == "RUNNING", what="the connector to run again")
            code, text = cli("status", proxy.url, "--output", "json")
            [row] = [r for r in json.loads(text) if r["connector"] == name]
            assert row["recreated"] == 2 and row["ok"], text
        for out in outputs:
            assert SECRET not in out
        assert SECRET not in json.dumps(ledger_entries(core, namespace))
    finally:
        connect.http.delete(f"/connectors/{name}")
