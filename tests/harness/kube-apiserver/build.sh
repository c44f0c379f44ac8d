#!/usr/bin/env bash
# Build kube-apiserver from source through the Go module proxy (this directory's wrapper module pins every
# staging module) into a cache outside the repo; a no-op when the binary is already there. Prints its path.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
V="$(sed -n 's/^[[:space:]]*k8s.io\/kubernetes \(v[0-9.]*\).*$/\1/p' "$HERE/go.mod" | head -n1)"
OUT="${CONNECT_RECONCILER_CACHE:-$HOME/.cache/connect-reconciler}/kube/$V"
BIN="$OUT/kube-apiserver"
if [ ! -x "$BIN" ]; then
  command -v go >/dev/null || { echo "go not found (Go >= 1.26 is needed to build kube-apiserver)" >&2; exit 1; }
  mkdir -p "$OUT"
  MINOR="${V#v1.}"; MINOR="${MINOR%%.*}"
  cd "$HERE"
  echo "building kube-apiserver $V (cold: several minutes)" >&2
  GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0 go build -p 2 -trimpath -o "$BIN.tmp" -ldflags "-s -w \
    -X k8s.io/component-base/version.gitVersion=$V -X k8s.io/component-base/version.gitMajor=1 \
    -X k8s.io/component-base/version.gitMinor=$MINOR -X k8s.io/component-base/version.gitTreeState=clean" \
    k8s.io/kubernetes/cmd/kube-apiserver >&2
  mv "$BIN.tmp" "$BIN"
fi
echo "$BIN"
