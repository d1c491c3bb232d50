#!/usr/bin/env bash
# The e2e tier in one command: build (or reuse) the real control-plane binaries, start the plane, install deploy/
# with kubectl, run the installed controller's pod (tests/e2e/kubelet.py plays its kubelet; kube-apiserver calls
# the installed admission webhooks through the webhook Service), run the suites against it, and stop everything
# (also on failure or Ctrl-C).
#
# Everything after the build runs in a network and mount namespace of its own (unshare --net --mount, root or
# CAP_SYS_ADMIN needed): its loopback, the pod's network namespace and the 10.200.x.y addresses between them exist
# only there and vanish with the run. Without that privilege the script falls back to the controller as a plain
# process with the installed identity and admission off (and fails when CI=true).
#
# Usage: tests/e2e/run.sh [pytest options] [paths] (default paths: tests/contract tests/conformance tests/e2e)
# Env:   PYTHON (default .venv/bin/python), PYJOBSET_E2E_NODES (default 4),
#        PYJOBSET_E2E_CONTROLLER=0 to skip installing/starting the controller,
#        PYJOBSET_E2E_ADMISSION=0 to run the controller as a plain process with admission off (no namespaces),
#        PYJOBSET_E2E_WORKLOAD_SCHEDULING=0 to start the plane without the workload-aware scheduling gates and API
#        (harness --no-workload-scheduling; conformance 117-119 then fail, as PYJOBSET_E2E_REQUIRE=1 is set),
#        PYJOBSET_E2E_TRAINER=0 to leave out Kubeflow Trainer (built by tests/e2e/ecosystem/build.sh trainer).
#        PYJOBSET_E2E_KUEUE=0 not to build the real Kueue (tests/e2e/ecosystem/build.sh kueue; tests/e2e/test_kueue.py
#        then skips, even in CI).
# Exports to pytest: PYJOBSET_CONTRACT_KUBECONFIG and PYJOBSET_KUBECTL (API contract suite), PYJOBSET_KUBECONFIG and
#        PYJOBSET_EXTERNAL_CONTROLLER=1 (conformance), PYJOBSET_E2E_KUBECONFIG and PYJOBSET_E2E_REQUIRE=1 (e2e),
#        PYJOBSET_E2E_ADMISSION=1 when the installed webhooks are in the path.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"
python="${PYTHON:-$repo/.venv/bin/python}"

if [[ -z "${PYJOBSET_E2E_NETNS:-}" ]]; then
    "$here/build.sh"
    # helm and kubeconform for the chart tests (tests/e2e/test_chart.py), which fail in CI when these are missing.
    "$here/build_tools.sh"
    # Kubeflow Trainer v2's manager for tests/e2e/test_trainer.py (PYJOBSET_E2E_TRAINER=0 leaves it out).
    [[ "${PYJOBSET_E2E_TRAINER:-1}" != "1" ]] || "$here/ecosystem/build.sh" trainer
    # The real Kueue, whose pod the kubelet below runs in kueue-system once tests/e2e/test_kueue.py installs it.
    if [[ "${PYJOBSET_E2E_KUEUE:-1}" == "1" ]]; then
        "$here/ecosystem/build.sh" kueue
    fi
    if [[ "${PYJOBSET_E2E_CONTROLLER:-1}" == "1" && "${PYJOBSET_E2E_ADMISSION:-1}" == "1" ]]; then
        if unshare --net --mount true 2>/dev/null; then
            exec unshare --net --mount --propagation private env PYJOBSET_E2E_NETNS=1 "$0" "$@"
        fi
        if [[ "${CI:-}" == "true" ]]; then
            echo "run.sh: cannot create network/mount namespaces (run as root or with CAP_SYS_ADMIN)" >&2
            exit 1
        fi
        echo "run.sh: cannot create network/mount namespaces: running the controller without admission" >&2
        export PYJOBSET_E2E_ADMISSION=0
    fi
else
    # Inside our own namespaces: a private /run (the pod's netns and ServiceAccount mount live there) and loopback.
    mount -t tmpfs -o mode=0755 pyjobset-run /run
    ip link set lo up
fi
bin="$("$here/build.sh" --print-bin-dir)"
kubectl=("$bin/kubectl")

