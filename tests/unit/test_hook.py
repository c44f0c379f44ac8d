"""The shell-operator hook run in-process: --config, and binding-context fixtures against the fake Connect."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.entrypoints import hook
from tests.fake_connect import FakeConnect
from tests.support import route_hook_to

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "binding_contexts"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeConnect:
    fake = FakeConnect()
    route_hook_to(monkeypatch, httpx.MockTransport(fake.handle))
    return fake


def run_hook(fixture: str, tmp_path: Path, **env: str) -> int:
    context = tmp_path / "context.json"
    context.write_text((FIXTURES / fixture).read_text())
    environ = {
        "BINDING_CONTEXT_PATH": str(context),
        "CONNECT_RECONCILER_CONNECT_URL": "http://connect.test",
        **env,
    }
    return hook.main([], environ=environ)


def test_config_is_json_bindings() -> None:
    out = io.StringIO()
    assert hook.main(["--config"], environ={"CONNECT_RECONCILER_NAMESPACE": "default:data"}, stdout=out) == 0
    config = json.loads(out.getvalue())
    assert config["kubernetes"][0]["namespace"]["nameSelector"]["matchNames"] == ["default", "data"]
    assert config["schedule"][0]["crontab"] == "* * * * *"


def test_synchronization_creates_every_connector_of_every_key(fake: FakeConnect, tmp_path: Path) -> None:
    assert run_hook("synchronization.json", tmp_path) == 0
    assert sorted(fake.connectors) == ["orders-sink", "orders-source", "payments-sink"]


def test_combined_events_are_all_processed_including_deletes(fake: FakeConnect, tmp_path: Path) -> None:
    for name in ("orders-source", "orders-sink", "payments-sink"):
        fake.add(name, {"connector.class": "X", "topic": "old"})
    assert run_hook("events-combined.json", tmp_path) == 0
    # payments ConfigMap deleted -> its connector deleted; orders modified -> updated; schedule processed too.
    assert sorted(fake.connectors) == ["orders-sink", "orders-source"]
    assert fake.connectors["orders-source"]["config"]["topic"] == "orders-v2"
    assert "DELETE /connectors/payments-sink" in fake.writes()


def test_group_context_reconciles_the_snapshot(fake: FakeConnect, tmp_path: Path) -> None:
    assert run_hook("group.json", tmp_path) == 0
    assert sorted(fake.connectors) == ["orders-sink", "orders-source"]


def test_schedule_with_snapshot_repairs_drift(fake: FakeConnect, tmp_path: Path) -> None:
    assert run_hook("synchronization.json", tmp_path) == 0
    fake.connectors["orders-source"]["state"] = "PAUSED"  # someone paused it by hand
    fake.requests.clear()
    assert run_hook("schedule.json", tmp_path) == 0
    assert fake.writes() == ["PUT /connectors/orders-source/resume"]


def test_permanent_errors_exit_zero_transient_exit_one(fake: FakeConnect, tmp_path: Path) -> None:
    fake.fail("PUT", "/connectors/orders-sink/config", 400, {"error_code": 400, "message": "invalid"})
    fake.fail("POST", "/connectors", 400, {"error_code": 400, "message": "invalid"}, times=3)
    assert run_hook("synchronization.json", tmp_path) == 0  # a 400 is permanent: don't block the queue
    fake.fail("GET", "/", 503, "starting", times=100)  # Connect unreachable: retry later
    assert run_hook("synchronization.json", tmp_path, CONNECT_RECONCILER_RETRY_SECONDS="0.3") == 1


def test_missing_binding_context_path_is_retryable(fake: FakeConnect) -> None:
    assert hook.main([], environ={"CONNECT_RECONCILER_CONNECT_URL": "http://connect.test"}) == 1


def test_hook_file_is_executable_and_prints_config() -> None:
    path = Path(__file__).resolve().parents[2] / "hooks" / "connect-reconciler"
    result = subprocess.run(
        [sys.executable, str(path), "--config"], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout)["configVersion"] == "v1"
    assert path.stat().st_mode & 0o111


HOOK_SECRET = "hook-Log-Secret-7b2c"


def test_hook_json_logs_hold_no_secret_even_when_connect_echoes_it(
    fake: FakeConnect, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    echo = f"Connector configuration is invalid: Invalid value {HOOK_SECRET} for configuration topic"
    fake.fail("POST", "/connectors", 400, {"error_code": 400, "message": echo}, times=3)
    assert (
        run_hook("synchronization.json", tmp_path, CONNECT_RECONCILER_SECRET_ENV="LEAKY", LEAKY=HOOK_SECRET)
        == 0
    )
    err = capsys.readouterr().err
    records = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert records and any("<secret sha256:" in json.dumps(r) for r in records)
    assert HOOK_SECRET not in err


def test_hook_exits_zero_for_a_permanent_500(fake: FakeConnect, tmp_path: Path) -> None:
    body = {"error_code": 500, "message": 'Unrecognized field "x" (class ...), not marked as ignorable'}
    fake.fail("POST", "/connectors", 500, body, times=100)
    assert run_hook("synchronization.json", tmp_path) == 0  # retrying would send the same bytes again


def test_a_failed_list_is_a_retry_not_an_empty_set(fake: FakeConnect, tmp_path: Path) -> None:
    fake.add("orders-source", {"connector.class": "X"})
    context = tmp_path / "context.json"
    context.write_text(json.dumps([{"binding": "resync", "type": "Schedule"}]))  # carries no ConfigMaps
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
        "current-context: x\n"
    )
    environ = {
        "BINDING_CONTEXT_PATH": str(context),
        "CONNECT_RECONCILER_CONNECT_URL": "http://connect.test",
        "CONNECT_RECONCILER_KUBECONFIG": str(kubeconfig),
    }
    assert hook.main([], environ=environ) == 1
    assert fake.writes() == []  # nothing reconciled from a list that did not happen


def test_the_hook_keeps_the_ledger_of_its_pod_namespace_and_prunes_from_it(
    fake: FakeConnect, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ConfigMap deleted while shell-operator was down has no Deleted event: only the ledger knows."""
    from tests.fake_ledger import MemoryLedgerStore  # noqa: PLC0415

    store = MemoryLedgerStore()
    asked: list[str | None] = []

    def memory_store(_settings: Any, *, namespace: str | None = None) -> MemoryLedgerStore:
        asked.append(namespace)
        return store

    monkeypatch.setattr(hook, "ledger_store", memory_store)
    assert run_hook("synchronization.json", tmp_path, POD_NAMESPACE="reconciler") == 0
    assert asked == ["reconciler"] and store.entries() == ["orders-sink", "orders-source", "payments-sink"]
    context = json.loads((FIXTURES / "synchronization.json").read_text())
    context[0]["objects"] = [o for o in context[0]["objects"] if o["object"]["metadata"]["name"] == "orders"]
    (tmp_path / "one.json").write_text(json.dumps(context))
    fake.requests.clear()
    environ = {
        "BINDING_CONTEXT_PATH": str(tmp_path / "one.json"),
        "CONNECT_RECONCILER_CONNECT_URL": "http://connect.test",
        "POD_NAMESPACE": "reconciler",
    }
    assert hook.main([], environ=environ) == 0
    assert fake.writes() == ["DELETE /connectors/payments-sink"]
    assert store.entries() == ["orders-sink", "orders-source"]


