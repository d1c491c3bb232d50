#!/usr/bin/env bash
# Create a kind cluster with KWOK fake nodes that honour the sim.pyjobset.io annotation contract, install the
# JobSet CRD, and print the kubeconfig path. Needs docker (or podman), kind and kubectl on PATH.
#
# Usage: scale_tests/kind/up.sh [--nodes N] [--gpus-per-node G] [--nodes-per-pool K]
# Env:   CLUSTER (default pyjobset), KIND_NODE_IMAGE (default kindest/node:v1.37.2 — use any kind image of a
#        current minor), KWOK_VERSION (default: tests/e2e/cluster/versions.env), PYTHON (default .venv/bin/python)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=../../tests/e2e/cluster/versions.env
source "$repo/tests/e2e/cluster/versions.env"
cluster="${CLUSTER:-pyjobset}"
image="${KIND_NODE_IMAGE:-kindest/node:$K8S_VERSION}"
kwok_version="${KWOK_VERSION:-v0.8.0}"
python="${PYTHON:-$repo/.venv/bin/python}"
kubeconfig="${KUBECONFIG_OUT:-$HOME/.kube/pyjobset-kind.yaml}"

for tool in kind kubectl; do
    command -v "$tool" >/dev/null || { echo "up.sh: $tool is required" >&2; exit 1; }
done

kind create cluster --name "$cluster" --image "$image" --kubeconfig "$kubeconfig" --wait 120s
k() { kubectl --kubeconfig "$kubeconfig" "$@"; }

# KWOK controller (CRDs, RBAC, Deployment) from the pinned release, with our configuration.
k apply -f "https://github.com/kubernetes-sigs/kwok/releases/download/${kwok_version}/kwok.yaml"
k -n kube-system create configmap kwok --from-file=kwok.yaml="$here/kwok-config.yaml" \
    --dry-run=client -o yaml | k apply -f -
k -n kube-system rollout restart deployment/kwok-controller
k -n kube-system rollout status deployment/kwok-controller --timeout=180s
k wait --for=condition=Established --timeout=60s crd/stages.kwok.x-k8s.io

# The Stages implementing the annotation contract (the same file the local e2e harness loads).
k apply -f "$repo/tests/e2e/stages/sim-contract.yaml"

# Fake nodes shaped like kubesim's (kind's own node keeps its control-plane NoSchedule taint, so test pods
# only land on fake nodes).
"$python" "$here/nodes.py" "$@" | k apply -f -
k wait --for=condition=Ready --timeout=120s node -l node.kubernetes.io/instance-type=sim-standard

k apply --server-side -f "$repo/deploy/crd/"
echo "kubeconfig: $kubeconfig"
