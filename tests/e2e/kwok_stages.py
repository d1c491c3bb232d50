"""KWOK Stage definitions implementing the simulated-cluster annotation contract on the real control plane.

The contract (``docs/design/simulated-cluster.md``, "the annotation contract") is honoured by kubesim's
kubelet emulation and, on the real control plane, by these Stages, which KWOK plays against pods and nodes bound to
its fake nodes. This module is the single source of the Stage objects: ``python -m tests.e2e.kwok_stages`` prints
them as a multi-document YAML file, committed as ``tests/e2e/stages/sim-contract.yaml`` (the harness and the kind
scripts load that file; a unit test keeps it equal to this module's output).

Invariants:
- For any object at most one Stage matches at a time (KWOK picks a random Stage among several matches), so every
  selector below is written to be mutually exclusive with its siblings.
- Deadlines are absolute: delays are given as RFC 3339 instants computed from the object (binding time, container
  start time), so a pod update while a delay is pending (KWOK then re-plans from scratch) never restarts the clock.
- Only the kubelet's share of the lifecycle is emulated. Eviction of pods from a failed node is done by the real
  taint-eviction controller: the failed node gets the NoExecute taint ``sim.pyjobset.io/failed``, so its pods are
  deleted with a ``DisruptionTarget`` condition (reason ``DeletionByTaintManager``), exactly as after an eviction.

Contract details decided here (kubesim must agree; see tests/e2e/README.md):
- ``start-seconds`` counts from the PodScheduled transition (binding); ``run-seconds`` from the container start.
- A non-zero exit with ``restartPolicy`` OnFailure/Always restarts the container as the kubelet does: restartCount
  + 1, lastState terminated, ``waiting: CrashLoopBackOff`` for 10 s doubling up to 300 s, then running again;
  with Never the pod fails. ``exit-now`` ends the pod (Succeeded on 0, else Failed) whatever its restart policy,
  from any non-terminal phase, as kubesim does.
- A deleted running pod keeps running for ``termination-seconds`` (0 when absent) after its deletion began.
- A deleted pod that is not terminal turns Failed (containers terminated, exit code 137, reason Error) and is then
  removed with grace period 0; finalizers are left to their owners (the Job controller's tracking finalizer).
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

PREFIX = "sim.pyjobset.io/"
FAILED_TAINT = PREFIX + "failed"

Stage = dict[str, Any]

# --- jq building blocks (KWOK evaluates selector keys and delay expressions with gojq) --------------------------


def _ann(name: str) -> str:
    """jq: the value of the contract annotation ``name`` (null when absent)."""
    return '(.metadata.annotations // {})["' + PREFIX + name + '"]'


# An equality-based label selector over the pod's own labels: "k=v", "k==v", "k!=v", "k" (exists), "!k" (absent),
# joined by commas. An empty or missing selector matches nothing (unlike a Kubernetes empty selector).
FAIL_WHEN_MATCHES = (
    "(.metadata.labels // {}) as $l"
    f' | [({_ann("fail-when")} // "") | splits(",") | gsub("^\\\\s+|\\\\s+$"; "") | select(length > 0)]'
    " | length > 0 and all(.[];"
    ' if test("!=") then (split("!=") | map(gsub("^\\\\s+|\\\\s+$"; ""))) as $p | $l[$p[0]] != $p[1]'
    ' elif test("=") then (sub("=="; "=") | split("=") | map(gsub("^\\\\s+|\\\\s+$"; ""))) as $p'
    " | $l[$p[0]] == $p[1]"
    ' elif startswith("!") then ($l | has(.[1:]) | not)'
    " else ($l | has(.)) end)"
)


def _code(name: str) -> str:
    """jq: the integer in annotation ``name`` (0 when missing or malformed)."""
    return f'((({_ann(name)} // "0") | tonumber?) // 0)'


EXIT_CODE = _code("exit-code")
NEVER_RESTARTS = '(.spec.restartPolicy == "Never")'


def _rfc3339(epoch_seconds: str) -> str:
    """jq: format a (possibly fractional) Unix time as an RFC 3339 instant with milliseconds."""
    return (
        f"({epoch_seconds})"
        ' | (floor | strftime("%Y-%m-%dT%H:%M:%S")) + "."'
        ' + ("00" + ((. - floor) * 1000 | floor | tostring))[-3:] + "Z"'
    )


def _seconds(annotation: str) -> str:
    return f'((({_ann(annotation)} // "0") | tonumber?) // 0)'


# The binding time (PodScheduled turned True), or the creation time for pods created with a nodeName.
BOUND_AT = (
    '([.status.conditions[]? | select(.type == "PodScheduled" and .status == "True") | .lastTransitionTime]'
    " + [.metadata.creationTimestamp])[0]"
)
RUNNING_SINCE = ".status.containerStatuses[0].state.running.startedAt"
# Crash-loop back-off as the kubelet's: 10 s after the first restart, doubling, capped at 300 s.
CRASH_BACKOFF = "([300, 10 * pow(2; ([(.status.containerStatuses[0].restartCount // 1) - 1, 0] | max))] | min)"
CRASHED_AT = "(.status.containerStatuses[0].lastState.terminated.finishedAt // .status.startTime)"

START_AT = _rfc3339(f"({BOUND_AT} | fromdate) + {_seconds('start-seconds')}")
EXIT_AT = _rfc3339(f"({RUNNING_SINCE} | fromdate) + {_seconds('run-seconds')}")
RESUME_AT = _rfc3339(f"({CRASHED_AT} | fromdate) + {CRASH_BACKOFF}")
# A running pod being deleted stops ``termination-seconds`` after its deletion began (deletionTimestamp minus the
# grace period), at once without the annotation.
DELETION_BEGAN = "((.metadata.deletionTimestamp | fromdate) - (.metadata.deletionGracePeriodSeconds // 0))"
KILLED_AT = _rfc3339(f"{DELETION_BEGAN} + {_seconds('termination-seconds')}")


def _expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    expr: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        expr["values"] = list(values)
    return expr


def _is_true(jq: str) -> dict[str, Any]:
    return _expr(jq, "In", "true")


def _is_false(jq: str) -> dict[str, Any]:
    return _expr(jq, "In", "false")


NOT_DELETED = _expr(".metadata.deletionTimestamp", "DoesNotExist")
DELETED = _expr(".metadata.deletionTimestamp", "Exists")
RUNNING = _expr(".status.phase", "In", "Running")


# Pods of these namespaces are installed controllers' (ours, and the real Kueue's and Kubeflow Trainer's that the
# ecosystem tests install): the e2e kubelet (``tests/e2e/kubelet.py``) runs them as real processes and reports their
# status, so no Stage may touch them.
KUBELET_NAMESPACES = ("jobset-system", "kueue-system", "kubeflow-system")
NOT_KUBELET_RUN = _expr(".metadata.namespace", "NotIn", *KUBELET_NAMESPACES)


def _stage(kind: str, name: str, exprs: list[dict[str, Any]], steps: list[dict[str, Any]], at: str | None) -> Stage:
    if kind == "Pod":
        exprs = [NOT_KUBELET_RUN, *exprs]
    spec: dict[str, Any] = {
        "resourceRef": {"apiGroup": "v1", "kind": kind},
        "selector": {"matchExpressions": exprs},
        "steps": steps,
    }
    if at is not None:
        spec["delay"] = {"durationMilliseconds": 0, "durationFrom": {"expressionFrom": at}}
    return {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage", "metadata": {"name": name}, "spec": spec}


def _status_patch(template: str) -> dict[str, Any]:
    return {"patch": {"subresource": "status", "root": "status", "type": "strategic", "template": template}}


# --- Go templates (KWOK renders them with sprig; the data is the object as JSON) ------------------------------

_POD_IPS = """\
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) \
( or .metadata.namespace "" ) | Quote }}
"""

POD_CREATE = (
    """\
{{ $now := Now }}
conditions:
- {type: PodReadyToStartContainers, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: Ready, status: "False", reason: ContainersNotReady, lastTransitionTime: {{ $now | Quote }}}
- {type: ContainersReady, status: "False", reason: ContainersNotReady, lastTransitionTime: {{ $now | Quote }}}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: false
  started: false
  restartCount: 0
  state: {waiting: {reason: ContainerCreating}}
{{ end }}
"""
    + _POD_IPS
    + """\
