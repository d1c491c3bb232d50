"""DELETE: finalizers and deletionTimestamp, preconditions, propagation policies and owner-reference GC."""

from __future__ import annotations

from typing import Any

from tests.contract.client import Kube, until
from tests.contract.conftest import cm, eventually, owner_ref

JSON = dict[str, Any]


async def _gone(kube: Kube, path: str) -> bool:
    return (await kube.get(path)).status == 404


async def test_delete_returns_object_and_then_404(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    created = (await kube.post(path, cm("d", ns))).obj()
    # Most kinds answer an immediate deletion with a Status naming the object (its resource as "kind").
    reply = await kube.delete(f"{path}/d")
    assert reply.status == 200
    status = reply.obj()
    assert (status["kind"], status["status"]) == ("Status", "Success")
    assert status["details"] == {"name": "d", "kind": "configmaps", "uid": created["metadata"]["uid"]}
    again = await kube.delete(f"{path}/d")
    assert again.status == 404
    assert again.obj()["reason"] == "NotFound"
    # A few (Pods, Services, ServiceAccounts, Namespaces, ...) answer with the deleted object itself.
    sas = f"/api/v1/namespaces/{ns}/serviceaccounts"
    await kube.post(sas, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "d"}})
    sa = await kube.delete(f"{sas}/d")
    assert sa.status == 200
    assert (sa.obj()["kind"], sa.obj()["metadata"]["name"]) == ("ServiceAccount", "d")


