"""pytest fixtures for a real Kubernetes control plane (tests/harness/kube_kit.py): one kube-apiserver + etcd per
session, one fresh namespace per test.

Import them where needed (`from tests.integration.kube_fixtures import kube_kit, kube_namespace  # noqa: F401`) or
from a conftest.py. CONNECT_RECONCILER_SKIP_KUBE=1 skips the tests that use them; a failed build or start FAILS them
(CI must never skip silently). The first run builds kube-apiserver and etcd from source (tests/harness/kube/build.sh;
10+ minutes on 2 cores, bounded by CONNECT_RECONCILER_KUBE_BUILD_TIMEOUT seconds, default 3600); later runs reuse
the cached binaries.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest

from tests.harness.kube_kit import KubeKit, KubeKitError, ensure_binaries


@pytest.fixture(scope="session")
def kube_kit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeKit]:
    if os.environ.get("CONNECT_RECONCILER_SKIP_KUBE") == "1":
        pytest.skip("CONNECT_RECONCILER_SKIP_KUBE=1")
    work = tmp_path_factory.mktemp("kube-kit")
    timeout_s = float(os.environ.get("CONNECT_RECONCILER_KUBE_BUILD_TIMEOUT", "3600"))
    try:
        bins = ensure_binaries(timeout_s=timeout_s, log_path=work / "build.log")
    except KubeKitError as exc:
        pytest.fail(f"could not build kube-apiserver/etcd: {exc}", pytrace=False)
    # the work dir (PKI, kubeconfig, logs) stays in pytest's tmp dir for post-mortems
    kit = KubeKit(work_dir=work / "cluster", bin_dir=bins, keep_work_dir=True)
    try:
        kit.start()
    except KubeKitError as exc:
        pytest.fail(f"could not start kube-apiserver/etcd: {exc}", pytrace=False)
    try:
        yield kit
    finally:
        kit.stop()


@pytest.fixture
def kube_namespace(kube_kit: KubeKit, request: pytest.FixtureRequest) -> str:
    """A fresh namespace named after the test; not deleted (nothing would finalize it), the etcd dir is temporary."""
    prefix = re.sub(r"^test[-_]?", "", request.node.name)[:40]
    return kube_kit.create_namespace(prefix or "t")
