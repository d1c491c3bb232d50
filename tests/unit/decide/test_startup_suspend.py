"""Job creation, dependsOn, InOrder startup, suspend and resume through ``decide`` (behaviour.md §4.4, 4.7).

Conformance scenarios 1, 2, 36, 38, 47-49, 53, 54, 121, 123 at unit level, plus dependsOn Complete and InOrder.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from api import constants as c
from api.jobset_types import JobSet
from tests.builders import DecideWorld, JobSetBuilder, complete_status, job_status, ready_status

A = "test-js-replicated-job-a-0"
B = [f"test-js-replicated-job-b-{i}" for i in range(3)]


def base(**sets: Any) -> JobSetBuilder:
    b = JobSetBuilder("test-js").rjob("replicated-job-a", 1).rjob("replicated-job-b", 3)
    for path, value in sets.items():
        b.set(path.replace("__", "."), value)
    return b


def started(js: JobSet, gates: dict[str, bool] | None = None) -> DecideWorld:
    world = DecideWorld(js, gates=gates)
    world.step()
    return world


def cond_of(world: DecideWorld, ctype: str) -> tuple[str, str, str] | None:
    for x in world.js.status.conditions:
        if x.type == ctype:
            return (x.status, x.reason, x.message)
    return None


def suspended_counts(world: DecideWorld) -> dict[str, int]:
    return {s.name: s.suspended for s in world.js.status.replicated_jobs_status}


@pytest.mark.parametrize(
    "startup",
    [
        pytest.param(None, id="c36-created-suspended"),
        pytest.param({"startupPolicyOrder": "InOrder"}, id="c47-inorder-suspended-creates-all"),
        pytest.param({"startupPolicyOrder": "AnyOrder"}, id="c48-anyorder-suspended-creates-all"),
    ],
)
def test_created_suspended(startup: dict[str, str] | None) -> None:
    b = base(spec__suspend=True)
    if startup is not None:
        b.set("spec.startupPolicy", startup)
    world = started(b.record())
    plan = world.plans[0]
    assert len(plan.create_jobs) == 4
    assert all(m["spec"]["suspend"] is True for m in plan.create_jobs)
    assert plan.create_service is not None  # the Service is created even while suspended
    assert cond_of(world, c.COND_SUSPENDED) == ("True", "SuspendedJobs", "jobset is suspended")
    world.set_status(job_status())
    world.step()
    assert suspended_counts(world) == {"replicated-job-a": 1, "replicated-job-b": 3}
    assert cond_of(world, c.COND_STARTUP_IN_PROGRESS) is None


def test_c1_c38_suspending_running_jobset_suspends_every_active_job() -> None:
    world = started(base().record())
    world.set_status(ready_status())
    world.step()
    assert cond_of(world, c.COND_SUSPENDED) is None  # never suspended: no condition
    world.update_spec(suspend=True)
    plan = world.step()
    assert sorted(u.name for u in plan.update_jobs) == sorted([A, *B])
    assert all(u.patch == {"spec": {"suspend": True}} and not u.clear_start_time for u in plan.update_jobs)
    assert cond_of(world, c.COND_SUSPENDED) == ("True", "SuspendedJobs", "jobset is suspended")
    assert world.step().update_jobs == ()


def test_c49_anyorder_resume_unsuspends_all_and_propagates_template() -> None:
    world = started(base(spec__suspend=True).record())
    world.set_status(job_status(start_time="2026-01-01T00:00:00Z"), A)
    world.step()
    # Kueue-style: edit the pod template while suspended, then unsuspend.
    rjobs = list(world.js.spec.replicated_jobs)
    tmpl = msgspec.to_builtins(rjobs[0].template)
    pod = tmpl["spec"]["template"]
    pod["metadata"]["labels"] = {"kueue.x-k8s.io/queue": "q"}
    pod["spec"]["nodeSelector"] = {"cloud/pool": "a100"}
    pod["spec"]["tolerations"] = [{"key": "gpu", "operator": "Exists"}]
    pod["spec"]["schedulingGates"] = [{"name": "kueue.x-k8s.io/topology"}]
    rjobs[0] = msgspec.structs.replace(rjobs[0], template=tmpl)
    world.update_spec(replicated_jobs=tuple(rjobs), suspend=False)
    plan = world.step()
    by_name = {u.name: u for u in plan.update_jobs}
    assert sorted(by_name) == sorted([A, *B])
    assert by_name[A].clear_start_time is True
    assert by_name[B[0]].clear_start_time is False
    assert by_name[A].patch == {
        "spec": {
            "suspend": False,
            "template": {
                "metadata": {"labels": {"kueue.x-k8s.io/queue": "q"}},
                "spec": {
                    "nodeSelector": {"cloud/pool": "a100"},
                    "tolerations": [{"key": "gpu", "operator": "Exists"}],
                    "schedulingGates": [{"name": "kueue.x-k8s.io/topology"}],
                },
            },
        }
    }
    assert by_name[A].patch["spec"]["template"]["metadata"]["labels"] == {"kueue.x-k8s.io/queue": "q"}
    assert by_name[B[1]].patch["spec"]["suspend"] is False
    assert cond_of(world, c.COND_SUSPENDED) == ("False", "ResumeJobs", "jobset is resumed")
    world.step()
    assert suspended_counts(world) == {"replicated-job-a": 0, "replicated-job-b": 0}


def test_resume_union_keeps_existing_tolerations() -> None:
    from controller.decide.suspend import resume_update
    from tests.builders import job_record

    js = base().record()
    rjob = js.spec.replicated_jobs[0]
    tmpl = msgspec.to_builtins(rjob.template)
    tmpl["spec"]["template"]["spec"]["tolerations"] = [{"key": "a"}, {"key": "b"}]
    rjob = msgspec.structs.replace(rjob, template=tmpl)
    from controller.decide import children

    manifest = children.build_job(js, js.spec.replicated_jobs[0], 0)
    manifest["spec"]["template"]["spec"]["tolerations"] = [{"key": "z"}, {"key": "a"}]
    manifest["spec"]["suspend"] = True
    update = resume_update(job_record(manifest), rjob)
    assert update.patch["spec"]["template"]["spec"]["tolerations"] == [{"key": "z"}, {"key": "a"}, {"key": "b"}]


def test_c53_coordinator_label_on_every_job() -> None:
    js = base(spec__coordinator={"replicatedJob": "replicated-job-a", "jobIndex": 0, "podIndex": 0}).record()
    plan = started(js).plans[0]
    for m in plan.create_jobs:
        assert m["metadata"]["labels"][c.COORDINATOR_KEY] == "test-js-replicated-job-a-0-0.test-js"
        assert m["metadata"]["annotations"][c.COORDINATOR_KEY] == "test-js-replicated-job-a-0-0.test-js"


def _depends(status: str) -> JobSet:
    return (
        JobSetBuilder("test-js")
        .rjob("replicated-job-a", 1)
        .rjob("replicated-job-b", 3, depends_on=[{"name": "replicated-job-a", "status": status}])
        .record()
    )


def test_c54_depends_on_ready() -> None:
    world = started(_depends("Ready"))
    assert [m["metadata"]["name"] for m in world.plans[0].create_jobs] == [A]
    assert world.step().create_jobs == ()
    world.set_status(ready_status(), A)
    plan = world.step()
    assert sorted(m["metadata"]["name"] for m in plan.create_jobs) == B
    world.set_status(ready_status(), *B)
    world.step()
    b = next(s for s in world.js.status.replicated_jobs_status if s.name == "replicated-job-b")
    assert (b.ready, b.active) == (3, 3)


def test_depends_on_ready_counts_succeeded_jobs() -> None:
    world = started(_depends("Ready"))
    world.set_status(complete_status(), A)
    plan = world.step()  # ready + failed + succeeded == replicas: reached (behaviour.md §4.4 step 1)
    assert sorted(m["metadata"]["name"] for m in plan.create_jobs) == B


def test_depends_on_complete_waits_for_success() -> None:
    world = started(_depends("Complete"))
    world.set_status(ready_status(), A)
    world.step()
    assert world.step().create_jobs == ()
    world.set_status(complete_status(), A)
    plan = world.step()
    assert sorted(m["metadata"]["name"] for m in plan.create_jobs) == B


def test_depends_on_gate_applies_while_suspended() -> None:
    js = _depends("Ready")
    js = msgspec.structs.replace(js, spec=msgspec.structs.replace(js.spec, suspend=True))
    world = started(js)
    assert [m["metadata"]["name"] for m in world.plans[0].create_jobs] == [A]


def test_in_order_startup_creates_one_rjob_at_a_time() -> None:
    world = started(base(spec__startupPolicy={"startupPolicyOrder": "InOrder"}).record())
    assert [m["metadata"]["name"] for m in world.plans[0].create_jobs] == [A]
    assert cond_of(world, c.COND_STARTUP_IN_PROGRESS) == (
        "True",
        "InOrderStartupPolicyInProgress",
        "in order startup policy is in progress",
    )
    world.set_status(ready_status(), A)
    plan = world.step()
    assert sorted(m["metadata"]["name"] for m in plan.create_jobs) == B
    assert cond_of(world, c.COND_STARTUP_COMPLETED) is None
    world.set_status(ready_status(), *B)
    world.step()
    assert cond_of(world, c.COND_STARTUP_COMPLETED) == (
        "True",
        "InOrderStartupPolicyCompleted",
        "in order startup policy has completed",
    )
    in_progress = cond_of(world, c.COND_STARTUP_IN_PROGRESS)
    assert in_progress is not None
    assert in_progress[0] == "False"


def test_in_order_resume_one_rjob_at_a_time_and_resumed_only_at_the_end() -> None:
    world = started(base(spec__suspend=True, spec__startupPolicy={"startupPolicyOrder": "InOrder"}).record())
    world.step()
    world.update_spec(suspend=False)
    plan = world.step()
    assert [u.name for u in plan.update_jobs] == [A]
    assert cond_of(world, c.COND_SUSPENDED) == ("True", "SuspendedJobs", "jobset is suspended")
    world.set_status(ready_status(), A)
    plan = world.step()
    assert sorted(u.name for u in plan.update_jobs) == B
    assert cond_of(world, c.COND_SUSPENDED) == ("True", "SuspendedJobs", "jobset is suspended")
    world.set_status(ready_status(), *B)
    world.step()
    assert cond_of(world, c.COND_SUSPENDED) == ("False", "ResumeJobs", "jobset is resumed")


@pytest.mark.parametrize(
    ("gate", "expected"),
    [
        pytest.param(True, "2", id="c123-job-restart-attempt-from-status-array"),
        pytest.param(False, None, id="c123-job-restart-attempt-absent-gate-off"),
    ],
)
def test_c123_job_restart_attempt_label(gate: bool, expected: str | None) -> None:
    js = (
        base()
        .set(
            "status.replicatedJobsStatus",
            [{"name": "replicated-job-b", "jobRestarts": [0, 2, 0]}],
        )
        .record()
    )
    plan = started(js, {c.GATE_RESTART_JOB: gate}).plans[0]
    by_name = {m["metadata"]["name"]: m for m in plan.create_jobs}
    assert by_name[B[1]]["metadata"]["labels"].get(c.JOB_RESTART_ATTEMPT_KEY) == expected
    if gate:
        assert by_name[A]["metadata"]["labels"][c.JOB_RESTART_ATTEMPT_KEY] == "0"


def test_c121_existing_names_in_any_bucket_are_not_created() -> None:
    world = started(base().record())
    world.set_status(complete_status(), A)
    world.set_status(ready_status(), B[0])
    world.jobs.pop(B[2])
    plan = world.step()
    assert [m["metadata"]["name"] for m in plan.create_jobs] == [B[2]]
