"""Conformance for the controller half of in-place restart (behaviour.md §4.10, gate InPlaceRestart).

No scenario of the reference list covers it; these tests pin the barrier protocol end to end: pods run (annotation
contract) and the test plays the in-place restart agents by annotating its pods with
``jobset.sigs.k8s.io/in-place-restart-attempt``, then watches the JobSet's ``previousInPlaceRestartAttempt`` /
``currentInPlaceRestartAttempt`` and the failure once the attempt outruns ``maxRestarts``.
"""

from __future__ import annotations

from typing import Any

import pytest

from api import constants as c
from tests.builders import JobSetBuilder
from tests.conformance.kit import Cluster, condition, simulated

JSON = dict[str, Any]
pytestmark = pytest.mark.gates(InPlaceRestart=True)


def status_field(name: str, want: int) -> Any:
    def check(js: JSON) -> JSON | None:
        return js if (js.get("status") or {}).get(name) == want else None

    return check


async def annotate(cluster: Cluster, pod: JSON, attempt: int) -> None:
    await cluster.api.patch(
        f"{cluster.pods_path}/{pod['metadata']['name']}",
        {"metadata": {"annotations": {c.IN_PLACE_RESTART_ATTEMPT_KEY: str(attempt)}}},
    )


async def test_in_place_restart_barrier_attempts(cluster: Cluster) -> None:
    obj = JobSetBuilder("js", cluster.ns).rjob("workers", 2).obj()
    obj["spec"]["failurePolicy"] = {"maxRestarts": 3, "restartStrategy": "InPlaceRestart"}
    await cluster.create(simulated(obj))
    pods = await cluster.wait_pods(
        lambda pods: (
            pods if len(pods) == 2 and all((p.get("status") or {}).get("phase") == "Running" for p in pods) else None
        )
    )
    # Every agent starts at attempt 0: the barrier for attempt 0 is lifted.
    for pod in pods:
        await annotate(cluster, pod, 0)
    await cluster.wait_jobset("js", status_field("currentInPlaceRestartAttempt", 0))
    # One agent restarts (attempt 1): everyone at attempt <= 0 must restart in place.
    await annotate(cluster, pods[0], 1)
    js = await cluster.wait_jobset("js", status_field("previousInPlaceRestartAttempt", 0))
    assert js["status"]["currentInPlaceRestartAttempt"] == 0
    # All agents at attempt 1: the barrier for attempt 1 is lifted.
    await annotate(cluster, pods[1], 1)
    js = await cluster.wait_jobset("js", status_field("currentInPlaceRestartAttempt", 1))
    assert js["status"]["previousInPlaceRestartAttempt"] == 0
    assert js["status"]["restarts"] == 0
    # An attempt beyond maxRestarts fails the JobSet (message without the first-failed-job suffix).
    await annotate(cluster, pods[0], 5)
    js = await cluster.wait_terminal("js", "Failed")
    cond = condition(js, c.COND_FAILED)
    assert cond is not None
    assert (cond["reason"], cond["message"]) == (
        "ReachedMaxRestarts",
        "jobset failed due to reaching max number of restarts",
    )
