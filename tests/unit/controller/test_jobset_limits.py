"""Our admission size limits (behaviour.md §5.5 "Size limits") and the worker-count setting.

Each refusal names the field and the fix; ``replicas: 0`` and an empty ``replicatedJobs`` stay accepted as the
reference accepts them (conformance 77 and 91).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from api import constants as c
from controller.settings import JOBSET_GROUP_KIND, ConfigError, load_settings
from controller.webhooks import default_jobset, validate_create, validate_update
from tests.builders import JobSetBuilder

JSON = dict[str, Any]


def _valid(builder: JobSetBuilder) -> JSON:
    return default_jobset(builder.obj())


def _texts(obj: JSON) -> list[str]:
    return [str(e) for e in validate_create(obj, {})]


def test_too_many_jobs_is_refused_at_the_largest_replicas_field() -> None:
    obj = _valid(JobSetBuilder("huge").rjob("a", 2).rjob("w", 100_000))
    (text,) = _texts(obj)
    assert text.startswith("spec.replicatedJobs[1].replicas: Invalid value: 100000: the JobSet would own 100002 Jobs")
    assert f"at most {c.MAX_JOBS_PER_JOBSET}" in text
    assert "lower replicas" in text
    assert "split the work into several JobSets" in text


def test_the_job_limit_itself_is_accepted() -> None:
    obj = _valid(JobSetBuilder("edge").rjob("w", c.MAX_JOBS_PER_JOBSET))
    assert _texts(obj) == []


def test_too_many_replicated_jobs_is_refused() -> None:
    builder = JobSetBuilder("many")
    for i in range(10_000):
        builder.rjob(f"r{i}", 1)
    texts = _texts(_valid(builder))  # (10,000 templates are over the byte limit too: both are reported)
    (text,) = [t for t in texts if t.startswith("spec.replicatedJobs: ")]
    assert text.startswith(
        f"spec.replicatedJobs: Too many: 10000: must have at most {c.MAX_REPLICATED_JOBS} items (a pyjobset limit)"
    )
    assert "split the work into several JobSets" in text


def test_an_object_over_the_byte_limit_is_refused_naming_the_largest_part() -> None:
    obj = _valid(JobSetBuilder("fat").rjob("a", 1).rjob("b", 1))
    pod = obj["spec"]["replicatedJobs"][1]["template"]["spec"]["template"]["spec"]
    pod["containers"][0]["args"] = ["x" * (1536 * 1024)]
    (text,) = _texts(obj)
    assert text.startswith("spec.replicatedJobs[1].template: Too long: the JobSet is ")
    assert f"at most {c.MAX_JOBSET_BYTES} are allowed" in text
    assert "ConfigMap" in text


def test_large_annotations_are_named_as_the_culprit() -> None:
    obj = _valid(JobSetBuilder("ann").rjob("a", 1))
    obj["metadata"]["annotations"] = {"example.com/blob": "y" * (1536 * 1024)}
    (text,) = _texts(obj)
    assert text.startswith("metadata.annotations: Too long: the JobSet is ")


@pytest.mark.parametrize(
    "builder",
    [
        pytest.param(JobSetBuilder("zero").rjob("a", 1).rjob("b", 0), id="replicas-0"),
        pytest.param(JobSetBuilder("empty"), id="empty-replicatedJobs"),
    ],
)
def test_zero_replicas_and_empty_replicated_jobs_stay_accepted(builder: JobSetBuilder) -> None:
    assert _texts(_valid(builder)) == []


def test_an_update_is_refused_only_when_it_grows_an_object_past_the_byte_limit() -> None:
    old = _valid(JobSetBuilder("u").rjob("a", 1))
    grown = default_jobset(JobSetBuilder("u").rjob("a", 1).obj())
    grown["metadata"]["annotations"] = {"example.com/blob": "z" * (1536 * 1024)}
    (err,) = validate_update(grown, old, {})
    assert str(err).startswith("metadata.annotations: Too long: the JobSet is ")
    # An object already over the limit (stored before the limit existed) may still shrink or stay as it is.
    assert list(validate_update(grown, grown, {})) == []
    assert list(validate_update(old, grown, {})) == []


# --------------------------------------------------------------------------------------------- workers


def test_one_worker_by_default_like_the_reference() -> None:
    assert load_settings().controller.workers() == 1


def test_group_kind_concurrency_sets_the_jobset_workers(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"controller:\n  groupKindConcurrency:\n    {JOBSET_GROUP_KIND}: 4\n")
    assert load_settings(path).controller.workers() == 4


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ("Job.batch: 2", "controller.groupKindConcurrency.Job.batch: unknown group-kind"),
        (f"{JOBSET_GROUP_KIND}: 0", "expected a number of workers from 1 to 64, got 0"),
        (f"{JOBSET_GROUP_KIND}: many", "expected a number of workers from 1 to 64, got 'many'"),
    ],
)
def test_bad_group_kind_concurrency_names_the_field(tmp_path: Path, entry: str, needle: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"controller:\n  groupKindConcurrency:\n    {entry}\n")
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_settings(path)
