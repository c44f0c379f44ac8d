#!/usr/bin/env bash
# Build kube-apiserver and kubectl (for `kubectl kustomize` and server-side dry-runs in the tests) from
# source through the Go module proxy. This directory's wrapper module pins k8s.io/kubernetes and every
# staging module. Binaries go to a cache outside the repo; a no-op when they are there. Prints the dir.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
V="$(sed -n 's/^[[:space:]]*k8s.io\/kubernetes \(v[0-9.]*\).*$/\1/p' "$HERE/go.mod" | head -n1)"
OUT="${CONNECT_RECONCILER_CACHE:-$HOME/.cache/connect-reconciler}/kube/$V"
MINOR="${V#v1.}"; MINOR="${MINOR%%.*}"
mkdir -p "$OUT"
for bin in kube-apiserver kubectl; do
  [ -x "$OUT/$bin" ] && continue
  command -v go >/dev/null || { echo "go not found (Go >= 1.26 is needed to build $bin)" >&2; exit 1; }
  echo "building $bin $V (cold: a few minutes)" >&2
  (cd "$HERE" && GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0 go build -p 2 -trimpath -o "$OUT/$bin.tmp" -ldflags "-s -w \
    -X k8s.io/component-base/version.gitVersion=$V -X k8s.io/component-base/version.gitMajor=1 \
    -X k8s.io/component-base/version.gitMinor=$MINOR -X k8s.io/component-base/version.gitTreeState=clean \
    -X k8s.io/client-go/pkg/version.gitVersion=$V" "k8s.io/kubernetes/cmd/$bin" >&2)
  mv "$OUT/$bin.tmp" "$OUT/$bin"
done
echo "$OUT"
