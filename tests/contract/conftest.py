"""Fixtures of the API contract suite: a cluster reached only through a kubeconfig.

By default every test gets a fresh ``kubesim.SimCluster`` (4 nodes) on 127.0.0.1; with
``PYJOBSET_CONTRACT_KUBECONFIG=/path/to/kubeconfig`` the same tests run against that cluster instead (for
example the real control plane of the e2e tier), so what passes here is the Kubernetes contract, not a kubesim
accident. Each test works in its own namespace, deleted afterwards. ``kubectl`` is the binary named by
``PYJOBSET_KUBECTL``, else the one on PATH, else the one ``tests/e2e/build.sh`` built.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.contract.client import Kube

EXTERNAL = os.environ.get("PYJOBSET_CONTRACT_KUBECONFIG")
JSON = dict[str, Any]


@pytest.fixture
async def kubeconfig(tmp_path: Path) -> AsyncIterator[str]:
    if EXTERNAL:
        yield EXTERNAL
        return
    import kubesim

    async with kubesim.SimCluster(nodes=4, bookmark_interval=0.2) as sim:
        yield sim.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
async def kube(kubeconfig: str) -> AsyncIterator[Kube]:
    client = Kube(kubeconfig)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def ns(kube: Kube) -> AsyncIterator[str]:
    name = f"c-{uuid.uuid4().hex[:10]}"
    reply = await kube.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    assert reply.status == 201, reply.body
    # Pods need the namespace's default ServiceAccount (made by a controller on real clusters).
    for _ in range(100):
        if (await kube.get(f"/api/v1/namespaces/{name}/serviceaccounts/default")).ok:
            break
        await asyncio.sleep(0.05)
    yield name
    await kube.delete(f"/api/v1/namespaces/{name}")


def _built_kubectl() -> str | None:
    """The kubectl that ``tests/e2e/build.sh`` built with the real control plane, if any."""
    script = Path(__file__).resolve().parents[1] / "e2e" / "build.sh"
    if not script.exists():
        return None
    try:
        out = subprocess.run(
            ["bash", str(script), "--print-bin-dir"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    candidate = Path(out) / "kubectl"
    return str(candidate) if out and candidate.is_file() and os.access(candidate, os.X_OK) else None


@pytest.fixture(scope="session")
def kubectl_bin() -> str:
    """``PYJOBSET_KUBECTL``, else kubectl on PATH, else the one built with the real control plane."""
    path = os.environ.get("PYJOBSET_KUBECTL") or shutil.which("kubectl") or _built_kubectl()
    if not path:
        pytest.skip("no kubectl binary (set PYJOBSET_KUBECTL, put kubectl on PATH or run tests/e2e/build.sh)")
    return path


def cm(name: str, ns: str, labels: dict[str, str] | None = None, data: dict[str, str] | None = None) -> JSON:
    meta: JSON = {"name": name, "namespace": ns}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {"k": "v"}}


def pod(name: str, ns: str, **spec: Any) -> JSON:
    body: JSON = {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}], **spec}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": body}


def owner_ref(obj: JSON, block: bool | None = None, controller: bool | None = None) -> JSON:
    ref: JSON = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
    }
    if block is not None:
        ref["blockOwnerDeletion"] = block
    if controller is not None:
        ref["controller"] = controller
    return ref


async def eventually(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:  # noqa: ASYNC109
    """Poll an async ``check`` until it returns a truthy value (for state with no watchable event)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)


WIDGET_SCHEMA: JSON = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["size"],
            "x-kubernetes-validations": [
                {"rule": "self.size <= self.maxSize", "message": "size must not exceed maxSize"},
                {
                    "rule": "!has(oldSelf.color) || self.color == oldSelf.color",
                    "message": "color is immutable",
                    "reason": "FieldValueForbidden",
                    "fieldPath": ".color",
                },
            ],
            "properties": {
                "size": {"type": "integer", "minimum": 0},
                "maxSize": {"type": "integer", "default": 10},
                "color": {"type": "string", "enum": ["red", "green", "blue"], "default": "red"},
                "name": {"type": "string", "maxLength": 8, "pattern": "^[a-z]+$"},
                "mode": {
                    "type": "string",
                    "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "Value is immutable"}],
                },
                "parts": {
                    "type": "array",
                    "maxItems": 3,
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {"name": {"type": "string"}, "count": {"type": "integer", "default": 1}},
                    },
                },
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        },
        "status": {"type": "object", "properties": {"phase": {"type": "string"}, "ready": {"type": "integer"}}},
    },
}


def widget_crd(group: str) -> JSON:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "plural": "widgets",
                "singular": "widget",
                "kind": "Widget",
                "listKind": "WidgetList",
                "shortNames": ["wdg"],
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": WIDGET_SCHEMA},
                    "additionalPrinterColumns": [
                        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    ],
                }
            ],
        },
    }


@pytest.fixture
async def widgets(kube: Kube) -> AsyncIterator[str]:
    """A Widget CRD in a unique group; yields the API path prefix ``/apis/<group>/v1``."""
    group = f"g{uuid.uuid4().hex[:8]}.contract.pyjobset.io"
    reply = await kube.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", widget_crd(group))
    assert reply.status == 201, reply.body

    async def established() -> bool:
        crd = (await kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{group}")).obj()
        conds = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
        served = (await kube.get(f"/apis/{group}/v1")).ok
        return conds.get("Established") == "True" and served

    await eventually(established)
    yield f"/apis/{group}/v1"
    await kube.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{group}")


def widget(name: str, **spec: Any) -> JSON:
    return {"apiVersion": "", "kind": "Widget", "metadata": {"name": name}, "spec": spec}
