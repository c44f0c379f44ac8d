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
from collections.abc import Callable
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


class Workspace:
    """One ConfigMap file declaring `name`, whose password a jq program reads from a mounted Secret, and
    the CLI run in-process on it with the namespace's ledger; every output is kept for the secret check."""

    def __init__(self, tmp_path: Path, apiserver: ApiServerKit, namespace: str, kit: ConnectKit, name: str):
        body = configmap("cm", {name: source(kit, name)})
        body["metadata"]["namespace"] = namespace
        data = json.loads(body["data"][f"{name}.json"])
        data["config"]["connection.password"] = "SECRET-REF"
        self.secrets = tmp_path / "secrets"
        self.secrets.mkdir()
        (self.secrets / "password").write_text(SECRET)
        # a jq program: the password is read from the mounted Secret, never written in the ConfigMap
        body["data"][f"{name}.json"] = json.dumps(data).replace('"SECRET-REF"', "$secrets.db.password")
        self.repo = tmp_path / "repo"
        self.repo.mkdir()
        (self.repo / "cm.yaml").write_text(yaml.safe_dump(body))
        self.remote = ["--ledger-namespace", namespace, "--kubeconfig", str(apiserver.kubeconfig_path)]
        self.outputs: list[str] = []

    def cli(self, cmd: str, url: str, *extra: str) -> tuple[int, str]:
        out, err = io.StringIO(), io.StringIO()
        argv = [cmd, str(self.repo), "--secret-dir", f"db={self.secrets}", "--connect-url", url]
        code = run([*argv, *self.remote, *extra], environ={}, stdout=out, stderr=err)
        self.outputs.extend([out.getvalue(), err.getvalue()])
        return code, out.getvalue() if "json" in extra else out.getvalue() + err.getvalue()

    def assert_no_secret(self, core: client.CoreV1Api, namespace: str) -> None:
        for out in self.outputs:
            assert SECRET not in out
        assert SECRET not in json.dumps(ledger_entries(core, namespace))


def test_a_recreate_whose_answer_is_lost_is_sent_once_confirmed_and_then_counted(
    apiserver: ApiServerKit,
    namespace: str,
    connect_kit: ConnectKit,
    connect: Connect,
    core: client.CoreV1Api,
    tmp_path: Path,
) -> None:
    name = f"rl-{uuid.uuid4().hex[:6]}"
    ws = Workspace(tmp_path, apiserver, namespace, connect_kit, name)
    cli = ws.cli
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
        ws.assert_no_secret(core, namespace)
    finally:
        connect.http.delete(f"/connectors/{name}")


def test_a_recreate_refused_by_a_rebalance_is_retried_as_the_same_recreation(
    apiserver: ApiServerKit,
    namespace: str,
    connect_kit: ConnectKit,
    connect: Connect,
    core: client.CoreV1Api,
    tmp_path: Path,
) -> None:
    """First a listing that drops every connector: nothing is counted or created. Then Strimzi's delete
    sets off a rebalance, and the re-create gets 409s until apply's budget is spent: the next apply
    creates it as the same re-creation, counted once, still saying why."""
    name = f"rr-{uuid.uuid4().hex[:6]}"
    ws = Workspace(tmp_path, apiserver, namespace, connect_kit, name)
    try:
        with FaultProxy(connect_kit.connect_url, seed=5) as proxy:
            assert ws.cli("apply", proxy.url)[0] == 0
            # A listing that leaves every connector out is a partial view, not a delete made outside.
            proxy.set_rules([FaultRule(Fault.DROP_EXPANDED, drop_fraction=1.0)])
            proxy.clear_records()
            code, text = ws.cli("apply", proxy.url)
            assert code == 0 and proxy.injected()[Fault.DROP_EXPANDED] >= 1, text
            assert proxy.forwarded_writes() == [] and "deleted outside" not in text
            assert recreated(core, namespace, name) == 0
            proxy.set_rules([])
            assert connect.http.delete(f"/connectors/{name}").status_code == 204
            eventually(lambda: connect.config(name) is None, what="the delete made outside")
            proxy.set_rules([FaultRule(Fault.CONFLICT, method="POST", path="/connectors")])
            code, text = ws.cli("apply", proxy.url, "--retry-seconds", "2")
            assert code != 0 and proxy.injected()[Fault.CONFLICT] >= 1, text
            assert "deleted outside connect-reconciler" in text and recreated(core, namespace, name) == 1
            assert connect.config(name) is None  # a 409 is never forwarded: nothing was made
            proxy.set_rules([])
            proxy.clear_records()
            code, text = ws.cli("apply", proxy.url)
            assert code == 0, text
            assert "deleted outside connect-reconciler: gone from Connect, found gone at" in text
            assert [(r.method, r.path) for r in proxy.forwarded_writes()] == [("POST", "/connectors")]
            assert recreated(core, namespace, name) == 1  # one disappearance, counted once
            assert ledger_entries(core, namespace)[name]["last"]["ok"] is True
        ws.assert_no_secret(core, namespace)
    finally:
        connect.http.delete(f"/connectors/{name}")


