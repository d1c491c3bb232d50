"""Admission webhooks: matching, AdmissionReview contents, mutation patches, denials and failure policies."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.contract.client import Kube
from tests.contract.conftest import cm, eventually
from tests.contract.webhook import WebhookServer, allow, deny

JSON = dict[str, Any]


@pytest.fixture
async def hooks() -> AsyncIterator[WebhookServer]:
    server = WebhookServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _hook(server: WebhookServer, name: str, path: str, ns: str, **extra: Any) -> JSON:
    hook: JSON = {
        "name": name,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "clientConfig": {"url": server.url(path), "caBundle": server.ca_bundle},
        "rules": [
            {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["configmaps"]}
        ],
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
        "timeoutSeconds": 5,
    }
    hook.update(extra)
    return hook


@pytest.fixture
async def configure(kube: Kube) -> AsyncIterator[Any]:
    made: list[str] = []

    async def install(kind: str, hooks_: list[JSON]) -> None:
        name = f"contract-{uuid.uuid4().hex[:8]}"
        plural = "mutatingwebhookconfigurations" if kind == "Mutating" else "validatingwebhookconfigurations"
        body = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": f"{kind}WebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": hooks_,
        }
        reply = await kube.post(f"/apis/admissionregistration.k8s.io/v1/{plural}", body)
        assert reply.status == 201, reply.body
        made.append(f"/apis/admissionregistration.k8s.io/v1/{plural}/{name}")

    yield install
    for path in made:
        await kube.delete(path)


async def _until_called(kube: Kube, ns: str, server: WebhookServer) -> None:
    """Real API servers pick up new webhook configurations asynchronously: probe until the hook is live."""

    async def live() -> bool:
        name = f"probe-{uuid.uuid4().hex[:6]}"
        before = len(server.reviews)
        reply = await kube.post(f"/api/v1/namespaces/{ns}/configmaps", cm(name, ns, {"probe": "1"}))
        return reply.status != 201 or len(server.reviews) > before

    await eventually(live)


async def test_mutating_webhook_patch_is_applied_and_review_is_complete(
    kube: Kube, ns: str, hooks: WebhookServer, configure: Any
) -> None:
    async def mutate(review: JSON) -> JSON:
        labels = review["request"]["object"]["metadata"].get("labels") or {}
        if "probe" in labels:
            return allow(review)
        return allow(review, [{"op": "add", "path": "/data/added", "value": "by-webhook"}], ["be careful"])

    hooks.handlers["/mutate"] = mutate
    await configure("Mutating", [_hook(hooks, "m.contract.pyjobset.io", "/mutate", ns)])
    await _until_called(kube, ns, hooks)
    reply = await kube.post(f"/api/v1/namespaces/{ns}/configmaps", cm("mut", ns))
    assert reply.status == 201, reply.body
    assert reply.obj()["data"] == {"k": "v", "added": "by-webhook"}
    assert "be careful" in reply.headers.get("Warning", "")
    path, review = hooks.reviews[-1]
    assert path == "/mutate"
    req = review["request"]
    assert review["apiVersion"] == "admission.k8s.io/v1"
    assert req["operation"] == "CREATE"
    assert req["kind"] == {"group": "", "version": "v1", "kind": "ConfigMap"}
    assert req["resource"] == {"group": "", "version": "v1", "resource": "configmaps"}
    assert req["namespace"] == ns
    assert req["name"] == "mut"
    assert req["object"]["metadata"]["name"] == "mut"
    assert req["oldObject"] is None
    assert req["uid"]


async def test_validating_webhook_denial_is_the_apiservers_error(
    kube: Kube, ns: str, hooks: WebhookServer, configure: Any
) -> None:
    async def validate(review: JSON) -> JSON:
        if review["request"]["object"]["data"].get("k") == "forbidden":
            return deny(review, "k may not be forbidden", 422, "Invalid")
        return allow(review)

    hooks.handlers["/validate"] = validate
    await configure("Validating", [_hook(hooks, "v.contract.pyjobset.io", "/validate", ns)])
    await _until_called(kube, ns, hooks)
    reply = await kube.post(f"/api/v1/namespaces/{ns}/configmaps", cm("bad", ns, data={"k": "forbidden"}))
    assert reply.status == 422
    body = reply.obj()
    assert body["message"] == 'admission webhook "v.contract.pyjobset.io" denied the request: k may not be forbidden'
    assert (await kube.get(f"/api/v1/namespaces/{ns}/configmaps/bad")).status == 404
    ok = await kube.post(f"/api/v1/namespaces/{ns}/configmaps", cm("good", ns))
    assert ok.status == 201
    # UPDATE carries the old object.
    await kube.patch(f"/api/v1/namespaces/{ns}/configmaps/good", {"data": {"k": "w"}})
    _, review = hooks.reviews[-1]
    assert review["request"]["operation"] == "UPDATE"
    assert review["request"]["oldObject"]["data"] == {"k": "v"}


async def test_denial_without_code_is_400(kube: Kube, ns: str, hooks: WebhookServer, configure: Any) -> None:
    async def validate(review: JSON) -> JSON:
        labels = review["request"]["object"]["metadata"].get("labels") or {}
        if "probe" in labels:
            return allow(review)
        return {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": review["request"]["uid"], "allowed": False},
        }

    hooks.handlers["/v403"] = validate
    await configure("Validating", [_hook(hooks, "v403.contract.pyjobset.io", "/v403", ns)])
    await _until_called(kube, ns, hooks)
    reply = await kube.post(f"/api/v1/namespaces/{ns}/configmaps", cm("x", ns))
    assert reply.status == 400
    assert reply.obj()["message"].endswith("denied the request without explanation")


async def test_object_selector_limits_which_objects_are_sent(
    kube: Kube, ns: str, hooks: WebhookServer, configure: Any
) -> None:
    hooks.handlers["/sel"] = _deny_all
    await configure(
        "Validating",
        [_hook(hooks, "sel.contract.pyjobset.io", "/sel", ns, objectSelector={"matchLabels": {"guarded": "yes"}})],
    )

    async def guarded_is_denied() -> bool:
        name = f"g-{uuid.uuid4().hex[:6]}"
        reply = await kube.post(f"/api/v1/namespaces/{ns}/configmaps", cm(name, ns, {"guarded": "yes"}))
        return reply.status == 403

    await eventually(guarded_is_denied)
    free = await kube.post(f"/api/v1/namespaces/{ns}/configmaps", cm("free", ns))
    assert free.status == 201


async def _deny_all(review: JSON) -> JSON:
    return deny(review, "guarded")


async def test_failure_policy_fail_and_ignore_on_unreachable_webhook(kube: Kube, ns: str, configure: Any) -> None:
    dead = {"url": "https://127.0.0.1:1/nothing"}
    base = {
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "timeoutSeconds": 2,
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}],
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
    }
    await configure(
        "Validating", [dict(base, name="ignore.contract.pyjobset.io", clientConfig=dead, failurePolicy="Ignore")]
    )
    assert (await kube.post(f"/api/v1/namespaces/{ns}/configmaps", cm("ign", ns))).status == 201
    await configure(
        "Validating", [dict(base, name="fail.contract.pyjobset.io", clientConfig=dead, failurePolicy="Fail")]
    )

    async def rejected() -> Any:
        reply = await kube.post(f"/api/v1/namespaces/{ns}/configmaps", cm(f"f-{uuid.uuid4().hex[:6]}", ns))
        return reply if reply.status == 500 else None

    reply = await eventually(rejected)
    assert reply.obj()["reason"] == "InternalError"
    assert 'failed calling webhook "fail.contract.pyjobset.io"' in reply.obj()["message"]
