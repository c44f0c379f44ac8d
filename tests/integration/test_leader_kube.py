"""Two `run` replicas with leader election on a real kube-apiserver and a real Connect worker.

Each replica reaches Connect through its own FaultProxy, so "who wrote what" is exact. The leader is
SIGKILLed while its second create is held in its proxy; the follower must take over within the lease
duration (+ a retry period), no connector may be created twice, and a SIGTERMed leader releases the Lease
so the next replica takes over at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client

from tests.harness.apiserver_kit import ApiServerKit
from tests.harness.connect_kit import ConnectKit
from tests.harness.fault_proxy import FaultProxy, Record
from tests.integration.conftest import SUMMARY
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]
LEASE_S, RENEW_S, RETRY_S = 6, 4, 1
LEASE = "connect-reconciler"


class Replica:
    """`python -m reconciler run` as a subprocess; its JSON log lines are collected with arrival times."""

    def __init__(self, identity: str, env: dict[str, str]) -> None:
        self.identity = identity
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "run"],
            env={**env, "CONNECT_RECONCILER_IDENTITY": identity},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.lines: list[tuple[float, dict[str, Any]]] = []
        self.raw: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.raw.append(line)
            try:
                self.lines.append((time.monotonic(), json.loads(line)))
            except ValueError:
                continue

    def first(self, event: str) -> float | None:
        return next((t for t, r in list(self.lines) if r.get("event") == event), None)

    def events(self, event: str) -> list[dict[str, Any]]:
        return [r for _, r in list(self.lines) if r.get("event") == event]

    def wait_for(self, event: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            at = self.first(event)
            if at is not None:
                return at
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"{self.identity}: no {event!r} log line:\n{''.join(self.raw)[-4000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)
        if self.proc.stderr:
            self.proc.stderr.close()


def creates(records: list[Record]) -> Counter[str]:
    """Forwarded creates per connector: POST /connectors {name} or PUT /connectors/<name>/config."""
    counts: Counter[str] = Counter()
    for r in records:
        if not r.forwarded:
            continue
        if r.method == "POST" and r.path == "/connectors":
            try:
                name = json.loads(r.body)["name"]
            except (ValueError, KeyError, TypeError):
                # Cut off by the SIGKILL before its body was sent (several creates are in flight at
                # once): Connect got no connector to create from it.
                continue
            counts[name] += 1
        elif r.method == "PUT" and r.path.endswith("/config"):
            counts[r.path.split("/")[2]] += 1
    return counts


def test_one_leader_writes_a_killed_leader_is_replaced_and_a_released_lease_is_taken_at_once(
    apiserver: ApiServerKit, namespace: str, connect_kit: ConnectKit
) -> None:
    api = apiserver.api_client()
    core, leases = client.CoreV1Api(api), client.CoordinationV1Api(api)
    tag = uuid.uuid4().hex[:6]
    names = [f"lead-{tag}-{i}" for i in range(4)]
    base_env = {
        **os.environ,
        "CONNECT_RECONCILER_NAMESPACE": namespace,
        "CONNECT_RECONCILER_KUBECONFIG": str(apiserver.kubeconfig_path),
        "CONNECT_RECONCILER_HEALTH_ADDRESS": "127.0.0.1:0",
        "CONNECT_RECONCILER_LOG_FORMAT": "json",
        "CONNECT_RECONCILER_LOG_LEVEL": "info",
        "CONNECT_RECONCILER_DEBOUNCE_SECONDS": "0.2",
        "CONNECT_RECONCILER_LEDGER_NAMESPACE": namespace,
        "CONNECT_RECONCILER_LEADER_ELECTION": "on",
        "CONNECT_RECONCILER_LEASE_DURATION": str(LEASE_S),
        "CONNECT_RECONCILER_RENEW_DEADLINE": str(RENEW_S),
        "CONNECT_RECONCILER_RETRY_PERIOD": str(RETRY_S),
    }
    proxy_a, proxy_b = (
        FaultProxy(connect_kit.connect_url).start(),
        FaultProxy(connect_kit.connect_url).start(),
    )
    held, go = threading.Event(), threading.Event()
    seen_creates: list[str] = []

    def hold_second_create(method: str, path: str) -> None:
        if method in ("POST", "PUT") and (path == "/connectors" or path.endswith("/config")):
            seen_creates.append(path)
            if len(seen_creates) == 2:
                held.set()
                go.wait(30)  # forwarded after the kill: the dead leader's write lands, unanswered

    proxy_a.before_forward = hold_second_create
    replicas: list[Replica] = []
    try:
        a = Replica("replica-a", {**base_env, "CONNECT_RECONCILER_CONNECT_URL": proxy_a.url})
        replicas.append(a)
        a.wait_for("started leading", 60)
        b = Replica("replica-b", {**base_env, "CONNECT_RECONCILER_CONNECT_URL": proxy_b.url})
        replicas.append(b)
        b.wait_for("waiting for leadership", 60)

        docs = {
            f"{n}.json": json.dumps(
                {
                    "name": n,
                    "config": {
                        "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
                        "tasks.max": "1",
                        "file": str(connect_kit.data_dir / f"{n}.txt"),
                        "topic": n,
                    },
                }
            )
            for n in names
        }
        body: Any = {
            "metadata": {"name": f"leader-{tag}", "labels": {"destination": "connect"}},
            "data": docs,
        }
        core.create_namespaced_config_map(namespace, body)
        assert held.wait(60), "".join(a.raw)[-4000:]
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        killed = time.monotonic()
        go.set()

        took_over = b.wait_for("started leading", LEASE_S + RETRY_S + 10)
        takeover_s = took_over - killed
        with httpx.Client(base_url=connect_kit.connect_url, timeout=30) as http:
            eventually(
                lambda: all(http.get(f"/connectors/{n}").status_code == 200 for n in names),
                what="every connector in Connect",
                timeout=60,
            )
        time.sleep(2 * RETRY_S)  # let the new leader's pass finish: nothing more may be written
        first_b_write = min((r.at for r in proxy_b.forwarded_writes()), default=None)

        # The follower wrote nothing before it led; the killed leader nothing after the kill.
        assert all(r.at >= took_over for r in proxy_b.snapshot() if r.method != "GET"), proxy_b.snapshot()
        assert all(r.at < killed for r in proxy_a.snapshot()), (
            "replica-a's proxy got a request after the kill"
        )
        # Every connector created exactly once, by one replica or the other, never by both.
        total = creates(proxy_a.snapshot()) + creates(proxy_b.snapshot())
        assert {n: total[n] for n in names} == dict.fromkeys(names, 1), (total, proxy_b.snapshot())
        assert takeover_s <= LEASE_S + RETRY_S + 1.5, takeover_s  # + process/log latency on shared CPUs
        spec = leases.read_namespaced_lease(LEASE, namespace).spec
        assert spec is not None and spec.holder_identity == "replica-b" and spec.lease_transitions == 1
        who = {r.identity: sorted(e["connector"] for e in r.events("connector changed")) for r in replicas}
        # The audit log says which replica did what: each record names its reconciler.
        audited = {
            r.identity: sorted(e["objectRef"]["connector"] for e in r.events("audit") if e["stage"] == "applied")
            for r in replicas
        }
        assert all(e["actor"]["reconciler"] == r.identity for r in replicas for e in r.events("audit"))
        assert audited == who, (audited, who)

        # SIGTERM: the new leader stops, releases the Lease, exits 0.
        b.proc.send_signal(signal.SIGTERM)
        assert b.proc.wait(timeout=30) == 0, "".join(b.raw)[-4000:]
        spec = leases.read_namespaced_lease(LEASE, namespace).spec
        assert spec is not None and spec.holder_identity in ("", None) and spec.lease_duration_seconds == 1
        c = Replica("replica-a", {**base_env, "CONNECT_RECONCILER_CONNECT_URL": proxy_a.url})
        replicas.append(c)
        waiting = c.wait_for("waiting for leadership", 60)
        led = c.wait_for("started leading", 10)
        assert led - waiting < 2.0, (led - waiting, "".join(c.raw)[-4000:])
        summary = (
            f"leader election: takeover after SIGKILL {takeover_s:.2f} s "
            f"(lease {LEASE_S} s, retry {RETRY_S} s; first write of the new leader "
            f"{(first_b_write - killed) if first_b_write else float('nan'):.2f} s after the kill); "
            f"after a release {led - waiting:.2f} s (process start to leading {led - c.started:.2f} s); "
            f"'connector changed' by replica: {who}"
        )
        print(summary)
        SUMMARY.append(summary)
    finally:
        go.set()
        for r in replicas:
            r.stop()
        proxy_a.stop()
        proxy_b.stop()
