"""A seeded, fault-injecting HTTP proxy for Kafka Connect's REST API, for tests (stdlib only, 127.0.0.1 only).

It sits between a client (the reconciler's httpx client) and a real Connect worker, forwards every request
and, when a rule says so, answers the way a troubled cluster does: a rebalance 409, a 500 "Request timed out"
after the write was applied, a reset or silent connection after the write was applied, a load balancer's 503,
a non-Connect 404, an expanded listing with connectors missing.

    with FaultProxy(connect_url, seed=7) as proxy:
        proxy.set_rules([FaultRule(Fault.CONFLICT, method="PUT", path="/connectors/[^/]+/config", times=2)])
        ...  # point the client at proxy.url
        assert proxy.injected()[Fault.CONFLICT] == 2

Rules are tried in order for each request; a rule applies when its `method` and `path` regexes fullmatch the
request (the path URL-decoded, without its query), its `times` is not used up, and a coin flip from the
proxy's own `random.Random(seed)` comes up below its `probability`. The coin is drawn only for rules that
match (and are not used up), so the same seed and the same request sequence inject the same faults.
`DROP_EXPANDED` rules only match GET requests with an `expand` query parameter.

`hold_until_upstream` (seconds): while the upstream refuses connections, a request is held and the connect
retried every 20 ms, then forwarded as soon as the port opens. A restarting Connect worker opens its port a
moment before its REST resources are ready; this lands requests in that window.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import http.client
import json
import random
import re
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

FORWARD_TIMEOUT = 120.0  # per forwarded request; generous: a real worker may take long to answer
CONNECT_RETRY_SECONDS = 0.02  # hold_until_upstream: pause between connection attempts
STOP_JOIN_SECONDS = 10.0  # stop(): how long to wait for handler threads in total
FORWARDED_REQUEST_HEADERS = ("Content-Type", "Authorization", "Accept")
# Hop-by-hop headers and those this proxy writes itself are not copied from the upstream's answer.
SKIPPED_RESPONSE_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
        "date",
        "server",
    }
)

CONFLICT_BODY = {
    "error_code": 409,
    "message": "Cannot complete request momentarily due to stale configuration "
    "(typically caused by a concurrent config change)",
}
# Connect's own wording (the stage and its start time vary); the timestamp is filled in when answering.
TIMEOUT_MESSAGE = (
    "Request timed out. The worker is currently ensuring membership in the cluster, which began at "
)
LB_503_BODY = (
    b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
FOREIGN_404_BODY = (
    b'<html>\n<head>\n<meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>\n'
    b"<title>Error 404 Not Found</title>\n</head>\n<body><h2>HTTP ERROR 404 Not Found</h2>\n"
    b"<table>\n<tr><th>URI:</th><td>/</td></tr>\n<tr><th>STATUS:</th><td>404</td></tr>\n"
    b"<tr><th>MESSAGE:</th><td>Not Found</td></tr>\n</table>\n</body>\n</html>\n"
)
UNREACHABLE_BODY = b"bad gateway: upstream unreachable"
NO_BODY_STATUSES = frozenset({204, 304})


class Fault(StrEnum):
    CONFLICT = "conflict"  # 409 rebalance answer, not forwarded
    TIMEOUT_500 = "timeout_500"  # forwarded, upstream's answer replaced by 500 "Request timed out"
    RESET = "reset"  # forwarded, then the client connection is reset (RST) without an answer
    HOLD = "hold"  # forwarded, then no answer for rule.hold_seconds, then the connection is closed
    LB_503 = "lb_503"  # a load balancer's 503 HTML page, not forwarded
    FOREIGN_404 = "foreign_404"  # a 404 HTML page (not Connect's JSON), not forwarded
    DROP_EXPANDED = "drop_expanded"  # GET /connectors?expand=...: entries removed from the JSON object


@dataclass(frozen=True)
class FaultRule:
    fault: Fault
    method: str = ".*"  # regex, fullmatch against the HTTP method
    path: str = ".*"  # regex, fullmatch against the URL-decoded path without the query
    probability: float = 1.0
    times: int | None = None  # inject at most this many times (None: unlimited)
    hold_seconds: float = 15.0  # HOLD: how long the client waits for nothing
    drop_fraction: float = 0.5  # DROP_EXPANDED: the share of entries removed (at least one)


@dataclass(frozen=True)
class Record:
    """One request the proxy received, and what became of it."""

    method: str
    path: str  # URL-decoded, without the query
    query: str  # as sent (not decoded)
    body: bytes
    fault: Fault | None  # the fault applied, if any
    forwarded: bool  # whether the request reached the upstream
    upstream_status: int | None
    at: float  # time.monotonic() when the request was received


@dataclass
class _Answer:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


class Dropped(Exception):
    """Raised by `before_forward` to drop the request unsent (the connection is reset): a test kills the
    client there, between what it did before the request and the request itself."""


class _Unreachable(Exception):
    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # FaultProxy.stop() joins the handler threads itself, with a deadline
    proxy: FaultProxy

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # HTTPServer's would look up a host name: not needed
        self.server_name, self.server_port = "127.0.0.1", int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # a client that went away, or stop() closing connections
            return
        self.proxy.errors.append(repr(exc))
        traceback.print_exc()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer carries its Content-Length
    disable_nagle_algorithm = True  # headers and body are written separately: no 40 ms delayed-ACK stalls
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.proxy._register(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.proxy._unregister(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # silence the default request log

    def do_GET(self) -> None:
        self.server.proxy._handle(self)

    def do_POST(self) -> None:
        self.server.proxy._handle(self)

    def do_PUT(self) -> None:
        self.server.proxy._handle(self)

    def do_DELETE(self) -> None:
        self.server.proxy._handle(self)

    def do_PATCH(self) -> None:
        self.server.proxy._handle(self)

    # --- used by FaultProxy._handle --------------------------------------------------------------
    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline(65537).split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def answer(self, answer: _Answer) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        if answer.status not in NO_BODY_STATUSES:
            self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if answer.status not in NO_BODY_STATUSES and answer.body:
            self.wfile.write(answer.body)
        self.wfile.flush()

    def reset(self) -> None:
        """Abort the connection with a TCP RST: SO_LINGER 0, then close the socket for real."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # the socket is only really closed once its makefile() readers are
        self.connection.close()


