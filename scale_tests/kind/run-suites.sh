#!/usr/bin/env bash
# Run the API contract, conformance and scale suites against the kind + KWOK cluster from up.sh, with the
# controller as a separate process bound to exactly deploy/rbac/ (as in tests/e2e/run.sh).
#
# Usage: scale_tests/kind/run-suites.sh [pytest args...]   (default: tests/contract tests/conformance)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"
python="${PYTHON:-$repo/.venv/bin/python}"
kubeconfig="${KUBECONFIG_OUT:-$HOME/.kube/pyjobset-kind.yaml}"
work="$(mktemp -d)"
controller_pid=""
cleanup() {
    [[ -n "$controller_pid" ]] && kill -TERM "$controller_pid" 2>/dev/null && wait "$controller_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$python" - "$kubeconfig" "$work/controller.kubeconfig" <<'PY'
import sys
from pathlib import Path
from tests.e2e.harness import ControlPlane, rbac_manifests
plane = ControlPlane.attach(Path(sys.argv[1]))
plane.service_account_kubeconfig("jobset-system", "pyjobset-e2e", rbac_manifests(Path("deploy/rbac")), Path(sys.argv[2]))
PY
"$python" -m controller.cli run --kubeconfig "$work/controller.kubeconfig" \
    --metrics-bind-address 0 --health-probe-bind-address 127.0.0.1:0 --webhooks=false >"$work/controller.log" 2>&1 &
controller_pid=$!

export PYJOBSET_CONTRACT_KUBECONFIG="$kubeconfig" PYJOBSET_KUBECONFIG="$kubeconfig" PYJOBSET_EXTERNAL_CONTROLLER=1
[[ $# -eq 0 ]] && set -- tests/contract tests/conformance
"$python" -m pytest "$@"
