"""`connect-reconciler run`: the standalone watcher, composed from `reconciler/watching/`.

Edge. One list/watch stream per namespace (or one for all) feeds the ConfigMap cache; the reconcile
loop runs passes through the same pipeline as the CLI (see `watching/loop.py` for when): full ones
over the whole cached set, and, after events, passes targeted at the ConfigMaps that changed, which
reuse the renders and observations the watcher remembers (`pass_memory.py`). Each pass opens a fresh Runtime, so rotated Secrets and properties
files take effect. SIGTERM/SIGINT: retry sleeps end at once, the request in flight finishes, no new
one starts, exit 0. `/healthz` and `/readyz` serve the probes.

With `--leader-election on` (see `watching/leader.py`) the streams run in every replica, so a new
leader is warm, but passes run only in the leader, every action is gated by `elector.valid`, a lost
lease stops everything and exits 1, and SIGTERM releases the lease once the loop has stopped.
"""

from __future__ import annotations

import ctypes
import signal
import threading
from collections.abc import Callable, Mapping

import structlog
from kubernetes import client

from reconciler.clients.events import EventRecorder
from reconciler.clients.kube import ConfigMapApi, kube_api_client
from reconciler.clients.ledger_store import KubeLedgerStore, LedgerStore
from reconciler.clock import Clock, SystemClock
from reconciler.entrypoints.signals import relay_signals
from reconciler.errors import ConfigError, ReconcilerError, ShuttingDown
from reconciler.logs import configure_logging, current_redactor, use_redactor
from reconciler.metrics import Metrics
from reconciler.model import Problem, Report
from reconciler.pass_memory import PassMemory
from reconciler.pipeline import reconcile
from reconciler.runtime import audit_log, identity, jq_sandbox, open_runtime, own_namespace
from reconciler.settings import Settings
from reconciler.telemetry import Observer
from reconciler.watching.cache import CacheSnapshot, ConfigMapCache
from reconciler.watching.health import Health
from reconciler.watching.inputs import InputsWatch
from reconciler.watching.leader import LeaderElector
from reconciler.watching.loop import TICK_S, ReconcileLoop
from reconciler.watching.stream import ConfigMapStream

log = structlog.get_logger("reconciler.watcher")


