"""The hook under the real flant/shell-operator (built from source through the Go module proxy), against
the real API server and the real Connect worker: the contract of ../shared/reference/shell-operator.md as
the operator itself implements it, not as our fixtures imagine it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from kubernetes import client

from tests.harness.apiserver_kit import ApiServerKit
from tests.harness.connect_kit import ConnectKit
from tests.harness.gobuild import SHELL_OPERATOR, BuildError
from tests.harness.processes import free_port
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def operator(
    tmp_path: Path, apiserver: ApiServerKit, namespace: str, connect_kit: ConnectKit
) -> Iterator[Path]:
    try:
        binary = str(SHELL_OPERATOR.build())
    except BuildError as exc:
        pytest.fail(str(exc))
    hooks, work = tmp_path / "hooks", tmp_path / "work"
    hooks.mkdir()
    work.mkdir()
    shutil.copy2(ROOT / "hooks" / "connect-reconciler", hooks / "connect-reconciler")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # the hook's python3 is the venv's
        "PYTHONPATH": str(ROOT),
        "CONNECT_RECONCILER_NAMESPACE": namespace,
        "CONNECT_RECONCILER_CONNECT_URL": connect_kit.connect_url,
        # The hook keeps the ledger where the pod's namespace would be (POD_NAMESPACE in a pod).
        "POD_NAMESPACE": namespace,
        "CONNECT_RECONCILER_KUBECONFIG": str(apiserver.kubeconfig_path),
    }
    log = tmp_path / "shell-operator.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                binary,
                "start",
                f"--hooks-dir={hooks}",
                f"--tmp-dir={work}",
                f"--kube-config={apiserver.kubeconfig_path}",
                "--listen-address=127.0.0.1",
                f"--listen-port={free_port()}",
                f"--debug-unix-socket={work / 'debug.socket'}",
                "--log-type=json",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def test_hook_under_shell_operator_creates_updates_and_deletes(
    operator: Path, apiserver: ApiServerKit, namespace: str, connect_kit: ConnectKit
) -> None:
    name = f"so{uuid.uuid4().hex[:6]}"
    keep = f"{name}-keep"

    def configmap(topic: str, *, connector: str = name, cm: str = "cm") -> dict[str, object]:
        program = {
            "name": connector,
            "config": {
                "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
                "file": str(connect_kit.data_dir / f"{name}.txt"),
                "topic": topic,
            },
        }
        return {
            "metadata": {"name": cm, "labels": {"destination": "connect"}},
            "data": {"c.json": json.dumps(program)},
        }

    with apiserver.api_client() as api, httpx.Client(base_url=connect_kit.connect_url, timeout=30) as http:
        core = client.CoreV1Api(api)

        def topic() -> str | None:
            response = http.get(f"/connectors/{name}/config")
            return response.json().get("topic") if response.status_code == 200 else None

        def settled(check: Callable[[], bool], what: str) -> None:
            eventually(
                check,
                what=what,
                timeout=90,
                detail=lambda: "; shell-operator log tail:\n" + operator.read_text()[-3000:],
            )

        def ledger() -> list[str]:
            try:
                cm = core.read_namespaced_config_map("connect-reconciler-ledger-default", namespace)
            except client.ApiException:
                return []
            return sorted(json.loads((cm.data or {}).get("entries.json", "{}")))

        # A second ConfigMap stays: deleting the only one would empty the desired set, which is blocked.
        core.create_namespaced_config_map(namespace, configmap("kept", connector=keep, cm="keep"))
        core.create_namespaced_config_map(namespace, configmap("first"))
        settled(lambda: topic() == "first", "the connector to be created")
        settled(lambda: ledger() == sorted([name, keep]), "both connectors in the ledger")
        core.replace_namespaced_config_map("cm", namespace, configmap("second"))
        settled(lambda: topic() == "second", "the connector to be updated")
        core.delete_namespaced_config_map("cm", namespace)
        settled(lambda: topic() is None, "the connector to be deleted")
        settled(lambda: ledger() == [keep], "the deleted connector forgotten by the ledger")
        http.delete(f"/connectors/{keep}")
    lines = [json.loads(line) for line in operator.read_text().splitlines() if line.startswith("{")]
    runs = [entry for entry in lines if entry.get("msg") == "Hook executed successfully"]
    assert runs and not any("Hook executed with error" in str(entry.get("msg")) for entry in lines)
    assert {entry.get("queue") for entry in runs} >= {"connect-reconciler"}  # our own queue, not "main" alone
