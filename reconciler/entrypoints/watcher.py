"""`connect-reconciler run`: the standalone watcher.

Edge. Watch threads (one per namespace, or one for all) feed the ConfigMap cache; events only mark it
dirty. This thread reconciles the *whole* cached set through the same pipeline as the CLI: after a
short debounce when something changed, and every `--resync-seconds` anyway, which repairs drift made
directly in Kafka Connect (that makes no Kubernetes event). SIGTERM/SIGINT: the action in flight
finishes, no new one starts, exit 0. `/healthz` and `/readyz` serve the probes.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog
from kubernetes import client, config

from reconciler.clients.kube import ConfigMapWatcher, WatchSettings
from reconciler.configmap_cache import ConfigMapCache
from reconciler.entrypoints.settings import connected, load_runtime, reconcile_with, watched_namespaces
from reconciler.errors import ReconcilerError
from reconciler.logs import use_redactor
from reconciler.model import ActionKind, Problem, Report

log = structlog.get_logger("reconciler.watcher")


def kube_api_client(kubeconfig: str | None) -> client.ApiClient:
    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig)
    try:
        config.load_incluster_config()
        return client.ApiClient()
    except config.ConfigException:
        return config.new_client_from_config()


class Health:
    """Liveness: the reconcile loop has ticked recently. Readiness: one full reconcile has completed."""

    def __init__(self, *, stale_after: float) -> None:
        self.stale_after = stale_after
        self.last_tick = time.monotonic()
        self.ready = False

    def serve(self, address: str) -> ThreadingHTTPServer:
        host, _, port = address.rpartition(":")
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                alive = time.monotonic() - health.last_tick < health.stale_after
                ok = {"/healthz": alive, "/readyz": alive and health.ready}.get(self.path)
                self.send_response(404 if ok is None else 200 if ok else 503)
                self.end_headers()
                self.wfile.write(b"ok\n" if ok else b"not ok\n")

            def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds: no noise
                return

        server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), Handler)  # the kubelet probes the pod IP
        threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
        return server


class Watcher:
    def __init__(
        self,
        args: argparse.Namespace,
        environ: Mapping[str, str],
        *,
        api: client.ApiClient,
        stop: threading.Event | None = None,
        on_report: Callable[[Report], None] | None = None,
        watch_settings: WatchSettings | None = None,
    ) -> None:
        self.args = args
        self.environ = environ
        self.api = api
        self.stop = stop or threading.Event()
        self.on_report = on_report
        self.cache = ConfigMapCache()
        self.health = Health(stale_after=max(120.0, 3 * args.resync_seconds))
        self.watchers = [
            ConfigMapWatcher(
                api,
                namespace=ns,
                selector=args.selector,
                on_list=self.cache.replace,
                on_event=self.cache.apply,
                settings=watch_settings,
            )
            for ns in watched_namespaces(args)
        ]

    def start_watching(self) -> None:
        for w in self.watchers:
            threading.Thread(
                target=w.run, args=(self.stop,), name=f"watch-{w.namespace or 'all'}", daemon=True
            ).start()

    def reconcile_once(self) -> Report | None:
        snap = self.cache.snapshot()
        try:
            rt = load_runtime(self.args, self.environ)
        except ReconcilerError as exc:
            log.error("cannot load settings; nothing reconciled", error=str(exc))
            return None
        use_redactor(rt.redactor)
        with connected(rt) as clients:
            report = reconcile_with(
                rt,
                snap.configmaps,
                clients,
                dry_run=False,
                deleted=snap.deleted,
                retry_seconds=self.args.retry_seconds,
                problems=[Problem(str(e)) for e in snap.errors],
                should_continue=lambda: not self.stop.is_set(),
            )
        failed_deletes = [o for o in report.outcomes if not o.ok and o.action.kind is ActionKind.DELETE]
        if not failed_deletes and not self.stop.is_set():
            self.cache.forget_tombstones(upto=snap.generation)
        for problem in report.problems:
            log.error("reconcile problem", problem=str(problem))
        log.info(
            "reconciled",
            actions=len(report.outcomes),
            problems=len(report.problems),
            connectors=len(report.plan.connectors),
        )
        if self.on_report is not None:
            self.on_report(report)
        return report

    def loop(self) -> None:
        """Reconcile when dirty (after the debounce) or when the resync period has passed."""
        last = 0.0
        while not self.stop.is_set():
            self.health.last_tick = time.monotonic()
            due = last + self.args.resync_seconds - time.monotonic()
            self.cache.dirty.wait(timeout=max(0.0, min(due, 5.0)))
            if self.stop.is_set():
                break
            if len(self.cache.listed) < len(self.watchers):
                continue  # never reconcile a partial view: the first lists are not all in yet
            if not self.cache.dirty.is_set() and time.monotonic() - last < self.args.resync_seconds:
                continue
            if self.cache.dirty.is_set():
                self.stop.wait(self.args.debounce_seconds)  # let a burst of events (kubectl apply -k) settle
            self.cache.dirty.clear()
            if self.stop.is_set():
                break
            if self.reconcile_once() is not None:
                self.health.ready = True
            last = time.monotonic()


def run_watcher(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    watcher = Watcher(args, environ, api=kube_api_client(args.kubeconfig))

    def on_signal(signum: int, _frame: Any) -> None:
        # No logging here: the handler may interrupt a log write that holds the logger's lock.
        watcher.stop.set()
        watcher.cache.dirty.set()  # wake the loop now rather than at its next timeout

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = watcher.health.serve(args.health_address) if args.health_address else None
    log.info(
        "watching",
        namespaces=watched_namespaces(args),
        selector=args.selector,
        resync_seconds=args.resync_seconds,
    )
    watcher.start_watching()
    try:
        watcher.loop()
        log.info("shutting down: the action in flight has finished, no new one starts")
    finally:
        if server is not None:
            server.shutdown()
    log.info("stopped")
    return 0
