"""A real kube-apiserver and etcd 3.6 (both built from source through the Go module proxy, tests/harness/gobuild.py),
RBAC on, on 127.0.0.1 only: an envtest-style control plane for the integration tests.

There is no controller-manager: namespaces are never deleted (tests use unique ones), no `default`
ServiceAccount is created, and no `kube-root-ca.crt` ConfigMap appears by itself.
"""

from __future__ import annotations

import base64
import contextlib
import json
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.harness.gobuild import ETCD, KUBE_APISERVER, KUBECTL, BuildError
from tests.harness.processes import KitError, free_port, http_ok, spawn, terminate, wait_ready


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d: Path) -> None:
    """Throw-away CA, serving cert for 127.0.0.1, admin client cert (system:masters), SA signing key."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "7",
        "-subj",
        "/CN=test-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        cwd=d,
    )

    def sign(name: str, subject: str, ext: str) -> None:
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)
        (d / f"{name}.ext").write_text(ext)
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "7",
            "-out",
            f"{name}.crt",
            "-extfile",
            f"{name}.ext",
            cwd=d,
        )

    sign(
        "apiserver",
        "/CN=localhost",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n",
    )
    sign(
        "admin",
        "/CN=admin/O=system:masters",
        "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n",
    )
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key", cwd=d)
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)


class ApiServerKit:
    """`start()` returns once /readyz is 200 and namespace `default` exists; `stop()` ends both processes."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        compaction_interval: str = "5m",
        watch_cache: bool = True,
        startup_timeout: float = 120,
    ) -> None:
        self.dir = Path(data_dir).resolve()
        # Without the watch cache, watches are served by etcd itself, so a compaction makes an old
        # resourceVersion fail with 410 Gone: the way to force a watch expiry in a test.
        self.watch_cache = watch_cache
        self.compaction_interval = compaction_interval
        self.startup_timeout = startup_timeout
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self.etcd_port = 0
        self.api_port = 0
        self.kubectl_path = Path()

    @property
    def host(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def pki(self) -> Path:
        return self.dir / "pki"

    @property
    def kubeconfig_path(self) -> Path:
        return self.dir / "admin.kubeconfig"

    def start(self) -> ApiServerKit:
        try:
            apiserver, etcd, self.kubectl_path = KUBE_APISERVER.build(), ETCD.build(), KUBECTL.build()
        except BuildError as exc:
            raise KitError(str(exc)) from None
        make_pki(self.pki)
        self.etcd_port, peer, self.api_port = free_port(), free_port(), free_port()
        try:
            self._spawn(
                "etcd",
                [
                    str(etcd),
                    "--name=t",
                    f"--data-dir={self.dir / 'etcd'}",
                    f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                    f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                    f"--listen-peer-urls=http://127.0.0.1:{peer}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                    f"--initial-cluster=t=http://127.0.0.1:{peer}",
                    "--unsafe-no-fsync=true",
                    "--log-level=warn",
                    "--logger=zap",
                ],
            )
            self._wait("etcd", lambda: http_ok(f"http://127.0.0.1:{self.etcd_port}/health"))
            p = self.pki
            self._spawn(
                "kube-apiserver",
                [
                    str(apiserver),
                    f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={self.api_port}",
                    "--advertise-address=127.0.0.1",
                    "--endpoint-reconciler-type=none",
                    f"--cert-dir={self.dir / 'certs'}",
                    f"--tls-cert-file={p / 'apiserver.crt'}",
                    f"--tls-private-key-file={p / 'apiserver.key'}",
                    f"--client-ca-file={p / 'ca.crt'}",
                    "--authorization-mode=RBAC",
                    f"--service-account-issuer={self.host}",
                    f"--service-account-key-file={p / 'sa.pub'}",
                    f"--service-account-signing-key-file={p / 'sa.key'}",
                    "--service-cluster-ip-range=10.0.0.0/24",
                    "--allow-privileged=true",
                    "--disable-admission-plugins=ServiceAccount",
                    "--profiling=false",
                    f"--etcd-compaction-interval={self.compaction_interval}",
                    f"--watch-cache={str(self.watch_cache).lower()}",
                    "--v=1",
                ],
            )
            context = ssl.create_default_context(cafile=str(p / "ca.crt"))
            context.load_cert_chain(p / "admin.crt", p / "admin.key")
            self._wait("kube-apiserver", lambda: http_ok(self.host + "/readyz", context=context))
            core = client.CoreV1Api(self.api_client())
            self._wait("kube-apiserver", lambda: core.read_namespace("default") is not None)
        except BaseException:
            self.stop()
            raise
        self._write_kubeconfig()
        return self

    def stop(self) -> None:
        for name in ("kube-apiserver", "etcd"):
            process = self._processes.pop(name, None)
            if process is not None:
                terminate(process.pid, process, grace=15)

    # --- clients ---------------------------------------------------------------------------------
    def configuration(self, *, token: str | None = None) -> client.Configuration:
        c = client.Configuration()
        c.host = self.host
        c.ssl_ca_cert = str(self.pki / "ca.crt")
        if token is None:
            c.cert_file, c.key_file = str(self.pki / "admin.crt"), str(self.pki / "admin.key")
        else:
            c.api_key = {"authorization": token}
            c.api_key_prefix = {"authorization": "Bearer"}
        return c

    def api_client(self, *, token: str | None = None) -> client.ApiClient:
        return client.ApiClient(self.configuration(token=token))

    def kubectl(self, *args: str, input_text: str | None = None) -> str:
        """Run the kubectl built with the API server, as admin; returns stdout, raises with stderr."""
        result = subprocess.run(
            [str(self.kubectl_path), f"--kubeconfig={self.kubeconfig_path}", *args],
            input=input_text,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise KitError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def create_namespace(self, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        with self.api_client() as api:
            client.CoreV1Api(api).create_namespace(
                client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
            )
        return name

    def service_account_token(self, namespace: str, name: str) -> str:
        """Create the ServiceAccount (if needed) and return a token for it from the TokenRequest API."""
        with self.api_client() as api:
            core = client.CoreV1Api(api)
            with contextlib.suppress(client.ApiException):
                core.create_namespaced_service_account(
                    namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
                )
            request = client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
            )
            status = core.create_namespaced_service_account_token(name, namespace, request).status
            if status is None:
                raise KitError(f"TokenRequest for {namespace}/{name} returned no status")
            return str(status.token)

    def compact_etcd(self) -> None:
        """Compact etcd to its current revision (through its JSON gateway), so that watches from older
        resourceVersions get 410 Gone where the API server has no watch cache to serve them."""

        def call(path: str, body: dict[str, Any]) -> dict[str, Any]:
            request = urllib.request.Request(
                f"http://127.0.0.1:{self.etcd_port}{path}",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=30) as response:  # loopback only
                return dict(json.loads(response.read()))

        revision = int(call("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"])
        call("/v3/kv/compaction", {"revision": revision, "physical": True})

    # --- internals -------------------------------------------------------------------------------
    def _spawn(self, name: str, cmd: list[str]) -> None:
        self._processes[name] = spawn(cmd, log=self.dir / f"{name}.log")

    def _wait(self, name: str, ready: Callable[[], Any]) -> None:
        process = self._processes[name]
        wait_ready(
            name,
            ready,
            alive=lambda: process.poll() is None,
            log=self.dir / f"{name}.log",
            timeout=self.startup_timeout,
        )

    def _write_kubeconfig(self) -> None:
        p = self.pki
        self.kubeconfig_path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: test\n  cluster:\n    server: {self.host}\n    certificate-authority: {p / 'ca.crt'}\n"
            f"users:\n- name: admin\n  user:\n    client-certificate: {p / 'admin.crt'}\n    client-key: {p / 'admin.key'}\n"
            "contexts:\n- name: admin@test\n  context: {cluster: test, user: admin}\ncurrent-context: admin@test\n"
        )
