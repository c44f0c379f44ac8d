"""The watcher against a real kube-apiserver and a real Kafka Connect worker.

ConfigMaps are created, edited, relabeled and deleted by the Python client and by server-side apply
under field manager `kustomize-controller` (what Flux does); the connectors in the worker follow.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, MutableMapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog
import structlog.testing
import yaml
from kubernetes import client, dynamic

from reconciler.entrypoints.flags import settings_from_values
from reconciler.entrypoints.watcher import Watcher
from reconciler.model import ActionKind, Report
from reconciler.settings import Settings
from tests.harness.apiserver_kit import ApiServerKit
from tests.harness.connect_kit import ConnectKit
from tests.harness.fault_proxy import Fault, FaultProxy, FaultRule
from tests.support import Connect, eventually

ROOT = Path(__file__).resolve().parents[2]


def configmap(
    name: str, connectors: dict[str, dict[str, Any]], *, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels if labels is not None else {"destination": "connect"}},
        "data": {f"{c}.json": json.dumps({"name": c, **doc}) for c, doc in connectors.items()},
    }


def source(kit: ConnectKit, topic: str, **extra: Any) -> dict[str, Any]:
    return {
        "config": {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "tasks.max": 1,
            "file": str(kit.data_dir / f"{topic}.txt"),
            "topic": topic,
        },
        **extra,
    }


def watcher_settings(namespace: str, connect_url: str, **values: Any) -> Settings:
    """Settings as `run --namespace NS --connect-url URL --debounce-seconds 0.2 --health-address ''` gives."""
    return settings_from_values(
        {
            "namespace": [namespace],
            "connect_url": connect_url,
            "resync_seconds": 300,
            "debounce_seconds": 0.2,
            "health_address": "",
            **values,
        }
    )


class Running:
    """A Watcher on its own thread, for one namespace."""

    def __init__(
        self,
        apiserver: ApiServerKit,
        namespace: str,
        connect_url: str,
        *,
        resync: float = 300,
        watch: dict[str, Any] | None = None,
        kube: ApiServerKit | None = None,
        **values: Any,
    ) -> None:
        settings = watcher_settings(namespace, connect_url, resync_seconds=resync, **values)
        if watch:
            settings = replace(settings, watch=replace(settings.watch, **watch))
        self.reports: list[Report] = []
        self.watcher = Watcher(
            settings, {}, api=(kube or apiserver).api_client(), on_report=self.reports.append
        )
        self.thread = threading.Thread(target=self.watcher.run, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.watcher.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


def ssa(apiserver: ApiServerKit, namespace: str, body: dict[str, Any]) -> None:
    """Server-side apply under field manager kustomize-controller, as Flux's kustomize-controller does."""
    with apiserver.api_client() as api:
        configmaps = dynamic.DynamicClient(api).resources.get(api_version="v1", kind="ConfigMap")
        configmaps.server_side_apply(
            body=body, namespace=namespace, field_manager="kustomize-controller", force_conflicts=True
        )


