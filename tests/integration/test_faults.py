"""The reconciler through a fault-injecting proxy in front of the real worker, and across real worker
restarts: after each scenario the state is checked directly against Kafka Connect.

Every scenario declares creates (one created paused), an update, a pause and a delete, and leaves a
foreign connector alone; `apply` runs through the proxy until it exits 0. Then, straight from Connect:
converged; no connector created twice; no identical config written twice (Connect restarts on every
write); the delete done and nothing else deleted; no secret in any output; and `apply`'s exit 0 was the
truth. A table of the scenarios (faults injected, runs needed, time to converge) is printed at the end.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.clients import connect as connect_client
from tests.harness.connect_kit import ConnectKit
from tests.harness.fault_proxy import Fault, FaultProxy, FaultRule, Record
from tests.integration.conftest import SUMMARY
from tests.support import CliWorkspace, configmap_yaml, eventually

SECRET = "fault-Secret-Value-31ab"
WRITES = "POST|PUT|DELETE"
MAX_RUNS = 8


@dataclass
class Result:
    scenario: str
    faults: collections.Counter[Fault]
    runs: int
    seconds: float
    forwarded_writes: int


RESULTS: list[Result] = []


@pytest.fixture(scope="module", autouse=True)
def scenario_table() -> Iterator[None]:
    yield
    if not RESULTS:
        return
    lines = [
        "",
        "fault scenarios (apply through the fault proxy until exit 0; checked against Connect):",
        f"{'scenario':<28} {'faults injected':<62} {'runs':>4} {'seconds':>8} {'writes':>6}",
    ]
    for r in RESULTS:
        faults = ", ".join(f"{f.value}={n}" for f, n in sorted(r.faults.items())) or "-"
        lines.append(f"{r.scenario:<28} {faults:<62} {r.runs:>4} {r.seconds:>8.1f} {r.forwarded_writes:>6}")
    SUMMARY.extend(lines)


@pytest.fixture
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """HOLD answers after the client's read timeout: keep that timeout short so scenarios stay quick."""
    monkeypatch.setattr(connect_client, "WRITE_TIMEOUT_S", 3.0)
    monkeypatch.setattr(connect_client, "READ_TIMEOUT_S", 3.0)


