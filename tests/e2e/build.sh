#!/usr/bin/env bash
# Build the real control-plane binaries from the pinned Go modules in cluster/.
#
# Produces kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd and kwok
# in ${PYJOBSET_CACHE:-$HOME/.cache/pyjobset}/k8s-<K8S_VERSION>/bin (outside the repository,
# so the result survives fresh clones on the same machine). Idempotent: when every binary is
# present and the stamp (a hash of versions.env and all go.mod/go.sum files) matches, it does
# nothing. The Go module and build caches stay in their default locations so later builds
# on the same machine are warm.
#
# Usage: tests/e2e/build.sh [--print-bin-dir | --print-stamp]
# Env:   PYJOBSET_CACHE (cache root), PYJOBSET_BUILD_JOBS (go build -p, default 2).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cluster="$here/cluster"
# shellcheck source=cluster/versions.env
source "$cluster/versions.env"

cache_root="${PYJOBSET_CACHE:-$HOME/.cache/pyjobset}"
dest="$cache_root/k8s-$K8S_VERSION/bin"

if [[ "${1:-}" == "--print-bin-dir" ]]; then
    echo "$dest"
    exit 0
fi

binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok)
stamp="$(cd "$cluster" && cat versions.env */go.mod */go.sum | sha256sum | cut -d' ' -f1)"
if [[ "${1:-}" == "--print-stamp" ]]; then
    echo "$stamp"
    exit 0
fi

up_to_date() {
    [[ -f "$dest/.stamp" && "$(cat "$dest/.stamp")" == "$stamp" ]] || return 1
    local b
    for b in "${binaries[@]}"; do
        [[ -x "$dest/$b" ]] || return 1
    done
}

if up_to_date; then
    echo "control-plane binaries up to date in $dest"
    exit 0
fi

command -v go >/dev/null || { echo "build.sh: the Go toolchain (go >= 1.26) is required" >&2; exit 1; }

jobs="${PYJOBSET_BUILD_JOBS:-2}"
export GOFLAGS="-trimpath -mod=readonly -buildvcs=false"
export CGO_ENABLED=0
# Never let a go.mod 'toolchain' line download another Go toolchain behind our back.
export GOTOOLCHAIN=local

mkdir -p "$cache_root"
work="$(mktemp -d "$cache_root/.build-XXXXXX")"
trap 'rm -rf "$work"' EXIT

k8s_semver="${K8S_VERSION#v}"
k8s_major="${k8s_semver%%.*}"
k8s_minor="${k8s_semver#*.}"; k8s_minor="${k8s_minor%%.*}"
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    k8s_ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$k8s_major"
    k8s_ldflags+=" -X $pkg.gitMinor=$k8s_minor -X $pkg.gitTreeState=clean"
done

start=$SECONDS
echo "building Kubernetes $K8S_VERSION (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl)"
(cd "$cluster/kubernetes" && go build -p "$jobs" -ldflags "$k8s_ldflags" -o "$work/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl)
echo "building etcd $ETCD_VERSION"
(cd "$cluster/etcd" && go build -p "$jobs" -ldflags "-s -w" -o "$work/etcd" go.etcd.io/etcd/server/v3)
echo "building kwok $KWOK_VERSION"
(cd "$cluster/kwok" && go build -p "$jobs" \
    -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" \
    -o "$work/kwok" sigs.k8s.io/kwok/cmd/kwok)

for b in "${binaries[@]}"; do
    [[ -x "$work/$b" ]] || { echo "build.sh: $b was not produced" >&2; exit 1; }
done
chmod 755 "$work"
echo "$stamp" > "$work/.stamp"
rm -rf "$dest.old"
[[ -d "$dest" ]] && mv "$dest" "$dest.old"
mkdir -p "$(dirname "$dest")"
mv "$work" "$dest"
rm -rf "$dest.old"
trap - EXIT
echo "built control-plane binaries in $dest in $((SECONDS - start))s"