def test_configmap_lifecycle_drives_connectors(
    apiserver: ApiServerKit, namespace: str, connect_kit: ConnectKit, connect: Connect, core: client.CoreV1Api
) -> None:
    p = f"w{uuid.uuid4().hex[:6]}"
    with Running(apiserver, namespace, connect_kit.connect_url):
        # Created with the Python client: two connectors in one ConfigMap.
        core.create_namespaced_config_map(
            namespace,
            configmap(
                "cm-a", {f"{p}-a1": source(connect_kit, f"{p}-t1"), f"{p}-a2": source(connect_kit, f"{p}-t2")}
            ),
        )
        eventually(
            lambda: connect.config(f"{p}-a1") is not None and connect.config(f"{p}-a2") is not None,
            what="connectors of a created ConfigMap",
        )
        # Applied the way Flux applies: server-side apply by kustomize-controller.
        ssa(apiserver, namespace, configmap("cm-b", {f"{p}-b": source(connect_kit, f"{p}-tb")}))
        eventually(
            lambda: connect.config(f"{p}-b") is not None, what="connector of a server-side applied ConfigMap"
        )
        # Edited (SSA again): a new topic.
        ssa(apiserver, namespace, configmap("cm-b", {f"{p}-b": source(connect_kit, f"{p}-tb-v2")}))
        eventually(lambda: (connect.config(f"{p}-b") or {}).get("topic") == f"{p}-tb-v2", what="an edit")
        # Paused through the ConfigMap.
        ssa(
            apiserver,
            namespace,
            configmap("cm-b", {f"{p}-b": source(connect_kit, f"{p}-tb-v2", state="paused")}),
        )
        eventually(lambda: connect.state(f"{p}-b") == "PAUSED", what="a pause")
        # Relabeled out of the selector: counts as a deletion.
        body = core.read_namespaced_config_map("cm-a", namespace)
        body.metadata.labels = {"destination": "elsewhere"}
        core.replace_namespaced_config_map("cm-a", namespace, body)
        eventually(
            lambda: connect.config(f"{p}-a1") is None and connect.config(f"{p}-a2") is None,
            what="connectors of a relabeled ConfigMap to be deleted",
        )
        # Deleted: the Deleted event's last state names the connectors to delete.
        core.delete_namespaced_config_map("cm-b", namespace)
        eventually(
            lambda: connect.config(f"{p}-b") is None, what="connector of a deleted ConfigMap to be deleted"
        )


def test_drift_in_connect_is_repaired_by_resync(
    apiserver: ApiServerKit, namespace: str, connect_kit: ConnectKit, connect: Connect, core: client.CoreV1Api
) -> None:
    name = f"d{uuid.uuid4().hex[:6]}"
    core.create_namespaced_config_map(namespace, configmap("cm", {name: source(connect_kit, f"{name}-t")}))
    with Running(apiserver, namespace, connect_kit.connect_url, resync=2) as running:
        eventually(lambda: connect.state(name) == "RUNNING", what="the connector to run")
        # Changed by hand in Connect: config edited, then paused, then deleted. No Kubernetes event at all.
        cfg = connect.config(name) or {}
        connect.http.put(f"/connectors/{name}/config", json={**cfg, "topic": "hijacked"})
        eventually(
            lambda: (connect.config(name) or {}).get("topic") == f"{name}-t", what="a hand edit to be undone"
        )
        connect.http.put(f"/connectors/{name}/pause")
        eventually(lambda: connect.state(name) == "PAUSED", timeout=20, what="the hand pause to land")
        eventually(lambda: connect.state(name) == "RUNNING", what="a hand pause to be undone")
        connect.http.delete(f"/connectors/{name}")
        eventually(lambda: connect.config(name) is not None, what="a hand delete to be undone")
        assert len(running.reports) >= 3


def test_a_deletion_while_connect_is_down_is_made_when_it_is_back(
    apiserver: ApiServerKit, namespace: str, connect_kit: ConnectKit, connect: Connect, core: client.CoreV1Api
) -> None:
    """The ConfigMap is deleted while the worker is down for longer than the retry budget: passes fail
    to observe Connect, and the tombstone must survive them until Connect confirms the connector gone."""
    name = f"z{uuid.uuid4().hex[:6]}"
    core.create_namespaced_config_map(namespace, configmap("cm", {name: source(connect_kit, f"{name}-t")}))
    with Running(apiserver, namespace, connect_kit.connect_url, resync=1, retry_seconds=0.5) as running:
        eventually(lambda: connect.config(name) is not None, what="the connector")
        connect_kit.stop_worker()
        try:
            core.delete_namespaced_config_map("cm", namespace)
            seen = len(running.reports)
            eventually(
                lambda: len(running.reports) >= seen + 3,
                timeout=90,
                what="three passes while Connect is down",
            )
            assert all(not r.ok and not r.settled_deletions for r in running.reports[seen:])
            assert running.watcher.cache.tombstones == 1
        finally:
            connect_kit.start_worker()
        eventually(lambda: connect.config(name) is None, timeout=90, what="the delete, once Connect is back")
        eventually(lambda: running.watcher.cache.tombstones == 0, what="the tombstone to be settled")