phase: Pending
startTime: {{ $now | Quote }}
"""
)

POD_START = """\
{{ $now := Now }}
conditions:
- {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: Ready, status: "True", reason: "", lastTransitionTime: {{ $now | Quote }}}
- {type: ContainersReady, status: "True", reason: "", lastTransitionTime: {{ $now | Quote }}}
{{ with .spec.initContainers }}
initContainerStatuses:
{{ range . }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: true
  started: false
  restartCount: 0
  state: {terminated: {exitCode: 0, reason: Completed, startedAt: {{ $now | Quote }}, finishedAt: {{ $now | Quote }}}}
{{ end }}
{{ end }}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: true
  started: true
  restartCount: 0
  state: {running: {startedAt: {{ $now | Quote }}}}
{{ end }}
phase: Running
"""

# {{ $code }} is defined by the prefix each stage puts in front of these templates.
_TERMINATE = """\
{{ $now := Now }}
{{ $root := . }}
{{ $reason := "Error" }}{{ $podReason := "PodFailed" }}\
{{ if eq $code 0 }}{{ $reason = "Completed" }}{{ $podReason = "PodCompleted" }}{{ end }}
conditions:
- {type: Ready, status: "False", reason: {{ $podReason }}, lastTransitionTime: {{ $now | Quote }}}
- {type: ContainersReady, status: "False", reason: {{ $podReason }}, lastTransitionTime: {{ $now | Quote }}}
containerStatuses:
{{ range $i, $c := .spec.containers }}
{{ $old := dict }}{{ if lt $i (len (or $root.status.containerStatuses list)) }}\
{{ $old = index $root.status.containerStatuses $i }}{{ end }}
{{ $started := $now }}{{ with $old.state }}{{ with .running }}{{ $started = .startedAt }}{{ end }}{{ end }}
- name: {{ $c.name | Quote }}
  image: {{ $c.image | Quote }}
  ready: false
  started: false
  restartCount: {{ or $old.restartCount 0 }}
  lastState: {{ toJson (or $old.lastState dict) }}
  state:
    terminated:
      exitCode: {{ $code }}
      reason: {{ $reason }}
      startedAt: {{ $started | Quote }}
      finishedAt: {{ $now | Quote }}
{{ end }}
phase: {{ if eq $code 0 }}Succeeded{{ else }}Failed{{ end }}
"""

# A failed container under restartPolicy OnFailure/Always waits out the crash-loop back-off (sim-pod-crash-resume).
_RESTART = """\
{{ $now := Now }}
{{ $root := . }}
conditions:
- {type: Ready, status: "False", reason: ContainersNotReady, lastTransitionTime: {{ $now | Quote }}}
- {type: ContainersReady, status: "False", reason: ContainersNotReady, lastTransitionTime: {{ $now | Quote }}}
containerStatuses:
{{ range $i, $c := .spec.containers }}
{{ $old := dict }}{{ if lt $i (len (or $root.status.containerStatuses list)) }}\
{{ $old = index $root.status.containerStatuses $i }}{{ end }}
{{ $started := $now }}{{ with $old.state }}{{ with .running }}{{ $started = .startedAt }}{{ end }}{{ end }}
- name: {{ $c.name | Quote }}
  image: {{ $c.image | Quote }}
  ready: false
  started: false
  restartCount: {{ add1 (or $old.restartCount 0) }}
  lastState:
    terminated:
      exitCode: {{ $code }}
      reason: Error
      startedAt: {{ $started | Quote }}
      finishedAt: {{ $now | Quote }}
  state: {waiting: {reason: CrashLoopBackOff, message: back-off restarting failed container}}
{{ end }}
"""

_RESUME = """\
{{ $now := Now }}
{{ $root := . }}
conditions:
- {type: Ready, status: "True", reason: "", lastTransitionTime: {{ $now | Quote }}}
- {type: ContainersReady, status: "True", reason: "", lastTransitionTime: {{ $now | Quote }}}
containerStatuses:
{{ range $i, $c := .spec.containers }}
{{ $old := dict }}{{ if lt $i (len (or $root.status.containerStatuses list)) }}\
{{ $old = index $root.status.containerStatuses $i }}{{ end }}
- name: {{ $c.name | Quote }}
  image: {{ $c.image | Quote }}
  ready: true
  started: true
  restartCount: {{ or $old.restartCount 0 }}
  lastState: {{ toJson (or $old.lastState dict) }}
  state: {running: {startedAt: {{ $now | Quote }}}}
{{ end }}
"""


def _code_from(annotation: str) -> str:
    return '{{ $code := index (or .metadata.annotations dict) "' + PREFIX + annotation + '" | default "0" | atoi }}\n'


_CODE_ONE = "{{ $code := 1 }}\n"
_CODE_KILLED = "{{ $code := 137 }}\n"


def pod_stages() -> list[Stage]:
    no_exit_now = _expr(_ann("exit-now"), "DoesNotExist")
    container_running = _expr(RUNNING_SINCE, "Exists")
    live_exit = [NOT_DELETED, RUNNING, container_running, _expr(_ann("run-seconds"), "Exists"), no_exit_now]
    return [
        _stage(
            "Pod",
            "sim-pod-create",
            [
                NOT_DELETED,
                no_exit_now,
                _expr(".status.podIP", "DoesNotExist"),
                _expr(".status.phase", "NotIn", "Running", "Succeeded", "Failed"),
            ],
            [_status_patch(POD_CREATE)],
            None,
        ),
        _stage(
            "Pod",
            "sim-pod-start",
            [NOT_DELETED, no_exit_now, _expr(".status.podIP", "Exists"), _expr(".status.phase", "In", "Pending")],
            [_status_patch(POD_START)],
            START_AT,
        ),
        _stage(
            "Pod",
            "sim-pod-fail-when",
            [*live_exit, _is_true(FAIL_WHEN_MATCHES), _is_true(NEVER_RESTARTS)],
            [_status_patch(_CODE_ONE + _TERMINATE)],
            EXIT_AT,
        ),
        _stage(
            "Pod",
            "sim-pod-fail-when-restart",
            [*live_exit, _is_true(FAIL_WHEN_MATCHES), _is_false(NEVER_RESTARTS)],
            [_status_patch(_CODE_ONE + _RESTART)],
            EXIT_AT,
        ),
        _stage(
            "Pod",
            "sim-pod-exit",
            [*live_exit, _is_false(FAIL_WHEN_MATCHES), _is_true(f"{NEVER_RESTARTS} or {EXIT_CODE} == 0")],
            [_status_patch(_code_from("exit-code") + _TERMINATE)],
            EXIT_AT,
        ),
        _stage(
            "Pod",
            "sim-pod-exit-restart",
            [*live_exit, _is_false(FAIL_WHEN_MATCHES), _is_false(f"{NEVER_RESTARTS} or {EXIT_CODE} == 0")],
            [_status_patch(_code_from("exit-code") + _RESTART)],
            EXIT_AT,
        ),
        _stage(
            "Pod",
            "sim-pod-crash-resume",
            [
                NOT_DELETED,
                RUNNING,
                no_exit_now,
                _expr(".status.containerStatuses[0].state.waiting.reason", "In", "CrashLoopBackOff"),
            ],
            [_status_patch(_RESUME)],
            RESUME_AT,
        ),
        _stage(
            "Pod",
            "sim-pod-exit-now",
            [NOT_DELETED, _expr(_ann("exit-now"), "Exists"), _expr(".status.phase", "NotIn", "Succeeded", "Failed")],
            [_status_patch(_code_from("exit-now") + _TERMINATE)],
            None,
        ),
        _stage(
            "Pod",
            "sim-pod-killed",
            [DELETED, _expr(".status.phase", "NotIn", "Running", "Succeeded", "Failed")],
            [_status_patch(_CODE_KILLED + _TERMINATE)],
            None,
        ),
        _stage(
            "Pod",
            "sim-pod-killed-running",
            [DELETED, RUNNING],
            [_status_patch(_CODE_KILLED + _TERMINATE)],
            KILLED_AT,
        ),
        _stage(
            "Pod",
            "sim-pod-remove",
            [DELETED, _expr(".status.phase", "In", "Succeeded", "Failed")],
            [{"delete": True}],
            None,
        ),
    ]


# --- nodes ---------------------------------------------------------------------------------------------------

NODE_FAILED = f'({_ann("fail")} // "") == "true"'
HAS_FAILED_TAINT = f'any(.spec.taints[]?; .key == "{FAILED_TAINT}")'
READY = '([.status.conditions[]? | select(.type == "Ready") | .status] + [""])[0] == "True"'

NODE_HEALTHY_STATUS = """\
{{ $now := Now }}
{{ $since := or .metadata.creationTimestamp $now }}
conditions:
{{ range NodeConditions }}
- lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $since | Quote }}
  message: {{ .message | Quote }}
  reason: {{ .reason | Quote }}
  status: {{ .status | Quote }}
  type: {{ .type | Quote }}
{{ end }}
{{ if not .status.addresses }}
addresses:
{{ with NodeIP }}
- {address: {{ . | Quote }}, type: InternalIP}
{{ end }}
- {address: {{ .metadata.name | Quote }}, type: Hostname}
{{ end }}
{{ with NodePort }}
daemonEndpoints: {kubeletEndpoint: {Port: {{ . }}}}
{{ end }}
{{ $info := or .status.nodeInfo dict }}
{{ if not $info.kubeletVersion }}
nodeInfo:
  architecture: amd64
  bootID: ""
  containerRuntimeVersion: {{ printf "kwok-%s" Version | Quote }}
  kernelVersion: {{ printf "kwok-%s" Version | Quote }}
  kubeProxyVersion: {{ printf "kwok-%s" Version | Quote }}
  kubeletVersion: {{ printf "kwok-%s" Version | Quote }}
  machineID: ""
  operatingSystem: linux
  osImage: ""
  systemUUID: ""
{{ end }}
phase: Running
"""

NODE_FAILED_STATUS = """\
{{ $now := Now }}
conditions:
- lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $now | Quote }}
  message: "simulated node failure (sim.pyjobset.io/fail=true)"
  reason: KubeletNotReady
  status: "False"
  type: Ready
