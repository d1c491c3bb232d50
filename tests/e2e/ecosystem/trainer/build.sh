#!/usr/bin/env bash
# Build the Kubeflow Trainer v2 controller manager from the pinned Go module in this directory.
#
# Produces trainer-controller-manager in ${PYJOBSET_CACHE:-$HOME/.cache/pyjobset}/trainer-<TRAINER_VERSION>/bin
# (outside the repository, like the control plane of ../../build.sh). Idempotent: nothing to do when the binary
# is there and the stamp (a hash of go.mod and go.sum) matches. The Go module and build caches stay in their
# default places, so a second build on the same machine is warm.
#
# Usage: build.sh [--print-bin | --print-module-dir]
#   --print-bin         the path of the binary (built or not)
#   --print-module-dir  the module's source directory in the Go module cache (its manifests/ are installed by
#                       tests/e2e/test_trainer.py; downloaded when missing)
# Env:   PYJOBSET_CACHE (cache root), PYJOBSET_BUILD_JOBS (go build -p, default 2).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
module="github.com/kubeflow/trainer/v2"
version="$(awk -v m="$module" '$1 == "require" && $2 == m { print $3 } $1 == m { print $2 }' "$here/go.mod")"
[[ -n "$version" ]] || { echo "build.sh: no version of $module in $here/go.mod" >&2; exit 1; }
cache_root="${PYJOBSET_CACHE:-$HOME/.cache/pyjobset}"
dest="$cache_root/trainer-$version/bin"
bin="$dest/trainer-controller-manager"

export GOFLAGS="-trimpath -mod=readonly -buildvcs=false"
export CGO_ENABLED=0
# Never let a go.mod 'toolchain' line download another Go toolchain behind our back.
export GOTOOLCHAIN=local

case "${1:-}" in
    --print-bin) echo "$bin"; exit 0 ;;
    --print-module-dir)
        command -v go >/dev/null || { echo "build.sh: the Go toolchain (go >= 1.26) is required" >&2; exit 1; }
        (cd "$here" && go mod download -json "$module@$version") |
            sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p'
        exit 0 ;;
    "") ;;
    *) echo "usage: build.sh [--print-bin | --print-module-dir]" >&2; exit 2 ;;
esac

stamp="$(cat "$here/go.mod" "$here/go.sum" | sha256sum | cut -d' ' -f1)"
if [[ -x "$bin" && -f "$dest/.stamp" && "$(cat "$dest/.stamp")" == "$stamp" ]]; then
    echo "trainer-controller-manager $version up to date in $dest"
    exit 0
fi
command -v go >/dev/null || { echo "build.sh: the Go toolchain (go >= 1.26) is required" >&2; exit 1; }

mkdir -p "$cache_root"
work="$(mktemp -d "$cache_root/.build-trainer-XXXXXX")"
trap 'rm -rf "$work"' EXIT
start=$SECONDS
echo "building Kubeflow Trainer $version (trainer-controller-manager)"
(cd "$here" && go build -p "${PYJOBSET_BUILD_JOBS:-2}" -ldflags "-s -w" -o "$work/trainer-controller-manager" \
    "$module/cmd/trainer-controller-manager")
echo "$stamp" >"$work/.stamp"
chmod 755 "$work"
rm -rf "$dest.old"
[[ -d "$dest" ]] && mv "$dest" "$dest.old"
mkdir -p "$(dirname "$dest")"
mv "$work" "$dest"
rm -rf "$dest.old"
trap - EXIT
echo "built trainer-controller-manager $version in $dest in $((SECONDS - start))s"
