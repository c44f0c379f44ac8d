"""Prometheus metrics: an observer of the telemetry seam (`telemetry.py`), httpx hooks on the Connect
clients, and a `/metrics` endpoint.

Edge (a clock, an HTTP server thread). Names follow controller-runtime where one applies
(`controller_runtime_reconcile_total` -> `connect_reconciler_reconcile_total`, the same 5 ms..60 s
buckets, the result labels created at 0) and Prometheus' conventions otherwise: one prefix, base units,
`_total` on counters, no unbounded label (connector names are never a label). Every `Metrics` has its
own `CollectorRegistry`, so tests can build as many as they like and nothing lands in the global one.

The gauges that describe the last pass (managed connectors by state, failing connectors and FAILED
tasks, blocked prunes) are built from the last `PassEvent` and exposed by a collector that reads one
snapshot under a lock, so a scrape never sees half of a pass. README "Metrics" lists every metric.

Connect requests: `instrument(clients)` adds a request hook and a response hook to each cluster's
`httpx.Client` (a `ConnectClient.http`). A response is counted with its status code and its duration
(`response.elapsed`, after the body is read: httpx sets it only then). A request that got no response
(connection refused, reset, timeout) is counted with code="error" (no duration): the request hook
remembers the request in flight per (cluster, thread), and a request still unanswered when that thread
sends its next request to the cluster, or when the pass ends (the `PassEvent`), is one that failed.
Wiring only `connect_response_hook(cluster)` counts responses only.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from typing import TYPE_CHECKING, Any, TypeVar
from weakref import WeakSet

import httpx
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from reconciler.model import ActionKind, ConnectorPlan, Outcome
from reconciler.telemetry import ActionEvent, Event, PassEvent

if TYPE_CHECKING:
    from reconciler.clients.connect import ConnectClient

log = structlog.get_logger("reconciler.metrics")

PREFIX = "connect_reconciler_"
# controller-runtime's reconcile_time_seconds buckets (pkg/internal/controller/metrics/metrics.go).
RECONCILE_BUCKETS = (
    *(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9),
    *(1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0),
    *(15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0),
)
# One Connect request: reads time out after 10 s, writes after 100 s (clients/connect.py).
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 100.0)
RESULTS = ("success", "error")
OUTCOMES = ("ok", "failed", "skipped")
# Writes that bring a connector back to its declaration: with the ConfigMap unchanged, a drift repair.
DRIFT_KINDS = (ActionKind.CREATE, ActionKind.UPDATE, ActionKind.PAUSE, ActionKind.RESUME, ActionKind.STOP)
# Connector states every known cluster shows (at 0 when none is in it); others appear when seen.
STATES = ("RUNNING", "PAUSED", "STOPPED", "FAILED", "UNASSIGNED", "RESTARTING", "ABSENT", "UNKNOWN")
ERROR_CODE = "error"  # connect_requests_total's code for a request that got no response
_TASKS_FAILED = re.compile(r"(\d+) of \d+ tasks failed")
_MAX_PENDING = 10_000  # requests in flight remembered; far above any real concurrency

Key = tuple[str, str]  # (cluster, connector)
V = TypeVar("V")


def build_version() -> str:
    try:
        return metadata.version("connect-reconciler")
    except metadata.PackageNotFoundError:
        return "unknown"


def failed_tasks(plan: ConnectorPlan) -> int:
    """FAILED tasks of one connector as its auto-restart note tells ("task failed", "2 of 3 tasks
    failed", "connector and its task failed"); 0 without a note (no ledger, or not a restart candidate)."""
    reason = plan.restart.split(";", 1)[0] if plan.restart else ""
    found = _TASKS_FAILED.search(reason)
    if found:
        return int(found.group(1))
    return 1 if "task failed" in reason else 0


def failing(plan: ConnectorPlan) -> bool:
    """The connector or one of its tasks is FAILED, as far as the plan shows."""
    return plan.live_state == "FAILED" or bool(plan.restart)


def shown_state(plan: ConnectorPlan) -> str | None:
    """The state `managed_connectors` counts a plan under; None: not in Connect and not to be created
    (disabled, or pruned and already gone)."""
    if any(a.kind is ActionKind.CREATE for a in plan.actions):
        return "ABSENT"
    if plan.live_state:
        return plan.live_state
    return "UNKNOWN" if plan.desired_state is not None else None  # in Connect, without a status yet


def outcome_label(outcome: Outcome) -> str:
    if outcome.skipped:
        return "skipped"
    return "ok" if outcome.ok else "failed"


@dataclass(frozen=True, slots=True)
class PassSnapshot:
    """The gauges of the last pass, replaced whole at every `PassEvent`."""

    managed: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (cluster, state) -> count
    failing: Mapping[str, int] = field(default_factory=dict)
    failed_tasks: Mapping[str, int] = field(default_factory=dict)
    blocked: Mapping[str, int] = field(default_factory=dict)


def _merged(
    old: Mapping[Key, V], fresh: Mapping[Key, V], scope: Mapping[str, frozenset[str]] | None
) -> dict[Key, V]:
    """A full pass's rows replace all; a targeted pass's replace only the connectors it observed."""
    if scope is None:
        return dict(fresh)
    kept = {k: v for k, v in old.items() if k[1] not in scope.get(k[0], ())}
    return {**kept, **fresh}


class _PassCollector:
    """Exposes the last pass's snapshot: one read, so a scrape never mixes two passes."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return self._families(PassSnapshot())

    def collect(self) -> Iterable[Metric]:
        return self._families(self._metrics.snapshot)

    @staticmethod
    def _families(snap: PassSnapshot) -> list[Metric]:
        managed = GaugeMetricFamily(
            PREFIX + "managed_connectors",
            "Connectors the reconciler manages, by cluster and the state Connect showed at the start of "
            "the last pass (ABSENT: to be created; UNKNOWN: no status yet).",
            labels=["cluster", "state"],
        )
        for (cluster, state), count in sorted(snap.managed.items()):
            managed.add_metric([cluster, state], count)
        failing_family = GaugeMetricFamily(
            PREFIX + "failing_connectors",
            "Managed connectors whose connector or a task was FAILED in the last pass.",
            labels=["cluster"],
        )
        tasks = GaugeMetricFamily(
            PREFIX + "failed_tasks",
            "FAILED tasks of managed connectors in the last pass, as the auto-restart notes count them.",
            labels=["cluster"],
        )
        blocked = GaugeMetricFamily(
            PREFIX + "prune_blocked",
            "1 while the last pass refused a cluster's prunes (a guard tripped), else 0.",
            labels=["cluster"],
        )
        for family, values in (
            (failing_family, snap.failing),
            (tasks, snap.failed_tasks),
            (blocked, snap.blocked),
        ):
            for cluster, value in sorted(values.items()):
                family.add_metric([cluster], value)
        return [managed, failing_family, tasks, blocked]


class _AuditCollector:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return [self._family(0)]

    def collect(self) -> Iterable[Metric]:
        read = self._metrics.audit_dropped
        value = 0
        if read is not None:
            try:
                value = int(read())
            except Exception as exc:  # a scrape must not fail because the audit sink did
                log.warning("cannot read the audit drop counter", error=type(exc).__name__)
        return [self._family(value)]

    @staticmethod
    def _family(value: int) -> Metric:
        return CounterMetricFamily(
            PREFIX + "audit_events_dropped",
            "Audit events dropped because the audit sink could not keep up or failed.",
            value=value,
        )


class Metrics:
    """Every metric of one process, in `registry`. Call it as an observer (`Runtime.observers`), hook it
    into the Connect clients (`instrument`), tell it about leadership (`set_leader`), `serve` it.

    `audit_dropped` reads the audit sink's count of dropped events at each scrape (settable later, when
    the sink is built after the metrics). `now` is the wall clock of the last-success timestamp."""

    def __init__(
        self,
        *,
        audit_dropped: Callable[[], int] | None = None,
        version: str | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.registry = CollectorRegistry()
        self.audit_dropped = audit_dropped
        self._now = now
        self._lock = threading.Lock()
        self._clusters: set[str] = set()
        self.snapshot = PassSnapshot()
        # (cluster, connector) -> the ConfigMap resourceVersion of the last applied pass that left it
        # converged (no action, or every action done): a later write with that version is a drift repair.
        self._converged: dict[Key, str] = {}
        # (cluster, connector) -> (state shown, failing, failed tasks): a targeted pass replaces its rows only.
        self._rows: dict[Key, tuple[str | None, bool, int]] = {}
        # (cluster, thread) -> (the request in flight, its method): see the module docstring.
        self._in_flight: dict[tuple[str, int], tuple[httpx.Request, str, float]] = {}
        self._instrumented: WeakSet[httpx.Client] = WeakSet()
        r = self.registry
        self.reconcile_total = Counter(
            PREFIX + "reconcile_total",
            "Reconcile passes by result (error: the pass reported a problem).",
            ["result"],
            registry=r,
        )
        self.reconcile_errors_total = Counter(
            PREFIX + "reconcile_errors_total", "Reconcile passes that reported a problem.", registry=r
        )
        self.reconcile_time_seconds = Histogram(
            PREFIX + "reconcile_time_seconds",
            "Duration of a reconcile pass.",
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self.last_success = Gauge(
            PREFIX + "last_successful_reconcile_timestamp_seconds",
            "When the last pass without a problem ended (Unix time; 0: none yet).",
            registry=r,
        )
        self.actions_total = Counter(
            PREFIX + "connector_actions_total",
            "Actions executed against Connect by kind and outcome (skipped: its cluster's breaker was open).",
            ["action", "outcome"],
            registry=r,
        )
        self.drift_repairs_total = Counter(
            PREFIX + "drift_repairs_total",
            "Writes that put back a connector changed in Connect behind the reconciler's back: its "
            "ConfigMap is unchanged since a pass that left the connector converged.",
            ["action"],
            registry=r,
        )
        self.auto_restarts_total = Counter(
            PREFIX + "auto_restarts_total",
            "Automatic restarts of FAILED connectors/tasks sent to Connect (answered or not).",
            ["cluster"],
            registry=r,
        )
        self.recreated_total = Counter(
            PREFIX + "connectors_recreated_total",
            "Creates of connectors the ledger says existed: deleted outside the reconciler (a person, "
            "another controller such as Strimzi, a lost config topic), then put back from their ConfigMap.",
            ["cluster"],
            registry=r,
        )
        self.prune_blocked_total = Counter(
            PREFIX + "prune_blocked_passes_total",
            "Passes whose prunes on a cluster were refused by a guard.",
            ["cluster"],
            registry=r,
        )
        self.requests_total = Counter(
            PREFIX + "connect_requests_total",
            "HTTP requests to Kafka Connect by cluster, method and status code (error: no response).",
            ["cluster", "method", "code"],
            registry=r,
        )
        self.request_duration = Histogram(
            PREFIX + "connect_request_duration_seconds",
            "Duration of an answered HTTP request to Kafka Connect, body included.",
            ["cluster", "method"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.leader = Gauge(
            PREFIX + "leader_election_master_status",
            "1 while this replica holds the lease `name`, else 0.",
            ["name"],
            registry=r,
        )
        self.build_info = Gauge(
            PREFIX + "build_info", "Always 1; the version is a label.", ["version"], registry=r
        )
        self.build_info.labels(version or build_version()).set(1)
        for result in RESULTS:
            self.reconcile_total.labels(result)
        for kind in ActionKind:
            for outcome in OUTCOMES:
                self.actions_total.labels(kind.value, outcome)
        for kind in DRIFT_KINDS:
            self.drift_repairs_total.labels(kind.value)
        r.register(_PassCollector(self))
        r.register(_AuditCollector(self))

    # --- the observer ------------------------------------------------------------------------------
    def __call__(self, event: Event) -> None:
        try:
            if isinstance(event, ActionEvent):
                self._on_action(event)
            elif isinstance(event, PassEvent):
                self._on_pass(event)
        except Exception as exc:  # a metric must never fail a pass
            log.warning("metrics: event not counted", error=f"{type(exc).__name__}: {exc}")

    def _on_action(self, event: ActionEvent) -> None:
        outcome = event.outcome
        if event.dry_run or outcome is None:
            return
        action = event.action
        label = outcome_label(outcome)
        self.actions_total.labels(action.kind.value, label).inc()
        self._known(action.cluster)
        if action.kind is ActionKind.RESTART and label != "skipped":
            self.auto_restarts_total.labels(action.cluster).inc()
        if action.kind is ActionKind.CREATE and label == "ok" and event.plan.recreated:
            self.recreated_total.labels(action.cluster).inc()
        version = event.source.resource_version if event.source is not None else None
        if label == "ok" and action.kind in DRIFT_KINDS and version is not None:
            with self._lock:
                drifted = self._converged.get((action.cluster, action.connector)) == version
            if drifted:
                self.drift_repairs_total.labels(action.kind.value).inc()

    def _on_pass(self, event: PassEvent) -> None:
        self._flush_in_flight()
        report = event.report
        ok = report.ok
        self.reconcile_total.labels("success" if ok else "error").inc()
        if not ok:
            self.reconcile_errors_total.inc()
        else:
            self.last_success.set(self._now())
        self.reconcile_time_seconds.observe(max(0.0, event.duration_s))
        for cluster in event.blocked:
            self.prune_blocked_total.labels(cluster).inc()
        plans = report.plan.connectors
        for cluster in {cp.cluster for cp in plans} | set(event.blocked):
            self._known(cluster)
        with self._lock:
            clusters = sorted(self._clusters)
        fresh = {(cp.cluster, cp.connector): (shown_state(cp), failing(cp), failed_tasks(cp)) for cp in plans}
        with self._lock:
            rows = _merged(self._rows, fresh, report.scope)
            self._rows = rows
        managed: dict[tuple[str, str], int] = {(c, s): 0 for c in clusters for s in STATES}
        failing_by: dict[str, int] = dict.fromkeys(clusters, 0)
        tasks_by: dict[str, int] = dict.fromkeys(clusters, 0)
        for (cluster, _), (state, is_failing, tasks) in rows.items():
            if state is not None:
                managed[(cluster, state)] = managed.get((cluster, state), 0) + 1
            if is_failing:
                failing_by[cluster] = failing_by.get(cluster, 0) + 1
                tasks_by[cluster] = tasks_by.get(cluster, 0) + tasks
        blocked = {c: int(c in event.blocked) for c in clusters}
        snapshot = PassSnapshot(managed, failing_by, tasks_by, blocked)
        converged = None if report.dry_run else self._converged_after(event)
        with self._lock:
            self.snapshot = snapshot
            if converged is not None:
                self._converged = _merged(self._converged, converged, report.scope)

    @staticmethod
    def _converged_after(event: PassEvent) -> dict[Key, str]:
        done: dict[Key, list[Outcome]] = {}
        for o in event.report.outcomes:
            done.setdefault((o.action.cluster, o.action.connector), []).append(o)
        converged: dict[Key, str] = {}
        for cp in event.report.plan.connectors:
            doc = event.sources.get(cp.source.configmap) if cp.source is not None else None
            if doc is None or doc.resource_version is None or cp.waiting:
                continue
            outcomes = done.get((cp.cluster, cp.connector), [])
            if len(outcomes) == len(cp.actions) and all(o.ok and not o.skipped for o in outcomes):
                converged[(cp.cluster, cp.connector)] = doc.resource_version
        return converged

    def _known(self, cluster: str) -> None:
        with self._lock:
            self._clusters.add(cluster)

    # --- leader election ---------------------------------------------------------------------------
    def set_leader(self, name: str, leading: bool) -> None:
        self.leader.labels(name).set(1 if leading else 0)

    # --- Connect requests --------------------------------------------------------------------------
    def instrument(self, clients: Mapping[str, ConnectClient]) -> None:
        """Add this registry's request and response hooks to every cluster's client (once per client)."""
        for cluster, client in clients.items():
            http = client.http
            if http in self._instrumented:
                continue
            hooks = http.event_hooks
            http.event_hooks = {
                "request": [*hooks.get("request", []), self.connect_request_hook(cluster)],
                "response": [*hooks.get("response", []), self.connect_response_hook(cluster)],
            }
            self._instrumented.add(http)

    def connect_request_hook(self, cluster: str) -> Callable[[httpx.Request], None]:
        """httpx request hook: remembers the request in flight, so one never answered counts as code
        "error" (at this thread's next request to `cluster`, or at the end of the pass)."""
        self._known(cluster)

        def on_request(request: httpx.Request) -> None:
            try:
                key = (cluster, threading.get_ident())
                with self._lock:
                    unanswered = self._in_flight.pop(key, None)
                    if len(self._in_flight) < _MAX_PENDING:
                        self._in_flight[key] = (request, request.method, time.perf_counter())
                if unanswered is not None:
                    self.requests_total.labels(cluster, unanswered[1], ERROR_CODE).inc()
            except Exception as exc:
                log.warning("metrics: request not counted", error=type(exc).__name__)

        return on_request

    def connect_response_hook(self, cluster: str) -> Callable[[httpx.Response], None]:
        """httpx response hook for `cluster`'s client: counts the response by method and status code and
        observes its duration. It reads the body first (httpx sets `elapsed` only then; the client would
        read it next anyway), so an error while reading reaches the client as it would without the hook,
        and is counted as code "error"."""
        self._known(cluster)

        def on_response(response: httpx.Response) -> None:
            method = response.request.method
            key = (cluster, threading.get_ident())
            with self._lock:
                pending = self._in_flight.get(key)
                if pending is not None and pending[0] is response.request:
                    del self._in_flight[key]
                else:
                    pending = None
            try:
                response.read()
            except Exception:
                self._count(cluster, method, ERROR_CODE, None)
                raise
            try:
                elapsed: float | None = response.elapsed.total_seconds()
            except RuntimeError:  # a body handed over whole (httpx.MockTransport): timed by the request hook
                elapsed = time.perf_counter() - pending[2] if pending is not None else None
            self._count(cluster, method, str(response.status_code), elapsed)

        return on_response

    def _count(self, cluster: str, method: str, code: str, elapsed: float | None) -> None:
        try:
            self.requests_total.labels(cluster, method, code).inc()
            if elapsed is not None:
                self.request_duration.labels(cluster, method).observe(elapsed)
        except Exception as exc:
            log.warning("metrics: response not counted", error=type(exc).__name__)

    def _flush_in_flight(self) -> None:
        """The pass is over: the requests still unanswered of this thread, and of the executor's worker
        threads (gone with the pass), got no response."""
        live = {t.ident for t in threading.enumerate()} - {threading.get_ident()}
        with self._lock:
            gone = [k for k in self._in_flight if k[1] not in live]
            unanswered = [(k[0], self._in_flight.pop(k)[1]) for k in gone]
        for cluster, method in unanswered:
            self.requests_total.labels(cluster, method, ERROR_CODE).inc()

    # --- exposition --------------------------------------------------------------------------------
    def exposition(self) -> bytes:
        """The text format 0.0.4, as a scrape without an Accept header gets it."""
        return generate_latest(self.registry)

    def serve(self, address: str) -> ThreadingHTTPServer:
        """Serve `GET /metrics` on HOST:PORT ("127.0.0.1:0": a free port; "[::1]:9090"; ":9090": every
        IPv4 address) on a daemon thread. The bound port is `server.server_address[1]`; stop it with
        `server.shutdown()` and `server.server_close()`."""
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_response(404)
                    self.end_headers()
                    return
                try:
                    # Prometheus asks for OpenMetrics in Accept; anything else gets the text format 0.0.4.
                    encoder, content_type = choose_encoder(self.headers.get("Accept") or "")
                    body = encoder(metrics.registry)
                except Exception as exc:
                    log.warning("metrics: scrape failed", error=f"{type(exc).__name__}: {exc}")
                    self.send_response(500)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # scraped every few seconds: no noise
                return

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        server = Server((host or "0.0.0.0", int(port)), Handler)
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
        return server
