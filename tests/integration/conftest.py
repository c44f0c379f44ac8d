"""Integration fixtures: one real Kafka + Kafka Connect per test session (tests/harness/connect_kit.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TypeVar

import pytest
from kubernetes import client

from tests.harness.apiserver_kit import ApiServerKit
from tests.harness.connect_kit import ConnectKit
from tests.harness.postgres_kit import PostgresKit
from tests.harness.processes import KitError
from tests.support import Connect

# Lines a test wants shown after the run (the fault scenario table), printed in the terminal summary.
SUMMARY: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in SUMMARY:
        terminalreporter.write_line(line)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.integration)


K = TypeVar("K", ConnectKit, ApiServerKit)


def _running(kit: K) -> Iterator[K]:
    """Start a kit for the session; a failure to start fails the suite (CI must never skip silently)."""
    if os.environ.get("CONNECT_RECONCILER_SKIP_INTEGRATION") == "1":
        pytest.skip("CONNECT_RECONCILER_SKIP_INTEGRATION=1")
    try:
        kit.start()
    except KitError as exc:
        pytest.fail(str(exc))
    try:
        yield kit
    finally:
        kit.stop()


@pytest.fixture(scope="session")
def connect_kit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConnectKit]:
    """Kafka 4.1 (KRaft) + one Connect worker from Maven Central jars."""
    yield from _running(ConnectKit(tmp_path_factory.mktemp("connect-kit")))


@pytest.fixture(scope="session")
def connect_url(connect_kit: ConnectKit) -> str:
    return connect_kit.connect_url


@pytest.fixture(scope="session")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerKit]:
    """kube-apiserver (built from source on first use, then cached) + etcd, RBAC on."""
    yield from _running(ApiServerKit(tmp_path_factory.mktemp("apiserver")))


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresKit]:
    """PostgreSQL (Debian's postgresql-15) with wal_level=logical and a REPLICATION role, for Debezium.
    Like the other kits, a missing PostgreSQL fails the suite (the message says `make tools` installs it)."""
    if os.environ.get("CONNECT_RECONCILER_SKIP_INTEGRATION") == "1":
        pytest.skip("CONNECT_RECONCILER_SKIP_INTEGRATION=1")
    kit = PostgresKit(tmp_path_factory.mktemp("postgres"))
    try:
        kit.start()
    except KitError as exc:
        pytest.fail(str(exc))
    try:
        yield kit
    finally:
        kit.destroy()  # its cluster may live outside pytest's temp dir (see PostgresKit._cluster_dir)


@pytest.fixture
def namespace(apiserver: ApiServerKit) -> str:
    """A fresh namespace per test (never deleted: there is no namespace controller)."""
    return apiserver.create_namespace("t")


@pytest.fixture
def connect(connect_url: str) -> Iterator[Connect]:
    """Reads of the real worker's REST API (configs and states), closed after the test."""
    c = Connect(connect_url)
    yield c
    c.http.close()


@pytest.fixture
def core(apiserver: ApiServerKit) -> Iterator[client.CoreV1Api]:
    with apiserver.api_client() as api:
        yield client.CoreV1Api(api)
