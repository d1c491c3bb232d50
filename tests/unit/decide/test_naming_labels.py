"""Naming and labels of child Jobs (behaviour.md §2.1 and §3; conformance 127)."""

from __future__ import annotations

import hashlib

import pytest

from api import constants as c
from controller.decide import children, naming
from tests.builders import JobSetBuilder


def _js():  # type: ignore[no-untyped-def]
    return (
        JobSetBuilder("js", "ns")
        .rjob("driver", 1, group="g1")
        .rjob("workers", 3, group="g2")
        .rjob("ps", 2, group="g1")
        .record(uid="u-1", restarts=2)
    )


@pytest.mark.parametrize(
    ("rjob", "index", "global_index", "group_index"),
    [
        pytest.param("driver", 0, "0", "0", id="first-rjob"),
        pytest.param("workers", 2, "3", "2", id="second-rjob-own-group"),
        pytest.param("ps", 1, "5", "2", id="third-rjob-shares-group-with-first"),
        pytest.param("missing", 0, "", "", id="unknown-rjob-is-empty"),
    ],
)
def test_global_and_group_indexes(rjob: str, index: int, global_index: str, group_index: str) -> None:
    js = _js()
    assert naming.global_job_index(js, rjob, index) == global_index
    assert naming.group_job_index(js, rjob, index) == group_index


def test_group_replicas_and_missing_group() -> None:
    js = _js()
    assert naming.group_replicas(js, "g1") == "3"
    assert naming.group_replicas(js, "g2") == "3"
    assert naming.group_replicas(js, "nope") == ""
    assert naming.global_replicas(js) == 6


def test_job_key_is_sha1_of_namespace_and_name() -> None:
    key = naming.job_key("ns", "js-workers-1")
    assert key == hashlib.sha1(b"ns/js-workers-1").hexdigest()
    assert len(key) == 40


def test_child_job_labels_annotations_and_pod_template() -> None:
    js = _js()
    rjob = js.spec.replicated_jobs[1]
    job = children.build_job(js, rjob, 2)
    meta = job["metadata"]
    assert meta["name"] == "js-workers-2"
    expected = {
        c.JOBSET_NAME_KEY: "js",
        c.JOBSET_UID_KEY: "u-1",
        c.REPLICATED_JOB_NAME_KEY: "workers",
        c.RESTART_ATTEMPT_KEY: "2",
        c.REPLICATED_JOB_REPLICAS_KEY: "3",
        c.GLOBAL_REPLICAS_KEY: "6",
        c.JOB_INDEX_KEY: "2",
        c.JOB_GLOBAL_INDEX_KEY: "3",
        c.JOB_KEY: naming.job_key("ns", "js-workers-2"),
        c.GROUP_NAME_KEY: "g2",
        c.GROUP_REPLICAS_KEY: "3",
        c.JOB_GROUP_INDEX_KEY: "2",
    }
    pod_meta = job["spec"]["template"]["metadata"]
    for where in (meta["labels"], meta["annotations"], pod_meta["labels"], pod_meta["annotations"]):
        assert expected.items() <= where.items()
        assert c.JOB_RESTART_ATTEMPT_KEY not in where
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "jobset.x-k8s.io/v1alpha2",
            "kind": "JobSet",
            "name": "js",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert job["spec"]["template"]["spec"]["subdomain"] == "js"
    assert job["spec"]["suspend"] is False


def test_job_restart_attempt_only_when_given() -> None:
    js = _js()
    job = children.build_job(js, js.spec.replicated_jobs[0], 0, job_restart_attempt=4)
    assert job["metadata"]["labels"][c.JOB_RESTART_ATTEMPT_KEY] == "4"
    assert job["spec"]["template"]["metadata"]["annotations"][c.JOB_RESTART_ATTEMPT_KEY] == "4"


def test_template_labels_are_kept_and_controller_keys_win() -> None:
    b = JobSetBuilder("js", "ns").rjob("w", 1)
    obj = b.obj()
    obj["spec"]["replicatedJobs"][0]["template"]["metadata"] = {"labels": {"team": "ml", c.JOB_INDEX_KEY: "bogus"}}
    from api.jobset_types import jobset_from_obj

    js = jobset_from_obj({**obj, "metadata": {**obj["metadata"], "uid": "u"}})
    job = children.build_job(js, js.spec.replicated_jobs[0], 0)
    assert job["metadata"]["labels"]["team"] == "ml"
    assert job["metadata"]["labels"][c.JOB_INDEX_KEY] == "0"


def test_coordinator_endpoint_label() -> None:
    js = (
        JobSetBuilder("test-js")
        .rjob("replicated-job-a", 1)
        .rjob("replicated-job-b", 3)
        .set("spec.coordinator", {"replicatedJob": "replicated-job-a", "jobIndex": 0, "podIndex": 0})
        .record()
    )
    job = children.build_job(js, js.spec.replicated_jobs[1], 0)
    endpoint = "test-js-replicated-job-a-0-0.test-js"
    assert job["metadata"]["labels"][c.COORDINATOR_KEY] == endpoint
    assert job["spec"]["template"]["metadata"]["annotations"][c.COORDINATOR_KEY] == endpoint


def test_custom_subdomain_and_headless_service() -> None:
    js = JobSetBuilder("js", "ns").rjob("w", 1).set("spec.network.subdomain", "net").record()
    svc = children.build_headless_service(js)
    assert svc["metadata"]["name"] == "net"
    assert svc["spec"] == {
        "clusterIP": "None",
        "selector": {c.JOBSET_NAME_KEY: "js"},
        "publishNotReadyAddresses": True,
    }
    job = children.build_job(js, js.spec.replicated_jobs[0], 0)
    assert job["spec"]["template"]["spec"]["subdomain"] == "net"


def test_exclusive_node_selector_strategy() -> None:
    js = (
        JobSetBuilder("js", "ns")
        .rjob("w", 1)
        .annotate(c.EXCLUSIVE_TOPOLOGY_KEY, "cloud.google.com/gke-nodepool")
        .annotate(c.NODE_SELECTOR_STRATEGY_KEY, "true")
        .record()
    )
    job = children.build_job(js, js.spec.replicated_jobs[0], 0)
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["nodeSelector"] == {c.NAMESPACED_JOB_KEY: "ns_js-w-0"}
    assert {"key": c.NO_SCHEDULE_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"} in pod_spec["tolerations"]
    assert job["metadata"]["annotations"][c.EXCLUSIVE_TOPOLOGY_KEY] == "cloud.google.com/gke-nodepool"


def test_status_wire_form_keeps_required_fields() -> None:
    from api.jobset_types import Condition, JobSetStatus, ReplicatedJobStatus, encode_status

    status = JobSetStatus(
        conditions=(Condition(type="Suspended", status="False", reason="ResumeJobs", message=""),),
        replicated_jobs_status=(ReplicatedJobStatus(name="a"),),
    )
    wire = encode_status(status)
    assert wire["restarts"] == 0
    assert wire["conditions"][0]["message"] == ""
    assert "lastTransitionTime" in wire["conditions"][0]
    assert wire["replicatedJobsStatus"][0] == {
        "name": "a",
        "ready": 0,
        "succeeded": 0,
        "failed": 0,
        "active": 0,
        "suspended": 0,
    }