def _json_answer(status: int, body: object) -> _Answer:
    return _Answer(status, [("Content-Type", "application/json")], json.dumps(body).encode())


class FaultProxy:
    """Listens on 127.0.0.1 (a free port, see `url`) once started; forwards to `upstream` (http://host:port)."""

    def __init__(self, upstream: str, *, seed: int = 0, hold_until_upstream: float = 0.0) -> None:
        parts = urllib.parse.urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, not {upstream!r}")
        self.upstream = upstream
        self._upstream_host = parts.hostname
        self._upstream_port = parts.port or 80
        self._upstream_prefix = parts.path.rstrip("/")
        self.hold_until_upstream = hold_until_upstream
        # Called with (method, path) in the handler thread before a request is forwarded; a test uses it
        # to restart the worker exactly when a given request arrives. It may block.
        self.before_forward: Callable[[str, str], None] | None = None
        # Called with (method, path, upstream status) after forwarding and before the client hears the
        # answer: a test kills the client there, so the request took effect but its answer was lost.
        self.after_forward: Callable[[str, str, int], None] | None = None
        self.records: list[Record] = []
        self.errors: list[str] = []  # unexpected exceptions in handler threads (also printed)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._used: list[int] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._upstreams: set[http.client.HTTPConnection] = set()
        self._handlers: set[threading.Thread] = set()

    # --- lifecycle -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("FaultProxy was never started")
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> FaultProxy:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.proxy = self
        self._server, self._port = server, int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, wake held requests, cut open connections; bounded in time."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            connections, upstreams = list(self._connections), list(self._upstreams)
        for sock in connections:  # wakes handlers blocked reading the next keep-alive request
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for conn in upstreams:  # wakes handlers waiting for the upstream's answer
            if conn.sock is not None:
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + STOP_JOIN_SECONDS
        with self._lock:
            handlers = list(self._handlers)
        for thread in handlers:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._thread is not None:
            self._thread.join(timeout=max(0.1, deadline - time.monotonic()))
            self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- rules and records -----------------------------------------------------------------------
    def set_rules(self, rules: Sequence[FaultRule]) -> None:
        """Replace the rules (and their `times` counters)."""
        for rule in rules:
            re.compile(rule.method)
            re.compile(rule.path)
        with self._lock:
            self._rules = list(rules)
            self._used = [0] * len(self._rules)

    def clear(self) -> None:
        """No rules: every request is forwarded untouched."""
        self.set_rules([])

    def clear_records(self) -> None:
        with self._lock:
            self.records.clear()

    def snapshot(self) -> list[Record]:
        with self._lock:
            return list(self.records)

    def injected(self) -> collections.Counter[Fault]:
        return collections.Counter(r.fault for r in self.snapshot() if r.fault is not None)

    def forwarded_writes(self) -> list[Record]:
        """Requests other than GET that reached the upstream (whatever the client was answered)."""
        return [r for r in self.snapshot() if r.forwarded and r.method != "GET"]

    # --- internals -------------------------------------------------------------------------------
    def _register(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.add(sock)
            self._handlers.add(threading.current_thread())

    def _unregister(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.discard(sock)
            self._handlers.discard(threading.current_thread())

    def _choose(self, method: str, path: str, query: str) -> FaultRule | None:
        expanded = "expand" in urllib.parse.parse_qs(query)
        with self._lock:
            for index, rule in enumerate(self._rules):
                if not (re.fullmatch(rule.method, method) and re.fullmatch(rule.path, path)):
                    continue
                if rule.fault is Fault.DROP_EXPANDED and not (method == "GET" and expanded):
                    continue
                if rule.times is not None and self._used[index] >= rule.times:
                    continue
                if self._rng.random() < rule.probability:
                    self._used[index] += 1
                    return rule
        return None

    def _handle(self, handler: _Handler) -> None:
        at, received = time.monotonic(), time.time()
        method = handler.command
        target = urllib.parse.urlsplit(handler.path)
        path, query = urllib.parse.unquote(target.path), target.query
        body = handler.read_body()
        rule = self._choose(method, path, query)
        fault = rule.fault if rule is not None else None

        forwarded, upstream_status = False, None
        answer: _Answer | None
        if fault is Fault.CONFLICT:
            answer = _json_answer(409, CONFLICT_BODY)
        elif fault is Fault.LB_503:
            answer = _Answer(503, [("Content-Type", "text/html")], LB_503_BODY)
        elif fault is Fault.FOREIGN_404:
            answer = _Answer(404, [("Content-Type", "text/html;charset=utf-8")], FOREIGN_404_BODY)
        else:
            try:
                if self.before_forward is not None:
                    self.before_forward(method, path)
                answer = self._forward(method, handler.path, body, handler)
                forwarded, upstream_status = True, answer.status
                if self.after_forward is not None:
                    self.after_forward(method, path, answer.status)
            except Dropped:
                answer, fault = None, Fault.RESET
            except _Unreachable:
                answer = _Answer(502, [("Content-Type", "text/plain")], UNREACHABLE_BODY)
            except (OSError, http.client.HTTPException) as exc:
                error = f"bad gateway: upstream error: {exc!r}".encode()
                answer = _Answer(502, [("Content-Type", "text/plain")], error)
            if fault is Fault.TIMEOUT_500:
                began = datetime.datetime.fromtimestamp(received, datetime.UTC)
                message = TIMEOUT_MESSAGE + began.isoformat(timespec="milliseconds").replace("+00:00", "Z")
                answer = _json_answer(500, {"error_code": 500, "message": message})
            elif fault is Fault.DROP_EXPANDED and rule is not None and forwarded and answer is not None:
                answer = self._drop_entries(answer, rule.drop_fraction)
            elif fault in (Fault.RESET, Fault.HOLD):
                answer = None

        with self._lock:  # recorded before the client hears anything, so a test sees it right after
            self.records.append(Record(method, path, query, body, fault, forwarded, upstream_status, at))

        if answer is not None:
            handler.answer(answer)
        elif fault is Fault.RESET:
            handler.reset()
        else:  # HOLD
            handler.close_connection = True
            self._stopping.wait(rule.hold_seconds if rule is not None else 0.0)

    def _forward(self, method: str, target: str, body: bytes, handler: _Handler) -> _Answer:
        parts = urllib.parse.urlsplit(target)
        url = self._upstream_prefix + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {
            name: handler.headers[name] for name in FORWARDED_REQUEST_HEADERS if name in handler.headers
        }
        conn = http.client.HTTPConnection(self._upstream_host, self._upstream_port, timeout=FORWARD_TIMEOUT)
        with self._lock:
            self._upstreams.add(conn)
        try:
            self._connect(conn)
            sends_body = bool(body) or method in ("POST", "PUT", "PATCH")
            conn.request(method, url, body=body if sends_body else None, headers=headers)
            response = conn.getresponse()
            data = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in SKIPPED_RESPONSE_HEADERS]
            return _Answer(response.status, kept, data)
        finally:
            conn.close()
            with self._lock:
                self._upstreams.discard(conn)

    def _connect(self, conn: http.client.HTTPConnection) -> None:
        """Connect, retrying a refused connection every 20 ms for up to hold_until_upstream seconds."""
        deadline = time.monotonic() + self.hold_until_upstream
        while True:
            try:
                conn.connect()
                return
            except ConnectionRefusedError as exc:
                conn.close()
                if time.monotonic() >= deadline or self._stopping.wait(CONNECT_RETRY_SECONDS):
                    raise _Unreachable() from exc
            except OSError as exc:
                raise _Unreachable() from exc

    def _drop_entries(self, answer: _Answer, fraction: float) -> _Answer:
        try:
            listing = json.loads(answer.body)
        except ValueError:
            return answer
        if not isinstance(listing, dict) or not listing:
            return answer
        names = sorted(listing)
        count = min(len(names), max(1, round(len(names) * fraction)))
        with self._lock:
            dropped = set(self._rng.sample(names, count))
        kept = {name: value for name, value in listing.items() if name not in dropped}
        headers = [(k, v) for k, v in answer.headers if k.lower() != "content-type"]
        return _Answer(
            answer.status, [*headers, ("Content-Type", "application/json")], json.dumps(kept).encode()
        )