def test_a_worker_restart_neither_fakes_a_delete_made_outside_nor_counts_one_twice(
    apiserver: ApiServerKit,
    namespace: str,
    connect_kit: ConnectKit,
    connect: Connect,
    core: client.CoreV1Api,
    tmp_path: Path,
) -> None:
    """The real worker restarts from inside the proxy: first as apply lists the connectors (a starting
    worker's answers must not read as "gone"), then as the re-create after a real delete made outside
    reaches it (the held POST lands while the worker starts). Each apply is repeated until exit 0."""
    name = f"rw-{uuid.uuid4().hex[:6]}"
    ws = Workspace(tmp_path, apiserver, namespace, connect_kit, name)
    proxy = FaultProxy(connect_kit.connect_url, hold_until_upstream=90).start()
    restarted: list[str] = []

    def restart_on(method: str, path: str) -> Callable[[str, str], None]:
        def hook(m: str, p: str) -> None:
            if not restarted and m == method and p == path:
                restarted.append(f"{m} {p}")
                connect_kit.stop_worker()
                connect_kit.start_worker(wait=False)

        return hook

    def apply_until_ok() -> list[tuple[int, str]]:
        runs = [ws.cli("apply", proxy.url, "--retry-seconds", "90")]
        while runs[-1][0] != 0 and len(runs) < 5:
            eventually(lambda: connect.http.get("/health").status_code == 200, what="the worker back")
            runs.append(ws.cli("apply", proxy.url, "--retry-seconds", "90"))
        assert runs[-1][0] == 0, runs
        return runs

    try:
        assert ws.cli("apply", proxy.url)[0] == 0
        eventually(lambda: connect.state(name) == "RUNNING", what="the connector to run")
        proxy.clear_records()
        proxy.before_forward = restart_on("GET", "/connectors")
        runs = apply_until_ok()
        proxy.before_forward = None
        assert restarted == ["GET /connectors"]
        assert proxy.forwarded_writes() == [], [o for _, o in runs]  # nothing created again
        assert all("deleted outside" not in text for _, text in runs)
        assert recreated(core, namespace, name) == 0
        eventually(lambda: connect.http.get("/health").status_code == 200, what="the worker back")

        assert connect.http.delete(f"/connectors/{name}").status_code == 204
        eventually(lambda: connect.config(name) is None, what="the delete made outside")
        restarted.clear()
        proxy.clear_records()
        proxy.before_forward = restart_on("POST", "/connectors")
        runs = apply_until_ok()
        proxy.before_forward = None
        assert restarted == ["POST /connectors"]
        eventually(lambda: connect.config(name) is not None, what="the connector back")
        assert recreated(core, namespace, name) == 1, [o for _, o in runs]  # counted once, however many runs
        planned = [text for _, text in runs if "+ create" in text]
        assert planned and all("deleted outside connect-reconciler" in text for text in planned)
        proxy.clear_records()
        assert ws.cli("apply", proxy.url)[0] == 0 and proxy.forwarded_writes() == []  # in sync now
        ws.assert_no_secret(core, namespace)
    finally:
        proxy.before_forward = None
        eventually(lambda: connect.http.get("/health").status_code == 200, what="the worker back")
        proxy.stop()
        connect.http.delete(f"/connectors/{name}")
