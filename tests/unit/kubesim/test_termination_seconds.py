"""kubesim's kubelet: ``sim.pyjobset.io/termination-seconds`` keeps a deleted running pod terminating that long."""

from __future__ import annotations

from typing import Any

from kubesim.cluster.kubeletsim import KILLED_EXIT_CODE, TERMINATION_SECONDS, decide
from kubesim.util.timefmt import parse_rfc3339

DELETED_AT = "2026-01-01T00:00:30Z"  # deletionTimestamp = deletion start (00:00:00) + 30 s grace
START = parse_rfc3339("2026-01-01T00:00:00Z") or 0.0


def running_pod(annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "p",
            "annotations": annotations,
            "deletionTimestamp": DELETED_AT,
            "deletionGracePeriodSeconds": 30,
        },
        "spec": {"nodeName": "n1", "containers": [{"name": "main", "image": "busybox"}]},
        "status": {
            "phase": "Running",
            "startTime": "2026-01-01T00:00:00Z",
            "containerStatuses": [{"name": "main", "ready": True, "state": {"running": {"startedAt": "x"}}}],
        },
    }


def test_a_deleted_pod_keeps_running_for_termination_seconds_then_is_killed() -> None:
    pod = running_pod({TERMINATION_SECONDS: "60"})
    waiting = decide(pod, node_failed=False, now=START + 10)
    assert (waiting.status, waiting.wake_at) == (None, START + 60)
    done = decide(pod, node_failed=False, now=START + 60)
    assert done.status is not None
    assert done.status["phase"] == "Failed"
    assert done.status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == KILLED_EXIT_CODE


def test_without_the_annotation_a_deleted_pod_stops_at_once() -> None:
    done = decide(running_pod({}), node_failed=False, now=START + 1)
    assert done.status is not None
    assert done.status["phase"] == "Failed"
