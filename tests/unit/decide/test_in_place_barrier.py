"""The in-place restart barrier's arithmetic (behaviour.md §4.10, gate InPlaceRestart).

Found by mutation testing (docs/design/mutation-testing.md): the limits at exactly ``maxRestarts``, restarts that
do not count towards the maximum, failed pods and pods without the annotation anywhere in the list, a single
expected pod, parallelism above one and several replicated jobs in the expected pod count.
"""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from api import constants as c
from api.jobset_types import JobSet, jobset_from_obj
from api.plan import Plan, Snapshot
from api.records import Pod
from controller.decide import inplace
from controller.decide.reconcile import decide
from tests.builders import JobSetBuilder

NOW = dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)


def jobset(max_restarts: int = 3, *, restarts: int = 0, counted: int = 0, replicas: int = 2) -> JobSet:
    js = (
        JobSetBuilder("js")
        .rjob("w", replicas)
        .set("spec.failurePolicy", {"maxRestarts": max_restarts, "restartStrategy": "InPlaceRestart"})
        .record(restarts=restarts)
    )
    return msgspec.structs.replace(js, status=msgspec.structs.replace(js.status, restarts_count_towards_max=counted))


def pod(name: str, attempt: int | None, *, phase: str = "Running", restarts: int = 0, init: int = 0) -> Pod:
    ann = {} if attempt is None else {c.IN_PLACE_RESTART_ATTEMPT_KEY: str(attempt)}
    return msgspec.convert(
        {
            "metadata": {"name": name, "annotations": ann},
            "status": {
                "phase": phase,
                "containerStatuses": [{"name": "m", "restartCount": restarts}],
                "initContainerStatuses": [{"name": "i", "restartCount": init}],
            },
        },
        Pod,
    )


def run(js: JobSet, pods: list[Pod]) -> Plan:
    snap = Snapshot(jobset=js, jobs=(), service_exists=True, gates={c.GATE_IN_PLACE_RESTART: True}, pods=tuple(pods))
    return decide(snap, NOW)


def failed(plan: Plan) -> bool:
    assert plan.error is None, plan.error
    assert plan.status is not None
    return any(x.type == c.COND_FAILED and x.status == "True" for x in plan.status.conditions)


def attempts(plan: Plan) -> tuple[int | None, int | None]:
    assert plan.error is None, plan.error
    assert plan.status is not None
    return plan.status.current_in_place_restart_attempt, plan.status.previous_in_place_restart_attempt


# --------------------------------------------------------------------------------------------- limits


@pytest.mark.parametrize(
    ("max_restarts", "pods", "expect_failed"),
    [
        pytest.param(0, [pod("p0", None), pod("p1", None)], False, id="max-0-nothing-restarted"),
        pytest.param(0, [], False, id="max-0-no-pods"),
        pytest.param(2, [pod("p0", 0, restarts=2), pod("p1", 0)], False, id="container-restarts-at-max"),
        pytest.param(2, [pod("p0", 0, init=3), pod("p1", 0)], True, id="init-container-restarts-over-max"),
        pytest.param(2, [pod("p0", 2), pod("p1", 2)], False, id="attempt-at-max"),
        pytest.param(2, [pod("p0", 3), pod("p1", 3)], True, id="attempt-over-max"),
    ],
)
def test_limits_are_strictly_above_max_restarts(max_restarts: int, pods: list[Pod], expect_failed: bool) -> None:
    assert failed(run(jobset(max_restarts), pods)) is expect_failed


@pytest.mark.parametrize(
    ("restarts", "counted", "attempt", "expect_failed"),
    [
        pytest.param(2, 0, 4, False, id="uncounted-restarts-are-subtracted"),
        pytest.param(1, 1, 3, True, id="counted-restarts-are-not-subtracted"),
        pytest.param(2, 1, 4, True, id="only-the-uncounted-part-is-subtracted"),
    ],
)
def test_attempt_limit_discounts_restarts_that_do_not_count(
    restarts: int, counted: int, attempt: int, expect_failed: bool
) -> None:
    js = jobset(2, restarts=restarts, counted=counted)
    assert failed(run(js, [pod("p0", attempt), pod("p1", attempt)])) is expect_failed