async def test_finalizer_holds_object_with_deletion_timestamp(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    body = cm("f", ns)
    body["metadata"]["finalizers"] = ["example.com/hold"]
    created = (await kube.post(path, body)).obj()
    watch = kube.watch(path, resourceVersion=created["metadata"]["resourceVersion"], timeout=20)
    reply = await kube.delete(f"{path}/f")
    assert reply.status in (200, 202)
    held = (await kube.get(f"{path}/f")).obj()
    assert held["metadata"]["deletionTimestamp"]
    assert held["metadata"]["finalizers"] == ["example.com/hold"]
    # New finalizers may not be added to an object being deleted.
    add = await kube.patch(f"{path}/f", {"metadata": {"finalizers": ["example.com/hold", "example.com/more"]}})
    assert add.status == 422
    assert (await kube.patch(f"{path}/f", {"metadata": {"finalizers": None}})).status == 200
    ev = await until(watch, lambda e: e["type"] == "DELETED")
    assert ev["object"]["metadata"]["name"] == "f"
    assert await _gone(kube, f"{path}/f")


async def test_delete_precondition_uid_mismatch_is_409(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    uid = (await kube.post(path, cm("pc", ns))).obj()["metadata"]["uid"]
    wrong = "00000000-0000-0000-0000-000000000000"
    reply = await kube.delete(
        f"{path}/pc", {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": wrong}}
    )
    assert reply.status == 409
    assert reply.obj()["reason"] == "Conflict"
    assert reply.obj()["message"] == (
        f'Operation cannot be fulfilled on ConfigMap "pc": the UID in the precondition ({wrong}) does not match '
        f"the UID in record ({uid}). The object might have been deleted and then recreated"
    )
    assert reply.obj()["details"]["kind"] == "ConfigMap"
    assert (await kube.get(f"{path}/pc")).status == 200


async def _owner_and_dependents(kube: Kube, ns: str, n: int = 2, block: bool = True) -> tuple[JSON, list[str]]:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    owner = (await kube.post(path, cm("owner", ns))).obj()
    names = []
    for i in range(n):
        dep = cm(f"dep{i}", ns)
        dep["metadata"]["ownerReferences"] = [owner_ref(owner, block=block)]
        assert (await kube.post(path, dep)).status == 201
        names.append(f"dep{i}")
    return owner, names


async def test_background_deletion_collects_dependents(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    _, deps = await _owner_and_dependents(kube, ns)
    reply = await kube.delete(f"{path}/owner", propagationPolicy="Background")
    assert reply.status == 200
    assert await _gone(kube, f"{path}/owner")
    for d in deps:
        await eventually(lambda d=d: _gone(kube, f"{path}/{d}"))


async def test_orphan_deletion_keeps_dependents_without_the_reference(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    owner, deps = await _owner_and_dependents(kube, ns)
    await kube.delete(f"{path}/owner", propagationPolicy="Orphan")
    await eventually(lambda: _gone(kube, f"{path}/owner"))
    for d in deps:
        obj = (await kube.get(f"{path}/{d}")).obj()
        refs = obj["metadata"].get("ownerReferences") or []
        assert owner["metadata"]["uid"] not in [r["uid"] for r in refs]


async def test_foreground_deletion_holds_owner_until_blocking_dependents_are_gone(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    _, deps = await _owner_and_dependents(kube, ns)
    # One dependent carries a finalizer, so the owner must wait for it.
    await kube.patch(f"{path}/{deps[0]}", {"metadata": {"finalizers": ["example.com/hold"]}})
    reply = await kube.delete(f"{path}/owner", propagationPolicy="Foreground")
    assert reply.status in (200, 202)
    held = (await kube.get(f"{path}/owner")).obj()
    assert held["metadata"]["deletionTimestamp"]
    assert "foregroundDeletion" in held["metadata"]["finalizers"]

    async def dependent_terminating() -> bool:
        obj = (await kube.get(f"{path}/{deps[0]}")).obj()
        return bool(obj["metadata"].get("deletionTimestamp"))

    await eventually(dependent_terminating)
    await eventually(lambda: _gone(kube, f"{path}/{deps[1]}"))
    assert (await kube.get(f"{path}/owner")).ok, "owner must wait for its blocking dependent"
    await kube.patch(f"{path}/{deps[0]}", {"metadata": {"finalizers": None}})
    await eventually(lambda: _gone(kube, f"{path}/owner"))


async def test_dependent_with_a_live_second_owner_survives(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    a = (await kube.post(path, cm("a", ns))).obj()
    b = (await kube.post(path, cm("b", ns))).obj()
    dep = cm("shared", ns)
    dep["metadata"]["ownerReferences"] = [owner_ref(a), owner_ref(b)]
    await kube.post(path, dep)
    await kube.delete(f"{path}/a", propagationPolicy="Background")

    async def reference_dropped() -> bool:
        obj = (await kube.get(f"{path}/shared")).obj()
        return [r["name"] for r in obj["metadata"].get("ownerReferences") or []] == ["b"]

    await eventually(reference_dropped)


async def test_job_deleted_in_background_takes_its_pods(kube: Kube, ns: str) -> None:
    jobs = f"/apis/batch/v1/namespaces/{ns}/jobs"
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "bg"},
        "spec": {
            "parallelism": 2,
            "completions": 2,
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
            },
        },
    }
    assert (await kube.post(jobs, body)).status == 201
    pods = f"/api/v1/namespaces/{ns}/pods"

    async def two_pods() -> bool:
        items = (await kube.get(pods, labelSelector="batch.kubernetes.io/job-name=bg")).obj()["items"]
        return len(items) == 2

    await eventually(two_pods)
    await kube.delete(f"{jobs}/bg", propagationPolicy="Background")

    async def no_pods() -> bool:
        items = (await kube.get(pods, labelSelector="batch.kubernetes.io/job-name=bg")).obj()["items"]
        return not items

    await eventually(no_pods, timeout=60)


async def test_delete_without_policy_on_batch_v1_job_orphans_pods_with_warning(kube: Kube, ns: str) -> None:
    jobs = f"/apis/batch/v1/namespaces/{ns}/jobs"
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "orph"},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
            }
        },
    }
    await kube.post(jobs, body)
    pods = f"/api/v1/namespaces/{ns}/pods"

    async def one_pod() -> list[JSON]:
        items: list[JSON] = (await kube.get(pods, labelSelector="batch.kubernetes.io/job-name=orph")).obj()["items"]
        return items if len(items) == 1 else []

    await eventually(one_pod)
    reply = await kube.delete(f"{jobs}/orph")
    assert "child pods are preserved by default" in reply.headers.get("Warning", "")
    await eventually(lambda: _gone(kube, f"{jobs}/orph"))

    async def orphaned() -> bool:
        items = await one_pod()
        return bool(items) and not items[0]["metadata"].get("ownerReferences")

    await eventually(orphaned)


