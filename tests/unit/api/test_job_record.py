"""The slim Job record (issue 18, memory): only the label keys pyjobset reads survive decoding, strings that repeat
across Jobs are shared, and every reader's view (``get``, ``in``, ``[]``, ``items``, ``dict()``) still works."""

from __future__ import annotations

import msgspec
import orjson
import pytest

from api import constants as c
from api.records import Job, controller_uid
from controller.decide import children
from tests.builders import JobSetBuilder, job_condition

READ_KEYS = {
    c.JOBSET_NAME_KEY,
    c.JOBSET_UID_KEY,
    c.REPLICATED_JOB_NAME_KEY,
    c.JOB_INDEX_KEY,
    c.RESTART_ATTEMPT_KEY,
    c.JOB_RESTART_ATTEMPT_KEY,
}


def _wire_job(index: int) -> bytes:
    js = JobSetBuilder("train").rjob("workers", 4).record()
    manifest = children.build_job(js, js.spec.replicated_jobs[0], index, job_restart_attempt=2)
    manifest["metadata"]["uid"] = f"job-uid-{index}"
    manifest["metadata"]["labels"]["team"] = "ml"
    manifest["metadata"]["annotations"]["note"] = "x" * 100
    manifest["spec"]["template"].setdefault("metadata", {})["labels"] = {"job-name": "x"}
    manifest["status"] = {"conditions": [job_condition("Failed", reason="BackoffLimitExceeded", message="boom")]}
    return orjson.dumps(manifest)


def test_only_the_read_label_keys_are_kept() -> None:
    raw = orjson.loads(_wire_job(1))
    job = msgspec.json.decode(_wire_job(1), type=Job)
    labels = raw["metadata"]["labels"]
    assert dict(job.metadata.labels) == {k: v for k, v in labels.items() if k in READ_KEYS}
    assert set(dict(job.metadata.labels)) == READ_KEYS  # build_job writes every key a reader needs
    assert job.metadata.labels[c.JOB_INDEX_KEY] == "1"
    assert job.metadata.labels.get("team") is None
    assert job.metadata.labels.get("team", "") == ""
    assert "team" not in job.metadata.labels
    with pytest.raises(KeyError):
        job.metadata.labels["team"]
    assert not hasattr(job.metadata, "annotations")
    assert not hasattr(job.spec.template, "metadata")
    assert controller_uid(job.metadata) == "uid-1"
    failed = job.condition("Failed")
    assert failed is not None
    assert (failed.reason, failed.message) == ("BackoffLimitExceeded", "boom")


def test_repeated_strings_are_shared_between_jobs() -> None:
    a = msgspec.json.decode(_wire_job(0), type=Job)
    b = msgspec.json.decode(_wire_job(1), type=Job)
    for key in (c.JOBSET_NAME_KEY, c.JOBSET_UID_KEY, c.REPLICATED_JOB_NAME_KEY, c.RESTART_ATTEMPT_KEY):
        assert a.metadata.labels[key] is b.metadata.labels[key]
    assert a.metadata.namespace is b.metadata.namespace
    assert a.status.conditions[0].reason is b.status.conditions[0].reason
