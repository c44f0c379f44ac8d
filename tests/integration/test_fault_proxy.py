"""The fault-injecting proxy (tests/harness/fault_proxy.py) against a tiny stub upstream, then once against a
real restarting Connect worker to see what a starting worker answers."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.harness.connect_kit import ConnectKit
from tests.harness.fault_proxy import (
    CONFLICT_BODY,
    UNREACHABLE_BODY,
    Fault,
    FaultProxy,
    FaultRule,
)
from tests.harness.processes import free_port, http_ok

CONNECTORS = {
    f"c{n}": {"info": {"name": f"c{n}", "config": {}}, "status": {"name": f"c{n}"}} for n in range(6)
}


class Stub:
    """An upstream on 127.0.0.1 that answers a few Connect-like routes and remembers every request."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.received: list[tuple[str, str, bytes, dict[str, str]]] = []  # method, path+query, body, headers
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Stub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.serve()

            def do_POST(self) -> None:
                self.serve()

            def do_PUT(self) -> None:
                self.serve()

            def do_DELETE(self) -> None:
                self.serve()

            def do_PATCH(self) -> None:
                self.serve()

            def serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with stub._lock:
                    stub.received.append((self.command, self.path, body, dict(self.headers.items())))
                status, payload = stub.route(self.command, self.path, body, dict(self.headers.items()))
                self.send_response(status)
                if status == 204:
                    self.end_headers()
                    return
                data = json.dumps(payload).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Stub", "yes")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)

    def route(self, method: str, target: str, body: bytes, headers: dict[str, str]) -> tuple[int, object]:
        parts = urllib.parse.urlsplit(target)
        path = urllib.parse.unquote(parts.path)
        if method == "GET" and path == "/connectors":
            return 200, CONNECTORS if "expand" in parts.query else sorted(CONNECTORS)
        if method == "GET" and path == "/headers":
            return 200, headers
        if method == "POST" and path == "/connectors":
            return 201, json.loads(body)
        if method == "PUT" and path.endswith("/config"):
            return 200, {"name": path.split("/")[2], "config": json.loads(body)}
        if method == "DELETE":
            return 204, None
        if method == "PATCH":
            return 200, {"patched": json.loads(body)}
        if method == "GET" and path.startswith("/connectors/"):
            return 200, {"name": path.split("/")[2]}
        return 404, {"error_code": 404, "message": f"no {path}"}

    def count(self) -> int:
        with self._lock:
            return len(self.received)


@pytest.fixture
def stub() -> Iterator[Stub]:
    upstream = Stub().start()
    try:
        yield upstream
    finally:
        upstream.stop()


@pytest.fixture
def proxy(stub: Stub) -> Iterator[FaultProxy]:
    with FaultProxy(stub.url, seed=1) as p:
        yield p


@pytest.fixture
def client(proxy: FaultProxy) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=10) as c:
        yield c


# --- pass-through --------------------------------------------------------------------------------------
def test_without_rules_every_method_is_forwarded_with_its_body_status_and_headers(
    stub: Stub, proxy: FaultProxy, client: httpx.Client
) -> None:
    created = client.post("/connectors", json={"name": "a", "config": {"k": "v"}})
    assert (created.status_code, created.json()) == (201, {"name": "a", "config": {"k": "v"}})
    assert created.headers["content-type"] == "application/json" and created.headers["x-stub"] == "yes"
    updated = client.put("/connectors/a/config", json={"k": "w"})
    assert (updated.status_code, updated.json()) == (200, {"name": "a", "config": {"k": "w"}})
    assert client.patch("/connectors/a/offsets", json={"x": 1}).json() == {"patched": {"x": 1}}
    deleted = client.delete("/connectors/a")
    assert (deleted.status_code, deleted.content) == (204, b"")
    listing = client.get("/connectors", params={"expand": "status"})
    assert listing.json() == CONNECTORS
    missing = client.get("/nowhere")
    assert (missing.status_code, missing.json()["error_code"]) == (404, 404)
    headers = client.get("/headers", headers={"Authorization": "Basic eDp5", "Accept": "application/json"})
    assert headers.json()["Authorization"] == "Basic eDp5" and headers.json()["Accept"] == "application/json"

    assert [(m, p) for m, p, _, _ in stub.received] == [
        ("POST", "/connectors"),
        ("PUT", "/connectors/a/config"),
        ("PATCH", "/connectors/a/offsets"),
        ("DELETE", "/connectors/a"),
        ("GET", "/connectors?expand=status"),
        ("GET", "/nowhere"),
        ("GET", "/headers"),
    ]
    assert json.loads(stub.received[0][2]) == {"name": "a", "config": {"k": "v"}}
    records = proxy.snapshot()
    assert [r.upstream_status for r in records] == [201, 200, 200, 204, 200, 404, 200]
    assert all(r.forwarded and r.fault is None for r in records)
    assert records[4].query == "expand=status" and records[4].path == "/connectors"
    assert [r.method for r in proxy.forwarded_writes()] == ["POST", "PUT", "PATCH", "DELETE"]
    assert not proxy.injected() and not proxy.errors