async def test_deleting_a_namespace_removes_its_content(kube: Kube) -> None:
    name = "c-nsdel-" + __import__("uuid").uuid4().hex[:6]
    await kube.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    await kube.post(f"/api/v1/namespaces/{name}/configmaps", cm("x", name))
    reply = await kube.delete(f"/api/v1/namespaces/{name}")
    assert reply.ok
    assert reply.obj()["status"]["phase"] == "Terminating"
    blocked = await kube.post(f"/api/v1/namespaces/{name}/configmaps", cm("y", name))
    if blocked.status != 404:
        assert blocked.status == 403
        assert "being terminated" in blocked.obj()["message"]
    await eventually(lambda: _gone(kube, f"/api/v1/namespaces/{name}"), timeout=60)


async def test_eviction_marks_disruption_target_and_respects_pdbs(kube: Kube, ns: str) -> None:
    pods = f"/api/v1/namespaces/{ns}/pods"

    def pod(name: str, gated: bool) -> JSON:
        spec: JSON = {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
        if gated:
            spec["schedulingGates"] = [{"name": "example.com/hold"}]
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "ev"}}, "spec": spec}

    def eviction(name: str) -> JSON:
        return {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": ns}}

    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "guard"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "ev"}}},
    }
    assert (await kube.post(f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets", pdb)).status == 201
    # A Pending pod (here: scheduling-gated) is not guarded by budgets: it is marked and deleted.
    gated = (await kube.post(pods, pod("gated", gated=True))).obj()
    watch = kube.watch(pods, resourceVersion=gated["metadata"]["resourceVersion"], timeout=20)
    assert (await kube.post(f"{pods}/gated/eviction", eviction("gated"))).status == 201
    ev = await until(watch, lambda e: e["type"] == "DELETED" and e["object"]["metadata"]["name"] == "gated")
    conds = {c["type"]: c for c in ev["object"]["status"].get("conditions") or []}
    assert (conds["DisruptionTarget"]["status"], conds["DisruptionTarget"]["reason"]) == (
        "True",
        "EvictionByEvictionAPI",
    )
    # A running pod is: the budget allows no disruption (429) until it is removed.
    await kube.post(pods, pod("run", gated=False))

    async def running() -> bool:
        return bool((await kube.get(f"{pods}/run")).obj().get("status", {}).get("phase") == "Running")

    await eventually(running)
    blocked = await kube.post(f"{pods}/run/eviction", eviction("run"))
    assert blocked.status == 429
    assert blocked.obj()["reason"] == "TooManyRequests"
    await kube.delete(f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/guard")
    ok = await kube.post(f"{pods}/run/eviction", eviction("run"))
    assert ok.status == 201
    await eventually(lambda: _gone(kube, f"{pods}/run"))


async def test_dependent_created_while_owner_deletes_in_foreground_is_collected(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    owner, deps = await _owner_and_dependents(kube, ns, n=1)
    await kube.patch(f"{path}/{deps[0]}", {"metadata": {"finalizers": ["example.com/hold"]}})
    await kube.delete(f"{path}/owner", propagationPolicy="Foreground")
    late = cm("late", ns)
    late["metadata"]["ownerReferences"] = [owner_ref(owner, block=True)]
    assert (await kube.post(path, late)).status == 201
    # The real garbage collector looks at the owner's dependents again only when one of them goes (kubesim at
    # once): release the held one, then the late dependent must be collected before the owner can go.
    watch = kube.watch(path, resourceVersion=owner["metadata"]["resourceVersion"], timeout=20)
    await kube.patch(f"{path}/{deps[0]}", {"metadata": {"finalizers": None}})
    deleted: list[str] = []

    def owner_deleted(ev: JSON) -> bool:
        if ev["type"] == "DELETED":
            deleted.append(ev["object"]["metadata"]["name"])
        return deleted[-1:] == ["owner"]

    await until(watch, owner_deleted)
    assert "late" in deleted
    assert deleted.index("late") < deleted.index("owner")
    assert await _gone(kube, f"{path}/late")


async def test_orphan_and_foreground_deletion_always_go_through_their_finalizer(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    for name, policy, finalizer in (("lone-o", "Orphan", "orphan"), ("lone-f", "Foreground", "foregroundDeletion")):
        await kube.post(path, cm(name, ns))
        reply = await kube.delete(f"{path}/{name}", propagationPolicy=policy)
        assert reply.status == 200
        meta = reply.obj()["metadata"]
        assert meta["deletionTimestamp"]
        assert finalizer in meta["finalizers"]
        await eventually(lambda name=name: _gone(kube, f"{path}/{name}"))
