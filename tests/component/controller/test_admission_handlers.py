"""The per-webhook handlers without HTTP: which operations each one acts on and what it answers."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from api import constants as c
from cache.store import Store
from controller.webhooks.server import AdmissionHandlers, CachePlacementLookup, parse_review
from tests.builders import JobSetBuilder

JSON = dict[str, Any]


def handlers(gates: dict[str, bool] | None = None) -> AdmissionHandlers:
    return AdmissionHandlers(
        gates=gates or {}, lookup=CachePlacementLookup(Store(lambda p: p.key), Store(lambda n: n.key))
    )


def req(operation: str, obj: Any, old: Any = None) -> JSON:
    out: JSON = {"uid": "u1", "operation": operation, "namespace": "ns", "object": obj}
    if old is not None:
        out["oldObject"] = old
    return out


def jobset() -> JSON:
    js = JobSetBuilder("js", "ns").rjob("a", 1).obj()
    del js["spec"]["successPolicy"]
    return js


def patch_of(answer: JSON) -> list[JSON]:
    assert answer["patchType"] == "JSONPatch"
    ops: list[JSON] = orjson.loads(base64.b64decode(answer["patch"]))
    return ops


async def test_mutate_jobset_on_create_only() -> None:
    h = handlers()
    created = await h.mutate_jobset(req("CREATE", jobset()))
    assert created["allowed"] is True
    assert {"op": "add", "path": "/spec/successPolicy", "value": {"operator": "All"}} in patch_of(created)
    for op in ("UPDATE", "DELETE"):
        assert await h.mutate_jobset(req(op, jobset(), jobset())) == {"uid": "u1", "allowed": True}


async def test_validate_jobset_routes_by_operation() -> None:
    h = handlers()
    bad = jobset()
    bad["spec"]["replicatedJobs"][0]["dependsOn"] = [{"name": "a", "status": "Ready"}]
    denied = await h.validate_jobset(req("CREATE", bad))
    assert denied["allowed"] is False
    assert denied["status"]["code"] == 422
    assert denied["status"]["details"]["causes"][0]["field"] == "spec.replicatedJobs[0].dependsOn"
    # UPDATE runs the immutability checks only (create checks are not re-run, like the reference).
    assert (await h.validate_jobset(req("UPDATE", bad, bad)))["allowed"] is True
    changed = jobset()
    changed["spec"]["replicatedJobs"][0]["replicas"] = 2
    immutable = await h.validate_jobset(req("UPDATE", changed, jobset()))
    assert immutable["status"]["message"].endswith("field is immutable")
    assert (await h.validate_jobset(req("DELETE", None, bad)))["allowed"] is True


@pytest.mark.parametrize("gate", [False, True])
async def test_feature_gates_reach_validation(gate: bool) -> None:
    js = jobset()
    js["spec"]["failurePolicy"] = {"restartStrategy": "InPlaceRestart"}
    answer = await handlers({"InPlaceRestart": gate}).validate_jobset(req("CREATE", js))
    messages = answer.get("status", {}).get("message", "")
    assert ("InPlaceRestart feature gate is disabled" in messages) is not gate


async def test_pod_webhooks_act_on_create_only() -> None:
    h = handlers()
    pod = {
        "metadata": {"annotations": {c.JOBSET_NAME_KEY: "js"}, "labels": {}},
        "spec": {"priority": 5, "containers": []},
    }
    created = await h.mutate_pod(req("CREATE", pod))
    assert patch_of(created) == [{"op": "add", "path": "/metadata/labels/jobset.sigs.k8s.io~1priority", "value": "5"}]
    assert await h.mutate_pod(req("UPDATE", pod, pod)) == {"uid": "u1", "allowed": True}
    follower = {
        "metadata": {"annotations": {c.JOBSET_NAME_KEY: "js", c.EXCLUSIVE_TOPOLOGY_KEY: "t"}},
        "spec": {},
    }
    denied = await h.validate_pod(req("CREATE", follower))
    assert denied["status"] == {
        "status": "Failure",
        "message": "follower pod node selector not set",
        "reason": "Forbidden",
        "code": 403,
    }
    assert (await h.validate_pod(req("UPDATE", follower, follower)))["allowed"] is True


async def test_namespace_falls_back_to_the_object() -> None:
    from controller.webhooks.server import _namespace

    assert _namespace({"namespace": "a", "object": {"metadata": {"namespace": "b"}}}) == "a"
    assert _namespace({"object": {"metadata": {"namespace": "b"}}}) == "b"
    assert _namespace({"object": []}) == ""


async def test_parse_review_accepts_v1_and_v1beta1() -> None:
    for version in ("admission.k8s.io/v1", "admission.k8s.io/v1beta1"):
        body = orjson.dumps({"apiVersion": version, "kind": "AdmissionReview", "request": {"uid": "x"}})
        assert parse_review(body, "application/json") == (version, {"uid": "x"})
