"""LIST and WATCH: resourceVersion semantics, selectors, pagination, bookmarks and 410 Gone."""

from __future__ import annotations

import contextlib
import uuid

from tests.contract.client import Kube, until
from tests.contract.conftest import EXTERNAL, cm


async def test_resource_version_is_cluster_wide_and_increasing(kube: Kube, ns: str) -> None:
    a = (await kube.post(f"/api/v1/namespaces/{ns}/configmaps", cm("a", ns))).obj()
    b = (
        await kube.post(
            f"/api/v1/namespaces/{ns}/secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "b"}}
        )
    ).obj()
    assert int(b["metadata"]["resourceVersion"]) > int(a["metadata"]["resourceVersion"])
    listed = (await kube.get(f"/api/v1/namespaces/{ns}/configmaps")).obj()
    assert listed["kind"] == "ConfigMapList"
    assert int(listed["metadata"]["resourceVersion"]) >= int(b["metadata"]["resourceVersion"])


async def test_label_selectors(kube: Kube, ns: str) -> None:
    for name, labels in [
        ("a", {"tier": "web", "env": "prod"}),
        ("b", {"tier": "db", "env": "prod"}),
        ("c", {"tier": "web"}),
        ("d", {}),
    ]:
        assert (await kube.post(f"/api/v1/namespaces/{ns}/configmaps", cm(name, ns, labels))).status == 201
    path = f"/api/v1/namespaces/{ns}/configmaps"
    cases = {
        "tier=web": ["a", "c"],
        "tier==web,env=prod": ["a"],
        "tier!=web": ["b", "d"],
        "tier in (web,db)": ["a", "b", "c"],
        "tier notin (web)": ["b", "d"],
        "env": ["a", "b"],
        "!env": ["c", "d"],
    }
    for selector, want in cases.items():
        items = (await kube.get(path, labelSelector=selector)).obj()["items"]
        got = sorted(i["metadata"]["name"] for i in items if i["metadata"]["name"] in "abcd")
        assert got == want, selector


async def test_bad_label_selector_is_400(kube: Kube, ns: str) -> None:
    reply = await kube.get(f"/api/v1/namespaces/{ns}/configmaps", labelSelector="a in (b")
    assert reply.status == 400
    assert reply.obj()["reason"] == "BadRequest"


async def test_field_selectors(kube: Kube, ns: str) -> None:
    for name in ("x", "y"):
        await kube.post(f"/api/v1/namespaces/{ns}/configmaps", cm(name, ns))
    items = (await kube.get(f"/api/v1/namespaces/{ns}/configmaps", fieldSelector="metadata.name=y")).obj()["items"]
    assert [i["metadata"]["name"] for i in items] == ["y"]
    items = (await kube.get(f"/api/v1/namespaces/{ns}/configmaps", fieldSelector="metadata.name!=y")).obj()["items"]
    assert "y" not in [i["metadata"]["name"] for i in items]
    reply = await kube.get(f"/api/v1/namespaces/{ns}/configmaps", fieldSelector="data.k=v")
    assert reply.status == 400
    assert (
        reply.obj()["message"] == '"data.k" is not a known field selector: only "metadata.name", "metadata.namespace"'
    )
    pods = await kube.get(f"/api/v1/namespaces/{ns}/pods", fieldSelector="spec.bogus=x")
    assert (pods.status, pods.obj()["message"]) == (400, "field label not supported: spec.bogus")
    jobs = await kube.get(f"/apis/batch/v1/namespaces/{ns}/jobs", fieldSelector="spec.bogus=x")
    assert (jobs.status, jobs.obj()["message"]) == (400, 'field label "spec.bogus" not supported for Job')


async def test_pod_field_selector_on_phase_and_node(kube: Kube, ns: str) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "schedulingGates": [{"name": "example.com/hold"}],
            "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
        },
    }
    assert (await kube.post(f"/api/v1/namespaces/{ns}/pods", body)).status == 201
    pending = (await kube.get(f"/api/v1/namespaces/{ns}/pods", fieldSelector="status.phase=Pending")).obj()
    assert [p["metadata"]["name"] for p in pending["items"]] == ["p"]
    unbound = (await kube.get(f"/api/v1/namespaces/{ns}/pods", fieldSelector="spec.nodeName=")).obj()
    assert [p["metadata"]["name"] for p in unbound["items"]] == ["p"]