"""

_KEEP_OTHER_TAINTS = (
    "{{ $kept := list }}{{ range .spec.taints }}{{ if ne .key "
    + f'"{FAILED_TAINT}"'
    + " }}{{ $kept = append $kept . }}{{ end }}{{ end }}\n"
)
TAINT_FAILED = (
    _KEEP_OTHER_TAINTS
    + "{{ $kept = append $kept (dict "
    + f'"key" "{FAILED_TAINT}" "value" "true" "effect" "NoExecute"'
    + ") }}\ntaints: {{ toJson $kept }}\n"
)
UNTAINT_FAILED = _KEEP_OTHER_TAINTS + "taints: {{ toJson $kept }}\n"


def _spec_patch(template: str) -> dict[str, Any]:
    return {"patch": {"root": "spec", "type": "merge", "template": template}}


def node_stages() -> list[Stage]:
    return [
        _stage(
            "Node",
            "sim-node-initialize",
            [_is_false(NODE_FAILED), _is_false(HAS_FAILED_TAINT), _is_false(READY)],
            [_status_patch(NODE_HEALTHY_STATUS)],
            None,
        ),
        _stage(
            "Node",
            "sim-node-heartbeat",
            [_is_false(NODE_FAILED), _is_false(HAS_FAILED_TAINT), _is_true(READY)],
            [_status_patch(NODE_HEALTHY_STATUS)],
            None,
        ),
        _stage(
            "Node",
            "sim-node-fail",
            [_is_true(NODE_FAILED), _is_false(f"{HAS_FAILED_TAINT} and ({READY} | not)")],
            [_spec_patch(TAINT_FAILED), _status_patch(NODE_FAILED_STATUS)],
            None,
        ),
        _stage(
            "Node",
            "sim-node-recover",
            [_is_false(NODE_FAILED), _is_true(HAS_FAILED_TAINT)],
            [_spec_patch(UNTAINT_FAILED), _status_patch(NODE_HEALTHY_STATUS)],
            None,
        ),
    ]


def _with_heartbeat_delay(stages: list[Stage]) -> list[Stage]:
    # KWOK renews node Leases itself (--node-lease-duration-seconds); the status heartbeat can be rare.
    for stage in stages:
        if stage["metadata"]["name"] == "sim-node-heartbeat":
            stage["spec"]["delay"] = {"durationMilliseconds": 60_000, "jitterDurationMilliseconds": 90_000}
    return stages


def all_stages() -> list[Stage]:
    return _with_heartbeat_delay(node_stages()) + pod_stages()


HEADER = (
    "# Generated by `python -m tests.e2e.kwok_stages` from tests/e2e/kwok_stages.py; do not edit by hand.\n"
    "# KWOK Stages implementing the sim.pyjobset.io annotation contract (see tests/e2e/README.md).\n"
)


def render() -> str:
    return HEADER + yaml.safe_dump_all(all_stages(), sort_keys=False, width=120)


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
