"""Test binaries built from source through the Go module proxy, each from a wrapper module of ours
(`tests/harness/<name>/go.mod` + go.sum pin the upstream module and, for Kubernetes, every staging module).
Binaries go to ${CONNECT_RECONCILER_CACHE:-~/.cache/connect-reconciler}/<name>/<version>/, never the repo.

    python -m tests.harness.gobuild            # build (or find) every binary; prints where they are
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


class BuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class GoBinary:
    wrapper: str  # directory under tests/harness holding the wrapper go.mod
    module: str  # the pinned upstream module (its version names the cache directory)
    package: str
    name: str
    cgo: bool = False
    env: dict[str, str] = field(default_factory=dict)

    @property
    def version(self) -> str:
        text = (HERE / self.wrapper / "go.mod").read_text()
        m = re.search(rf"^\s*(?:require\s+)?{re.escape(self.module)} (v[0-9][^\s]*)", text, re.MULTILINE)
        if m is None:
            raise BuildError(f"{self.wrapper}/go.mod does not require {self.module}")
        return m.group(1)

    @property
    def path(self) -> Path:
        root = os.environ.get("CONNECT_RECONCILER_CACHE") or str(
            Path.home() / ".cache" / "connect-reconciler"
        )
        return Path(root) / self.wrapper / self.version / self.name

    def ldflags(self) -> str:
        flags = "-s -w"
        if self.module == "k8s.io/kubernetes":  # /version would say v0.0.0-master otherwise
            v = self.version
            minor = v.split(".")[1]
            flags += (
                f" -X k8s.io/component-base/version.gitVersion={v} -X k8s.io/component-base/version.gitMajor=1"
                f" -X k8s.io/component-base/version.gitMinor={minor}"
                " -X k8s.io/component-base/version.gitTreeState=clean"
            )
        return flags

    def build(self) -> Path:
        """Build unless cached; BuildError with the compiler's output on failure."""
        if self.path.exists():
            return self.path
        if shutil.which("go") is None:
            raise BuildError(f"go not found: Go >= 1.26 is needed to build {self.name}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        env = {
            **os.environ,
            "GOTOOLCHAIN": "local",
            "GOFLAGS": "-mod=mod",
            "CGO_ENABLED": "1" if self.cgo else "0",
            **self.env,
        }
        print(f"building {self.name} {self.version} from the Go module proxy", file=sys.stderr)
        result = subprocess.run(
            ["go", "build", "-p", "2", "-trimpath", "-ldflags", self.ldflags(), "-o", str(tmp), self.package],
            cwd=HERE / self.wrapper,
            env=env,
            capture_output=True,
            text=True,
            timeout=3000,
            check=False,
        )
        if result.returncode != 0:
            raise BuildError(f"building {self.name} failed:\n{result.stderr[-4000:]}")
        tmp.rename(self.path)
        return self.path


KUBE_APISERVER = GoBinary(
    "kube-apiserver", "k8s.io/kubernetes", "k8s.io/kubernetes/cmd/kube-apiserver", "kube-apiserver"
)
KUBECTL = GoBinary("kube-apiserver", "k8s.io/kubernetes", "k8s.io/kubernetes/cmd/kubectl", "kubectl")
ETCD = GoBinary("etcd", "go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/server/v3", "etcd")
# cgo: upstream's libjq-go binding (Debian libjq-dev, libonig-dev). The checksum database has no entry for
# shell-operator v1.5.3 (lookup 404), so that one module is trusted through our committed go.sum.
SHELL_OPERATOR = GoBinary(
    "shell-operator",
    "github.com/flant/shell-operator",
    "github.com/flant/shell-operator/cmd/shell-operator",
    "shell-operator",
    cgo=True,
    env={"GONOSUMDB": "github.com/flant"},
)
ALL = (KUBE_APISERVER, KUBECTL, ETCD, SHELL_OPERATOR)


def main() -> int:
    try:
        for binary in ALL:
            print(binary.build())
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
