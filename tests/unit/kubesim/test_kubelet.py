"""Unit tests of the simulated kubelet's decision (``kubesim.cluster.kubeletsim``) and node status."""

from __future__ import annotations

from typing import Any

from kubesim.cluster.kubeletsim import decide, planned_exit_code
from kubesim.cluster.nodes import NodeShape, desired_node, make_node, node_ready
from kubesim.util.timefmt import rfc3339

JSON = dict[str, Any]
T0 = 1_800_000_000.0


def pod(annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None, **spec: Any) -> JSON:
    return {
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "uid": "u",
            "annotations": annotations or {},
            "labels": labels or {},
        },
        "spec": {"nodeName": "n", "restartPolicy": "Never", "containers": [{"name": "main", "image": "img"}], **spec},
        "status": {"phase": "Pending"},
    }


def step(p: JSON, now: float, node_failed: bool = False) -> tuple[JSON, float | None]:
    d = decide(p, node_failed=node_failed, now=now)
    if d.status is not None:
        p = dict(p, status=d.status)
    return p, d.wake_at


def cond(p: JSON, ctype: str) -> str | None:
    return next((c["status"] for c in p["status"].get("conditions", []) if c["type"] == ctype), None)


def test_default_pod_runs_and_stays_running() -> None:
    p, wake = step(pod(), T0)
    assert p["status"]["phase"] == "Running"
    assert cond(p, "Ready") == "True"
    cs = p["status"]["containerStatuses"][0]
    assert (cs["ready"], cs["started"]) == (True, True)
    assert wake is None
    assert decide(p, node_failed=False, now=T0 + 1000).status is None


def test_start_seconds_then_run_seconds_then_exit_code() -> None:
    ann = {"sim.pyjobset.io/start-seconds": "2", "sim.pyjobset.io/run-seconds": "5", "sim.pyjobset.io/exit-code": "4"}
    p, wake = step(pod(ann), T0)
    assert p["status"]["phase"] == "Pending"
    assert p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    assert wake == T0 + 2
    assert decide(p, node_failed=False, now=T0 + 1).status is None
    p, wake = step(p, T0 + 2)
    assert p["status"]["phase"] == "Running"
    assert wake == T0 + 7
    p, wake = step(p, T0 + 7)
    assert p["status"]["phase"] == "Failed"
    term = p["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"], term["finishedAt"]) == (4, "Error", rfc3339(T0 + 7))
    assert cond(p, "Ready") == "False"
    assert wake is None


def test_success_reports_completed() -> None:
    p, _ = step(pod({"sim.pyjobset.io/run-seconds": "1"}), T0)
    p, _ = step(p, T0 + 1)
    assert p["status"]["phase"] == "Succeeded"
    assert p["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"


def test_fail_when_matches_own_labels() -> None:
    ann = {"sim.pyjobset.io/fail-when": "role=worker,attempt=0"}
    assert planned_exit_code(pod(ann, {"role": "worker", "attempt": "0"})) == 1
    assert planned_exit_code(pod(ann, {"role": "worker", "attempt": "1"})) == 0
    assert planned_exit_code(pod({**ann, "sim.pyjobset.io/exit-code": "3"}, {"role": "x"})) == 3


def test_exit_now_and_deletion_and_node_failure() -> None:
    running, _ = step(pod(), T0)
    now_exit, _ = step(
        dict(running, metadata={**running["metadata"], "annotations": {"sim.pyjobset.io/exit-now": "9"}}), T0 + 1
    )
    assert now_exit["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 9
    deleting = dict(running, metadata={**running["metadata"], "deletionTimestamp": rfc3339(T0 + 30)})
    killed, _ = step(deleting, T0 + 1)
    assert killed["status"]["phase"] == "Failed"
    evicted, _ = step(running, T0 + 1, node_failed=True)
    assert evicted["status"]["phase"] == "Failed"
    assert cond(evicted, "DisruptionTarget") == "True"


def test_on_failure_restarts_with_crash_loop_backoff() -> None:
    ann = {"sim.pyjobset.io/run-seconds": "1", "sim.pyjobset.io/exit-code": "1"}
    p, _ = step(pod(ann, restartPolicy="OnFailure"), T0)
    p, wake = step(p, T0 + 1)
    cs = p["status"]["containerStatuses"][0]
    assert p["status"]["phase"] == "Running"
    assert cs["restartCount"] == 1
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert wake == T0 + 11
    p, wake = step(p, T0 + 11)
    assert p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"] == rfc3339(T0 + 11)
    assert wake == T0 + 12


def test_unbound_or_terminal_pods_are_ignored() -> None:
    unbound = pod()
    unbound["spec"].pop("nodeName")
    assert decide(unbound, node_failed=False, now=T0).status is None
    done = pod()
    done["status"] = {"phase": "Succeeded"}
    assert decide(done, node_failed=True, now=T0).status is None


def test_node_fail_annotation_round_trip() -> None:
    node = make_node(3, nodes_per_pool=2, shape=NodeShape(), now=T0)
    assert node["metadata"]["labels"]["cloud.google.com/gke-nodepool"] == "pool-1"
    assert desired_node(node, T0) is None
    node["metadata"]["annotations"]["sim.pyjobset.io/fail"] = "true"
    failed = desired_node(node, T0 + 5)
    assert failed is not None
    assert not node_ready(failed)
    assert len(failed["spec"]["taints"]) == 2
    assert desired_node(failed, T0 + 6) is None
    del failed["metadata"]["annotations"]["sim.pyjobset.io/fail"]
    healed = desired_node(failed, T0 + 9)
    assert healed is not None
    assert node_ready(healed)
    assert "taints" not in healed["spec"]


def test_probes_delay_readiness() -> None:
    p = pod({"sim.pyjobset.io/run-seconds": "30"})
    p["spec"]["containers"][0]["startupProbe"] = {"initialDelaySeconds": 5}
    p["spec"]["containers"][0]["readinessProbe"] = {"initialDelaySeconds": 2}
    p, wake = step(p, T0)
    assert p["status"]["phase"] == "Running"
    assert cond(p, "Ready") == "False"
    assert wake == T0 + 7
    p, wake = step(p, T0 + 7)
    assert cond(p, "Ready") == "True"
    assert p["status"]["containerStatuses"][0]["ready"] is True
    assert wake == T0 + 30


def test_native_sidecar_runs_with_the_pod_and_stops_with_it() -> None:
    p = pod({"sim.pyjobset.io/run-seconds": "5"})
    p["spec"]["initContainers"] = [
        {"name": "setup", "image": "i"},
        {"name": "agent", "image": "i", "restartPolicy": "Always"},
    ]
    p, _ = step(p, T0)
    states = {c["name"]: c["state"] for c in p["status"]["initContainerStatuses"]}
    assert "terminated" in states["setup"]
    assert "running" in states["agent"]
    p, _ = step(p, T0 + 5)
    assert p["status"]["phase"] == "Succeeded"
    agent = next(c for c in p["status"]["initContainerStatuses"] if c["name"] == "agent")
    assert agent["state"]["terminated"]["exitCode"] == 0
