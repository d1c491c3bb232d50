#!/usr/bin/env bash
# The e2e tier in one command: build (or reuse) the real control-plane binaries, start the plane, install the
# JobSet CRD, run the controller as its own process with a ServiceAccount bound to exactly deploy/rbac/, run the
# suites against it, and stop everything (also on failure or Ctrl-C).
#
# Usage: tests/e2e/run.sh [pytest options] [paths] (default paths: tests/contract tests/conformance tests/e2e)
# Env:   PYTHON (default .venv/bin/python), PYJOBSET_E2E_NODES (default 4),
#        PYJOBSET_E2E_CONTROLLER=0 to skip starting the controller process.
# Exports to pytest: PYJOBSET_CONTRACT_KUBECONFIG and PYJOBSET_KUBECTL (API contract suite), PYJOBSET_KUBECONFIG and
#        PYJOBSET_EXTERNAL_CONTROLLER=1 (conformance), PYJOBSET_E2E_KUBECONFIG and PYJOBSET_E2E_REQUIRE=1 (e2e).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"
python="${PYTHON:-$repo/.venv/bin/python}"

"$here/build.sh"
bin="$("$here/build.sh" --print-bin-dir)"
# helm and kubeconform for the chart tests (tests/e2e/test_chart.py), which fail in CI when these are missing.
"$here/build_tools.sh"

workdir="$(mktemp -d "${TMPDIR:-/tmp}/pyjobset-e2e-XXXXXX")"
controller_pid=""
cleanup() {
    if [[ -n "$controller_pid" ]]; then
        kill -TERM "$controller_pid" 2>/dev/null || true
        wait "$controller_pid" 2>/dev/null || true
    fi
    "$python" -m tests.e2e.harness stop --workdir "$workdir" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$python" -m tests.e2e.harness start --detach --workdir "$workdir" --nodes "${PYJOBSET_E2E_NODES:-4}"
admin="$workdir/admin.kubeconfig"

if [[ "${PYJOBSET_E2E_CONTROLLER:-1}" == "1" && -d deploy/rbac ]]; then
    "$bin/kubectl" --kubeconfig "$admin" apply --server-side -f deploy/crd/ >/dev/null
    "$python" - "$admin" "$workdir/controller.kubeconfig" <<'PY'
import sys
from pathlib import Path
from tests.e2e.harness import ControlPlane, rbac_manifests
plane = ControlPlane.attach(Path(sys.argv[1]))
plane.service_account_kubeconfig("jobset-system", "pyjobset-e2e", rbac_manifests(Path("deploy/rbac")), Path(sys.argv[2]))
PY
    "$python" -m controller.cli run --kubeconfig "$workdir/controller.kubeconfig" \
        --metrics-bind-address 0 --health-probe-bind-address 127.0.0.1:0 --webhooks=false \
        >"$workdir/logs/controller.log" 2>&1 &
    controller_pid=$!
    export PYJOBSET_EXTERNAL_CONTROLLER=1
    echo "controller running (pid $controller_pid, log $workdir/logs/controller.log)"
fi

export PYJOBSET_CONTRACT_KUBECONFIG="$admin"
export PYJOBSET_KUBECTL="$bin/kubectl"
export PYJOBSET_KUBECONFIG="$admin"
export PYJOBSET_E2E_KUBECONFIG="$admin"
export PYJOBSET_E2E_REQUIRE=1
# Options alone (e.g. "-q -x") still run the default suites; any path argument replaces them.
has_path=0
for arg in "$@"; do
    [[ "$arg" != -* && -e "${arg%%::*}" ]] && has_path=1
done
opts=("$@")
if [[ $has_path -eq 0 ]]; then
    for suite in tests/contract tests/conformance tests/e2e; do
        # A suite directory holding no tests yet would make pytest exit 5 ("no tests collected").
        if compgen -G "$suite/test_*.py" >/dev/null; then
            set -- "$@" "$suite"
        fi
    done
fi
status=0
"$python" -m pytest "$@" || status=$?
# Tests that run a controller of their own (credential rotation, ...) skip while ours runs: once the default
# suites are done, stop it and run them, so that CI never leaves them skipped.
if [[ $has_path -eq 0 && -n "$controller_pid" ]]; then
    kill -TERM "$controller_pid" 2>/dev/null || true
    wait "$controller_pid" 2>/dev/null || true
    controller_pid=""
    unset PYJOBSET_EXTERNAL_CONTROLLER
    echo "==> e2e tests that start their own controller"
    "$python" -m pytest "${opts[@]}" tests/e2e/test_credentials.py || status=$?
fi
if [[ $status -ne 0 ]]; then
    echo "component logs: $workdir/logs (kept until this script exits)" >&2
    tail -n 30 "$workdir"/logs/*.log >&2 || true
fi
exit "$status"