def test_in_place_failure_outcome() -> None:
    plan = run(jobset(1), [pod("p0", 0, restarts=2), pod("p1", 0)])
    assert plan.outcome is not None
    assert (plan.outcome.kind, plan.outcome.reason, plan.outcome.action, plan.outcome.job) == (
        "failed",
        "ReachedMaxRestarts",
        "InPlaceRestart",
        "",
    )


# --------------------------------------------------------------------------------------------- attempts


def test_failed_pods_are_skipped_wherever_they_are_listed() -> None:
    pods = [pod("p9", 5, phase="Failed"), pod("p0", 1), pod("p1", 1)]
    assert attempts(run(jobset(9), pods)) == (1, None)


def test_pods_without_the_annotation_are_skipped_wherever_they_are_listed() -> None:
    pods = [pod("p9", None), pod("p0", 2), pod("p1", 1)]
    assert attempts(run(jobset(9), pods)) == (None, 1)


def test_a_single_expected_pod_sets_current() -> None:
    assert attempts(run(jobset(9, replicas=1), [pod("p0", 4)])) == (4, None)


def test_mixed_attempts_do_not_set_current() -> None:
    assert attempts(run(jobset(9), [pod("p0", 1), pod("p1", 2)])) == (None, 1)


# --------------------------------------------------------------------------------------------- expected pods


def test_expected_pods_is_the_sum_of_replicas_times_parallelism() -> None:
    js = JobSetBuilder("js").rjob("a", 2, parallelism=3, completions=3).rjob("b", 1, parallelism=2, completions=2)
    assert inplace.expected_pods(js.record()) == 8


@pytest.mark.parametrize(
    ("parallelism", "completions"),
    [pytest.param(2, 3, id="completions-differ"), pytest.param(2, None, id="completions-unset")],
)
def test_expected_pods_needs_completions_equal_to_parallelism(parallelism: int, completions: int | None) -> None:
    obj = JobSetBuilder("js").rjob("a", 1, parallelism=parallelism, completions=1).obj()
    spec = obj["spec"]["replicatedJobs"][0]["template"]["spec"]
    if completions is None:
        del spec["completions"]
    else:
        spec["completions"] = completions
    error = inplace.expected_pods(jobset_from_obj(obj))
    assert isinstance(error, str)
    assert "a" in error
    assert "completions == parallelism" in error


def test_expected_pods_reports_a_template_without_a_spec() -> None:
    obj = JobSetBuilder("js").rjob("a", 1).obj()
    obj["spec"]["replicatedJobs"][0]["template"] = {}
    assert isinstance(inplace.expected_pods(jobset_from_obj(obj)), str)


# --------------------------------------------------------------------------------------------- event relevance


def _with(p: Pod, **status: object) -> Pod:
    return msgspec.structs.replace(p, status=msgspec.structs.replace(p.status, **status))


def test_a_pod_change_decide_does_not_read_is_not_urgent_and_decides_the_same() -> None:
    """``pod_change_matters`` is False only for changes that leave the plan as it was."""
    js = jobset(3, restarts=1)
    base = [pod("p0", 1, restarts=1), pod("p1", 0)]
    changed = _with(base[1], start_time="2026-01-01T00:00:00Z", conditions=())
    changed = msgspec.structs.replace(changed, spec=msgspec.structs.replace(changed.spec, node_name="n9"))
    assert not inplace.pod_change_matters(base[1], changed)
    assert run(js, base) == run(js, [base[0], changed])


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param(pod("p1", 1), pod("p1", 1, phase="Failed"), id="failed"),
        pytest.param(pod("p1", 0), pod("p1", 1), id="attempt-annotation"),
        pytest.param(pod("p1", 0), pod("p1", 0, restarts=4), id="container-restarts"),
        pytest.param(pod("p1", 0), pod("p1", 0, init=4), id="init-container-restarts"),
    ],
)
def test_a_change_decide_reads_is_urgent(old: Pod, new: Pod) -> None:
    assert inplace.pod_change_matters(old, new)
    js = jobset(3, restarts=1)
    assert run(js, [pod("p0", 1), old]) != run(js, [pod("p0", 1), new])


def test_adds_deletes_and_re_created_pods_are_urgent() -> None:
    p = pod("p1", 0)
    assert inplace.pod_change_matters(None, p)
    assert inplace.pod_change_matters(p, None)
    other = msgspec.structs.replace(p, metadata=msgspec.structs.replace(p.metadata, uid="other"))
    assert inplace.pod_change_matters(p, other)
