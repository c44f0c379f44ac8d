"""Liveness and readiness of the watcher, and the tiny HTTP server the kubelet probes.

Edge (serves HTTP). Liveness: the loop, or work inside a pass (every Connect answer, every retry),
ticked within `stale_after` seconds — a pass that is slow because Connect is down is still alive, so
the kubelet does not restart the pod mid-apply. Readiness: one pass has completed with its settings
loaded, and nothing is wrong right now; `/readyz` says what is (a namespace that cannot be listed,
settings that cannot be loaded, a pass that crashed).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from reconciler.clock import Clock


class Health:
    def __init__(self, *, clock: Clock, stale_after: float) -> None:
        self.clock = clock
        self.stale_after = stale_after
        self._last_tick = clock.monotonic()
        self._lock = threading.Lock()
        self._reasons: dict[str, str] = {}
        self.ready_once = False

    def beat(self) -> None:
        self._last_tick = self.clock.monotonic()

    def problem(self, what: str, message: str | None) -> None:
        """Record (or, with None, clear) why the watcher is not ready; `what` names the part."""
        with self._lock:
            if message is None:
                self._reasons.pop(what, None)
            else:
                self._reasons[what] = message

    @property
    def reasons(self) -> dict[str, str]:
        with self._lock:
            return dict(self._reasons)

    @property
    def alive(self) -> bool:
        return self.clock.monotonic() - self._last_tick < self.stale_after

    @property
    def ready(self) -> bool:
        return self.alive and self.ready_once and not self.reasons

    def readiness_text(self) -> str:
        if self.ready:
            return "ok"
        lines = [f"{what}: {why}" for what, why in sorted(self.reasons.items())]
        if not self.alive:
            lines.append("the reconcile loop has not ticked recently")
        if not self.ready_once:
            lines.append("no reconcile has completed yet")
        return "\n".join(lines)

    def serve(self, address: str) -> ThreadingHTTPServer:
        host, _, port = address.rpartition(":")
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz":
                    ok, body = health.alive, "ok" if health.alive else "the reconcile loop is stuck"
                elif self.path == "/readyz":
                    ok, body = health.ready, health.readiness_text()
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200 if ok else 503)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.end_headers()
                self.wfile.write(body.encode() + b"\n")

            def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds: no noise
                return

        server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), Handler)  # the kubelet probes the pod IP
        threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
        return server
