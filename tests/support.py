"""Helpers shared by the unit and integration tests."""

from __future__ import annotations

import io
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx

from reconciler import runtime
from reconciler.clients.connect import ConnectClient
from reconciler.core.pruning import PruneSettings
from reconciler.core.redaction import Redactor
from reconciler.core.rendering import Renderer
from reconciler.core.selectors import parse_selector
from reconciler.entrypoints.main import run
from reconciler.model import RenderInputs
from reconciler.retrying import RetryPolicy
from reconciler.runtime import Runtime
from tests.fake_connect import FakeConnect


def configmap_yaml(
    name: str, data: dict[str, str], *, enabled: str | None = None, labels: str = "destination: connect"
) -> str:
    """A ConfigMap file as a user writes it: block scalars for the jq programs, labels as given."""
    label_lines = [labels] + ([f'enabled: "{enabled}"'] if enabled is not None else [])
    body = "\n".join(f"  {k}: |\n" + textwrap.indent(v, "    ") for k, v in data.items())
    labels_yaml = "\n".join(f"    {line}" for line in label_lines)
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\n"
        f"  labels:\n{labels_yaml}\ndata:\n{body}\n"
    )


class CliWorkspace:
    """ConfigMap files and template inputs on disk, and the CLI run in-process against them.

    Every stdout/stderr is kept in `outputs` (the secret tests search them) and every HTTP request the
    CLI sends is kept in `requests` (the idempotence tests assert on them)."""

    def __init__(
        self,
        root: Path,
        *,
        url: str,
        properties: str,
        secret_volume: str,
        secret: str,
        environ: dict[str, str],
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url, self.environ, self.transport = url, environ, transport
        self.cms = root / "configmaps"
        self.props = root / "props"
        self.secret = root / secret_volume
        for d in (self.cms, self.props, self.secret):
            d.mkdir(parents=True)
        (self.props / "app.properties").write_text(properties)
        (self.secret / "password").write_text(secret)
        self.outputs: list[str] = []
        self.requests: list[httpx.Request] = []

    def write(self, name: str, text: str) -> None:
        (self.cms / (name if name.endswith(".yaml") else f"{name}.yaml")).write_text(text)

    def cli(self, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        cmd, *rest = argv
        args = [
            cmd,
            str(self.cms),
            "--properties-dir",
            str(self.props),
            "--secret-dir",
            str(self.secret),
            *rest,
        ]
        if cmd != "render" and "--connect-url" not in rest:
            args += ["--connect-url", self.url]
        code = run(
            args,
            environ={**self.environ, **(env or {})},
            stdout=out,
            stderr=err,
            http_hooks=[self.requests.append],
            transport=self.transport,
        )
        self.outputs += [out.getvalue(), err.getvalue()]
        return code, out.getvalue(), err.getvalue()

    def writes(self) -> list[str]:
        """Every request that is not a GET, in order, as 'METHOD /path'."""
        return [f"{r.method} {unquote(r.url.path)}" for r in self.requests if r.method != "GET"]


def client_for(
    status: int, body: object = None, *, text: str | None = None
) -> tuple[ConnectClient, list[httpx.Request]]:
    """A ConnectClient whose every request gets the same canned answer; the requests are kept."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if text is not None:
            return httpx.Response(status, text=text)
        return httpx.Response(status, json=body) if body is not None else httpx.Response(status)

    return ConnectClient(httpx.Client(base_url="http://c", transport=httpx.MockTransport(handler))), seen


class Connect:
    """Reads of a real Kafka Connect worker's REST API, for assertions in integration tests."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)

    def config(self, name: str) -> dict[str, str] | None:
        r = self.http.get(f"/connectors/{name}/config")
        return r.json() if r.status_code == 200 else None

    def state(self, name: str) -> str | None:
        r = self.http.get(f"/connectors/{name}/status")
        return r.json()["connector"]["state"] if r.status_code == 200 else None


def eventually(
    check: Callable[[], bool], *, what: str, timeout: float = 60, detail: Callable[[], str] = lambda: ""
) -> None:
    """Poll `check` every 0.5 s until it holds; fail after `timeout` naming `what` (and `detail()`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{detail()}")


def route_hook_to(monkeypatch: Any, transport: httpx.BaseTransport) -> None:
    """The hook builds its own Connect clients from its settings: send them through `transport`."""
    real = runtime.connect_clients

    def with_transport(clusters: Any, **_kwargs: Any) -> Any:
        return real(clusters, transport=transport)

    monkeypatch.setattr(runtime, "connect_clients", with_transport)


def runtime_for(
    fake: FakeConnect,
    *,
    inputs: RenderInputs | None = None,
    selector: str = "destination=connect",
    retry: RetryPolicy | None = None,
    ledger: Any = None,
    prune: PruneSettings | None = None,
    clock: Any = None,
) -> Runtime:
    """A Runtime over the in-memory Connect, retries without sleeping; optionally with a ledger store."""
    inputs = inputs or RenderInputs()
    extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
    return Runtime(
        selector=parse_selector(selector),
        inputs=inputs,
        redactor=Redactor(inputs.secret_values),
        renderer=Renderer(inputs),
        clients={"default": fake.client()},
        retry=retry or RetryPolicy(sleep=lambda s: None, max_attempts=3),
        ledger=ledger,
        prune=prune or PruneSettings(),
        **extra,
    )