def test_client_keep_alive_connections_are_reused(proxy: FaultProxy) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", int(proxy.url.rsplit(":", 1)[1]), timeout=10)
    try:
        conn.request("GET", "/connectors")
        first = conn.getresponse()
        assert first.status == 200 and json.loads(first.read()) == sorted(CONNECTORS)
        sock = conn.sock
        assert sock is not None  # http.client drops its socket when the answer says the connection closes
        conn.request(
            "PUT", "/connectors/a/config", body=b'{"k": "v"}', headers={"Content-Type": "application/json"}
        )
        second = conn.getresponse()
        assert second.status == 200 and json.loads(second.read())["name"] == "a"
        conn.request("DELETE", "/connectors/a")
        third = conn.getresponse()
        assert (third.status, third.read()) == (204, b"")
        conn.request("GET", "/connectors/a%20b")
        fourth = conn.getresponse()
        assert fourth.status == 200 and json.loads(fourth.read()) == {"name": "a b"}
        assert conn.sock is sock
    finally:
        conn.close()
    assert proxy.snapshot()[-1].path == "/connectors/a b"


# --- each fault ----------------------------------------------------------------------------------------
def test_conflict_answers_connects_409_without_forwarding(
    stub: Stub, proxy: FaultProxy, client: httpx.Client
) -> None:
    proxy.set_rules([FaultRule(Fault.CONFLICT, method="PUT")])
    response = client.put("/connectors/a/config", json={"k": "v"})
    assert response.status_code == 409 and response.json() == CONFLICT_BODY
    assert response.json()["message"].startswith(
        "Cannot complete request momentarily due to stale configuration"
    )
    assert stub.count() == 0
    assert client.get("/connectors").status_code == 200  # GET is not matched by the rule
    (put, get) = proxy.snapshot()
    assert (put.fault, put.forwarded, put.upstream_status, put.body) == (
        Fault.CONFLICT,
        False,
        None,
        b'{"k":"v"}',
    )
    assert (get.fault, get.forwarded, get.upstream_status) == (None, True, 200)
    assert proxy.injected() == {Fault.CONFLICT: 1} and proxy.forwarded_writes() == []


def test_timeout_500_applies_the_write_then_answers_request_timed_out(
    stub: Stub, proxy: FaultProxy, client: httpx.Client
) -> None:
    proxy.set_rules([FaultRule(Fault.TIMEOUT_500, method="POST", path="/connectors")])
    response = client.post("/connectors", json={"name": "a", "config": {}})
    assert response.status_code == 500
    assert response.json()["error_code"] == 500
    assert response.json()["message"].startswith("Request timed out. The worker is currently")
    assert [(m, p) for m, p, _, _ in stub.received] == [("POST", "/connectors")]
    (record,) = proxy.forwarded_writes()
    assert (record.fault, record.upstream_status) == (Fault.TIMEOUT_500, 201)


