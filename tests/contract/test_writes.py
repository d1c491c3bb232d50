"""CREATE, UPDATE and PATCH: server-set fields, optimistic concurrency, every patch type, status subresources."""

from __future__ import annotations

from typing import Any

from tests.contract.client import Kube
from tests.contract.conftest import cm, pod, widget

JSON = dict[str, Any]


def job(name: str, ns: str, suspend: bool = True) -> JSON:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "suspend": suspend,
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
            },
        },
    }


async def test_create_sets_uid_timestamp_and_generate_name(kube: Kube, ns: str) -> None:
    body = cm("", ns)
    body["metadata"] = {"generateName": "gen-"}
    reply = await kube.post(f"/api/v1/namespaces/{ns}/configmaps", body)
    assert reply.status == 201
    meta = reply.obj()["metadata"]
    assert meta["name"].startswith("gen-")
    assert len(meta["name"]) == len("gen-") + 5
    assert meta["uid"]
    assert meta["creationTimestamp"].endswith("Z")
    assert meta["namespace"] == ns


async def test_create_twice_is_409_already_exists(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    assert (await kube.post(path, cm("dup", ns))).status == 201
    reply = await kube.post(path, cm("dup", ns))
    assert reply.status == 409
    status = reply.obj()
    assert status["kind"] == "Status"
    assert status["reason"] == "AlreadyExists"
    assert status["message"] == 'configmaps "dup" already exists'
    assert status["details"] == {"name": "dup", "kind": "configmaps"}


async def test_stale_update_is_409_conflict(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    obj = (await kube.post(path, cm("u", ns))).obj()
    first = dict(obj, data={"k": "1"})
    assert (await kube.put(f"{path}/u", first)).status == 200
    second = dict(obj, data={"k": "2"})
    reply = await kube.put(f"{path}/u", second)
    assert reply.status == 409
    assert reply.obj()["reason"] == "Conflict"
    assert "the object has been modified" in reply.obj()["message"]


async def test_update_of_missing_object_is_404(kube: Kube, ns: str) -> None:
    reply = await kube.put(f"/api/v1/namespaces/{ns}/configmaps/ghost", cm("ghost", ns))
    assert reply.status == 404
    assert reply.obj()["reason"] == "NotFound"


async def test_noop_update_keeps_resource_version(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    obj = (await kube.post(path, cm("n", ns))).obj()
    again = (await kube.put(f"{path}/n", obj)).obj()
    assert again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


async def test_merge_patch_json_patch_and_strategic_merge(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/pods"
    body = pod("pp", ns, schedulingGates=[{"name": "example.com/hold"}])
    body["spec"]["containers"].append({"name": "d", "image": "registry.k8s.io/pause:3.10"})
    body["metadata"]["labels"] = {"a": "1", "b": "2"}
    assert (await kube.post(path, body)).status == 201
    merged = await kube.patch(f"{path}/pp", {"metadata": {"labels": {"a": None, "c": "3"}}}, "merge")
    assert merged.obj()["metadata"]["labels"] == {"b": "2", "c": "3"}
    jp = await kube.patch(
        f"{path}/pp",
        [
            {"op": "add", "path": "/metadata/annotations", "value": {"x": "y"}},
            {"op": "test", "path": "/metadata/labels/b", "value": "2"},
        ],
        "json",
    )
    assert jp.status == 200
    assert jp.obj()["metadata"]["annotations"] == {"x": "y"}
    failed = await kube.patch(f"{path}/pp", [{"op": "test", "path": "/metadata/labels/b", "value": "9"}], "json")
    assert failed.status == 422
    smp = await kube.patch(
        f"{path}/pp", {"spec": {"containers": [{"name": "d", "image": "example.com/new:1"}]}}, "strategic"
    )
    assert smp.status == 200, smp.body
    images = {c["name"]: c["image"] for c in smp.obj()["spec"]["containers"]}
    assert images == {"c": "registry.k8s.io/pause:3.10", "d": "example.com/new:1"}
    merged_list = await kube.patch(f"{path}/pp", {"spec": {"schedulingGates": None}}, "strategic")
    assert merged_list.status == 200
    assert not merged_list.obj()["spec"].get("schedulingGates")


async def test_patch_with_stale_resource_version_conflicts(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    obj = (await kube.post(path, cm("pv", ns))).obj()
    await kube.patch(f"{path}/pv", {"data": {"k": "1"}})
    reply = await kube.patch(
        f"{path}/pv", {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}, "data": {"k": "2"}}
    )
    assert reply.status == 409
    assert reply.obj()["reason"] == "Conflict"


async def test_server_side_apply_creates_updates_and_removes_owned_fields(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps/ssa"
    cfg = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ssa", "labels": {"a": "1"}},
        "data": {"x": "1", "y": "2"},
    }
    created = await kube.patch(path, cfg, "apply", fieldManager="tester")
    assert created.status == 201, created.body
    managers = [m["manager"] for m in created.obj()["metadata"]["managedFields"]]
    assert "tester" in managers
    cfg2 = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"x": "9"}}
    updated = await kube.patch(path, cfg2, "apply", fieldManager="tester")
    assert updated.status == 200
    assert updated.obj()["data"] == {"x": "9"}
    assert "a" not in (updated.obj()["metadata"].get("labels") or {})


async def test_server_side_apply_conflict_and_force(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps/ssc"
    cfg = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssc"}, "data": {"x": "1"}}
    assert (await kube.patch(path, cfg, "apply", fieldManager="one")).status == 201
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssc"}, "data": {"x": "2"}}
    reply = await kube.patch(path, other, "apply", fieldManager="two")
    assert reply.status == 409
    assert reply.obj()["reason"] == "Conflict"
    forced = await kube.patch(path, other, "apply", fieldManager="two", force="true")
    assert forced.status == 200
    assert forced.obj()["data"] == {"x": "2"}


async def test_apply_without_field_manager_is_422(kube: Kube, ns: str) -> None:
    cfg = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nofm"}, "data": {"x": "1"}}
    reply = await kube.patch(f"/api/v1/namespaces/{ns}/configmaps/nofm", cfg, "apply")
    assert reply.status == 422
    status = reply.obj()
    assert status["reason"] == "Invalid"
    assert status["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
    )
    assert [(c["reason"], c["field"]) for c in status["details"]["causes"]] == [("FieldValueRequired", "fieldManager")]


async def test_status_subresource_separates_spec_and_status(kube: Kube, ns: str, widgets: str) -> None:
    path = f"{widgets}/namespaces/{ns}/widgets"
    body = widget("st", size=1)
    body["apiVersion"] = widgets.removeprefix("/apis/")
    obj = (await kube.post(path, body)).obj()
    assert obj["metadata"]["generation"] == 1
    # A status change through the main resource is ignored.
    obj["status"] = {"phase": "Main"}
    main = (await kube.put(f"{path}/st", obj)).obj()
    assert "status" not in main
    assert main["metadata"]["generation"] == 1
    # A spec change through /status is ignored; the status sticks; generation does not move.
    main["status"] = {"phase": "Up"}
    main["spec"]["size"] = 4
    status = (await kube.put(f"{path}/st/status", main)).obj()
    assert status["status"] == {"phase": "Up"}
    assert status["spec"]["size"] == 1
    assert status["metadata"]["generation"] == 1
    # A spec change through the main resource bumps generation and keeps status.
    patched = (await kube.patch(f"{path}/st", {"spec": {"size": 3}})).obj()
    assert patched["metadata"]["generation"] == 2
    assert patched["status"] == {"phase": "Up"}
    # A metadata-only change does not bump generation.
    labelled = (await kube.patch(f"{path}/st", {"metadata": {"labels": {"x": "y"}}})).obj()
    assert labelled["metadata"]["generation"] == 2


async def test_job_status_written_through_main_resource_is_ignored(kube: Kube, ns: str) -> None:
    path = f"/apis/batch/v1/namespaces/{ns}/jobs"
    await kube.post(path, job("js", ns))
    reply = await kube.patch(f"{path}/js", {"status": {"failed": 5}, "metadata": {"labels": {"a": "b"}}})
    assert reply.status == 200
    assert reply.obj()["metadata"]["labels"]["a"] == "b"
    assert reply.obj().get("status", {}).get("failed") is None


async def test_patch_of_status_subresource(kube: Kube, ns: str) -> None:
    path = f"/apis/batch/v1/namespaces/{ns}/jobs"
    await kube.post(path, job("ps", ns))
    reply = await kube.patch(f"{path}/ps/status", {"status": {"failed": 2}, "spec": {"parallelism": 9}})
    assert reply.status == 200
    assert reply.obj()["status"]["failed"] == 2
    assert reply.obj()["spec"]["parallelism"] == 1


async def test_job_gets_generated_selector_and_labels(kube: Kube, ns: str) -> None:
    obj = (await kube.post(f"/apis/batch/v1/namespaces/{ns}/jobs", job("sel", ns))).obj()
    uid = obj["metadata"]["uid"]
    assert obj["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    labels = obj["spec"]["template"]["metadata"]["labels"]
    assert labels["batch.kubernetes.io/controller-uid"] == uid
    assert labels["batch.kubernetes.io/job-name"] == "sel"
    assert obj["spec"]["backoffLimit"] == 6
    assert obj["spec"]["completionMode"] == "NonIndexed"


async def test_dry_run_does_not_persist(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    reply = await kube.post(path, cm("dry", ns), dryRun="All")
    assert reply.status == 201
    assert (await kube.get(f"{path}/dry")).status == 404


async def test_apply_conflicts_with_a_field_set_by_an_update_manager(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    created = await kube.post(path, cm("upd", ns, data={"x": "1", "y": "2"}), fieldManager="creator")
    managers = {(m["manager"], m["operation"]) for m in created.obj()["metadata"]["managedFields"]}
    assert ("creator", "Update") in managers
    same = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "upd"}, "data": {"x": "1"}}
    assert (await kube.patch(f"{path}/upd", same, "apply", fieldManager="applier")).status == 200
    changed = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "upd"}, "data": {"y": "9"}}
    reply = await kube.patch(f"{path}/upd", changed, "apply", fieldManager="applier")
    assert reply.status == 409
    assert 'conflict with "creator"' in reply.obj()["message"]
    forced = await kube.patch(f"{path}/upd", changed, "apply", fieldManager="applier", force="true")
    assert forced.status == 200
    assert forced.obj()["data"] == {"x": "1", "y": "9"}


async def test_pod_spec_is_immutable_except_the_mutable_fields(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/pods"
    body = pod("imm", ns, schedulingGates=[{"name": "example.com/hold"}])
    assert (await kube.post(path, body)).status == 201
    # While gated, scheduling directives may change; images may always change.
    assert (await kube.patch(f"{path}/imm", {"spec": {"nodeSelector": {"pool": "a"}}})).status == 200
    image = await kube.patch(
        f"{path}/imm",
        [{"op": "replace", "path": "/spec/containers/0/image", "value": "registry.k8s.io/pause:3.9"}],
        "json",
    )
    assert image.status == 200
    ungated = await kube.patch(f"{path}/imm", {"spec": {"schedulingGates": None}})
    assert ungated.status == 200
    restart = await kube.patch(f"{path}/imm", {"spec": {"restartPolicy": "Never"}})
    assert restart.status == 422
    assert restart.obj()["details"]["causes"][0]["field"] == "spec"
    assert "pod updates may not change fields" in restart.obj()["message"]


async def test_job_template_is_immutable_unless_suspended_and_never_started(kube: Kube, ns: str) -> None:
    path = f"/apis/batch/v1/namespaces/{ns}/jobs"
    assert (await kube.post(path, job("susp", ns, suspend=True))).status == 201
    directives = {"spec": {"template": {"metadata": {"labels": {"x": "y"}}, "spec": {"nodeSelector": {"pool": "a"}}}}}
    assert (await kube.patch(f"{path}/susp", directives)).status == 200
    image = [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "example.com/other:1"}]
    changed = await kube.patch(f"{path}/susp", image, "json")
    assert changed.status == 422
    # A suspended Job that never started may change only its pod spec's scheduling directives and resources.
    assert changed.obj()["details"]["causes"][0]["field"] == "spec.template.spec"
    resources = [{"op": "add", "path": "/spec/template/spec/containers/0/resources", "value": {"limits": {"cpu": "1"}}}]
    assert (await kube.patch(f"{path}/susp", resources, "json")).status == 200
    assert (await kube.post(path, job("run", ns, suspend=False))).status == 201
    running = await kube.patch(f"{path}/run", {"spec": {"template": {"metadata": {"labels": {"x": "y"}}}}})
    assert running.status == 422
    assert running.obj()["details"]["causes"][0]["field"] == "spec.template"
    completions = await kube.patch(f"{path}/susp", {"spec": {"completions": 3}})
    assert completions.status == 422
    assert (await kube.patch(f"{path}/susp", {"spec": {"parallelism": 2}})).status == 200


async def test_job_status_rules_for_terminal_conditions(kube: Kube, ns: str) -> None:
    path = f"/apis/batch/v1/namespaces/{ns}/jobs"
    body = job("term", ns, suspend=False)
    body["spec"]["managedBy"] = "contract.pyjobset.io/manual"  # the cluster's Job controller leaves it alone
    body["spec"]["template"]["spec"]["schedulingGates"] = [{"name": "example.com/hold"}]
    assert (await kube.post(path, body)).status == 201
    now = "2026-01-01T00:00:00Z"

    def cond(ctype: str) -> dict[str, str]:
        return {"type": ctype, "status": "True", "reason": "Test", "message": "m", "lastTransitionTime": now}

    bare = await kube.patch(
        f"{path}/term/status", {"status": {"startTime": now, "completionTime": now, "conditions": [cond("Complete")]}}
    )
    assert bare.status == 422
    assert "SuccessCriteriaMet" in bare.obj()["message"]
    no_start = await kube.patch(
        f"{path}/term/status", {"status": {"conditions": [cond("FailureTarget"), cond("Failed")]}}
    )
    assert no_start.status == 422
    assert "startTime" in [c["field"].split(".")[-1] for c in no_start.obj()["details"]["causes"]]
    ok = await kube.patch(
        f"{path}/term/status",
        {
            "status": {
                "startTime": now,
                "completionTime": now,
                "succeeded": 1,
                "conditions": [cond("SuccessCriteriaMet"), cond("Complete")],
            }
        },
    )
    assert ok.status == 200, ok.body
    undo = await kube.patch(f"{path}/term/status", {"status": {"conditions": [cond("SuccessCriteriaMet")]}})
    assert undo.status == 422