def test_forced_watch_expiry_loses_no_change(
    tmp_path: Path, connect_kit: ConnectKit, connect: Connect
) -> None:
    # Its own API server without the watch cache: a compaction then really expires old resourceVersions.
    kube = ApiServerKit(tmp_path / "apiserver", watch_cache=False).start()
    try:
        ns = kube.create_namespace("expiry")
        p = f"x{uuid.uuid4().hex[:6]}"
        gate = threading.Event()
        gate.set()
        settings = {"window_s": 1, "backoff_initial_s": 0.1}
        with kube.api_client() as api:
            core = client.CoreV1Api(api)
            core.create_namespaced_config_map(
                ns, configmap("keep", {f"{p}-keep": source(connect_kit, f"{p}-k")})
            )
            core.create_namespaced_config_map(
                ns, configmap("gone", {f"{p}-gone": source(connect_kit, f"{p}-g")})
            )
            with Running(kube, ns, connect_kit.connect_url, watch=settings, kube=kube) as running:
                (watcher,) = running.watcher.streams
                original = watcher.source.watch

                def gated(rv: str) -> Any:
                    gate.wait()
                    return original(rv)

                watcher.source.watch = gated  # type: ignore[method-assign]
                eventually(
                    lambda: (
                        connect.config(f"{p}-gone") is not None and connect.config(f"{p}-keep") is not None
                    ),
                    what="both connectors",
                )
                gate.clear()  # the watch stops between windows; changes now go unseen...
                time.sleep(1.5)
                core.delete_namespaced_config_map("gone", ns)
                core.replace_namespaced_config_map(
                    "keep", ns, configmap("keep", {f"{p}-keep": source(connect_kit, f"{p}-k2")})
                )
                for _ in range(3):  # ...and the history they were in is compacted away
                    core.create_namespaced_config_map(
                        ns, {"metadata": {"name": f"noise-{uuid.uuid4().hex[:4]}"}}
                    )
                kube.compact_etcd()
                lists_before = watcher.lists
                gate.set()
                eventually(lambda: watcher.lists > lists_before, what="a re-list after 410 Gone")
                eventually(
                    lambda: connect.config(f"{p}-gone") is None, what="the unseen deletion to be applied"
                )
                eventually(
                    lambda: (connect.config(f"{p}-keep") or {}).get("topic") == f"{p}-k2",
                    what="the unseen edit",
                )
    finally:
        kube.stop()


WATCHER_SECRET = "watcher-Log-Secret-5e1"


