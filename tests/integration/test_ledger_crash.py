"""The ownership ledger's crash-safety promise, with `connect-reconciler run` SIGKILLed mid-pass.

A real kube-apiserver holds the ConfigMaps and the ledger, a real Connect worker the connectors, and a
FaultProxy between the reconciler and the worker kills the reconciler at the exact request that matters:
just before a create leaves (the ledger entry is written, the connector is not), just after a delete
took effect in Connect (the connector is gone, its entry is not). A restarted reconciler must converge
from there without losing or duplicating anything. The auto-restart counters live in the same ledger,
so a restart of the reconciler must not reset the backoff either.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from reconciler.core.ledger import ENTRIES_KEY, ledger_name
from tests.harness.apiserver_kit import ApiServerKit
from tests.harness.connect_kit import ConnectKit, failing_task_config
from tests.harness.fault_proxy import Dropped, FaultProxy, Record
from tests.integration.test_watcher_kube import configmap, source
from tests.support import Connect, eventually

ROOT = Path(__file__).resolve().parents[2]
LEDGER = ledger_name("default")  # --connect-url names the cluster "default"


class Reconciler:
    """`python -m reconciler run` as a subprocess watching one namespace (also the ledger's), its JSON logs
    in a file. Each `start()` is a new process, as a pod restart would be."""

    def __init__(self, tmp_path: Path, apiserver: ApiServerKit, namespace: str, connect_url: str) -> None:
        self.tmp_path = tmp_path
        self.env = {
            **os.environ,
            "CONNECT_RECONCILER_NAMESPACE": namespace,
            "CONNECT_RECONCILER_LEDGER_NAMESPACE": namespace,
            "CONNECT_RECONCILER_CONNECT_URL": connect_url,
            "CONNECT_RECONCILER_KUBECONFIG": str(apiserver.kubeconfig_path),
            "CONNECT_RECONCILER_HEALTH_ADDRESS": "",
            "CONNECT_RECONCILER_RESYNC_SECONDS": "2",
            "CONNECT_RECONCILER_DEBOUNCE_SECONDS": "0.2",
            "CONNECT_RECONCILER_RETRY_SECONDS": "20",
            "CONNECT_RECONCILER_LOG_LEVEL": "info",
            "CONNECT_RECONCILER_LOG_FORMAT": "json",
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.killed = threading.Event()

    @property
    def log_path(self) -> Path:
        return self.tmp_path / f"reconciler-{self.starts}.log"

    def start(self) -> Reconciler:
        assert self.proc is None or self.proc.poll() is not None, "the previous process still runs"
        self.starts += 1
        self.killed.clear()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "reconciler", "run"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        return self

    def kill(self) -> None:
        """SIGKILL, and reap it: when this returns, the process can send nothing more."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.killed.set()

    def terminate(self) -> int:
        """SIGTERM: the request in flight finishes, no new one starts, exit 0."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"no exit 30 s after SIGTERM{self.tail()}") from None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()

    def logs(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
        return records

    def passes(self) -> int:
        """Passes the current process finished ("reconciled" log events)."""
        return sum(1 for r in self.logs() if r.get("event") == "reconciled")

    def tail(self) -> str:
        return "\nreconciler log:\n" + self.log_path.read_text(errors="replace")[-3000:]


@pytest.fixture
def proxy(connect_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(connect_url) as p:
        yield p


@pytest.fixture
def reconciler(
    tmp_path: Path, apiserver: ApiServerKit, namespace: str, proxy: FaultProxy
) -> Iterator[Reconciler]:
    r = Reconciler(tmp_path, apiserver, namespace, proxy.url)
    yield r
    r.stop()


def ledger_entries(core: client.CoreV1Api, namespace: str) -> dict[str, Any] | None:
    """The ledger ConfigMap's entries as stored; None while it does not exist."""
    try:
        cm = core.read_namespaced_config_map(LEDGER, namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return dict(json.loads((cm.data or {}).get(ENTRIES_KEY) or "{}"))


def is_create(r: Record, name: str) -> bool:
    """A create as the planner sends it: POST /connectors (Kafka >= 3.5, initial_state), or PUT .../config
    (which also creates)."""
    if r.method == "POST" and r.path == "/connectors":
        return bool(json.loads(r.body or b"{}").get("name") == name)
    return r.method == "PUT" and r.path == f"/connectors/{name}/config"


def creates(proxy: FaultProxy, name: str, *, forwarded: bool = True) -> list[Record]:
    return [r for r in proxy.snapshot() if is_create(r, name) and r.forwarded == forwarded]


def restarts(proxy: FaultProxy, name: str) -> list[Record]:
    return [
        r
        for r in proxy.snapshot()
        if r.forwarded
        and r.method == "POST"
        and r.path == f"/connectors/{name}/restart"
        and urllib.parse.parse_qs(r.query) == {"includeTasks": ["true"], "onlyFailed": ["true"]}
    ]


def tasks(connect: Connect, name: str) -> list[str]:
    r = connect.http.get(f"/connectors/{name}/status")
    return [t["state"] for t in r.json().get("tasks", [])] if r.status_code == 200 else []


def test_sigkill_between_the_ledger_write_and_the_create_loses_and_duplicates_nothing(
    namespace: str,
    connect_kit: ConnectKit,
    connect: Connect,
    core: client.CoreV1Api,
    proxy: FaultProxy,
    reconciler: Reconciler,
) -> None:
    """Killed after the entry was written and before the create left: the ledger names the connector,
    Connect has none. The next process creates it exactly once and keeps exactly that entry."""
    name = f"k{uuid.uuid4().hex[:8]}"

    def kill_before_create(method: str, path: str) -> None:
        if (method, path) in (("POST", "/connectors"), ("PUT", f"/connectors/{name}/config")):
            reconciler.kill()
            raise Dropped()

    proxy.before_forward = kill_before_create
    try:
        core.create_namespaced_config_map(namespace, configmap("cm-k", {name: source(connect_kit, name)}))
        reconciler.start()
        assert reconciler.killed.wait(60), f"the create was never attempted{reconciler.tail()}"
        proxy.before_forward = None
        entries = ledger_entries(core, namespace)
        assert entries is not None and set(entries) == {name}, entries
        assert entries[name]["owner"] == f"{namespace}/cm-k" and entries[name]["origin"] == "created"
        assert connect.config(name) is None  # the create never reached Connect
        assert creates(proxy, name) == [] and len(creates(proxy, name, forwarded=False)) == 1

        reconciler.start()
        eventually(
            lambda: connect.state(name) == "RUNNING",
            what="the connector, after the restart",
            detail=reconciler.tail,
        )
        passes = reconciler.passes()
        eventually(lambda: reconciler.passes() >= passes + 2, what="two more passes", detail=reconciler.tail)
        assert len(creates(proxy, name)) == 1  # one create reached Connect, in all
        entries = ledger_entries(core, namespace)
        assert entries is not None and set(entries) == {name}, entries
        assert entries[name]["owner"] == f"{namespace}/cm-k"
        assert (connect.config(name) or {}).get("topic") == name
        assert reconciler.terminate() == 0
    finally:
        proxy.before_forward = None
        reconciler.stop()
        connect.http.delete(f"/connectors/{name}")


def test_sigkill_between_the_delete_and_the_ledger_update_forgets_the_entry_next_time(
    namespace: str,
    connect_kit: ConnectKit,
    connect: Connect,
    core: client.CoreV1Api,
    proxy: FaultProxy,
    reconciler: Reconciler,
) -> None:
    """Killed after Connect answered the prune's DELETE, before the ledger was updated: Connect has no
    connector, the ledger still names it. The next process sees it absent and forgets it, creates
    nothing again, and leaves the other connector alone."""
    p = uuid.uuid4().hex[:8]
    gone, kept = f"g{p}", f"h{p}"
    core.create_namespaced_config_map(namespace, configmap("cm-gone", {gone: source(connect_kit, gone)}))
    core.create_namespaced_config_map(namespace, configmap("cm-kept", {kept: source(connect_kit, kept)}))
    try:
        reconciler.start()
        eventually(
            lambda: connect.state(gone) == "RUNNING" and connect.state(kept) == "RUNNING",
            what="both connectors",
            detail=reconciler.tail,
        )
        assert set(ledger_entries(core, namespace) or {}) == {gone, kept}
        assert reconciler.terminate() == 0
        kept_config = connect.config(kept)

        def kill_after_delete(method: str, path: str, status: int) -> None:
            if method == "DELETE" and path == f"/connectors/{gone}":
                reconciler.kill()

        proxy.after_forward = kill_after_delete
        core.delete_namespaced_config_map("cm-gone", namespace)
        reconciler.start()
        assert reconciler.killed.wait(60), f"the prune was never sent{reconciler.tail()}"
        proxy.after_forward = None
        eventually(lambda: connect.config(gone) is None, what="the delete to land in Connect")
        assert set(ledger_entries(core, namespace) or {}) == {gone, kept}  # not forgotten yet

        reconciler.start()
        eventually(
            lambda: set(ledger_entries(core, namespace) or {}) == {kept},
            what="the deleted connector's entry to be forgotten",
            detail=reconciler.tail,
        )
        passes = reconciler.passes()
        eventually(lambda: reconciler.passes() >= passes + 2, what="two more passes", detail=reconciler.tail)
        assert connect.config(gone) is None
        assert len(creates(proxy, gone)) == 1 and len(creates(proxy, kept)) == 1  # the first start's only
        others = [
            (r.method, r.path)
            for r in proxy.forwarded_writes()
            if not is_create(r, gone) and not is_create(r, kept)
        ]
        assert others == [("DELETE", f"/connectors/{gone}")], others  # one prune; nothing sent to `kept`
        assert connect.config(kept) == kept_config and connect.state(kept) == "RUNNING"
        assert set(ledger_entries(core, namespace) or {}) == {kept}
        assert reconciler.terminate() == 0
    finally:
        proxy.after_forward = None
        reconciler.stop()
        for name in (gone, kept):
            connect.http.delete(f"/connectors/{name}")


def test_the_restart_backoff_is_read_from_the_ledger_after_a_reconciler_restart(
    namespace: str,
    connect_kit: ConnectKit,
    connect: Connect,
    core: client.CoreV1Api,
    proxy: FaultProxy,
    reconciler: Reconciler,
) -> None:
    """A connector whose task always fails is restarted once (`restart.count` 1 in its ledger entry); the
    next restart is due 2 minutes later. A new reconciler process must read that from the ledger and send
    no restart during its first passes, leaving the count at 1."""
    name = f"f{uuid.uuid4().hex[:8]}"
    doc = {"config": failing_task_config(connect_kit)}
    core.create_namespaced_config_map(namespace, configmap("cm-f", {name: doc}))
    try:
        reconciler.start()
        eventually(
            lambda: len(restarts(proxy, name)) >= 1, what="an automatic restart", detail=reconciler.tail
        )
        (restart,) = restarts(proxy, name)
        assert restart.upstream_status in (200, 202, 204), restart
        eventually(
            lambda: (
                (ledger_entries(core, namespace) or {}).get(name, {}).get("restart", {}).get("count") == 1
            ),
            what="restart.count 1 in the ledger",
        )
        first = dict((ledger_entries(core, namespace) or {})[name]["restart"])
        eventually(
            lambda: tasks(connect, name) == ["FAILED"], what="the task to fail again after the restart"
        )
        assert reconciler.terminate() == 0
        assert len(restarts(proxy, name)) == 1

        reconciler.start()
        started = time.monotonic()
        eventually(
            lambda: reconciler.passes() >= 5,
            timeout=30,
            what="five passes of the new process",
            detail=reconciler.tail,
        )
        assert time.monotonic() - started < 60
        assert tasks(connect, name) == ["FAILED"]  # still failing: a restart would be due but for the backoff
        assert len(restarts(proxy, name)) == 1, "the backoff was forgotten across the reconciler's restart"
        entry = (ledger_entries(core, namespace) or {})[name]["restart"]
        assert entry["count"] == 1 and entry["lastRestart"] == first["lastRestart"], entry
        assert reconciler.terminate() == 0
    finally:
        reconciler.stop()
        connect.http.delete(f"/connectors/{name}")
