#!/usr/bin/env bash
# Build one ecosystem controller (Kueue, ...) for the e2e tier from the pinned Go module in <name>/.
#
# <name>/go.mod and go.sum pin the module and everything it builds with; <name>/build.env names the module, its
# version, the main package and the binary. The binary goes to ${PYJOBSET_CACHE:-$HOME/.cache/pyjobset}/
# <name>-<VERSION>/bin (outside the repository, like the control plane's). Idempotent: when the binary is present
# and the stamp (a hash of build.env, go.mod and go.sum) matches, it does nothing. Lean on purpose: one binary,
# CGO off, -trimpath, stripped; the module and build caches stay in their default places so later builds are warm.
#
# Usage: tests/e2e/ecosystem/build.sh NAME [--print-bin | --print-stamp]
# Env:   PYJOBSET_CACHE (cache root), PYJOBSET_BUILD_JOBS (go build -p, default 2).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
name="${1:?usage: build.sh NAME [--print-bin | --print-stamp]}"
dir="$here/$name"
[[ -f "$dir/build.env" && -f "$dir/go.mod" ]] || { echo "build.sh: no $dir/build.env and go.mod" >&2; exit 2; }
# shellcheck source=kueue/build.env
source "$dir/build.env"

cache_root="${PYJOBSET_CACHE:-$HOME/.cache/pyjobset}"
dest="$cache_root/$name-$VERSION/bin"
stamp="$(cd "$dir" && cat build.env go.mod go.sum | sha256sum | cut -d' ' -f1)"
case "${2:-}" in
    --print-bin) echo "$dest/$BINARY"; exit 0 ;;
    --print-stamp) echo "$stamp"; exit 0 ;;
    "") ;;
    *) echo "build.sh: unknown option ${2}" >&2; exit 2 ;;
esac

if [[ -x "$dest/$BINARY" && -f "$dest/.stamp" && "$(cat "$dest/.stamp")" == "$stamp" ]]; then
    echo "$name $VERSION up to date in $dest"
    exit 0
fi
command -v go >/dev/null || { echo "build.sh: the Go toolchain (go >= 1.26) is required" >&2; exit 1; }

export GOFLAGS="-trimpath -mod=readonly -buildvcs=false"
export CGO_ENABLED=0
export GOTOOLCHAIN=local  # never let a 'toolchain' line fetch another Go

mkdir -p "$cache_root"
work="$(mktemp -d "$cache_root/.build-$name-XXXXXX")"
trap 'rm -rf "$work"' EXIT
start=$SECONDS
echo "building $PACKAGE $VERSION"
(cd "$dir" && go build -p "${PYJOBSET_BUILD_JOBS:-2}" -ldflags "-s -w $VERSION_LDFLAGS" -o "$work/$BINARY" "$PACKAGE")
chmod 755 "$work"
echo "$stamp" >"$work/.stamp"
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$work" "$dest"
trap - EXIT
echo "built $name $VERSION in $dest in $((SECONDS - start))s"