def test_run_exits_zero_on_sigterm_and_its_json_logs_hold_no_secret(
    apiserver: ApiServerKit, namespace: str, connect_kit: ConnectKit, core: client.CoreV1Api
) -> None:
    # Connect's 400 for this config quotes the value ("Invalid value ... for configuration tasks.max"),
    # so the secret reaches an error message the watcher logs: it must come out masked.
    bad = source(connect_kit, "leak")
    bad["config"]["tasks.max"] = "ENV_PLACEHOLDER"
    body = configmap("leaky", {f"l{uuid.uuid4().hex[:6]}": bad})
    body["data"] = {k: v.replace('"ENV_PLACEHOLDER"', "env.DB_PASSWORD") for k, v in body["data"].items()}
    core.create_namespaced_config_map(namespace, body)
    env = {
        **os.environ,
        "CONNECT_RECONCILER_NAMESPACE": namespace,
        "CONNECT_RECONCILER_CONNECT_URL": connect_kit.connect_url,
        "CONNECT_RECONCILER_KUBECONFIG": str(apiserver.kubeconfig_path),
        "CONNECT_RECONCILER_HEALTH_ADDRESS": "127.0.0.1:0",
        "CONNECT_RECONCILER_LOG_LEVEL": "debug",
        "CONNECT_RECONCILER_LOG_FORMAT": "json",
        "DB_PASSWORD": WATCHER_SECRET,
        "PYTHONFAULTHANDLER": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        lines: list[str] = []
        assert proc.stderr is not None
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "reconciled" in line:
                break
        assert any("reconciled" in line for line in lines), lines
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            # SIGABRT makes faulthandler print every thread's stack: the failure says where it hung.
            # Read through the text wrapper: lines it already buffered would be lost to communicate().
            proc.send_signal(signal.SIGABRT)
            proc.wait(timeout=10)
            raise AssertionError("no exit 30 s after SIGTERM:\n" + proc.stderr.read()[-6000:]) from None
        assert code == 0
        rest = proc.stderr.read()
        assert "shutting down" in rest and "stopped" in rest
        logs = "".join(lines) + rest
        records = [json.loads(line) for line in logs.splitlines() if line.strip()]  # every line is JSON
        assert any("<secret sha256:" in json.dumps(r) for r in records), "the 400 was not logged"
        assert WATCHER_SECRET not in logs
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()


def test_sigterm_during_an_outage_ends_the_retries_at_once(
    apiserver: ApiServerKit, namespace: str, connect_kit: ConnectKit, core: client.CoreV1Api
) -> None:
    """Connect answers 503 to everything (a load balancer in front of a dead worker) with a 300 s retry
    budget: SIGTERM must end the retry sleeps at once, not after the budget."""
    core.create_namespaced_config_map(
        namespace, configmap("cm", {f"s{uuid.uuid4().hex[:6]}": source(connect_kit, "s")})
    )
    with FaultProxy(connect_kit.connect_url) as proxy:
        proxy.set_rules([FaultRule(Fault.LB_503)])
        env = {
            **os.environ,
            "CONNECT_RECONCILER_NAMESPACE": namespace,
            "CONNECT_RECONCILER_CONNECT_URL": proxy.url,
            "CONNECT_RECONCILER_KUBECONFIG": str(apiserver.kubeconfig_path),
            "CONNECT_RECONCILER_HEALTH_ADDRESS": "",
            "CONNECT_RECONCILER_RETRY_SECONDS": "300",
            "CONNECT_RECONCILER_LOG_FORMAT": "json",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "run"],
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        try:
            assert proc.stderr is not None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if "retrying a Kafka Connect request" in proc.stderr.readline():
                    break
            else:
                raise AssertionError("the watcher never retried against the 503s")
            signalled = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
            assert code == 0 and time.monotonic() - signalled < 10
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stderr:
                proc.stderr.close()


def test_sample_yaml_is_valid_for_the_api_server(apiserver: ApiServerKit, namespace: str) -> None:
    with apiserver.api_client() as api:
        core = client.CoreV1Api(api)
        for path in sorted((ROOT / "configmaps").glob("*.yaml")):
            doc = yaml.safe_load(path.read_text())
            if doc.get("kind") != "ConfigMap":
                continue
            doc["metadata"]["namespace"] = namespace
            core.create_namespaced_config_map(namespace, doc, dry_run="All")


def test_all_namespaces_and_a_broken_configmap_blocks_nothing(
    apiserver: ApiServerKit, connect_kit: ConnectKit, connect: Connect, core: client.CoreV1Api
) -> None:
    run_id = uuid.uuid4().hex[:6]
    labels = {
        "destination": "connect",
        "run": run_id,
    }  # a selector of its own: other tests' ConfigMaps stay out
    first, second = apiserver.create_namespace("all"), apiserver.create_namespace("all")
    settings = watcher_settings("*", connect_kit.connect_url, selector=f"destination=connect,run={run_id}")
    reports: list[Report] = []
    watcher = Watcher(settings, {}, api=apiserver.api_client(), on_report=reports.append)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        broken = configmap("broken", {}, labels=labels)
        broken["data"] = {"bad.json": "{not jq"}
        core.create_namespaced_config_map(first, broken)
        core.create_namespaced_config_map(
            first, configmap("one", {f"{run_id}-one": source(connect_kit, f"{run_id}-1")}, labels=labels)
        )
        core.create_namespaced_config_map(
            second, configmap("two", {f"{run_id}-two": source(connect_kit, f"{run_id}-2")}, labels=labels)
        )
        eventually(
            lambda: (
                connect.config(f"{run_id}-one") is not None and connect.config(f"{run_id}-two") is not None
            ),
            what="connectors from two namespaces",
        )
        eventually(
            lambda: any(
                f"ConfigMap {first}/broken key bad.json: jq compile error" in str(p)
                for r in reports
                for p in r.problems
            ),
            what="the broken ConfigMap to be reported",
        )
    finally:
        watcher.stop.set()
        thread.join(timeout=60)
        for name in (f"{run_id}-one", f"{run_id}-two"):
            connect.http.delete(f"/connectors/{name}")


def test_a_template_that_never_ends_costs_its_deadline_not_the_watcher(
    apiserver: ApiServerKit, namespace: str, connect_kit: ConnectKit, connect: Connect, core: client.CoreV1Api
) -> None:
    """libjq cannot be interrupted: the template runs in the sandbox process, which is killed at the
    deadline. Its live connector stays as it was, and the other ConfigMaps keep being reconciled."""
    run_id = uuid.uuid4().hex[:6]
    stuck, other = f"{run_id}-stuck", f"{run_id}-other"
    with Running(apiserver, namespace, connect_kit.connect_url, render_timeout=1.0) as running:
        core.create_namespaced_config_map(namespace, configmap("stuck", {stuck: source(connect_kit, stuck)}))
        eventually(lambda: connect.config(stuck) is not None, what="the connector before its template breaks")
        before = connect.config(stuck)
        forever = configmap("stuck", {})
        forever["data"] = {f"{stuck}.json": "def f: f; f"}
        core.replace_namespaced_config_map("stuck", namespace, forever)
        core.create_namespaced_config_map(namespace, configmap("other", {other: source(connect_kit, other)}))
        eventually(lambda: connect.config(other) is not None, what="a ConfigMap created after the stuck one")
        eventually(
            lambda: any(
                f"ConfigMap {namespace}/stuck key {stuck}.json: the template did not finish within 1 s" in str(p)
                for r in running.reports
                for p in r.problems
            ),
            what="the stuck template to be reported",
        )
        edited = configmap("other", {other: source(connect_kit, f"{other}-v2")})
        core.replace_namespaced_config_map("other", namespace, edited)
        eventually(
            lambda: (connect.config(other) or {}).get("topic") == f"{other}-v2",
            what="an edit made while the stuck template is still there",
        )
        assert connect.config(stuck) == before and connect.state(stuck) == "RUNNING"
        assert running.watcher.engine.starts >= 2  # the child was killed at the deadline and replaced
        assert running.thread.is_alive()
    for name in (stuck, other):
        connect.http.delete(f"/connectors/{name}")


def kubelet_volume(root: Path, files: dict[str, str], *, version: int) -> None:
    """Write `files` as kubelet does a Secret volume: a new `..<timestamp>` directory, then `..data`
    swapped onto it atomically (a rename), key symlinks `key -> ..data/key`, the old directory removed."""
    root.mkdir(exist_ok=True)
    target = f"..2026_12_03_12_00_0{version}.123456789"
    (root / target).mkdir()
    for key, value in files.items():
        (root / target / key).write_text(value)
    data = root / "..data"
    old = os.readlink(data) if data.is_symlink() else None
    (root / "..data_tmp").symlink_to(target)
    os.replace(root / "..data_tmp", data)
    for key in files:
        if not (root / key).is_symlink():
            (root / key).symlink_to(f"..data/{key}")
    if old is not None:
        for f in (root / old).iterdir():
            f.unlink()
        (root / old).rmdir()


@contextlib.contextmanager
def raw_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every event the watcher logs, at every level, before rendering and redaction."""
    wrapper = structlog.get_config()["wrapper_class"]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with structlog.testing.capture_logs() as events:
            yield events
    finally:
        structlog.configure(wrapper_class=wrapper)


def test_a_rotated_secret_updates_only_the_connector_that_reads_it_and_only_once(
    tmp_path: Path,
    apiserver: ApiServerKit,
    namespace: str,
    connect_kit: ConnectKit,
    connect: Connect,
    core: client.CoreV1Api,
) -> None:
    """No ConfigMap event and no resync (300 s): the inputs watch sees kubelet swap `..data` and wakes
    the loop; the pass re-renders everything and the planner writes only the config that changed."""
    run_id = uuid.uuid4().hex[:6]
    reads, other = f"{run_id}-reads", f"{run_id}-other"
    old, new = f"old-{uuid.uuid4().hex}", f"new-{uuid.uuid4().hex}"
    vol = tmp_path / "db"
    kubelet_volume(vol, {"password": old, "username": "app"}, version=0)
    templated = source(connect_kit, reads)
    templated["config"]["connection.password"] = "PASSWORD_PLACEHOLDER"  # FileStream ignores it
    body = configmap("reads", {reads: templated})
    body["data"] = {
        k: v.replace('"PASSWORD_PLACEHOLDER"', "$secrets.db.password") for k, v in body["data"].items()
    }
    with (
        raw_logs() as logs,
        Running(
            apiserver, namespace, connect_kit.connect_url, secret_dir=[f"db={vol}"], inputs_poll_seconds=0.5
        ) as running,
    ):
        core.create_namespaced_config_map(namespace, body)
        core.create_namespaced_config_map(namespace, configmap("other", {other: source(connect_kit, other)}))

        def actions() -> list[tuple[ActionKind, str]]:
            return [(o.action.kind, o.action.connector) for r in list(running.reports) for o in r.outcomes]

        def detail() -> str:
            problems = [str(p) for r in list(running.reports) for p in r.problems]
            return f"; actions {actions()}, problems {problems}"

        # Both created, and the reports of the passes that created them in: what follows is the rotation's.
        eventually(
            lambda: {(ActionKind.CREATE, reads), (ActionKind.CREATE, other)} <= set(actions()),
            what="both connectors created",
            detail=detail,
        )
        assert (connect.config(reads) or {}).get("connection.password") == old
        other_before = connect.config(other)
        seen = len(actions())
        kubelet_volume(vol, {"password": new, "username": "app"}, version=1)
        eventually(  # well inside the 300 s resync: it is the inputs watch that triggered the pass
            lambda: (connect.config(reads) or {}).get("connection.password") == new,
            timeout=60,
            what="the rotated password in Connect",
            detail=detail,
        )
        time.sleep(3.0)  # six poll periods: a second write, if there were one, would have been made
        # One PUT .../config to the connector that reads the secret, and no write at all to the other.
        assert actions()[seen:] == [(ActionKind.UPDATE, reads)], detail()
        assert connect.config(other) == other_before
        assert running.watcher.inputs.changes == 1
        reports = list(running.reports)
    assert any(e["event"] == "template inputs changed; reconciling" for e in logs)
    said = [str(e) for e in logs] + [str(p) for r in reports for p in r.problems]
    said += [o.message for r in reports for o in r.outcomes]
    assert not [line for line in said if old in line or new in line]
    for name in (reads, other):
        connect.http.delete(f"/connectors/{name}")
