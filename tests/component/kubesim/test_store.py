"""kubesim's in-process store API: the apiserver semantics other kubesim components rely on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kubesim import ApiError
from kubesim.storage.store import Store

JSON = dict[str, Any]


def cm(name: str, labels: dict[str, str] | None = None, ns: str = "default") -> JSON:
    meta: JSON = {"name": name, "namespace": ns}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}


def job(name: str) -> JSON:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}},
    }


async def test_create_sets_server_fields_and_rv_increases() -> None:
    store = Store()
    a = await store.create("configmaps", cm("a"))
    b = await store.create("configmaps", cm("b"))
    assert a["metadata"]["uid"] != b["metadata"]["uid"]
    assert a["metadata"]["creationTimestamp"].endswith("Z")
    assert int(b["metadata"]["resourceVersion"]) == int(a["metadata"]["resourceVersion"]) + 1
    assert store.resource_version == b["metadata"]["resourceVersion"]


async def test_generate_name_and_already_exists() -> None:
    store = Store()
    obj = cm("")
    obj["metadata"] = {"generateName": "x-", "namespace": "default"}
    made = await store.create("configmaps", obj)
    assert made["metadata"]["name"].startswith("x-")
    assert len(made["metadata"]["name"]) == len("x-") + 5
    with pytest.raises(ApiError) as err:
        await store.create("configmaps", cm(made["metadata"]["name"]))
    assert (err.value.code, err.value.reason) == (409, "AlreadyExists")


async def test_get_missing_is_404_with_status_details() -> None:
    store = Store()
    with pytest.raises(ApiError) as err:
        await store.get("jobs.batch", "nope", "default")
    assert err.value.code == 404
    assert err.value.status["message"] == 'jobs.batch "nope" not found'
    assert err.value.status["details"] == {"name": "nope", "group": "batch", "kind": "jobs"}


async def test_stale_update_conflicts_and_noop_update_keeps_rv() -> None:
    store = Store()
    a = await store.create("configmaps", cm("a"))
    a2 = dict(a, data={"k": "w"})
    fresh = await store.update("configmaps", a2)
    assert fresh["metadata"]["resourceVersion"] != a["metadata"]["resourceVersion"]
    with pytest.raises(ApiError) as err:
        await store.update("configmaps", dict(a, data={"k": "z"}))
    assert (err.value.code, err.value.reason) == (409, "Conflict")
    same = await store.update("configmaps", fresh)
    assert same["metadata"]["resourceVersion"] == fresh["metadata"]["resourceVersion"]


async def test_status_subresource_separation_and_generation() -> None:
    store = Store()
    j = await store.create("jobs.batch", job("j"))
    assert j["metadata"]["generation"] == 1
    j["status"] = {"active": 3}
    j = await store.update("jobs.batch", j)
    assert j.get("status") == {}
    assert j["metadata"]["generation"] == 1
    j["status"] = {"active": 2}
    j["spec"]["parallelism"] = 5
    j = await store.update_status("jobs.batch", j)
    assert j["status"] == {"active": 2}
    assert j["spec"]["parallelism"] == 1
    assert j["metadata"]["generation"] == 1
    j["spec"]["parallelism"] = 5
    j = await store.update("jobs.batch", j)
    assert j["metadata"]["generation"] == 2
    assert j["status"] == {"active": 2}


async def test_list_selectors_and_pagination() -> None:
    store = Store()
    for i in range(7):
        await store.create("configmaps", cm(f"c{i}", {"even": str(i % 2 == 0).lower()}))
    evens = await store.list("configmaps", "default", label_selector="even=true")
    assert [o["metadata"]["name"] for o in evens] == ["c0", "c2", "c4", "c6"]
    info = store.info("configmaps")
    names: list[str] = []
    token = None
    pages = 0
    while True:
        page = store.list_page(info, "default", limit=3, continue_token=token)
        pages += 1
        names += [o.decode().split('"name":"')[1].split('"')[0] for o in page.items]
        token = page.continue_token or None
        if token is None:
            break
    assert pages == 3
    assert names == [f"c{i}" for i in range(7)]


async def test_watch_from_rv_and_expired_window() -> None:
    store = Store(watch_window=3)
    start = store.resource_version
    for i in range(2):
        await store.create("configmaps", cm(f"w{i}"))
    async with store.watch("configmaps", "default", resource_version=start) as stream:
        seen = [(t, o["metadata"]["name"]) async for t, o in _take(stream, 2)]
    assert seen == [("ADDED", "w0"), ("ADDED", "w1")]
    for i in range(2, 6):
        await store.create("configmaps", cm(f"w{i}"))
    async with store.watch("configmaps", resource_version=start) as stream:
        events = [e async for e in _take(stream, 1)]
    assert events[0][0] == "ERROR"
    assert events[0][1]["code"] == 410


async def test_watch_label_transitions_become_added_and_deleted() -> None:
    store = Store()
    await store.create("configmaps", cm("t", {"a": "1"}))
    stream = store.watch("configmaps", "default", resource_version=store.resource_version, label_selector="a=2")
    obj = await store.get("configmaps", "t", "default")
    obj["metadata"]["labels"] = {"a": "2"}
    obj = await store.update("configmaps", obj)
    obj["metadata"]["labels"] = {"a": "3"}
    await store.update("configmaps", obj)
    events = [(t, o["metadata"]["labels"]["a"]) async for t, o in _take(stream, 2)]
    stream.close()
    assert events == [("ADDED", "2"), ("DELETED", "3")]


async def test_finalizers_hold_deletion_until_removed() -> None:
    store = Store()
    obj = cm("f")
    obj["metadata"]["finalizers"] = ["example.com/hold"]
    await store.create("configmaps", obj)
    held = await store.delete("configmaps", "f", "default")
    assert held["metadata"]["deletionTimestamp"]
    held["metadata"]["finalizers"] = ["example.com/hold", "example.com/new"]
    with pytest.raises(ApiError) as err:
        await store.update("configmaps", held)
    assert err.value.code == 422
    held["metadata"]["finalizers"] = []
    await store.update("configmaps", held)
    with pytest.raises(ApiError):
        await store.get("configmaps", "f", "default")


async def _take(stream: Any, n: int) -> Any:
    for _ in range(n):
        yield await asyncio.wait_for(stream.__anext__(), 5)


async def test_graceful_pod_delete_with_finalizer_then_final_delete_and_finalizer_removal() -> None:
    store = Store()
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "g", "namespace": "default", "finalizers": ["batch.kubernetes.io/job-tracking"]},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
    }
    await store.create("pods", body)
    first = await store.delete("pods", "g", "default")
    assert first["metadata"]["deletionGracePeriodSeconds"] == 30
    final = await store.delete("pods", "g", "default", grace_period_seconds=0)
    assert final["metadata"]["deletionGracePeriodSeconds"] == 0
    final["metadata"]["finalizers"] = []
    await store.update("pods", final)
    assert store.get_nowait("pods", "g", "default") is None