class Fleet:
    """One scenario's connectors: names, the desired configs, the live state seeded before it runs."""

    def __init__(self, root: Path, kit: ConnectKit, proxy_url: str) -> None:
        self.p = f"f{uuid.uuid4().hex[:6]}"
        self.kit = kit
        self.connect = httpx.Client(base_url=kit.connect_url, timeout=30)
        self.ws = CliWorkspace(
            root,
            url=proxy_url,
            properties=f"topic.prefix={self.p}\n",
            secret_volume="db",
            secret=SECRET,
            environ={},
        )
        self.creates = [self.n("new-a"), self.n("new-b")]
        self.created_paused = self.n("new-p")
        self.updated, self.paused, self.deleted, self.foreign = (
            self.n("upd"),
            self.n("pause"),
            self.n("zdel"),
            self.n("foreign"),
        )

    def n(self, short: str) -> str:
        return f"{self.p}-{short}"

    def config(self, name: str, topic: str | None = None) -> dict[str, str]:
        return {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "tasks.max": "1",
            "file": str(self.kit.data_dir / f"{name}.txt"),
            "topic": topic or f"{name}-t",
        }

    def seed(self) -> None:
        """Live state before the scenario, written straight to Connect (not through the proxy)."""
        for name, topic in [
            (self.updated, "old"),
            (self.paused, None),
            (self.deleted, None),
            (self.foreign, None),
        ]:
            r = self.connect.put(f"/connectors/{name}/config", json=self.config(name, topic))
            assert r.status_code in (200, 201), r.text
        eventually(lambda: self.state(self.paused) == "RUNNING", what="seeded connectors to run")

    def declare(self) -> None:
        def program(name: str, *, state: str | None = None, topic: str | None = None) -> str:
            doc: dict[str, Any] = {"name": name, "config": self.config(name, topic)}
            if state:
                doc["state"] = state
            text = json.dumps(doc, indent=1)
            # The secret travels in the config (and must never be printed).
            return text.replace('"tasks.max"', '"x.note.password": $secrets.db.password, "tasks.max"', 1)

        self.ws.write(
            "fleet",
            configmap_yaml(
                "fleet",
                {
                    **{f"{c}.json": program(c) for c in self.creates},
                    f"{self.created_paused}.json": program(self.created_paused, state="paused"),
                    f"{self.updated}.json": program(self.updated, topic="new"),
                    f"{self.paused}.json": program(self.paused, state="paused"),
                },
            ),
        )
        self.ws.write("gone", configmap_yaml("gone", {"d.json": program(self.deleted)}, enabled="false"))

    def desired(self, name: str) -> dict[str, str]:
        topic = "new" if name == self.updated else None
        return {**self.config(name, topic), "x.note.password": SECRET, "name": name}

    def live_config(self, name: str) -> dict[str, str] | None:
        """Connect's own answer: the config, or None for its JSON 404. A read during a rebalance may get 409
        (or a starting worker's 404): asked again, since that is no answer about the connector."""
        deadline = time.monotonic() + 60
        while True:
            r = self.connect.get(f"/connectors/{name}/config")
            if r.status_code == 200:
                return dict(r.json())
            if r.status_code == 404 and r.headers.get("content-type", "").startswith("application/json"):
                return None
            assert time.monotonic() < deadline, f"no answer about {name}: {r.status_code} {r.text[:200]}"
            time.sleep(0.2)

    def state(self, name: str) -> str | None:
        r = self.connect.get(f"/connectors/{name}/status")
        return r.json()["connector"]["state"] if r.status_code == 200 else None

    def assert_converged(self) -> None:
        """What exit 0 promised, checked against Connect at once (configs, existence), states eventually."""
        for name in [*self.creates, self.created_paused, self.updated, self.paused]:
            assert self.live_config(name) == self.desired(name), name
        assert self.live_config(self.deleted) is None, "apply exited 0 but the delete never happened"
        assert self.live_config(self.foreign) == {**self.config(self.foreign), "name": self.foreign}
        for name in [self.created_paused, self.paused]:
            eventually(lambda name=name: self.state(name) == "PAUSED", what=f"{name} PAUSED")  # type: ignore[misc]
        for name in self.creates:
            eventually(lambda name=name: self.state(name) == "RUNNING", what=f"{name} RUNNING")  # type: ignore[misc]

    def assert_no_duplicate_writes(self, writes: list[Record]) -> None:
        """Counted over the writes Connect performed (2xx upstream), whatever the client heard: a request
        a starting worker answered with its HTML 404, or a 409 during a rebalance, did nothing."""
        configs: dict[str, list[str]] = collections.defaultdict(list)
        posts: collections.Counter[str] = collections.Counter()
        for w in writes:
            if w.upstream_status is None or not 200 <= w.upstream_status < 300:
                continue
            if w.method == "POST" and w.path == "/connectors":
                body = json.loads(w.body)
                posts[body["name"]] += 1
                configs[body["name"]].append(json.dumps(body["config"], sort_keys=True))
            elif w.method == "PUT" and w.path.endswith("/config"):
                name = w.path.split("/")[2]
                configs[name].append(json.dumps(json.loads(w.body), sort_keys=True))
        assert all(n <= 1 for n in posts.values()), f"a connector was POSTed twice: {posts}"
        for name, sent in configs.items():
            assert len(sent) == len(set(sent)), f"identical config written twice to {name}"
        original = json.dumps({**self.config(self.updated, "old"), "name": self.updated}, sort_keys=True)
        assert original not in configs.get(self.updated, []), "the unchanged config was rewritten"
        touched = {w.path for w in writes}
        assert not any(self.foreign in p for p in touched), "the foreign connector was written to"
        assert not any(w.method == "DELETE" and self.deleted not in w.path for w in writes)

    def assert_no_secret(self) -> None:
        for output in self.ws.outputs:
            assert SECRET not in output

    def cleanup(self) -> None:
        for name in [
            *self.creates,
            self.created_paused,
            self.updated,
            self.paused,
            self.deleted,
            self.foreign,
        ]:
            self.connect.delete(f"/connectors/{name}")
        self.connect.close()


