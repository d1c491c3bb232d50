"""The whole shape of the objects a JobSet owns, field by field (behaviour.md §2, §2.2 and §3).

Found by mutation testing (docs/design/mutation-testing.md): the earlier tests checked names and our labels, not
the kind/apiVersion/namespace of each manifest nor that the user's template metadata, nodeSelector, tolerations
and volumes survive next to what the controller adds.
"""

from __future__ import annotations

from typing import Any

from api import constants as c
from api.jobset_types import JobSet, jobset_from_obj
from controller.decide import children
from tests.builders import JobSetBuilder

TOPO = "cloud.google.com/gke-nodepool"
OWNER = {
    "apiVersion": "jobset.x-k8s.io/v1alpha2",
    "kind": "JobSet",
    "name": "js",
    "uid": "u",
    "controller": True,
    "blockOwnerDeletion": True,
}


def rich_jobset(*, claims: list[dict[str, Any]] | None = None) -> JobSet:
    obj = JobSetBuilder("js", "ns").rjob("w", 2).obj()
    obj["metadata"]["uid"] = "u"
    rjob = obj["spec"]["replicatedJobs"][0]
    rjob["template"]["metadata"] = {
        "labels": {"team": "ml", c.JOBSET_NAME_KEY: "not-ours"},
        "annotations": {"note": "kept", c.JOB_INDEX_KEY: "not-ours", c.EXCLUSIVE_TOPOLOGY_KEY: TOPO},
    }
    rjob["template"]["metadata"]["annotations"][c.NODE_SELECTOR_STRATEGY_KEY] = "yes"
    pod = rjob["template"]["spec"]["template"]
    pod["metadata"] = {"labels": {"app": "trainer", c.JOB_INDEX_KEY: "7"}, "annotations": {"sidecar": "on"}}
    pod["spec"]["nodeSelector"] = {"pool": "gpu"}
    pod["spec"]["tolerations"] = [{"key": "gpu", "operator": "Exists"}]
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    pod["spec"]["initContainers"] = [
        {"name": "init", "image": "busybox", "volumeMounts": [{"name": "scratch", "mountPath": "/s"}]}
    ]
    pod["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "cfg"}}]
    if claims is not None:
        obj["spec"]["volumeClaimPolicies"] = [{"templates": claims}]
    return jobset_from_obj(obj)


def claim(name: str | None) -> dict[str, Any]:
    meta = {} if name is None else {"name": name}
    return {"metadata": meta, "spec": {"accessModes": ["ReadWriteOnce"]}}


def test_job_manifest_kind_name_namespace_and_owner() -> None:
    js = rich_jobset()
    job = children.build_job(js, js.spec.replicated_jobs[0], 1)
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    meta = job["metadata"]
    assert (meta["name"], meta["namespace"]) == ("js-w-1", "ns")
    assert meta["ownerReferences"] == [OWNER]


def test_job_and_pod_metadata_keep_the_users_keys_and_ours_win() -> None:
    js = rich_jobset()
    job = children.build_job(js, js.spec.replicated_jobs[0], 1)
    labels, annotations = job["metadata"]["labels"], job["metadata"]["annotations"]
    assert labels["team"] == "ml"
    assert annotations["note"] == "kept"
    assert labels[c.JOBSET_NAME_KEY] == annotations[c.JOBSET_NAME_KEY] == "js"
    assert labels[c.JOB_INDEX_KEY] == annotations[c.JOB_INDEX_KEY] == "1"
    # The exclusive-placement keys are annotation-only, with the value the user gave.
    assert (annotations[c.EXCLUSIVE_TOPOLOGY_KEY], annotations[c.NODE_SELECTOR_STRATEGY_KEY]) == (TOPO, "yes")
    assert c.EXCLUSIVE_TOPOLOGY_KEY not in labels

    pod_meta = job["spec"]["template"]["metadata"]
    assert pod_meta["labels"]["app"] == "trainer"
    assert pod_meta["labels"][c.JOB_INDEX_KEY] == "1"
    assert pod_meta["annotations"]["sidecar"] == "on"
    assert pod_meta["annotations"][c.JOB_INDEX_KEY] == "1"
    assert pod_meta["annotations"][c.EXCLUSIVE_TOPOLOGY_KEY] == TOPO
    assert pod_meta["annotations"][c.NODE_SELECTOR_STRATEGY_KEY] == "yes"


def test_node_selector_strategy_adds_to_the_users_selector_and_tolerations() -> None:
    js = rich_jobset()
    pod_spec = children.build_job(js, js.spec.replicated_jobs[0], 0)["spec"]["template"]["spec"]
    assert pod_spec["nodeSelector"] == {"pool": "gpu", c.NAMESPACED_JOB_KEY: "ns_js-w-0"}
    assert pod_spec["tolerations"] == [
        {"key": "gpu", "operator": "Exists"},
        {"key": c.NO_SCHEDULE_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"},
    ]


def test_claim_volumes_for_containers_and_init_containers_after_the_users_volumes() -> None:
    js = rich_jobset(claims=[claim("data"), claim("scratch"), claim("unmounted")])
    pod_spec = children.build_job(js, js.spec.replicated_jobs[0], 0)["spec"]["template"]["spec"]
    assert pod_spec["volumes"] == [
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-js"}},
        {"name": "scratch", "persistentVolumeClaim": {"claimName": "scratch-js"}},
    ]


def test_pvc_manifests_kind_and_namespace_and_a_nameless_template_is_skipped() -> None:
    js = rich_jobset(claims=[claim(None), claim(""), claim("data"), claim("scratch")])
    pvcs = children.build_pvcs(js)
    assert [p["metadata"]["name"] for p in pvcs] == ["data-js", "scratch-js"]
    for pvc in pvcs:
        assert (pvc["apiVersion"], pvc["kind"]) == ("v1", "PersistentVolumeClaim")
        assert pvc["metadata"]["namespace"] == "ns"
        assert pvc["metadata"]["ownerReferences"] == [OWNER]
        assert pvc["spec"] == {"accessModes": ["ReadWriteOnce"]}


def test_headless_service_manifest() -> None:
    js = rich_jobset()
    svc = children.build_headless_service(js)
    assert (svc["apiVersion"], svc["kind"]) == ("v1", "Service")
    assert svc["metadata"] == {"name": "js", "namespace": "ns", "ownerReferences": [OWNER]}
    assert svc["spec"] == {"clusterIP": "None", "selector": {c.JOBSET_NAME_KEY: "js"}, "publishNotReadyAddresses": True}
