#!/usr/bin/env bash
# Builds the control-plane binaries for the integration-test harness (tests/harness/kube_kit.py) from source
# through the Go module proxy, into a cache OUTSIDE the repository:
#
#   ${CONNECT_RECONCILER_CACHE:-~/.cache/connect-reconciler}/kube/<kube version>/bin/{kube-apiserver,etcd}
#
# Idempotent: a binary that already exists is not rebuilt. The last line on stdout is the bin directory.
#
#   tests/harness/kube/build.sh                 # build what is missing, print the bin dir
#   tests/harness/kube/build.sh --print-bin-dir # print the bin dir only (no build)
#   tests/harness/kube/build.sh --regen 1.36.4  # rewrite this directory's go.mod/go.sum for another release
#
# kube-apiserver: this directory is a wrapper module (go.mod + go.sum pin k8s.io/kubernetes and every staging
#   module; see the comment in go.mod). Go >= 1.26 is needed for 1.36.x.
# etcd: v3.6.x built the same way (a throw-away wrapper module: go.etcd.io/etcd/server/v3 has replace directives,
#   so `go install ...@version` is refused). 3.6.8 is the version kubeadm v1.36.3 pairs with the apiserver and the
#   client version the apiserver embeds. Debian's etcd-server (3.4.23) also starts, but lacks RequestWatchProgress
#   (the apiserver then serves consistent LISTs from etcd and rejects watch-list requests) and is end of life; it
#   can still be chosen with CONNECT_RECONCILER_ETCD=debian (apt-get install, symlinked into the bin dir).
#
# Environment: CONNECT_RECONCILER_CACHE, CONNECT_RECONCILER_ETCD=build|debian, BUILD_JOBS (default 2),
#   GOMAXPROCS (default 2), GOCACHE/GOMODCACHE (Go's defaults, outside the repo).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ETCD_VERSION="v3.6.8"
JOBS="${BUILD_JOBS:-2}"
export GOMAXPROCS="${GOMAXPROCS:-2}" GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-buildvcs=false"

kube_version() { sed -n 's/^[[:space:]]*\(require \)\{0,1\}k8s.io\/kubernetes \(v[0-9][0-9.]*\).*$/\2/p' "$HERE/go.mod" | head -n1; }

regen() {  # regen 1.36.4 : derive the staging replace list from k8s.io/kubernetes's own go.mod
  local v="${1#v}" gomod goline godebug mods m
  command -v go >/dev/null || { echo "go not found" >&2; exit 1; }
  gomod="$(cd "$HERE" && go mod download -json "k8s.io/kubernetes@v$v" | sed -n 's/.*"GoMod": "\(.*\)",*$/\1/p')"
  [ -f "$gomod" ] || { echo "cannot download k8s.io/kubernetes@v$v" >&2; exit 1; }
  goline="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")"
  godebug="$(grep -m1 '^godebug ' "$gomod" || true)"
  mods="$(sed -n 's|^[[:space:]]*\(k8s.io/[^ ]*\) => \./staging/.*|\1|p' "$gomod")"
  {
    sed -n '1,/^module /{/^\/\//p}' "$HERE/go.mod"
    printf 'module example.local/connect-reconciler/tests/harness/kube\n\ngo %s\n\n' "$goline"
    if [ -n "$godebug" ]; then printf '%s\n\n' "$godebug"; fi
    printf 'tool k8s.io/kubernetes/cmd/kube-apiserver\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "$v"
    for m in $mods; do printf '\t%s => %s v0.%s\n' "$m" "$m" "${v#*.}"; done
    printf ')\n'
  } >"$HERE/go.mod.new"
  mv "$HERE/go.mod.new" "$HERE/go.mod"
  rm -f "$HERE/go.sum"
  (cd "$HERE" && go mod tidy)
  echo "go.mod/go.sum now pin k8s.io/kubernetes v$v" >&2
}

if [ "${1:-}" = "--regen" ]; then regen "${2:?usage: build.sh --regen 1.36.4}"; exit 0; fi

V="$(kube_version)"
[ -n "$V" ] || { echo "cannot read the k8s.io/kubernetes version from $HERE/go.mod" >&2; exit 1; }
BIN="${CONNECT_RECONCILER_CACHE:-$HOME/.cache/connect-reconciler}/kube/$V/bin"
if [ "${1:-}" = "--print-bin-dir" ]; then echo "$BIN"; exit 0; fi
mkdir -p "$BIN"

# One build at a time per cache dir (parallel pytest sessions); bounded wait.
exec 9>"$BIN/.build.lock"
flock -w 3600 9 || { echo "timed out waiting for another build ($BIN/.build.lock)" >&2; exit 1; }

need_go() {
  command -v go >/dev/null || { echo "go not found: Go >= 1.26 is needed to build kube-apiserver $V" >&2; exit 1; }
}

if [ ! -x "$BIN/kube-apiserver" ]; then
  need_go
  minor="${V#v1.}"; minor="${minor%%.*}"
  echo "building kube-apiserver $V into $BIN (cold: 10+ minutes on 2 cores)" >&2
  start=$SECONDS
  (cd "$HERE" && go build -p "$JOBS" -trimpath -o "$BIN/kube-apiserver.tmp" -ldflags "-s -w \
      -X k8s.io/component-base/version.gitVersion=$V -X k8s.io/component-base/version.gitMajor=1 \
      -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean \
      -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z" \
      k8s.io/kubernetes/cmd/kube-apiserver) >&2
  mv "$BIN/kube-apiserver.tmp" "$BIN/kube-apiserver"
  echo "kube-apiserver built in $((SECONDS - start)) s" >&2
fi

if [ ! -x "$BIN/etcd" ]; then
  if [ "${CONNECT_RECONCILER_ETCD:-build}" = "debian" ]; then
    if [ ! -x /usr/bin/etcd ]; then
      echo "installing Debian's etcd-server" >&2
      apt-get install -y etcd-server >&2 || { apt-get update >&2 && apt-get install -y etcd-server >&2; }
    fi
    ln -sf /usr/bin/etcd "$BIN/etcd"
  else
    need_go
    echo "building etcd $ETCD_VERSION into $BIN" >&2
    start=$SECONDS
    W="$(mktemp -d)"
    trap 'rm -rf "$W"' EXIT
    printf 'module example.local/connect-reconciler/etcd-build\n\ngo 1.26.0\n\ntool go.etcd.io/etcd/server/v3\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
      "$ETCD_VERSION" >"$W/go.mod"
    (cd "$W" && go mod tidy && go build -p "$JOBS" -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3) >&2
    mv "$BIN/etcd.tmp" "$BIN/etcd"
    echo "etcd built in $((SECONDS - start)) s" >&2
  fi
fi

echo "$BIN"
