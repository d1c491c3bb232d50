"""Who is at fault: kubesim answers bad input with a 4xx naming the field, and its own bugs with a logged 500.

Also pins the one LabelSelector semantics kubesim uses (a nil selector selects nothing, ``{}`` everything) where
it decides an eviction.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest

import kubesim
from kubesim import ApiError
from kubesim.storage import builtins
from kubesim.storage.store import Store

JSON = dict[str, Any]


def configmap(name: str) -> JSON:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}


async def test_a_simulator_bug_is_a_logged_500_never_a_400(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_default(info: Any, obj: JSON) -> None:
        raise TypeError("simulated bug in a defaulting strategy")

    async with kubesim.SimCluster(with_cluster=False) as sim:
        monkeypatch.setattr(builtins, "default", broken_default)
        caplog.set_level(logging.ERROR, logger="kubesim.apiserver.server")
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{sim.url}/api/v1/namespaces/default/configmaps", json=configmap("c")) as resp,
        ):
            body = await resp.json()
    assert resp.status == 500
    assert body["reason"] == "InternalError"
    assert "simulated bug" in body["message"]
    logged = [r for r in caplog.records if r.name == "kubesim.apiserver.server" and r.levelno == logging.ERROR]
    assert logged
    assert logged[0].exc_info is not None


@pytest.mark.parametrize(
    ("resource", "body", "field"),
    [
        ("pods", {"kind": "Pod", "metadata": {"name": "p"}, "spec": []}, "Pod.spec"),
        ("namespaces", {"kind": "Namespace", "metadata": {"name": "n"}, "status": "Active"}, "Namespace.status"),
        ("configmaps", {"kind": "ConfigMap", "metadata": {"name": "c", "labels": ["a"]}}, "metadata.labels"),
        ("jobs.batch", {"kind": "Job", "metadata": {"name": "j"}, "spec": {"template": "x"}}, "Job.spec.template"),
        (
            "pods",
            {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "env": {}}]}},
            "Pod.spec.containers[0].env",
        ),
    ],
)
async def test_a_body_of_the_wrong_shape_is_a_400_naming_the_field(resource: str, body: JSON, field: str) -> None:
    store = Store()
    with pytest.raises(ApiError) as err:
        await store.create(resource, body, "default")
    assert err.value.code == 400
    assert field in err.value.message
    assert "cannot be handled as a" in err.value.message


async def test_null_parts_decode_as_their_zero_value_as_in_go() -> None:
    store = Store()
    ns = await store.create(
        "namespaces", {"kind": "Namespace", "metadata": {"name": "zero", "labels": None}, "status": None}
    )
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "zero"}
    assert ns["status"] == {"phase": "Active"}


async def test_a_malformed_apply_patch_is_a_400() -> None:
    store = Store()
    await store.create("configmaps", configmap("c"), "default")
    for patch in ([{"op": "add"}], {"metadata": None}, {"metadata": {"labels": "x"}}):
        with pytest.raises(ApiError) as err:
            await store.patch("configmaps", "c", patch, "default", patch_type="apply", field_manager="m")
        assert err.value.code == 400, patch


async def _running_pod(store: Store, name: str) -> None:
    pod = {
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "a"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }
    await store.create("pods", pod, "default")

    def running(obj: JSON) -> JSON:
        obj.setdefault("status", {})["phase"] = "Running"
        return obj

    await store.update_fn("pods", name, "default", running, subresource="status")


async def test_eviction_budgets_a_nil_selector_selects_no_pod_an_empty_one_every_pod() -> None:
    store = Store()
    await _running_pod(store, "p")
    pdb: JSON = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "nil"}}
    pdb["spec"] = {"maxUnavailable": 0}
    await store.create("poddisruptionbudgets.policy", pdb, "default")
    await store.evict("p", "default")  # the nil-selector budget guards nothing
    assert store.get_nowait("pods", "p", "default") is None

    await _running_pod(store, "q")
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "all"}}
    pdb["spec"] = {"maxUnavailable": 0, "selector": {}}
    await store.create("poddisruptionbudgets.policy", pdb, "default")
    with pytest.raises(ApiError) as err:
        await store.evict("q", "default")  # the empty selector guards every pod, and allows no disruption
    assert err.value.code == 429
    assert store.get_nowait("pods", "q", "default") is not None
