"""An envtest-style Kubernetes control plane for integration tests: a real kube-apiserver (RBAC on) backed by a real
etcd, both on 127.0.0.1, with a throw-away PKI. No controller-manager, scheduler or kubelet.

Binaries are built from source by tests/harness/kube/build.sh into
${CONNECT_RECONCILER_CACHE:-~/.cache/connect-reconciler}/kube/<version>/bin (never into the repository).

    with KubeKit(work_dir=tmp) as kit:            # or kit = KubeKit(...).start(); ...; kit.stop()
        ns = kit.create_namespace("demo")
        with kit.api_client() as api: ...           # admin (system:masters, bypasses RBAC)
        with kit.service_account_client(ns, "reconciler") as sa_api: ...   # RBAC applies

    python -m tests.harness.kube_kit                # build if needed, start, print the kubeconfig path, wait for ^C

What a real cluster has and this one has not (no kube-controller-manager): namespaces are never finalized (a deleted
namespace stays Terminating, so tests use fresh names), no garbage collection of owned objects, no `default`
ServiceAccount and no `kube-root-ca.crt` ConfigMap in new namespaces.

Forcing a watch expiry (410 Gone):
- `compact_etcd()` compacts etcd at its current revision (etcd's HTTP/JSON gateway; no etcdctl needed). A watch or
  an exact LIST at an older resourceVersion that reaches etcd then gets 410. With the watch cache on (the default,
  as in production) watches are served from the apiserver's cache, which does not notice an etcd compaction: start
  the kit with `watch_cache=False` to make compaction expire watches at once.
- `restart_apiserver()` restarts kube-apiserver on the same port and etcd: open watches break, and a watch cache
  rebuilt from scratch answers 410 to resourceVersions older than its fresh list (the watch-cache path).
- `etcd_compaction_interval` ("5m" by default, "0" disables) is the apiserver's own periodic compaction.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "kube" / "build.sh"
T = TypeVar("T")


class KubeKitError(RuntimeError):
    pass


def default_bin_dir() -> Path:
    """Where build.sh puts (or has put) kube-apiserver and etcd for the version pinned in kube/go.mod."""
    out = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--print-bin-dir"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if out.returncode != 0 or not out.stdout.strip():
        raise KubeKitError(f"{BUILD_SCRIPT} --print-bin-dir failed: {out.stderr.strip()}")
    return Path(out.stdout.strip().splitlines()[-1])


def ensure_binaries(*, timeout_s: float = 3600.0, log_path: Path | None = None) -> Path:
    """Run build.sh (a no-op when both binaries exist) and return the bin directory; KubeKitError on failure."""
    log = log_path or Path(tempfile.gettempdir()) / f"connect-reconciler-kube-build-{os.getuid()}.log"
    with log.open("wb") as sink:
        try:
            result = subprocess.run(
                ["bash", str(BUILD_SCRIPT)],
                stdout=subprocess.PIPE,
                stderr=sink,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise KubeKitError(f"{BUILD_SCRIPT} did not finish within {timeout_s:.0f} s; log: {log}") from exc
    if result.returncode != 0:
        raise KubeKitError(
            f"building kube-apiserver/etcd failed ({BUILD_SCRIPT}, exit {result.returncode}); log {log}:\n"
            + _tail(log, 4000)
        )
    bins = Path(result.stdout.decode().strip().splitlines()[-1])
    for name in ("kube-apiserver", "etcd"):
        if not os.access(bins / name, os.X_OK):
            raise KubeKitError(f"{BUILD_SCRIPT} succeeded but {bins / name} is missing")
    return bins


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    predicate: Callable[[], T | None], *, timeout_s: float, what: str, interval_s: float = 0.1
) -> T:
    """Poll `predicate` until it returns a truthy value (returned); exceptions count as "not yet"; bounded."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except KubeKitError:
            raise
        except Exception as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise KubeKitError(f"{what}: not within {timeout_s:.0f} s (last error: {last!r})")
        time.sleep(interval_s)


def _tail(path: Path, limit: int) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode(errors="replace")


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise KubeKitError(f"openssl {' '.join(args[:2])} failed: {result.stderr.strip()}")


def make_pki(directory: Path, *, days: int = 7) -> None:
    """CA, serving cert for 127.0.0.1/localhost, admin client cert (group system:masters), SA signing key pair."""
    if shutil.which("openssl") is None:
        raise KubeKitError("openssl not found")
    directory.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", str(days), "-subj", "/CN=kube-kit-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        cwd=directory,
    )  # fmt: skip

    def issue(name: str, subject: str, extensions: str) -> None:
        (directory / f"{name}.ext").write_text(extensions)
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=directory)
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", str(days), "-out", f"{name}.crt", "-extfile", f"{name}.ext",
            cwd=directory,
        )  # fmt: skip

    usage = "keyUsage=critical,digitalSignature,keyEncipherment\n"
    issue(
        "apiserver",
        "/CN=kube-apiserver",
        f"subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n{usage}",
    )
    issue("admin", "/CN=kube-kit-admin/O=system:masters", f"extendedKeyUsage=clientAuth\n{usage}")
    _openssl(
        "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key", cwd=directory
    )
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)
    for leftover in [*directory.glob("*.csr"), *directory.glob("*.ext"), *directory.glob("*.srl")]:
        leftover.unlink()


