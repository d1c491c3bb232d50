"""Property tests of the simulated Job controller's decision: whatever the pods, the plan stays sane."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kubesim.cluster.jobsync import BackoffSettings, JobMemory, sync_job
from kubesim.cluster.jobutil import build_pod, completion_index, default_job, is_active
from kubesim.util.timefmt import rfc3339

NOW = 1_800_000_000.0
JSON = dict[str, Any]

pod_states = st.tuples(
    st.integers(min_value=-1, max_value=9),  # completion index (-1: garbage annotation)
    st.sampled_from(["Pending", "Running", "Succeeded", "Failed"]),
    st.booleans(),  # being deleted
    st.booleans(),  # ready
    st.integers(min_value=0, max_value=3),  # exit code when terminal
)


def make_job(completions: int, parallelism: int, per_index: bool, suspend: bool, policy: bool) -> JSON:
    spec: JSON = {
        "completionMode": "Indexed",
        "completions": completions,
        "parallelism": parallelism,
        "suspend": suspend,
        "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "main"}]}},
    }
    if per_index:
        spec["backoffLimitPerIndex"] = 1
    if policy:
        spec["podFailurePolicy"] = {
            "rules": [
                {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [2]}},
                {"action": "FailIndex" if per_index else "Count", "onExitCodes": {"operator": "In", "values": [3]}},
            ]
        }
    return default_job({"metadata": {"name": "j", "namespace": "ns", "uid": "uid-j"}, "spec": spec})


def make_pod(job: JSON, n: int, state: tuple[int, str, bool, bool, int]) -> JSON:
    index, phase, deleting, ready, code = state
    p = build_pod(job, max(index, 0), f"x{n:04d}")
    p["metadata"]["uid"] = f"uid-{n}"
    p["metadata"]["creationTimestamp"] = rfc3339(NOW - 100 + n)
    if index < 0:
        p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] = "bogus"
    if deleting:
        p["metadata"]["deletionTimestamp"] = rfc3339(NOW - 1)
    status: JSON = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if phase in ("Succeeded", "Failed"):
        status["containerStatuses"] = [
            {
                "name": "main",
                "state": {"terminated": {"exitCode": 0 if phase == "Succeeded" else max(code, 1)}},
            }
        ]
    p["status"] = status
    return p


@settings(max_examples=300, deadline=None)
@given(
    completions=st.integers(min_value=1, max_value=10),
    parallelism=st.integers(min_value=0, max_value=10),
    per_index=st.booleans(),
    suspend=st.booleans(),
    policy=st.booleans(),
    states=st.lists(pod_states, max_size=14),
    prior_succeeded=st.integers(min_value=0, max_value=3),
)
def test_plan_invariants(
    completions: int,
    parallelism: int,
    per_index: bool,
    suspend: bool,
    policy: bool,
    states: list[tuple[int, str, bool, bool, int]],
    prior_succeeded: int,
) -> None:
    job = make_job(completions, parallelism, per_index, suspend, policy)
    job["status"] = {"failed": 1, "succeeded": prior_succeeded}
    pods = [make_pod(job, n, s) for n, s in enumerate(states)]
    plan = sync_job(job, pods, NOW, JobMemory(), BackoffSettings())

    created = [c.index for c in plan.creates]
    assert len(created) == len(set(created)), "an index is created twice in one sync"
    assert all(i is not None and 0 <= i < completions for i in created)
    live_indexes = {completion_index(p) for p in pods if is_active(p)}
    assert not set(created) & live_indexes, "created an index that already has an active pod"
    deleted = {d.name for d in plan.deletes}
    remaining_active = sum(1 for p in pods if is_active(p) and p["metadata"]["name"] not in deleted)
    if suspend:
        assert not created
        assert remaining_active == 0
    if created:
        assert not plan.deletes, "the real controller never creates and deletes in one sync"
        assert remaining_active + len(created) <= parallelism
    if plan.status is not None:
        assert plan.status.get("failed", 0) >= 1
        conds = {c["type"] for c in plan.status.get("conditions", [])}
        assert not {"Complete", "Failed"} <= conds
        if "Complete" in conds or "Failed" in conds:
            assert plan.status.get("terminating", 0) == 0
            assert not created
