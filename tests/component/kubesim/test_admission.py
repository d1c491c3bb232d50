"""kubesim admission specifics: service-referenced webhooks, rules matching, in-process writes are admitted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from kubesim import ApiError, SimCluster
from kubesim.storage.admission import rule_matches
from kubesim.storage.objects import AdmissionAttributes
from tests.contract.webhook import WebhookServer, allow, deny

JSON = dict[str, Any]


@pytest.fixture
async def sim() -> AsyncIterator[SimCluster]:
    async with SimCluster(with_cluster=False) as cluster:
        yield cluster


@pytest.fixture
async def hooks() -> AsyncIterator[WebhookServer]:
    server = WebhookServer(("jobset-webhook-service.jobset-system.svc", "hook.default.svc"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _config(kind: str, service: JSON, ca: str, **extra: Any) -> JSON:
    hook = {
        "name": "svc.kubesim.test",
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "clientConfig": {"service": service, "caBundle": ca},
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
        **extra,
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": f"{kind}WebhookConfiguration",
        "metadata": {"name": "svc"},
        "webhooks": [hook],
    }


def _pod(name: str, labels: dict[str, str] | None = None) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }


async def test_service_reference_resolves_through_registered_endpoint(sim: SimCluster, hooks: WebhookServer) -> None:
    async def mutate(review: JSON) -> JSON:
        return allow(review, [{"op": "add", "path": "/spec/nodeSelector", "value": {"pool": "a"}}])

    hooks.handlers["/mutate--v1-pod"] = mutate
    assert sim.admission is not None
    sim.admission.endpoints[("jobset-system", "jobset-webhook-service")] = f"https://localhost:{hooks.port}"
    service = {"namespace": "jobset-system", "name": "jobset-webhook-service", "path": "/mutate--v1-pod"}
    await sim.store.create(
        "mutatingwebhookconfigurations.admissionregistration.k8s.io", _config("Mutating", service, hooks.ca_bundle)
    )
    created = await sim.store.create("pods", _pod("p1"))
    assert created["spec"]["nodeSelector"] == {"pool": "a"}
    path, review = hooks.reviews[-1]
    assert path == "/mutate--v1-pod"
    assert review["request"]["object"]["metadata"]["name"] == "p1"


async def test_service_reference_falls_back_to_the_services_target_port(sim: SimCluster, hooks: WebhookServer) -> None:
    hooks.handlers["/deny"] = _deny
    await sim.store.create(
        "services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "hook", "namespace": "default"},
            "spec": {"ports": [{"port": 443, "targetPort": hooks.port}]},
        },
    )
    cfg = _config(
        "Validating",
        {"namespace": "default", "name": "hook", "path": "/deny"},
        hooks.ca_bundle,
        objectSelector={"matchLabels": {"guard": "on"}},
    )
    await sim.store.create("validatingwebhookconfigurations", cfg)
    with pytest.raises(ApiError) as err:
        await sim.store.create("pods", _pod("p2", {"guard": "on"}))
    assert err.value.code == 403
    unguarded = await sim.store.create("pods", _pod("p3"))
    assert unguarded["metadata"]["name"] == "p3"


async def _deny(review: JSON) -> JSON:
    return deny(review, "no")


async def test_in_process_writes_are_admitted_like_http_ones(sim: SimCluster, hooks: WebhookServer) -> None:
    hooks.handlers["/deny"] = _deny
    cfg = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "url"},
        "webhooks": [
            {
                "name": "url.kubesim.test",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "clientConfig": {"url": hooks.url("/deny"), "caBundle": hooks.ca_bundle},
                "rules": [{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["configmaps"]}],
            }
        ],
    }
    await sim.store.create("validatingwebhookconfigurations", cfg)
    with pytest.raises(ApiError) as err:
        await sim.store.create(
            "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "default"}}
        )
    assert err.value.code == 403
    assert err.value.message == 'admission webhook "url.kubesim.test" denied the request: no'
    # Webhook configurations themselves are never sent to webhooks.
    await sim.store.delete("validatingwebhookconfigurations", "url")


@pytest.mark.parametrize(
    ("rule", "sub", "op", "matches"),
    [
        ({"resources": ["pods"]}, "", "CREATE", True),
        ({"resources": ["pods"]}, "status", "UPDATE", False),
        ({"resources": ["pods/status"]}, "status", "UPDATE", True),
        ({"resources": ["pods/*"]}, "status", "UPDATE", True),
        ({"resources": ["*"]}, "status", "UPDATE", False),
        ({"resources": ["*/*"]}, "status", "UPDATE", True),
        ({"resources": ["*/status"]}, "status", "UPDATE", True),
        ({"resources": ["pods"], "scope": "Cluster"}, "", "CREATE", False),
        ({"resources": ["pods"], "operations": ["DELETE"]}, "", "CREATE", False),
    ],
    ids=[
        "plain",
        "sub-not-matched",
        "sub",
        "sub-wildcard",
        "star-excludes-sub",
        "star-star",
        "star-sub",
        "scope",
        "operation",
    ],
)
def test_rule_matching(rule: JSON, sub: str, op: str, matches: bool) -> None:
    from kubesim.storage.resources import Registry, builtin_resources

    reg = Registry()
    for info in builtin_resources():
        reg.add(info)
    pods = reg.get("", "pods")
    assert pods is not None
    full = {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], **rule}
    attrs = AdmissionAttributes(op, pods, "default", "p", {}, None, sub, False, {})
    assert rule_matches(full, attrs) is matches


async def test_match_conditions_select_requests_in_cel(sim: SimCluster, hooks: WebhookServer) -> None:
    hooks.handlers["/deny"] = _deny
    cfg = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "mc"},
        "webhooks": [
            {
                "name": "mc.kubesim.test",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "clientConfig": {"url": hooks.url("/deny"), "caBundle": hooks.ca_bundle},
                "matchConditions": [
                    {"name": "only-red", "expression": "has(object.data) && object.data.color == 'red'"}
                ],
                "rules": [
                    {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}
                ],
            }
        ],
    }
    await sim.store.create("validatingwebhookconfigurations", cfg)

    def cm(name: str, color: str) -> JSON:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"},
            "data": {"color": color},
        }

    assert (await sim.store.create("configmaps", cm("blue", "blue")))["metadata"]["name"] == "blue"
    with pytest.raises(ApiError) as err:
        await sim.store.create("configmaps", cm("red", "red"))
    assert err.value.code == 403
