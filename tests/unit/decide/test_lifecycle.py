"""Service, PVCs, managedBy, TTL, elastic sync and in-place restart through ``decide``.

Spec 4.2 steps 1, 9-11, 14, 4.8, 4.10; conformance 11, 39, 40, 46, 59-61, 64, 65, 122, 126, 128 at unit level.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import pytest

from api import constants as c
from api.jobset_types import JobSet
from api.plan import Plan, Snapshot
from api.records import Pod
from controller.decide.reconcile import decide
from tests.builders import DecideWorld, JobSetBuilder, complete_status, failed_status, job_record

NOW = dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)


def base() -> JobSetBuilder:
    return JobSetBuilder("test-js").rjob("replicated-job-a", 1).rjob("replicated-job-b", 3)


def started(js: JobSet, gates: dict[str, bool] | None = None) -> DecideWorld:
    world = DecideWorld(js, gates=gates)
    world.step()
    return world


# --------------------------------------------------------------------------------------------- Service


def test_c11_one_service_and_completion() -> None:
    world = started(base().record())
    assert world.plans[0].create_service is not None
    assert world.plans[0].create_service["metadata"]["name"] == "test-js"
    assert world.step().create_service is None
    world.set_status(complete_status())
    world.step()
    assert world.js.status.terminal_state == "Completed"


def test_c39_deleted_service_is_recreated() -> None:
    world = started(base().record())
    world.service_exists = False
    assert world.step().create_service is not None


def test_c46_generated_name_service() -> None:
    js = JobSetBuilder("gen-abcde").rjob("w", 1).record()
    plan = decide(Snapshot(jobset=js, jobs=(), service_exists=False), NOW)
    assert plan.create_service is not None
    assert plan.create_service["metadata"]["name"] == "gen-abcde"


@pytest.mark.parametrize(
    ("network", "expected"),
    [
        pytest.param(
            {"enableDNSHostnames": True, "publishNotReadyAddresses": False},
            ("test-js", False),
            id="c126-publish-not-ready-honoured",
        ),
        pytest.param({"enableDNSHostnames": True, "subdomain": "net"}, ("net", True), id="c126-subdomain-honoured"),
        pytest.param({"enableDNSHostnames": False}, None, id="c126-dns-off-no-service"),
        pytest.param({}, None, id="c126-dns-unset-in-present-network-no-service"),
        pytest.param(None, ("test-js", True), id="c126-d3-network-nil-is-defaults"),
    ],
)
def test_c126_headless_service(network: dict[str, Any] | None, expected: tuple[str, bool] | None) -> None:
    obj = base().obj()
    if network is None:
        del obj["spec"]["network"]
    else:
        obj["spec"]["network"] = network
    obj["metadata"]["uid"] = "u"
    from api.jobset_types import jobset_from_obj

    js = jobset_from_obj(obj)
    plan = decide(Snapshot(jobset=js, jobs=(), service_exists=False), NOW)
    if expected is None:
        assert plan.create_service is None
    else:
        assert plan.create_service is not None
        assert (
            plan.create_service["metadata"]["name"],
            plan.create_service["spec"]["publishNotReadyAddresses"],
        ) == expected
    assert decide(Snapshot(jobset=js, jobs=(), service_exists=True), NOW).create_service is None


# --------------------------------------------------------------------------------------------- PVCs


def _volume_js() -> JobSet:
    obj = JobSetBuilder("volume-test").rjob("worker", 1).obj()
    pod = obj["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]
    pod["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "test-volume", "mountPath": "/a"},
        {"name": "test-volume-retain", "mountPath": "/b"},
    ]
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    obj["spec"]["volumeClaimPolicies"] = [
        {"templates": [{"metadata": {"name": "test-volume", "labels": {"t": "d"}}, "spec": spec}]},
        {
            "templates": [{"metadata": {"name": "test-volume-retain", "annotations": {"x": "y"}}, "spec": spec}],
            "retentionPolicy": {"whenDeleted": "Retain"},
        },
    ]
    obj["metadata"]["uid"] = "u"
    from api.jobset_types import jobset_from_obj

    return jobset_from_obj(obj)


def test_c40_volume_claim_policies() -> None:
    js = _volume_js()
    plan = decide(Snapshot(jobset=js, jobs=(), service_exists=True), NOW)
    pvcs = {p["metadata"]["name"]: p for p in plan.create_pvcs}
    assert sorted(pvcs) == ["test-volume-retain-volume-test", "test-volume-volume-test"]
    delete = pvcs["test-volume-volume-test"]["metadata"]
    assert delete["labels"] == {"t": "d", c.JOBSET_NAME_KEY: "volume-test"}
    assert delete["ownerReferences"][0]["uid"] == "u"
    retain = pvcs["test-volume-retain-volume-test"]["metadata"]
    assert "ownerReferences" not in retain
    assert retain["annotations"] == {"x": "y"}
    assert pvcs["test-volume-volume-test"]["spec"]["resources"] == {"requests": {"storage": "1Gi"}}
    (job,) = plan.create_jobs
    volumes = job["spec"]["template"]["spec"]["volumes"]
    assert {"name": "test-volume", "persistentVolumeClaim": {"claimName": "test-volume-volume-test"}} in volumes
    # PVC creation is attempted on every pass (AlreadyExists is ignored by the acting layer) ...
    world = started(js)
    assert len(world.step().create_pvcs) == 2
    # ... but not once the JobSet finished.
    world.set_status(complete_status())
    world.step()
    assert world.js.status.terminal_state == "Completed"
    assert world.step().create_pvcs == ()


# --------------------------------------------------------------------------------------------- managedBy


def test_c59_c60_c61_managed_by_other_controller_is_never_touched() -> None:
    js = (
        base()
        .set("spec.managedBy", "other-controller")
        .set("spec.suspend", True)
        .set(
            "status.conditions",
            [{"type": "Failed", "status": "False", "reason": "ByTest", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        )
        .set("status.replicatedJobsStatus", [{"name": "replicated-job-a", "ready": 7}])
        .record(restarts=1)
    )
    assert decide(Snapshot(jobset=js, jobs=(), service_exists=False), NOW) == Plan()
    resumed = msgspec.structs.replace(js, spec=msgspec.structs.replace(js.spec, suspend=False))
    assert decide(Snapshot(jobset=resumed, jobs=(), service_exists=False), NOW) == Plan()


def test_managed_by_our_name_is_reconciled() -> None:
    js = base().set("spec.managedBy", c.CONTROLLER_NAME).record()
    assert len(decide(Snapshot(jobset=js, jobs=(), service_exists=True), NOW).create_jobs) == 4


def test_deleting_jobset_is_left_alone() -> None:
    js = base().set("metadata.deletionTimestamp", "2026-01-01T00:00:00Z").record()
    assert decide(Snapshot(jobset=js, jobs=(), service_exists=False), NOW) == Plan()


# --------------------------------------------------------------------------------------------- TTL


def _finished(ttl: int | None, at: str = "2026-01-01T00:00:00Z") -> JobSet:
    b = base().set(
        "status.conditions",
        [{"type": "Completed", "status": "True", "reason": "AllJobsCompleted", "lastTransitionTime": at}],
    )
    b.set("status.terminalState", "Completed")
    if ttl is not None:
        b.set("spec.ttlSecondsAfterFinished", ttl)
    return b.record()


@pytest.mark.parametrize(
    ("ttl", "now", "delete", "requeue"),
    [
        pytest.param(None, NOW, False, None, id="ttl-unset-nothing"),
        pytest.param(0, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), True, None, id="ttl-zero-deletes-at-once"),
        pytest.param(100, dt.datetime(2026, 1, 1, 0, 0, 40, tzinfo=dt.UTC), False, 60.0, id="ttl-not-expired-requeues"),
        pytest.param(100, dt.datetime(2026, 1, 1, 0, 1, 40, tzinfo=dt.UTC), True, None, id="ttl-expired-deletes"),
    ],
)
def test_ttl_after_finished(ttl: int | None, now: dt.datetime, delete: bool, requeue: float | None) -> None:
    plan = decide(Snapshot(jobset=_finished(ttl), jobs=(), service_exists=True), now)
    assert (plan.delete_jobset, plan.requeue_after, plan.error) == (delete, requeue, None)
    assert plan.create_jobs == ()
    assert plan.create_service is None


def test_ttl_without_finish_time_is_a_decision_error() -> None:
    plan = decide(Snapshot(jobset=_finished(10, at=""), jobs=(), service_exists=True), NOW)
    assert plan.error is not None
    assert plan.delete_jobset is False


# --------------------------------------------------------------------------------------------- elastic


def _elastic(p: int, comp: int) -> JobSet:
    return JobSetBuilder("js").rjob("w", 1, parallelism=p, completions=comp).record()


@pytest.mark.parametrize(
    ("gate", "size", "patched"),
    [
        pytest.param(True, (4, 4), {"spec": {"parallelism": 4, "completions": 4}}, id="c64-c128-p-eq-c-drift-patched"),
        pytest.param(True, (2, 2), None, id="c128-in-sync-no-patch"),
        pytest.param(True, (4, 5), None, id="c128-p-ne-c-template-no-patch"),
        pytest.param(False, (4, 4), None, id="c65-c128-gate-off-no-patch"),
    ],
)
def test_elastic_sync(gate: bool, size: tuple[int, int], patched: dict[str, Any] | None) -> None:
    world = started(_elastic(2, 2), {c.GATE_ELASTIC_JOBSET: gate})
    world.update_spec(replicated_jobs=_elastic(*size).spec.replicated_jobs)
    plan = world.step()
    patches = [u.patch for u in plan.update_jobs]
    assert patches == ([patched] if patched else [])
    if patched:
        assert world.jobs["js-w-0"].spec.parallelism == 4


# --------------------------------------------------------------------------------------------- in-place restart


def _inplace(max_restarts: int = 3, replicas: int = 2) -> JobSet:
    return (
        JobSetBuilder("js")
        .rjob("w", replicas, parallelism=1, completions=1)
        .set("spec.failurePolicy", {"maxRestarts": max_restarts, "restartStrategy": "InPlaceRestart"})
        .record()
    )


def _pod(name: str, attempt: int | None, *, phase: str = "Running", restarts: int = 0) -> Pod:
    ann = {} if attempt is None else {c.IN_PLACE_RESTART_ATTEMPT_KEY: str(attempt)}
    return msgspec.convert(
        {
            "metadata": {"name": name, "annotations": ann},
            "status": {"phase": phase, "containerStatuses": [{"name": "m", "restartCount": restarts}]},
        },
        Pod,
    )


def _decide_inplace(js: JobSet, pods: list[Pod], *, gate: bool = True) -> Plan:
    from controller.decide import children

    jobs = tuple(job_record(children.build_job(js, js.spec.replicated_jobs[0], i)) for i in range(2))
    return decide(
        Snapshot(jobset=js, jobs=jobs, service_exists=True, gates={c.GATE_IN_PLACE_RESTART: gate}, pods=tuple(pods)),
        NOW,
    )


@pytest.mark.parametrize(
    ("pods", "current", "previous"),
    [
        pytest.param([_pod("p0", 1), _pod("p1", 1)], 1, None, id="inplace-all-equal-sets-current"),
        pytest.param([_pod("p0", 2), _pod("p1", 1)], None, 1, id="inplace-mismatch-sets-previous-max-minus-one"),
        pytest.param([_pod("p0", 0), _pod("p1", None)], None, None, id="inplace-max-zero-nothing"),
        pytest.param([], None, None, id="inplace-no-pods-nothing"),
        pytest.param(
            [_pod("p0", 2), _pod("p1", 2, phase="Failed"), _pod("p2", 1)], None, 1, id="inplace-failed-pods-ignored"
        ),
    ],
)
def test_in_place_attempts(pods: list[Pod], current: int | None, previous: int | None) -> None:
    plan = _decide_inplace(_inplace(), pods)
    status = plan.status
    assert plan.error is None
    assert status is not None  # replicatedJobsStatus is written on the first pass anyway
    assert (status.current_in_place_restart_attempt, status.previous_in_place_restart_attempt) == (current, previous)


def test_in_place_previous_never_decreases() -> None:
    js = _inplace()
    js = msgspec.structs.replace(js, status=msgspec.structs.replace(js.status, previous_in_place_restart_attempt=5))
    plan = _decide_inplace(js, [_pod("p0", 3), _pod("p1", 1)])
    assert plan.status is not None
    assert plan.status.previous_in_place_restart_attempt == 5


@pytest.mark.parametrize(
    "pods",
    [
        pytest.param([_pod("p0", 0, restarts=4), _pod("p1", 0)], id="inplace-container-restarts-over-max-fails"),
        pytest.param([_pod("p0", 4), _pod("p1", 4)], id="inplace-attempt-over-max-fails"),
    ],
)
def test_in_place_max_restarts(pods: list[Pod]) -> None:
    plan = _decide_inplace(_inplace(max_restarts=3), pods)
    assert plan.status is not None
    failed = [x for x in plan.status.conditions if x.type == c.COND_FAILED]
    assert [(x.reason, x.message) for x in failed] == [
        ("ReachedMaxRestarts", "jobset failed due to reaching max number of restarts")
    ]
    assert plan.status.terminal_state == "Failed"
    assert plan.outcome is not None
    assert plan.outcome.kind == "failed"


def test_in_place_bad_annotation_is_error_and_gate_off_is_noted() -> None:
    bad = msgspec.convert({"metadata": {"name": "p", "annotations": {c.IN_PLACE_RESTART_ATTEMPT_KEY: "x"}}}, Pod)
    plan = _decide_inplace(_inplace(), [bad])
    assert plan.error is not None
    assert plan.status is None
    off = _decide_inplace(_inplace(), [_pod("p0", 1), _pod("p1", 1)], gate=False)
    assert off.error is None
    assert any("InPlaceRestart" in n for n in off.notes)
    assert off.status is not None
    assert off.status.current_in_place_restart_attempt is None


def test_in_place_failed_jobs_still_use_failure_policy() -> None:
    world = started(_inplace(), {c.GATE_IN_PLACE_RESTART: True})
    world.set_status(failed_status(), "js-w-0")
    world.step()
    assert world.js.status.restarts == 1