def converge(fleet: Fleet, *, retry_seconds: str = "20") -> tuple[int, float]:
    """Run apply until it exits 0; check the truth of every exit 0. Returns (runs, seconds)."""
    started = time.monotonic()
    for run in range(1, MAX_RUNS + 1):
        code, out, err = fleet.ws.cli("apply", "--retry-seconds", retry_seconds)
        assert code in (0, 1), (code, out, err)
        if code == 0:
            fleet.assert_converged()
            return run, time.monotonic() - started
    raise AssertionError(f"not converged after {MAX_RUNS} runs; last output:\n{out}\n{err}")


SCENARIOS: dict[str, list[FaultRule]] = {
    "409 rebalance": [FaultRule(Fault.CONFLICT, method=WRITES, probability=0.5)],
    "500 timed out": [FaultRule(Fault.TIMEOUT_500, method="POST|PUT", times=3)],
    "reset after write": [FaultRule(Fault.RESET, method=WRITES, probability=0.5)],
    "held past timeout": [FaultRule(Fault.HOLD, method="POST|PUT", times=2, hold_seconds=5)],
    "503 load balancer": [FaultRule(Fault.LB_503, probability=0.3)],
    "foreign 404": [FaultRule(Fault.FOREIGN_404, method="GET|DELETE", probability=0.5)],
    "expand drops entries": [FaultRule(Fault.DROP_EXPANDED, drop_fraction=0.5)],
    "everything at once": [
        FaultRule(Fault.CONFLICT, method=WRITES, probability=0.1),
        FaultRule(Fault.TIMEOUT_500, method="POST|PUT", probability=0.1),
        FaultRule(Fault.RESET, method=WRITES, probability=0.1),
        FaultRule(Fault.HOLD, method="PUT", times=1, hold_seconds=5),
        FaultRule(Fault.LB_503, probability=0.1),
        FaultRule(Fault.FOREIGN_404, probability=0.1),
        FaultRule(Fault.DROP_EXPANDED, probability=0.5),
    ],
}


@pytest.mark.usefixtures("short_timeouts")
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_fault_scenario_converges_truthfully(scenario: str, tmp_path: Path, connect_kit: ConnectKit) -> None:
    with FaultProxy(connect_kit.connect_url, seed=sum(map(ord, scenario))) as proxy:
        fleet = Fleet(tmp_path, connect_kit, proxy.url)
        try:
            fleet.seed()
            fleet.declare()
            proxy.set_rules(SCENARIOS[scenario])
            runs, seconds = converge(fleet)
            assert proxy.injected(), "the scenario injected no fault: it proved nothing"
            proxy.clear()
            # Converged means idle: one more run through the clean proxy sends no write.
            before = len(proxy.forwarded_writes())
            assert fleet.ws.cli("apply")[0] == 0
            assert len(proxy.forwarded_writes()) == before
            fleet.assert_no_duplicate_writes(proxy.forwarded_writes())
            fleet.assert_no_secret()
            RESULTS.append(Result(scenario, proxy.injected(), runs, seconds, before))
        finally:
            fleet.cleanup()


RestartWhen = Callable[[str, str, Fleet, FaultProxy], bool]  # (method, path, fleet, proxy) -> restart now?