class Watcher:
    def __init__(
        self,
        settings: Settings,
        environ: Mapping[str, str],
        *,
        api: client.ApiClient,
        clock: Clock | None = None,
        on_report: Callable[[Report], None] | None = None,
    ) -> None:
        self.settings = settings
        self.environ = environ
        self.clock = clock or SystemClock()
        self.stop = self.clock.stop
        self.on_report = on_report
        self.cache = ConfigMapCache()
        # Rendered templates and last observations carried across passes (`pass_memory.py`).
        self.memory = PassMemory()
        # One sandbox process for every pass; a template that kills it costs a respawn, not the watcher.
        self.engine = jq_sandbox(settings.render)
        namespace = own_namespace(settings.ledger, environ)
        self.ledger: LedgerStore | None = KubeLedgerStore(api, namespace=namespace) if namespace else None
        watch = settings.watch
        self.health = Health(clock=self.clock, stale_after=max(120.0, 3 * watch.resync_seconds))
        self.streams = [
            ConfigMapStream(
                ConfigMapApi(api, namespace=ns, selector=settings.selector, settings=watch),
                clock=self.clock,
                on_list=self.cache.replace,
                on_event=self.cache.apply,
                on_error=lambda ns, message: self.health.problem(f"namespace {ns or '*'}", message),
                settings=watch,
            )
            for ns in watch.namespaces
        ]
        self.inputs = InputsWatch(
            settings.inputs,
            clock=self.clock,
            wake=self.cache.full_pass,
            poll_seconds=watch.inputs_poll_seconds,
        )
        self.loop = ReconcileLoop(
            cache=self.cache,
            clock=self.clock,
            health=self.health,
            reconcile=self.reconcile_pass,
            namespaces=watch.namespaces,
            resync_seconds=watch.resync_seconds,
            debounce_seconds=watch.debounce_seconds,
        )
        self.audit = audit_log(settings, environ)
        self.metrics = Metrics(audit_dropped=lambda: self.audit.dropped)
        # Audit, Events and metrics see every pass (`telemetry.py`); each returns fast and never raises.
        self.observers: list[Observer] = [self.audit, self.metrics]
        self.events = (
            EventRecorder(api, instance=identity(settings, environ), redactor=current_redactor)
            if settings.telemetry.events
            else None
        )
        if self.events is not None:
            self.observers.append(self.events)
        self.elector = self._leader_elector(api) if settings.leader.enabled else None
        self.metrics.set_leader(settings.leader.lease_name, self.elector is None)

    def start_watching(self) -> None:
        for s in self.streams:
            threading.Thread(target=s.run, name=f"watch-{s.namespace or 'all'}", daemon=True).start()
        threading.Thread(target=self.inputs.run, name="watch-inputs", daemon=True).start()

    def run(self) -> None:
        self.start_watching()
        try:
            if self._await_leadership():
                self.loop.run()
        finally:
            self.engine.close()
            self.audit.close(timeout=5.0)  # deliver what is queued, briefly; the rest is counted
            if self.events is not None:
                self.events.close(timeout=2.0)

    # --- leader election ---------------------------------------------------------------------------
    def _leader_elector(self, api: client.ApiClient) -> LeaderElector:
        leader = self.settings.leader
        namespace = leader.namespace or own_namespace(self.settings.ledger, self.environ)
        if not namespace:
            raise ConfigError(
                "leader election needs a namespace for the Lease: --lease-namespace or POD_NAMESPACE"
            )
        return LeaderElector(
            client.CoordinationV1Api(api),
            leader,
            namespace=namespace,
            identity=identity(self.settings, self.environ),
            clock=self.clock,
            on_started_leading=lambda: self.metrics.set_leader(leader.lease_name, True),
            on_stopped_leading=self._lost_leadership,
        )

    def _await_leadership(self) -> bool:
        """Start the elector and wait (streams running, liveness ticking) until this replica leads. A
        follower whose caches are warm counts as ready: it stands by, and a rollout must not wait on it."""
        if self.elector is None:
            return True
        threading.Thread(target=self.elector.run, name="leader-election", daemon=True).start()
        log.info("waiting for leadership", identity=self.elector.identity, lease=self.elector.name)
        while not self.stop.is_set() and not self.elector.done.is_set():
            self.health.beat()
            if self.elector.wait_for_leadership(self.stop, timeout=TICK_S):
                return True
            if all(ns in self.cache.listed for ns in self.loop.namespaces):
                self.health.ready_once = True
        return False

    def _lost_leadership(self) -> None:
        log.error("leader election lost: stopping every write and exiting", identity=self.identity)
        self.metrics.set_leader(self.settings.leader.lease_name, False)
        self.stop.set()
        self.cache.dirty.set()

    @property
    def identity(self) -> str | None:
        return self.elector.identity if self.elector is not None else self.settings.telemetry.identity

    @property
    def leadership_lost(self) -> bool:
        return self.elector is not None and self.elector.lost

    def release_leadership(self) -> None:
        """After the loop stopped (SIGTERM): hand the lease over, so a successor need not wait for it."""
        if self.elector is not None and not self.elector.lost:
            self.elector.release()

    def _unwatched(self) -> list[Problem]:
        """Namespaces whose list or watch is failing right now: the cache may be stale there, so the
        pass must not prune (a problem makes the view partial)."""
        return [
            Problem(f"{what}: {message}")
            for what, message in self.health.reasons.items()
            if what.startswith("namespace ")
        ]

    def reconcile_pass(self, snap: CacheSnapshot) -> Report | None:
        try:
            with open_runtime(
                self.settings,
                environ=self.environ,
                clock=self.clock,
                on_progress=self.health.beat,
                engine=self.engine,
                ledger=self.ledger,
                may_write=self.elector.valid if self.elector is not None else None,
                observers=self.observers,
            ) as rt:
                use_redactor(rt.redactor)
                self.metrics.instrument(rt.clients)  # new clients every pass
                report = reconcile(
                    snap.configmaps,
                    rt=rt,
                    dry_run=False,
                    deleted=snap.deleted,
                    problems=[Problem(str(e)) for e in snap.errors] + self._unwatched(),
                    changed=snap.changed,
                    memory=self.memory,
                )
        except ShuttingDown:
            return None
        except ReconcilerError as exc:
            log.error("cannot load settings; nothing reconciled", error=str(exc))
            self.health.problem("settings", str(exc))
            return None
        self.health.problem("settings", None)
        for problem in report.problems:
            log.error("reconcile problem", problem=str(problem))
        log.info(
            "reconciled",
            targeted=report.scope is not None,
            actions=len(report.outcomes),
            problems=len(report.problems),
            connectors=len(report.plan.connectors),
            pending_deletions=self.cache.tombstones - len(report.settled_deletions),
        )
        if self.on_report is not None:
            self.on_report(report)
        _return_freed_memory()
        return report


def _libc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None
    return trim


_MALLOC_TRIM = _libc_trim()


def _return_freed_memory() -> None:
    """Hand the heap a pass freed back to the OS. CPython's allocator keeps freed arenas mapped: the
    full pass after a re-list of 1,000 ConfigMaps would otherwise leave its peak as the watcher's RSS
    for good."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def run_watcher(settings: Settings, environ: Mapping[str, str]) -> int:
    configure_logging(level=settings.logging.level, fmt=settings.logging.format)
    try:
        watcher = Watcher(settings, environ, api=kube_api_client(settings.watch.kubeconfig))
    except ConfigError as exc:
        log.error("cannot start", error=str(exc))
        return 2

    def on_signal(_signum: int) -> None:
        watcher.stop.set()
        watcher.cache.dirty.set()  # wake the loop now rather than at its next timeout

    # Not a plain signal handler: one that sets these events can deadlock on a lock the main thread
    # holds inside Event.wait (see signals.py).
    restore_signals = relay_signals((signal.SIGTERM, signal.SIGINT), on_signal)
    address = settings.watch.health_address
    server = watcher.health.serve(address) if address else None
    metrics_address = settings.telemetry.metrics_address
    metrics_server = watcher.metrics.serve(metrics_address) if metrics_address else None
    if watcher.ledger is None:
        log.warning(
            "no ledger namespace (--ledger-namespace, POD_NAMESPACE): ConfigMaps removed while the "
            "watcher is down are never pruned, and existing connectors are not protected from adoption"
        )
    log.info(
        "watching",
        namespaces=list(settings.watch.namespaces),
        selector=settings.selector,
        resync_seconds=settings.watch.resync_seconds,
    )
    try:
        watcher.run()
        log.info("shutting down: the request in flight has finished, no new one starts")
        watcher.release_leadership()
    finally:
        for http_server in (server, metrics_server):
            if http_server is not None:
                http_server.shutdown()
                http_server.server_close()
        restore_signals()
    if watcher.leadership_lost:
        log.error("stopped: leader election lost", identity=watcher.identity)
        return 1
    log.info("stopped")
    return 0
