"""Classifying children and counting replicatedJobsStatus: the edges (behaviour.md §4.3 and §1.6).

Found by mutation testing (docs/design/mutation-testing.md): the ready rule with every parallelism/completions
combination, Jobs listed after a previous-attempt Job, several failed Jobs, children labelled with a replicated
job the spec does not have, and each label error naming the Job and the label.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from api import constants as c
from api.jobset_types import JobSet, ReplicatedJobStatus
from api.records import Job
from controller.decide.classify import ClassifyError, classify, replicated_jobs_status
from tests.builders import JobSetBuilder, failed_status


def jobset(*, restarts: int = 0, replicas: int = 2, job_restarts: tuple[int, ...] | None = None) -> JobSet:
    js = JobSetBuilder("js").rjob("w", replicas).record(restarts=restarts)
    if job_restarts is not None:
        rjs = ReplicatedJobStatus(name="w", job_restarts=job_restarts, job_restarts_count_towards_max=job_restarts)
        js = msgspec.structs.replace(js, status=msgspec.structs.replace(js.status, replicated_jobs_status=(rjs,)))
    return js


def job(
    name: str,
    labels: dict[str, str],
    *,
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
) -> Job:
    obj: dict[str, Any] = {"metadata": {"name": name, "labels": labels}, "spec": spec or {}, "status": status or {}}
    return msgspec.convert(obj, Job)


def ours(attempt: str = "0", rjob: str | None = "w", **extra: str) -> dict[str, str]:
    labels = {c.RESTART_ATTEMPT_KEY: attempt, **extra}
    if rjob is not None:
        labels[c.REPLICATED_JOB_NAME_KEY] = rjob
    return labels


# --------------------------------------------------------------------------------------------- ready (§1.6)


@pytest.mark.parametrize(
    ("spec", "ready", "succeeded", "counted"),
    [
        pytest.param({}, 1, 0, True, id="parallelism-unset-means-1"),
        pytest.param({"parallelism": 2}, 1, 0, False, id="completions-unset-needs-parallelism"),
        pytest.param({"parallelism": 2}, 2, 0, True, id="completions-unset-all-parallel-pods-ready"),
        pytest.param({"parallelism": 3, "completions": 2}, 2, 0, True, id="completions-below-parallelism"),
        pytest.param({"parallelism": 3, "completions": 2}, 1, 0, False, id="completions-below-parallelism-short"),
        pytest.param({"parallelism": 2, "completions": 5}, 2, 0, True, id="completions-above-parallelism"),
        pytest.param({"parallelism": 2, "completions": 5}, 1, 1, True, id="succeeded-pods-count-as-ready"),
    ],
)
def test_ready_needs_min_of_parallelism_and_completions(
    spec: dict[str, Any], ready: int, succeeded: int, counted: bool
) -> None:
    kids = classify(jobset(), (job("js-w-0", ours(), spec=spec, status={"ready": ready, "succeeded": succeeded}),))
    assert kids.counts["w"][0] == (1 if counted else 0)


# --------------------------------------------------------------------------------------------- buckets


def test_jobs_after_a_previous_attempt_job_are_still_classified() -> None:
    jobs = (
        job("js-w-0", ours("0")),
        job("js-w-1", ours("1"), status={"active": 1}),
        job("js-w-2", ours("1"), status=failed_status()),
    )
    kids = classify(jobset(restarts=1, replicas=3), jobs)
    assert [j.metadata.name for j in kids.previous] == ["js-w-0"]
    assert [j.metadata.name for j in kids.active] == ["js-w-1"]
    assert [j.metadata.name for j in kids.failed] == ["js-w-2"]


def test_an_attempt_label_equal_in_value_is_the_current_attempt() -> None:
    kids = classify(jobset(restarts=1), (job("js-w-0", ours("01")),))
    assert (len(kids.active), len(kids.previous)) == (1, 0)


def test_several_failed_jobs_are_all_counted() -> None:
    jobs = tuple(job(f"js-w-{i}", ours(), status=failed_status()) for i in range(3))
    rjs = replicated_jobs_status(jobset(replicas=3), classify(jobset(replicas=3), jobs), restart_job_gate=False)
    assert [(s.name, s.failed, s.ready, s.succeeded, s.active) for s in rjs] == [("w", 3, 0, 0, 0)]


def test_children_of_a_replicated_job_not_in_the_spec_are_counted_nowhere() -> None:
    jobs = (job("js-gone-0", ours(rjob="gone"), status={"active": 1, "ready": 1}), job("js-w-0", ours()))
    kids = classify(jobset(), jobs)
    assert set(kids.counts) == {"w"}
    assert kids.counts["w"] == [0, 0, 0, 0, 0]
    assert len(kids.active) == 2  # still a child: it is classified, just not counted for any replicated job


def test_job_restart_arrays_are_dropped_with_the_gate_off() -> None:
    js = jobset(job_restarts=(1, 0))
    kids = classify(js, ())
    assert [s.job_restarts for s in replicated_jobs_status(js, kids, restart_job_gate=False)] == [None]
    assert [s.job_restarts for s in replicated_jobs_status(js, kids, restart_job_gate=True)] == [(1, 0)]


def test_the_gate_is_off_unless_asked() -> None:
    # No job-index label: only the RestartJob gate needs one (behaviour.md §4.3).
    kids = classify(jobset(), (job("js-w-0", ours()),))
    assert len(kids.active) == 1


# --------------------------------------------------------------------------------------------- RestartJob gate on


def test_job_restart_attempt_equal_to_the_array_entry_is_current() -> None:
    labels = ours(**{c.JOB_INDEX_KEY: "1", c.JOB_RESTART_ATTEMPT_KEY: "1"})
    kids = classify(jobset(job_restarts=(0, 1)), (job("js-w-1", labels),), restart_job_gate=True)
    assert (len(kids.active), len(kids.previous)) == (1, 0)


def test_jobs_after_a_previous_job_attempt_are_still_classified() -> None:
    stale = job("js-w-0", ours(**{c.JOB_INDEX_KEY: "0", c.JOB_RESTART_ATTEMPT_KEY: "0"}))
    fresh = job("js-w-1", ours(**{c.JOB_INDEX_KEY: "1", c.JOB_RESTART_ATTEMPT_KEY: "0"}), status=failed_status())
    kids = classify(jobset(job_restarts=(1, 0)), (stale, fresh), restart_job_gate=True)
    assert [j.metadata.name for j in kids.previous] == ["js-w-0"]
    assert [j.metadata.name for j in kids.failed] == ["js-w-1"]


def test_job_without_job_restart_attempt_is_current_with_the_gate_on() -> None:
    older = job("js-w-0", ours(**{c.JOB_INDEX_KEY: "0"}))
    kids = classify(jobset(job_restarts=(3, 3)), (older,), restart_job_gate=True)
    assert (len(kids.active), len(kids.previous)) == (1, 0)


# --------------------------------------------------------------------------------------------- label errors


@pytest.mark.parametrize(
    ("labels", "gate", "words"),
    [
        pytest.param({c.REPLICATED_JOB_NAME_KEY: "w"}, False, [c.RESTART_ATTEMPT_KEY], id="attempt-missing"),
        pytest.param(ours("one"), False, [c.RESTART_ATTEMPT_KEY, "'one'"], id="attempt-not-an-integer"),
        pytest.param(ours(**{c.JOB_RESTART_ATTEMPT_KEY: "0"}), True, ["job-index"], id="gate-on-job-index-missing"),
        pytest.param(
            ours(rjob=None, **{c.JOB_INDEX_KEY: "0"}), True, ["replicated-job name"], id="gate-on-rjob-label-missing"
        ),
        pytest.param(
            ours(**{c.JOB_INDEX_KEY: "2", c.JOB_RESTART_ATTEMPT_KEY: "0"}), True, ["job-index 2"], id="index-too-big"
        ),
        pytest.param(
            ours(rjob="gone", **{c.JOB_INDEX_KEY: "0", c.JOB_RESTART_ATTEMPT_KEY: "0"}),
            True,
            ["job-index 0"],
            id="rjob-not-in-spec-has-no-array",
        ),
    ],
)
def test_label_errors_name_the_job_and_the_label(labels: dict[str, str], gate: bool, words: list[str]) -> None:
    with pytest.raises(ClassifyError) as err:
        classify(jobset(), (job("js-w-9", labels),), restart_job_gate=gate)
    message = str(err.value)
    assert "'js-w-9'" in message
    for word in words:
        assert word in message