def restart_scenario(
    label: str, when: RestartWhen, tmp_path: Path, kit: ConnectKit
) -> tuple[Fleet, FaultProxy, int]:
    """Seed and declare a fleet, restart the worker once from inside the proxy when `when` says so (the
    request that triggered it is held until the port opens), apply until exit 0 checking each exit 0
    against Connect, then the write invariants. Returns (fleet, proxy, 404s from the starting worker)."""
    proxy = FaultProxy(kit.connect_url, hold_until_upstream=90).start()
    fleet = Fleet(tmp_path, kit, proxy.url)
    restarted = threading.Event()

    def maybe_restart(method: str, path: str) -> None:
        if not restarted.is_set() and when(method, path, fleet, proxy):
            restarted.set()
            kit.stop_worker()
            kit.start_worker(wait=False)

    try:
        fleet.seed()
        fleet.declare()
        proxy.before_forward = maybe_restart
        started = time.monotonic()
        code, _, _ = fleet.ws.cli("apply", "--retry-seconds", "90")
        assert restarted.is_set()
        if code == 0:
            fleet.assert_converged()
            runs = 1
        else:
            proxy.before_forward = None
            runs = 1 + converge(fleet)[0]
        assert fleet.live_config(fleet.deleted) is None
        fleet.assert_no_duplicate_writes(proxy.forwarded_writes())
        fleet.assert_no_secret()
        starting_404s = len([r for r in proxy.snapshot() if r.forwarded and r.upstream_status == 404])
        writes = len(proxy.forwarded_writes())
        RESULTS.append(
            Result(
                f"{label} ({starting_404s} x 404)",
                collections.Counter(),
                runs,
                time.monotonic() - started,
                writes,
            )
        )
        return fleet, proxy, starting_404s
    finally:
        proxy.before_forward = None
        eventually(lambda: fleet.connect.get("/health").status_code == 200, what="the worker back")
        proxy.stop()
        fleet.cleanup()


def test_worker_restart_when_the_delete_arrives(tmp_path: Path, connect_kit: ConnectKit) -> None:
    """The worker restarts exactly as the DELETE reaches it: the held DELETE lands in the 1-2 s in which the
    starting worker answers every request with Jetty's HTML 404 and does nothing. That 404 must not be
    taken for "gone": apply retries until Connect itself confirms, and its exit code tells the truth."""
    _, _, starting_404s = restart_scenario(
        "restart at DELETE",
        lambda method, path, fleet, _proxy: method == "DELETE" and fleet.deleted in path,
        tmp_path,
        connect_kit,
    )
    assert starting_404s, "no request landed in the starting worker's 404 window"


def test_worker_restart_during_an_apply(tmp_path: Path, connect_kit: ConnectKit) -> None:
    """A restart after the first write: every later request meets a stopped, then starting, worker."""
    restart_scenario(
        "restart mid-apply",
        lambda method, _path, _fleet, proxy: method != "GET" and bool(proxy.forwarded_writes()),
        tmp_path,
        connect_kit,
    )


def test_an_unavailable_cluster_opens_the_breaker_and_exit_1_tells_the_truth(
    tmp_path: Path, connect_kit: ConnectKit
) -> None:
    """Every write answered 503 by a load balancer for longer than the retry budget: the first action spends
    the budget, the cluster's other actions are skipped at once (named in the output), apply exits 1 and
    nothing was written; once the path is clear the next apply converges."""
    with FaultProxy(connect_kit.connect_url) as proxy:
        fleet = Fleet(tmp_path, connect_kit, proxy.url)
        try:
            fleet.seed()
            fleet.declare()
            proxy.set_rules([FaultRule(Fault.LB_503, method=WRITES)])
            started = time.monotonic()
            code, out, _ = fleet.ws.cli("apply", "--retry-seconds", "2", "--max-in-flight", "1")
            elapsed = time.monotonic() - started
            assert code == 1 and proxy.forwarded_writes() == []
            assert out.count("SKIPPED") == 5 and "skipped: cluster default is unavailable" in out
            assert elapsed < 15, f"{elapsed:.1f} s: every action waited out the budget"
            # With the default 8 in flight the first actions spend the budget side by side: still one
            # budget's wait in all, nothing written, and exit 1.
            again = time.monotonic()
            code, out, _ = fleet.ws.cli("apply", "--retry-seconds", "2")
            assert code == 1 and proxy.forwarded_writes() == []
            assert time.monotonic() - again < 15 and "6 error(s)" in out
            proxy.clear()
            runs, seconds = converge(fleet)
            fleet.assert_no_duplicate_writes(proxy.forwarded_writes())
            fleet.assert_no_secret()
            RESULTS.append(
                Result(
                    "breaker, then clear",
                    proxy.injected(),
                    runs + 1,
                    elapsed + seconds,
                    len(proxy.forwarded_writes()),
                )
            )
        finally:
            fleet.cleanup()
