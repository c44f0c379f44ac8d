#!/usr/bin/env bash
# Build flant/shell-operator from source through the Go module proxy (this directory's wrapper module,
# which carries the upstream go.mod's one replace directive) into a cache outside the repo, to run the
# hook under the real operator in the tests. A no-op when the binary is there. Prints its path.
#
# Needs cgo with libjq and libonig (Debian: libjq-dev libonig-dev), as upstream's libjq-go binding does.
# The checksum database has no entry for github.com/flant/shell-operator v1.5.3 (lookup: 404), so that
# module is trusted through the go.sum committed here (GONOSUMDB); every other module is verified as usual.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
V="$(sed -n 's/^[[:space:]]*github.com\/flant\/shell-operator \(v[0-9.]*\).*$/\1/p' "$HERE/go.mod" | head -n1)"
OUT="${CONNECT_RECONCILER_CACHE:-$HOME/.cache/connect-reconciler}/shell-operator/$V"
if [ ! -x "$OUT/shell-operator" ]; then
  command -v go >/dev/null || { echo "go not found" >&2; exit 1; }
  mkdir -p "$OUT"
  echo "building shell-operator $V (cold: about a minute)" >&2
  (cd "$HERE" && GOTOOLCHAIN=local GOFLAGS=-mod=mod GONOSUMDB=github.com/flant CGO_ENABLED=1 \
    go build -p 2 -trimpath -o "$OUT/shell-operator.tmp" -ldflags "-s -w" github.com/flant/shell-operator/cmd/shell-operator >&2)
  mv "$OUT/shell-operator.tmp" "$OUT/shell-operator"
fi
echo "$OUT/shell-operator"
