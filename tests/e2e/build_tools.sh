#!/usr/bin/env bash
# Build the chart tools (helm v3, kubeconform) from the pinned Go module in tools/.
#
# Produces helm and kubeconform in ${PYJOBSET_CACHE:-$HOME/.cache/pyjobset}/tools-<stamp>/bin, where <stamp> is
# a short hash of tools/go.mod, tools/go.sum and this script: a version bump builds into a fresh folder, and an
# up-to-date folder is reused as is (idempotent, a few milliseconds). Same rules as build.sh: GOTOOLCHAIN=local,
# read-only module graph, no cgo, and the default Go module and build caches, so rebuilds are warm.
#
# Usage: tests/e2e/build_tools.sh [--print-bin-dir]
# Env:   PYJOBSET_CACHE (cache root), PYJOBSET_BUILD_JOBS (go build -p, default 2).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="$here/tools"
cache_root="${PYJOBSET_CACHE:-$HOME/.cache/pyjobset}"
stamp="$(cat "$tools/go.mod" "$tools/go.sum" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
dest="$cache_root/tools-$stamp/bin"

if [[ "${1:-}" == "--print-bin-dir" ]]; then
    echo "$dest"
    exit 0
fi

binaries=(helm kubeconform)
up_to_date() {
    local b
    for b in "${binaries[@]}"; do
        [[ -x "$dest/$b" ]] || return 1
    done
}
if up_to_date; then
    echo "chart tools up to date in $dest"
    exit 0
fi

command -v go >/dev/null || { echo "build_tools.sh: the Go toolchain (go >= 1.26) is required" >&2; exit 1; }
export GOFLAGS="-trimpath -mod=readonly -buildvcs=false"
export CGO_ENABLED=0
export GOTOOLCHAIN=local

mkdir -p "$cache_root"
work="$(mktemp -d "$cache_root/.build-tools-XXXXXX")"
trap 'rm -rf "$work"' EXIT

helm_version="$(cd "$tools" && go list -m -f '{{.Version}}' helm.sh/helm/v3)"
kubeconform_version="$(cd "$tools" && go list -m -f '{{.Version}}' github.com/yannh/kubeconform)"
start=$SECONDS
echo "building helm $helm_version and kubeconform $kubeconform_version"
# helm reports its version from these variables; unset, `helm version` would say v3 without the patch level.
(cd "$tools" && go build -p "${PYJOBSET_BUILD_JOBS:-2}" -o "$work/helm" \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version" helm.sh/helm/v3/cmd/helm)
(cd "$tools" && go build -p "${PYJOBSET_BUILD_JOBS:-2}" -o "$work/kubeconform" \
    -ldflags "-s -w -X main.version=$kubeconform_version" github.com/yannh/kubeconform/cmd/kubeconform)
for b in "${binaries[@]}"; do
    [[ -x "$work/$b" ]] || { echo "build_tools.sh: $b was not produced" >&2; exit 1; }
done
chmod 755 "$work"
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$work" "$dest"
trap - EXIT
echo "built chart tools in $dest in $((SECONDS - start))s"