def _configmap(name: str, connectors: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "labels": {"destination": "connect"}},
        "data": {
            f"{c}.json": json.dumps({"name": c, "config": {"connector.class": "X", "topic": topic}})
            for c, topic in connectors.items()
        },
    }


def _event(kind: str, obj: dict[str, Any], snapshot: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "binding": "connector-configmaps",
        "type": "Event",
        "watchEvent": kind,
        "object": obj,
        "snapshots": {"connector-configmaps": [{"object": o} for o in snapshot]},
    }


def test_one_modified_event_reads_only_its_connectors_and_prunes_what_it_stopped_declaring(
    fake: FakeConnect, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A single-ConfigMap Event is a targeted run: no listing of the 20 connectors, only reads by name;
    and with the ledger, the connector the ConfigMap stopped declaring is still pruned."""
    from tests.fake_ledger import MemoryLedgerStore  # noqa: PLC0415

    store = MemoryLedgerStore()
    monkeypatch.setattr(hook, "ledger_store", lambda _s, *, namespace=None: store)
    others = [_configmap(f"cm{i}", {f"c{i}": "t"}) for i in range(20)]
    two = _configmap("two", {"keep": "t", "drop": "t"})
    sync = [
        {
            "binding": "connector-configmaps",
            "type": "Synchronization",
            "objects": [{"object": o} for o in [*others, two]],
        }
    ]
    (tmp_path / "sync.json").write_text(json.dumps(sync))
    env = {"CONNECT_RECONCILER_CONNECT_URL": "http://connect.test", "POD_NAMESPACE": "reconciler"}
    assert hook.main([], environ={"BINDING_CONTEXT_PATH": str(tmp_path / "sync.json"), **env}) == 0
    assert len(fake.connectors) == 22
    edited = _configmap("two", {"keep": "t2"})
    (tmp_path / "event.json").write_text(json.dumps([_event("Modified", edited, [*others, edited])]))
    fake.requests.clear()
    assert hook.main([], environ={"BINDING_CONTEXT_PATH": str(tmp_path / "event.json"), **env}) == 0
    assert sorted(fake.writes()) == ["DELETE /connectors/drop", "PUT /connectors/keep/config"]
    reads = [f"{r.method} {r.url.path}" for r in fake.requests if r.method == "GET"]
    assert "GET /connectors" not in reads and all("/c1" not in r for r in reads)
    assert store.entries() == sorted([*(f"c{i}" for i in range(20)), "keep"])