def test_reset_applies_the_write_then_resets_the_connection(
    stub: Stub, proxy: FaultProxy, client: httpx.Client
) -> None:
    proxy.set_rules([FaultRule(Fault.RESET, method="PUT", times=1)])
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.put("/connectors/a/config", json={"k": "v"})
    assert stub.count() == 1
    (record,) = proxy.snapshot()
    assert (record.fault, record.forwarded, record.upstream_status) == (Fault.RESET, True, 200)
    assert client.put("/connectors/a/config", json={"k": "v"}).status_code == 200  # times=1: used up

    proxy.set_rules([FaultRule(Fault.RESET)])
    with socket.create_connection(("127.0.0.1", int(proxy.url.rsplit(":", 1)[1])), timeout=10) as raw:
        raw.sendall(b"GET /connectors HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(ConnectionResetError):  # an RST, not an orderly close
            while raw.recv(4096):
                pass


def test_hold_applies_the_write_and_answers_nothing_until_the_client_gives_up(
    stub: Stub, proxy: FaultProxy
) -> None:
    proxy.set_rules([FaultRule(Fault.HOLD, method="DELETE", hold_seconds=2.0)])
    with httpx.Client(base_url=proxy.url, timeout=0.5) as short, pytest.raises(httpx.ReadTimeout):
        short.delete("/connectors/a")
    assert stub.count() == 1 and proxy.snapshot()[0].fault is Fault.HOLD

    with socket.create_connection(("127.0.0.1", int(proxy.url.rsplit(":", 1)[1])), timeout=10) as raw:
        started = time.monotonic()
        raw.sendall(b"DELETE /connectors/b HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.recv(4096) == b""  # closed without a byte ...
        assert 1.8 <= time.monotonic() - started < 5  # ... after hold_seconds
    assert stub.count() == 2
    assert [r.upstream_status for r in proxy.forwarded_writes()] == [204, 204]


def test_lb_503_answers_html_without_forwarding(stub: Stub, proxy: FaultProxy, client: httpx.Client) -> None:
    proxy.set_rules([FaultRule(Fault.LB_503)])
    response = client.get("/connectors")
    assert response.status_code == 503 and response.headers["content-type"].startswith("text/html")
    assert b"503 Service Temporarily Unavailable" in response.content
    assert stub.count() == 0 and proxy.snapshot()[0].forwarded is False


def test_foreign_404_is_not_connects_json_and_not_forwarded(
    stub: Stub, proxy: FaultProxy, client: httpx.Client
) -> None:
    proxy.set_rules([FaultRule(Fault.FOREIGN_404, path="/connectors/.*")])
    response = client.get("/connectors/a/status")
    assert response.status_code == 404 and response.headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError):
        response.json()
    assert stub.count() == 0
    assert client.get("/connectors").status_code == 200 and stub.count() == 1  # the path did not match


def test_drop_expanded_removes_entries_from_the_expanded_listing_only(
    stub: Stub, proxy: FaultProxy, client: httpx.Client
) -> None:
    proxy.set_rules([FaultRule(Fault.DROP_EXPANDED, path="/connectors")])
    expanded = client.get("/connectors?expand=info&expand=status").json()
    assert len(expanded) == 3 and all(CONNECTORS[name] == value for name, value in expanded.items())
    assert client.get("/connectors").json() == sorted(CONNECTORS)  # no expand: not matched, untouched
    assert proxy.injected() == {Fault.DROP_EXPANDED: 1}
    assert stub.received[0][1] == "/connectors?expand=info&expand=status"

    proxy.set_rules([FaultRule(Fault.DROP_EXPANDED, drop_fraction=0.01)])
    assert len(client.get("/connectors", params={"expand": "status"}).json()) == 5  # at least one dropped
    proxy.set_rules([FaultRule(Fault.DROP_EXPANDED, drop_fraction=1.0)])
    assert client.get("/connectors", params={"expand": "status"}).json() == {}


def _faulted_indices(upstream: str, seed: int) -> list[int]:
    with FaultProxy(upstream, seed=seed) as p, httpx.Client(base_url=p.url, timeout=10) as c:
        p.set_rules([FaultRule(Fault.CONFLICT, probability=0.5)])
        return [n for n in range(40) if c.get("/connectors").status_code == 409]


def test_probability_is_seeded_and_reproducible(stub: Stub) -> None:
    first, again, other = (
        _faulted_indices(stub.url, 7),
        _faulted_indices(stub.url, 7),
        _faulted_indices(stub.url, 8),
    )
    assert first == again
    assert first != other
    assert 5 < len(first) < 35


def test_the_coin_is_drawn_only_for_matching_rules(stub: Stub) -> None:
    """Unmatched requests between the matching ones do not shift the seeded sequence."""

    def run(noise: bool) -> list[int]:
        with FaultProxy(stub.url, seed=3) as p, httpx.Client(base_url=p.url, timeout=10) as c:
            p.set_rules([FaultRule(Fault.CONFLICT, method="PUT", probability=0.5)])
            hits = []
            for n in range(20):
                if noise:
                    c.get("/connectors")
                if c.put("/connectors/a/config", json={}).status_code == 409:
                    hits.append(n)
            return hits

    assert run(noise=False) == run(noise=True)


def test_times_is_honoured_and_rules_are_tried_in_order(
    stub: Stub, proxy: FaultProxy, client: httpx.Client
) -> None:
    proxy.set_rules(
        [
            FaultRule(Fault.CONFLICT, method="PUT", path="/connectors/[^/]+/config", times=2),
            FaultRule(Fault.LB_503, method="PUT", times=1),
        ]
    )
    statuses = [client.put("/connectors/a b/config", json={}).status_code for _ in range(5)]
    assert statuses == [409, 409, 503, 200, 200]
    assert proxy.injected() == {Fault.CONFLICT: 2, Fault.LB_503: 1}
    assert [r.path for r in proxy.forwarded_writes()] == ["/connectors/a b/config"] * 2
    proxy.clear()
    assert client.put("/connectors/a/config", json={}).status_code == 200


def test_unreachable_upstream_is_a_502() -> None:
    with FaultProxy(f"http://127.0.0.1:{free_port()}") as p, httpx.Client(base_url=p.url, timeout=10) as c:
        response = c.get("/connectors")
        assert (response.status_code, response.content) == (502, UNREACHABLE_BODY)
        assert p.snapshot()[0].forwarded is False


def test_hold_until_upstream_gives_up_after_its_time() -> None:
    upstream = f"http://127.0.0.1:{free_port()}"
    with FaultProxy(upstream, hold_until_upstream=0.5) as p, httpx.Client(base_url=p.url, timeout=10) as c:
        started = time.monotonic()
        response = c.get("/connectors")
        assert (response.status_code, response.content) == (502, UNREACHABLE_BODY)
        assert 0.45 <= time.monotonic() - started < 3


def test_hold_until_upstream_forwards_once_the_upstream_listens() -> None:
    port = free_port()
    answers: list[httpx.Response] = []
    with FaultProxy(f"http://127.0.0.1:{port}", hold_until_upstream=20) as p:

        def send() -> None:
            with httpx.Client(base_url=p.url, timeout=30) as c:
                answers.append(c.put("/connectors/a/config", json={"k": "v"}))

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(0.6)
        assert not answers and p.snapshot() == []  # held: not answered, not yet recorded
        upstream = Stub(port).start()
        try:
            started = time.monotonic()
            sender.join(timeout=20)
            assert time.monotonic() - started < 2
        finally:
            upstream.stop()
    (answer,) = answers
    assert answer.status_code == 200 and answer.json() == {"name": "a", "config": {"k": "v"}}
    assert upstream.count() == 1
    (record,) = p.forwarded_writes()
    assert record.upstream_status == 200


def test_stop_does_not_wait_for_held_requests(stub: Stub) -> None:
    errors: list[BaseException] = []
    p = FaultProxy(stub.url).start()
    p.set_rules([FaultRule(Fault.HOLD, hold_seconds=60)])

    def send() -> None:
        try:
            with httpx.Client(base_url=p.url, timeout=60) as c:
                c.get("/connectors")
        except httpx.HTTPError as exc:
            errors.append(exc)

    senders = [threading.Thread(target=send) for _ in range(3)]
    for sender in senders:
        sender.start()
    deadline = time.monotonic() + 10
    while len(p.snapshot()) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    p.stop()
    assert time.monotonic() - started < 3
    for sender in senders:
        sender.join(timeout=10)
    assert len(errors) == 3 and all(
        isinstance(e, httpx.RemoteProtocolError | httpx.ReadError) for e in errors
    )


# --- a real restarting Connect worker ------------------------------------------------------------------
def _wait_healthy(kit: ConnectKit, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_ok(kit.connect_url + "/health"):
            return True
        time.sleep(0.3)
    return False


@dataclass(frozen=True)
class Seen:
    at: float  # seconds since start_worker
    path: str
    status: int | None  # None: no HTTP answer (the exception is in `head`)
    content_type: str
    head: bytes


def _runs(seen: list[Seen]) -> list[tuple[Seen, Seen, int]]:
    """Consecutive answers to one path with the same status and body, as (first, last, count)."""
    runs: list[tuple[Seen, Seen, int]] = []
    for s in seen:
        if runs and (runs[-1][0].status, runs[-1][0].head) == (s.status, s.head):
            runs[-1] = (runs[-1][0], s, runs[-1][2] + 1)
        else:
            runs.append((s, s, 1))
    return runs


def test_what_a_starting_connect_worker_answers(connect_kit: ConnectKit) -> None:
    """Stop the worker, send GET /connectors through a proxy that holds it until the port opens, start the
    worker: the first answer is what a client gets from a worker that has just opened its port. Then poll
    GET /connectors and GET /health every 20 ms until both are 200, and print the timeline (see it with -s).
    Kafka 4.1.2 answers Jetty's HTML 404 for ~0.6 s, then 200; any answer is accepted, it is only reported."""
    port = connect_kit.ports["connect"]
    seen: list[Seen] = []
    t0 = [0.0]
    problems: list[BaseException] = []
    with FaultProxy(connect_kit.connect_url, hold_until_upstream=60) as proxy:

        def poll() -> None:
            try:
                with httpx.Client(base_url=proxy.url, timeout=90) as c:
                    deadline, ok = time.monotonic() + 180, {"/connectors": False, "/health": False}
                    while time.monotonic() < deadline and not all(ok.values()):
                        for path in ok:
                            answer: tuple[int | None, str, bytes]
                            try:
                                r = c.get(path)
                                answer = (r.status_code, r.headers.get("content-type", ""), r.content[:300])
                            except httpx.HTTPError as exc:
                                answer = (None, "", repr(exc).encode())
                            seen.append(Seen(time.monotonic() - t0[0], path, *answer))
                            ok[path] = answer[0] == 200
                        time.sleep(0.02)
            except BaseException as exc:
                problems.append(exc)

        connect_kit.stop_worker()
        try:
            poller = threading.Thread(target=poll)
            poller.start()
            time.sleep(0.3)  # the first GET is now held by the proxy: nothing listens on the port
            assert not seen
            t0[0] = time.monotonic()
            connect_kit.start_worker(wait=False)
            poller.join(timeout=200)
            assert not poller.is_alive() and not problems
        finally:
            if "connect" not in connect_kit.pids:
                connect_kit.start_worker(wait=False)
            healthy = _wait_healthy(connect_kit, 240)
        records = proxy.snapshot()

    assert healthy and connect_kit.ports["connect"] == port and connect_kit.connect_url.endswith(f":{port}")
    assert seen, "no answer at all"
    first = seen[0]
    assert first.path == "/connectors" and first.status is not None, f"not answered: {first.head!r}"
    assert records[0].forwarded and records[0].upstream_status == first.status

    connect_json = False
    with contextlib.suppress(ValueError):
        parsed = json.loads(first.head)
        connect_json = isinstance(parsed, dict) and {"error_code", "message"} <= parsed.keys()
    print(
        f"\nstarting worker: first answer {first.at:.3f} s after start_worker: {first.status} {first.content_type}"
    )
    print(f"  Connect's JSON error: {connect_json}; body: {first.head!r}")
    for path in ("/connectors", "/health"):
        print(f"  GET {path}:")
        for since, until, count in _runs([s for s in seen if s.path == path]):
            print(f"    {since.at:7.3f} .. {until.at:7.3f} s  {since.status}  x{count}  {since.head[:120]!r}")
        not_200 = [s.at for s in seen if s.path == path and s.status != 200]
        if not_200:
            print(f"    not 200 from {first.at:.3f} to {not_200[-1]:.3f} s ({not_200[-1] - first.at:.3f} s)")
    assert seen[-1].status == 200