async def test_pagination_with_limit_and_continue(kube: Kube, ns: str) -> None:
    names = [f"p{i:02d}" for i in range(11)]
    for name in names:
        await kube.post(f"/api/v1/namespaces/{ns}/configmaps", cm(name, ns))
    total = len((await kube.get(f"/api/v1/namespaces/{ns}/configmaps")).obj()["items"])
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        params = {"limit": "4"}
        if token:
            params["continue"] = token
        page = (await kube.get(f"/api/v1/namespaces/{ns}/configmaps", **params)).obj()
        pages += 1
        seen += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue", "")
        if not token:
            break
        assert page["metadata"]["remainingItemCount"] == total - len(seen)
        assert pages < 10
    assert [n for n in seen if n.startswith("p")] == names


async def test_bad_continue_token_is_400(kube: Kube, ns: str) -> None:
    reply = await kube.get(f"/api/v1/namespaces/{ns}/configmaps", limit="1", **{"continue": "!!!"})
    assert reply.status == 400


async def test_watch_from_list_resource_version_sees_later_changes_in_order(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    rv = (await kube.get(path)).obj()["metadata"]["resourceVersion"]
    await kube.post(path, cm("w", ns))
    await kube.patch(f"{path}/w", {"data": {"k": "2"}})
    await kube.delete(f"{path}/w")
    events = []
    async for ev in kube.watch(path, resourceVersion=rv, timeout=10):
        events.append((ev["type"], ev["object"]["metadata"]["name"]))
        if ev["type"] == "DELETED":
            break
    assert events == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


async def test_watch_without_resource_version_starts_with_synthetic_added(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    await kube.post(path, cm("pre", ns))
    ev = await until(kube.watch(path, timeout=10), lambda e: e["object"]["metadata"]["name"] == "pre")
    assert ev["type"] == "ADDED"


async def test_watch_with_label_selector_reports_transitions(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    created = (await kube.post(path, cm("t", ns, {"x": "1"}))).obj()
    rv = created["metadata"]["resourceVersion"]
    await kube.patch(f"{path}/t", {"metadata": {"labels": {"x": "2"}}})
    await kube.patch(f"{path}/t", {"metadata": {"labels": {"x": "3"}}})
    types = []
    async for ev in kube.watch(path, resourceVersion=rv, labelSelector="x=2", timeout=10):
        types.append(ev["type"])
        if len(types) == 2:
            break
    assert types == ["ADDED", "DELETED"]


async def test_watch_bookmarks_carry_a_resource_version(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    rv = (await kube.get(path)).obj()["metadata"]["resourceVersion"]
    ev = await until(
        kube.watch(path, resourceVersion=rv, allowWatchBookmarks="true", timeout=90), lambda e: e["type"] == "BOOKMARK"
    )
    assert ev["object"]["kind"] == "ConfigMap"
    assert int(ev["object"]["metadata"]["resourceVersion"]) >= int(rv)


async def test_watch_timeout_seconds_ends_the_stream(kube: Kube, ns: str) -> None:
    events = [
        e
        async for e in kube.watch(
            f"/api/v1/namespaces/{ns}/configmaps", resourceVersion="0", timeoutSeconds="1", timeout=30
        )
    ]
    assert all(e["type"] in ("ADDED", "BOOKMARK") for e in events)


async def test_watch_from_expired_resource_version_is_410_error_event(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    await kube.post(path, cm("e", ns))
    async with contextlib.aclosing(kube.watch(path, resourceVersion="1", timeout=10)) as watch:
        first = await until(watch, lambda e: True)
        if first["type"] != "ERROR" and EXTERNAL:
            # A real apiserver still serves resourceVersion 1 while its watch cache holds the whole history (a
            # young cluster: etcd compacts every 5 minutes and the cache drops events only once it is full,
            # neither of which a test can force). Then the watch replays from the beginning, "e" included.
            assert first["type"] == "ADDED"
            if first["object"]["metadata"]["name"] != "e":
                assert (await until(watch, lambda e: e["object"]["metadata"]["name"] == "e"))["type"] == "ADDED"
            return
    assert first["type"] == "ERROR"
    status = first["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
    assert "too old resource version" in status["message"]


async def test_events_are_served_by_both_event_apis_and_select_by_involved_object(kube: Kube, ns: str) -> None:
    core = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "e1"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": ns},
        "reason": "Tested",
        "message": "hello",
        "type": "Normal",
        "source": {"component": "contract"},
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:00Z",
        "count": 1,
    }
    assert (await kube.post(f"/api/v1/namespaces/{ns}/events", core)).status == 201
    new = (await kube.get(f"/apis/events.k8s.io/v1/namespaces/{ns}/events/e1")).obj()
    assert new["apiVersion"] == "events.k8s.io/v1"
    assert new["regarding"]["name"] == "p"
    assert new["note"] == "hello"
    assert new["reason"] == "Tested"
    modern = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "e2"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "contract/x",
        "reportingInstance": "contract-1",
        "action": "Test",
        "reason": "Modern",
        "note": "hi",
        "type": "Normal",
        "regarding": {"kind": "Pod", "name": "q", "namespace": ns},
    }
    assert (await kube.post(f"/apis/events.k8s.io/v1/namespaces/{ns}/events", modern)).status == 201
    old = (await kube.get(f"/api/v1/namespaces/{ns}/events/e2")).obj()
    assert old["involvedObject"]["name"] == "q"
    assert old["message"] == "hi"
    selected = (await kube.get(f"/api/v1/namespaces/{ns}/events", fieldSelector="involvedObject.name=q")).obj()
    assert [e["metadata"]["name"] for e in selected["items"]] == ["e2"]


async def test_discovery_documents(kube: Kube) -> None:
    core = (await kube.get("/api")).obj()
    assert core["kind"] == "APIVersions"
    assert "v1" in core["versions"]
    groups = {g["name"]: g for g in (await kube.get("/apis")).obj()["groups"]}
    assert groups["batch"]["preferredVersion"]["groupVersion"] == "batch/v1"
    v1 = {r["name"]: r for r in (await kube.get("/api/v1")).obj()["resources"]}
    assert v1["pods"]["namespaced"] is True
    assert "pods/status" in v1
    assert v1["nodes"]["namespaced"] is False
    aggregated = await kube.request(
        "GET", "/apis", accept="application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    )
    assert aggregated.headers["Content-Type"].startswith("application/json;g=apidiscovery.k8s.io;v=v2")
    items = {i["metadata"]["name"]: i for i in aggregated.obj()["items"]}
    jobs = next(r for r in items["batch"]["versions"][0]["resources"] if r["resource"] == "jobs")
    assert jobs["responseKind"] == {"group": "", "version": "", "kind": "Job"}
    assert jobs["scope"] == "Namespaced"
    version = (await kube.get("/version")).obj()
    assert version["major"] == "1"


async def test_runtime_classes_are_served(kube: Kube) -> None:
    # Kueue's manager watches RuntimeClasses (pod overhead) and does not start without the API.
    resources = {r["name"]: r for r in (await kube.get("/apis/node.k8s.io/v1")).obj()["resources"]}
    assert resources["runtimeclasses"]["namespaced"] is False
    name = f"contract-rc-{uuid.uuid4().hex[:8]}"
    body = {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": name}, "handler": "runc"}
    assert (await kube.post("/apis/node.k8s.io/v1/runtimeclasses", body)).status == 201
    try:
        listed = (await kube.get("/apis/node.k8s.io/v1/runtimeclasses")).obj()
        assert name in [item["metadata"]["name"] for item in listed["items"]]
    finally:
        await kube.delete(f"/apis/node.k8s.io/v1/runtimeclasses/{name}")