class _Proc:
    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("ab")
        env = {**os.environ, "GOMAXPROCS": os.environ.get("GOMAXPROCS", "2")}
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise KubeKitError(
                f"{self.name} exited with {code}; log {self.log_path}:\n{_tail(self.log_path, 4000)}"
            )

    def stop(self, grace_s: float) -> None:
        """SIGTERM the process group (own session), SIGKILL after `grace_s`."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        self._log.close()


class KubeKit:
    """kube-apiserver + etcd on 127.0.0.1 (free ports), RBAC authorization, admin via a system:masters client cert."""

    def __init__(
        self,
        *,
        work_dir: Path | None = None,
        bin_dir: Path | None = None,
        apiserver_bin: Path | None = None,
        etcd_bin: Path | None = None,
        etcd_compaction_interval: str = "5m",
        watch_cache: bool = True,
        extra_apiserver_args: Sequence[str] = (),
        start_timeout_s: float = 120.0,
        stop_grace_s: float = 15.0,
        keep_work_dir: bool | None = None,
    ) -> None:
        self._own_work_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="kube-kit-"))
        self.keep_work_dir = (not self._own_work_dir) if keep_work_dir is None else keep_work_dir
        bins = bin_dir
        if bins is None and (apiserver_bin is None or etcd_bin is None):
            bins = default_bin_dir()
        self.apiserver_bin = Path(apiserver_bin) if apiserver_bin else Path(bins or ".") / "kube-apiserver"
        self.etcd_bin = Path(etcd_bin) if etcd_bin else Path(bins or ".") / "etcd"
        self.etcd_compaction_interval = etcd_compaction_interval
        self.watch_cache = watch_cache
        self.extra_apiserver_args = list(extra_apiserver_args)
        self.start_timeout_s = start_timeout_s
        self.stop_grace_s = stop_grace_s
        self.pki_dir = self.work_dir / "pki"
        self._etcd: _Proc | None = None
        self._apiserver: _Proc | None = None
        self._etcd_port = 0
        self._api_port = 0
        self._clients: list[client.ApiClient] = []
        self.startup_seconds: float | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> KubeKit:
        if self._apiserver is not None:
            raise KubeKitError("already started")
        for path in (self.apiserver_bin, self.etcd_bin):
            if not os.access(path, os.X_OK):
                raise KubeKitError(f"{path} not found: run {BUILD_SCRIPT}")
        begin = time.monotonic()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        try:
            make_pki(self.pki_dir)
            self._start_etcd()
            self._start_apiserver()
            self._write_kubeconfig()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - begin
        return self

    def stop(self) -> None:
        """Close the clients handed out, then stop kube-apiserver and etcd (by process group, SIGKILL after grace)."""
        for api in self._clients:
            with contextlib.suppress(Exception):
                api.close()  # type: ignore[no-untyped-call]
        self._clients.clear()
        for attr in ("_apiserver", "_etcd"):
            proc: _Proc | None = getattr(self, attr)
            if proc is not None:
                proc.stop(self.stop_grace_s)
                setattr(self, attr, None)
        if not self.keep_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def restart_apiserver(self) -> None:
        """Restart kube-apiserver (same port, same etcd): open watches break; the watch cache is rebuilt."""
        if self._apiserver is None:
            raise KubeKitError("not started")
        self._apiserver.stop(self.stop_grace_s)
        self._apiserver = None
        self._start_apiserver(port=self._api_port)

    def __enter__(self) -> KubeKit:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ processes

    def _start_etcd(self, attempts: int = 3) -> None:
        for attempt in range(1, attempts + 1):
            client_port, peer_port = free_port(), free_port()
            data = self.work_dir / "etcd-data"
            shutil.rmtree(data, ignore_errors=True)
            proc = _Proc(
                "etcd",
                [
                    str(self.etcd_bin),
                    "--name=kube-kit",
                    f"--data-dir={data}",
                    f"--listen-client-urls=http://127.0.0.1:{client_port}",
                    f"--advertise-client-urls=http://127.0.0.1:{client_port}",
                    f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-cluster=kube-kit=http://127.0.0.1:{peer_port}",
                    "--initial-cluster-state=new",
                    "--unsafe-no-fsync=true",
                    "--logger=zap",
                    "--log-level=warn",
                ],
                self.work_dir / "etcd.log",
            )
            self._etcd, self._etcd_port = proc, client_port
            try:
                wait_until(self._etcd_ready, timeout_s=min(30.0, self.start_timeout_s), what="etcd /health")
                return
            except KubeKitError:
                proc.stop(self.stop_grace_s)
                self._etcd = None
                if attempt == attempts:  # e.g. a port taken between free_port() and bind
                    raise

    def _etcd_ready(self) -> bool:
        if self._etcd is None:
            raise KubeKitError("etcd not started")
        self._etcd.check_alive()
        body = self._etcd_http("GET", "/health")
        return str(body.get("health")) == "true"

    def _start_apiserver(self, *, port: int | None = None, attempts: int = 3) -> None:
        pki = self.pki_dir
        for attempt in range(1, attempts + 1):
            api_port = port or free_port()
            argv = [
                str(self.apiserver_bin),
                f"--etcd-servers=http://127.0.0.1:{self._etcd_port}",
                f"--etcd-compaction-interval={self.etcd_compaction_interval}",
                f"--watch-cache={'true' if self.watch_cache else 'false'}",
                "--bind-address=127.0.0.1",
                f"--secure-port={api_port}",
                "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none",
                f"--cert-dir={self.work_dir / 'apiserver-certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer=https://127.0.0.1:{api_port}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                "--disable-admission-plugins=ServiceAccount",
                "--profiling=false",
                "--v=1",
                *self.extra_apiserver_args,
            ]
            proc = _Proc("kube-apiserver", argv, self.work_dir / "kube-apiserver.log")
            self._apiserver, self._api_port = proc, api_port
            try:
                wait_until(
                    self._readyz,
                    timeout_s=self.start_timeout_s,
                    what="kube-apiserver /readyz",
                    interval_s=0.2,
                )
                wait_until(self._has_default_namespace, timeout_s=30.0, what="namespace default")
                return
            except KubeKitError as exc:
                proc.stop(self.stop_grace_s)
                self._apiserver = None
                bind_error = "address already in use" in _tail(proc.log_path, 20000)
                if attempt == attempts or port is not None or not bind_error:
                    raise KubeKitError(
                        f"{exc}\n--- kube-apiserver log tail:\n{_tail(proc.log_path, 3000)}"
                    ) from exc

    def _has_default_namespace(self) -> bool:
        with self._admin_client() as api:
            client.CoreV1Api(api).read_namespace("default")
        return True

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
        ctx.load_cert_chain(str(self.pki_dir / "admin.crt"), str(self.pki_dir / "admin.key"))
        return ctx

    def _readyz(self) -> bool:
        if self._apiserver is None:
            raise KubeKitError("kube-apiserver not started")
        self._apiserver.check_alive()
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=self._ssl_context())
        )
        try:
            with opener.open(f"https://127.0.0.1:{self._api_port}/readyz", timeout=5) as resp:
                return bool(resp.status == 200)
        except urllib.error.HTTPError:  # 500 while post-start hooks run
            return False

    def _etcd_http(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(
            f"http://127.0.0.1:{self._etcd_port}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with opener.open(request, timeout=10) as resp:
                parsed: dict[str, Any] = json.loads(resp.read() or b"{}")
                return parsed
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise KubeKitError(f"etcd {method} {path}: HTTP {exc.code}: {detail}") from exc

    def _write_kubeconfig(self) -> None:
        def b64(name: str) -> str:
            return base64.b64encode((self.pki_dir / name).read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "kube-kit",
                    "cluster": {"server": self.server_url, "certificate-authority-data": b64("ca.crt")},
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate-data": b64("admin.crt"),
                        "client-key-data": b64("admin.key"),
                    },
                }
            ],
            "contexts": [{"name": "admin@kube-kit", "context": {"cluster": "kube-kit", "user": "admin"}}],
            "current-context": "admin@kube-kit",
        }
        # JSON is YAML: kubectl and the Python client read it
        self.kubeconfig_path.write_text(json.dumps(config, indent=2))
        self.kubeconfig_path.chmod(0o600)

    # ------------------------------------------------------------------ accessors

    @property
    def server_url(self) -> str:
        if not self._api_port:
            raise KubeKitError("not started")
        return f"https://127.0.0.1:{self._api_port}"

    @property
    def kubeconfig_path(self) -> Path:
        return self.work_dir / "admin.kubeconfig"

    @property
    def ca_cert_path(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self._etcd_port}"

    @property
    def apiserver_pid(self) -> int | None:
        return self._apiserver.pid if self._apiserver else None

    @property
    def etcd_pid(self) -> int | None:
        return self._etcd.pid if self._etcd else None

    @property
    def log_paths(self) -> dict[str, Path]:
        return {"kube-apiserver": self.work_dir / "kube-apiserver.log", "etcd": self.work_dir / "etcd.log"}

    def _configuration(self) -> client.Configuration:
        conf = client.Configuration(host=self.server_url)
        conf.ssl_ca_cert = str(self.ca_cert_path)
        return conf

    def _track(self, api: client.ApiClient) -> client.ApiClient:
        self._clients.append(api)
        return api

    def _admin_client(self) -> client.ApiClient:
        conf = self._configuration()
        conf.cert_file = str(self.pki_dir / "admin.crt")
        conf.key_file = str(self.pki_dir / "admin.key")
        return client.ApiClient(conf)

    def api_client(self) -> client.ApiClient:
        """A client authenticated as the admin (system:masters). Use `with`, or it is closed by stop()."""
        return self._track(self._admin_client())

    def token_client(self, token: str) -> client.ApiClient:
        """A client authenticated with a bearer token."""
        conf = self._configuration()
        conf.api_key = {"authorization": token}
        conf.api_key_prefix = {"authorization": "Bearer"}
        return self._track(client.ApiClient(conf))

    # ------------------------------------------------------------------ helpers for tests

    def create_namespace(self, prefix: str = "t", *, labels: dict[str, str] | None = None) -> str:
        """A fresh namespace `<prefix>-<8 hex>` (never deleted: no namespace controller would finalize it)."""
        stem = re.sub(r"[^a-z0-9-]+", "-", prefix.lower()).strip("-")[:50].strip("-") or "t"
        name = f"{stem}-{uuid.uuid4().hex[:8]}"
        with self._admin_client() as api:
            client.CoreV1Api(api).create_namespace(
                client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels or None))
            )
        return name

    def service_account_token(self, namespace: str, name: str, *, expiration_seconds: int = 3600) -> str:
        """Create the ServiceAccount (if absent) and return a token for it from the TokenRequest API."""
        with self._admin_client() as api:
            core = client.CoreV1Api(api)
            try:
                core.create_namespaced_service_account(
                    namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
                )
            except ApiException as exc:
                if exc.status != 409:
                    raise
            request = client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=max(600, expiration_seconds))
            )
            status = core.create_namespaced_service_account_token(name, namespace, request).status
            if status is None or not status.token:
                raise KubeKitError(f"TokenRequest for {namespace}/{name} returned no token")
            return str(status.token)

    def service_account_client(
        self, namespace: str, name: str, *, expiration_seconds: int = 3600
    ) -> client.ApiClient:
        """A client authenticated as system:serviceaccount:<namespace>:<name> (created if absent); RBAC applies."""
        return self.token_client(
            self.service_account_token(namespace, name, expiration_seconds=expiration_seconds)
        )

    def etcd_revision(self) -> int:
        """etcd's current revision (= the newest resourceVersion the apiserver can have seen)."""
        header = self._etcd_http("POST", "/v3/kv/range", {"key": base64.b64encode(b"/").decode()})["header"]
        return int(header["revision"])

    def compact_etcd(self, revision: int | None = None) -> int:
        """Compact etcd (physically) at `revision` (default: the current one) and return it; resourceVersions
        older than that are gone for requests that reach etcd (see the module docstring about the watch cache)."""
        target = revision if revision is not None else self.etcd_revision()
        try:
            self._etcd_http("POST", "/v3/kv/compaction", {"revision": str(target), "physical": True})
        except KubeKitError as exc:
            if "compacted" not in str(exc):  # already compacted at or beyond `target`: fine
                raise
        return target

    def rss_kib(self) -> dict[str, int]:
        """Resident set size (KiB) of kube-apiserver and etcd, from /proc (Linux)."""
        out: dict[str, int] = {}
        for name, proc in (("kube-apiserver", self._apiserver), ("etcd", self._etcd)):
            if proc is None:
                continue
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        out[name] = int(line.split()[1])
        return out


def main(argv: Sequence[str] | None = None) -> int:
    """Build if needed, start, print the kubeconfig path and timings, then wait for Ctrl-C (at most `--for` s)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--for", dest="duration", type=float, default=3600.0, help="seconds to stay up")
    parser.add_argument("--no-watch-cache", action="store_true")
    args = parser.parse_args(argv)
    bins = ensure_binaries()
    with KubeKit(bin_dir=bins, watch_cache=not args.no_watch_cache) as kit:
        print(
            f"kubeconfig: {kit.kubeconfig_path}\nserver: {kit.server_url}\nstarted in {kit.startup_seconds:.1f} s"
        )
        print(f"rss KiB: {kit.rss_kib()}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            time.sleep(args.duration)
    return 0


if __name__ == "__main__":
    sys.exit(main())