workdir="$(mktemp -d "${TMPDIR:-/tmp}/pyjobset-e2e-XXXXXX")"
controller_pid=""
kubelet_pid=""
stop_controller() {
    if [[ -n "$kubelet_pid" ]]; then
        kill -TERM "$kubelet_pid" 2>/dev/null || true
        wait "$kubelet_pid" 2>/dev/null || true
        kubelet_pid=""
        # The installed webhooks have no server any more (failurePolicy Fail would refuse every JobSet).
        "${kubectl[@]}" --kubeconfig "$admin" delete --ignore-not-found \
            validatingwebhookconfiguration/jobset-validating-webhook-configuration \
            mutatingwebhookconfiguration/jobset-mutating-webhook-configuration >/dev/null || true
        "${kubectl[@]}" --kubeconfig "$admin" delete --ignore-not-found \
            validatingwebhookconfiguration/validator.trainer.kubeflow.org >/dev/null || true
        # Kueue's too (its pod ran in the same kubelet), should a Kueue test have left them behind.
        "${kubectl[@]}" --kubeconfig "$admin" delete --ignore-not-found \
            validatingwebhookconfiguration/kueue-validating-webhook-configuration \
            mutatingwebhookconfiguration/kueue-mutating-webhook-configuration \
            apiservice/v1beta1.visibility.kueue.x-k8s.io apiservice/v1beta2.visibility.kueue.x-k8s.io >/dev/null || true
    fi
    if [[ -n "$controller_pid" ]]; then
        kill -TERM "$controller_pid" 2>/dev/null || true
        wait "$controller_pid" 2>/dev/null || true
        controller_pid=""
    fi
}
cleanup() {
    local rc=$?
    if [[ $rc -ne 0 && -d "$workdir/logs" ]]; then
        echo "component logs: $workdir/logs (removed now; the last lines follow)" >&2
        tail -n 30 "$workdir"/logs/*.log >&2 || true
    fi
    stop_controller
    "$python" -m tests.e2e.harness stop --workdir "$workdir" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

was_flag="--workload-scheduling"
if [[ "${PYJOBSET_E2E_WORKLOAD_SCHEDULING:-1}" == "0" ]]; then
    was_flag="--no-workload-scheduling"
fi
"$python" -m tests.e2e.harness start --detach --workdir "$workdir" --nodes "${PYJOBSET_E2E_NODES:-4}" "$was_flag"
admin="$workdir/admin.kubeconfig"

if [[ "${PYJOBSET_E2E_CONTROLLER:-1}" == "1" && -n "${PYJOBSET_E2E_NETNS:-}" ]]; then
    # Install as a cluster does; the real control plane creates the pod, the kubelet stand-in runs it.
    "${kubectl[@]}" --kubeconfig "$admin" apply --server-side -k deploy/ >/dev/null
    "${kubectl[@]}" --kubeconfig "$admin" wait --for=condition=Established --timeout=60s \
        crd/jobsets.jobset.x-k8s.io >/dev/null
    # Further namespaces whose pods the kubelet runs, each with the binary standing in for its image.
    kubelet_namespaces=()
    if [[ "${PYJOBSET_E2E_KUEUE:-1}" == "1" ]]; then
        kueue_bin="$("$here/ecosystem/build.sh" kueue --print-bin)"
        kubelet_namespaces+=(--namespace "kueue-system=$kueue_bin")
        export PYJOBSET_E2E_KUEUE_BIN="$kueue_bin"  # tests/e2e/test_kueue.py: the kubelet runs Kueue's pod
    fi
    if [[ "${PYJOBSET_E2E_TRAINER:-1}" == "1" ]]; then
        # tests/e2e/test_trainer.py installs Trainer's manifests; the kubelet runs its manager's pod with this binary.
        PYJOBSET_E2E_TRAINER_BIN="$("$here/ecosystem/build.sh" trainer --print-bin)"
        export PYJOBSET_E2E_TRAINER_BIN
        kubelet_namespaces+=(--namespace "kubeflow-system=$PYJOBSET_E2E_TRAINER_BIN")
    fi
    "$python" -m tests.e2e.kubelet run --kubeconfig "$admin" --workdir "$workdir/kubelet" \
        --log "$workdir/logs/controller.log" "${kubelet_namespaces[@]}" >"$workdir/logs/kubelet.log" 2>&1 &
    kubelet_pid=$!
    "${kubectl[@]}" --kubeconfig "$admin" -n jobset-system wait --for=condition=Available --timeout=180s \
        deployment/jobset-controller-manager >/dev/null
    "$python" -m tests.e2e.kubelet wait-admission --kubeconfig "$admin" >/dev/null
    export PYJOBSET_EXTERNAL_CONTROLLER=1 PYJOBSET_E2E_ADMISSION=1
    echo "controller installed from deploy/ and running (log $workdir/logs/controller.log); admission on"
elif [[ "${PYJOBSET_E2E_CONTROLLER:-1}" == "1" ]]; then
    "${kubectl[@]}" --kubeconfig "$admin" apply --server-side -f deploy/crd/ >/dev/null
    "$python" - "$admin" "$workdir/controller" <<'PY'
import sys
from pathlib import Path
from tests.e2e.harness import ControlPlane, installed_identity
installed_identity(ControlPlane.attach(Path(sys.argv[1])), Path(sys.argv[2]))
PY
    "$python" -m controller.cli run --kubeconfig "$workdir/controller/controller.kubeconfig" \
        --metrics-bind-address 0 --health-probe-bind-address 127.0.0.1:0 --webhooks=false \
        >"$workdir/logs/controller.log" 2>&1 &
    controller_pid=$!
    export PYJOBSET_EXTERNAL_CONTROLLER=1
    echo "controller running with the installed identity, admission off (pid $controller_pid)"
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
    # tests/unit/api/test_crdgen.py: its checks of the generated CRD against a real kube-apiserver skip elsewhere.
    for suite in tests/contract tests/conformance tests/e2e tests/unit/api/test_crdgen.py; do
        # A suite directory holding no tests yet would make pytest exit 5 ("no tests collected").
        if [[ -f "$suite" ]] || compgen -G "$suite/test_*.py" >/dev/null; then
            set -- "$@" "$suite"
        fi
    done
fi
status=0
"$python" -m pytest "$@" || status=$?
# Tests that run controllers of their own (credential rotation, chaos, two replicas, ...) skip while ours runs:
# once the default suites are done, stop it and run them, so that CI never leaves them skipped.
if [[ $has_path -eq 0 && -n "$controller_pid$kubelet_pid" ]]; then
    stop_controller
    unset PYJOBSET_EXTERNAL_CONTROLLER PYJOBSET_E2E_ADMISSION
    echo "==> e2e tests that start their own controller"
    "$python" -m pytest "${opts[@]}" tests/e2e/test_credentials.py tests/e2e/test_chaos.py \
        tests/e2e/test_replicas.py tests/e2e/test_scale_smoke.py tests/e2e/test_upgrade.py \
        tests/e2e/test_chart_install.py || status=$?

    # The feature-gated conformance scenarios (RestartJob, ElasticJobSet, InPlaceRestart) skip against a controller
    # started with the default gates: run them once more against one with every gate on, with the installed
    # identity and admission off (the installed webhooks are gone with their pod).
    gates="RestartJob=true,ElasticJobSet=true,InPlaceRestart=true"
    printf '%s\n' "apiVersion: config.jobset.x-k8s.io/v1alpha1" "kind: Configuration" "featureGates:" \
        "  RestartJob: true" "  ElasticJobSet: true" "  InPlaceRestart: true" >"$workdir/gated-config.yaml"
    "$python" - "$admin" "$workdir/gated" <<'PY'
import sys
from pathlib import Path
from tests.e2e.harness import ControlPlane, installed_identity
installed_identity(ControlPlane.attach(Path(sys.argv[1])), Path(sys.argv[2]))
PY
    "$python" -m controller.cli run --kubeconfig "$workdir/gated/controller.kubeconfig" \
        --config "$workdir/gated-config.yaml" --leader-elect=false --webhooks=false \
        --metrics-bind-address 0 --health-probe-bind-address 127.0.0.1:0 \
        >"$workdir/logs/controller-gated.log" 2>&1 &
    controller_pid=$!
    echo "==> feature-gated conformance scenarios against a controller with $gates (pid $controller_pid)"
    PYJOBSET_EXTERNAL_CONTROLLER=1 PYJOBSET_FEATURE_GATES="$gates" \
        "$python" -m pytest "${opts[@]}" -m gates tests/conformance || status=$?
    stop_controller
fi
exit "$status"
