"""Prometheus metrics against the real Kafka Connect worker: passes through `open_runtime` with the
metrics as observer and hooked into the real Connect clients, scraped over HTTP from `/metrics`."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from reconciler.entrypoints.flags import settings_from_values
from reconciler.metrics import Metrics
from reconciler.model import ConfigMapDoc, Report
from reconciler.pipeline import reconcile
from reconciler.runtime import open_runtime
from reconciler.settings import Settings
from tests.harness.connect_kit import ConnectKit
from tests.integration.test_watcher_kube import source
from tests.support import eventually

P = "connect_reconciler_"


def sample(text: str, metric: str, **labels: str) -> float | None:
    """One sample of a scraped text exposition (labels in any order), None if absent."""
    for line in text.splitlines():
        found = re.fullmatch(rf"{re.escape(P + metric)}(?:\{{(.*)\}})? (\S+)", line)
        if not found:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', found.group(1) or ""))
        if have == labels:
            return float(found.group(2))
    return None


@pytest.fixture
def served() -> Iterator[tuple[Metrics, str]]:
    metrics = Metrics()
    server = metrics.serve("127.0.0.1:0")
    try:
        yield metrics, f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()


def one_pass(settings: Settings, metrics: Metrics, docs: list[ConfigMapDoc]) -> Report:
    with open_runtime(settings, environ={}, observers=[metrics]) as rt:
        metrics.instrument(rt.clients)
        return reconcile(docs, rt=rt, dry_run=False)


def test_a_real_pass_and_an_unreachable_worker_show_on_the_metrics_endpoint(
    connect_kit: ConnectKit, served: tuple[Metrics, str]
) -> None:
    metrics, url = served
    name = f"metrics-{uuid.uuid4().hex[:8]}"
    doc = ConfigMapDoc(
        name,
        "default",
        {"destination": "connect"},
        {f"{name}.json": json.dumps({"name": name, **source(connect_kit, name)})},
        resource_version="1",
    )
    settings = settings_from_values({"connect_url": connect_kit.connect_url, "retry_seconds": 2})
    try:
        report = one_pass(settings, metrics, [doc])
        assert report.ok, report.problems
        text = httpx.get(url, timeout=5).text
        assert sample(text, "reconcile_total", result="success") == 1
        assert sample(text, "reconcile_total", result="error") == 0
        assert sample(text, "connector_actions_total", action="create", outcome="ok") == 1
        assert (sample(text, "connect_requests_total", cluster="default", method="GET", code="200") or 0) >= 2
        assert sample(text, "connect_requests_total", cluster="default", method="POST", code="201") == 1
        # Timed from the wire (`response.elapsed`), one observation per answered request.
        gets = sample(text, "connect_request_duration_seconds_count", cluster="default", method="GET")
        assert gets == sample(text, "connect_requests_total", cluster="default", method="GET", code="200")
        assert (
            sample(text, "connect_request_duration_seconds_sum", cluster="default", method="GET") or 0
        ) > 0
        assert (sample(text, "last_successful_reconcile_timestamp_seconds") or 0) > 0
        assert sample(text, "managed_connectors", cluster="default", state="ABSENT") == 1

        connect_kit.stop_worker()
        try:
            report = one_pass(settings, metrics, [doc])
        finally:
            connect_kit.start_worker()
        assert not report.ok
        text = httpx.get(url, timeout=5).text
        assert sample(text, "reconcile_total", result="error") == 1
        assert sample(text, "reconcile_errors_total") == 1
        refused = sample(text, "connect_requests_total", cluster="default", method="GET", code="error")
        assert refused is not None and refused >= 1

        def converged() -> bool:  # the worker is back; its connector may need a moment to be assigned
            ok = one_pass(settings, metrics, [doc]).ok
            running = sample(
                httpx.get(url, timeout=5).text, "managed_connectors", cluster="default", state="RUNNING"
            )
            return ok and running == 1

        eventually(converged, what="a successful pass seeing the connector RUNNING", timeout=30)
        assert (sample(httpx.get(url, timeout=5).text, "reconcile_total", result="success") or 0) >= 2
    finally:
        httpx.delete(f"{connect_kit.connect_url}/connectors/{name}", timeout=30)
