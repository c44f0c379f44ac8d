"""`connect-reconciler run`: the standalone watcher, composed from `reconciler/watching/`.

Edge. One list/watch stream per namespace (or one for all) feeds the ConfigMap cache; the reconcile
loop runs passes over the whole cached set through the same pipeline as the CLI (see
`watching/loop.py` for when). Each pass opens a fresh Runtime, so rotated Secrets and properties
files take effect. SIGTERM/SIGINT: retry sleeps end at once, the request in flight finishes, no new
one starts, exit 0. `/healthz` and `/readyz` serve the probes.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from kubernetes import client

from reconciler.clients.kube import ConfigMapApi, kube_api_client
from reconciler.clients.ledger_store import KubeLedgerStore, LedgerStore
from reconciler.clock import Clock, SystemClock
from reconciler.errors import ReconcilerError, ShuttingDown
from reconciler.logs import configure_logging, use_redactor
from reconciler.model import Problem, Report
from reconciler.pipeline import reconcile
from reconciler.runtime import jq_sandbox, open_runtime, own_namespace
from reconciler.settings import Settings
from reconciler.watching.cache import CacheSnapshot, ConfigMapCache
from reconciler.watching.health import Health
from reconciler.watching.inputs import InputsWatch
from reconciler.watching.loop import ReconcileLoop
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
            settings.inputs, clock=self.clock, wake=self.cache.dirty, poll_seconds=watch.inputs_poll_seconds
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

    def start_watching(self) -> None:
        for s in self.streams:
            threading.Thread(target=s.run, name=f"watch-{s.namespace or 'all'}", daemon=True).start()
        threading.Thread(target=self.inputs.run, name="watch-inputs", daemon=True).start()

    def run(self) -> None:
        self.start_watching()
        try:
            self.loop.run()
        finally:
            self.engine.close()

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
            ) as rt:
                use_redactor(rt.redactor)
                report = reconcile(
                    snap.configmaps,
                    rt=rt,
                    dry_run=False,
                    deleted=snap.deleted,
                    problems=[Problem(str(e)) for e in snap.errors] + self._unwatched(),
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
            actions=len(report.outcomes),
            problems=len(report.problems),
            connectors=len(report.plan.connectors),
            pending_deletions=self.cache.tombstones - len(report.settled_deletions),
        )
        if self.on_report is not None:
            self.on_report(report)
        return report


def run_watcher(settings: Settings, environ: Mapping[str, str]) -> int:
    configure_logging(level=settings.logging.level, fmt=settings.logging.format)
    watcher = Watcher(settings, environ, api=kube_api_client(settings.watch.kubeconfig))

    def on_signal(signum: int, _frame: Any) -> None:
        # No logging here: the handler may interrupt a log write that holds the logger's lock.
        watcher.stop.set()
        watcher.cache.dirty.set()  # wake the loop now rather than at its next timeout

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    address = settings.watch.health_address
    server = watcher.health.serve(address) if address else None
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
    finally:
        if server is not None:
            server.shutdown()
    log.info("stopped")
    return 0
