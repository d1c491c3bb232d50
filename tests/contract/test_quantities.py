"""Resource quantities are stored and served as canonical strings, whatever JSON type the client sent (issue 13).

A client may send a quantity as a JSON number (``nvidia.com/gpu: 4``); the API server parses it as a
``resource.Quantity`` and from then on answers the canonical string (``"4"``, ``0.5`` → ``"500m"``, ``2000`` →
``"2k"``) in the create reply, GET, LIST and WATCH alike. The controller's slim records rely on that (they also
accept numbers, but a simulator must not teach the suite otherwise).
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import msgspec

from api.records import Node, Pod
from tests.contract.client import Kube, until
from tests.contract.conftest import pod

JSON = dict[str, Any]

SENT = {"requests": {"cpu": 0.5, "memory": 2000, "nvidia.com/gpu": 4}, "limits": {"cpu": 1, "nvidia.com/gpu": 4}}
SERVED = {
    "requests": {"cpu": "500m", "memory": "2k", "nvidia.com/gpu": "4"},
    "limits": {"cpu": "1", "nvidia.com/gpu": "4"},
}


def resources(obj: JSON) -> JSON:
    res: JSON = obj["spec"]["containers"][0]["resources"]
    return res


async def test_numeric_quantities_come_back_as_canonical_strings(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/pods"
    listed = await kube.get(path)
    rv = listed.obj()["metadata"]["resourceVersion"]
    body = pod("numbers", ns)
    body["spec"]["containers"][0]["resources"] = SENT
    created = await kube.post(path, body)
    assert created.status == 201, created.body
    assert resources(created.obj()) == SERVED
    assert resources((await kube.get(f"{path}/numbers")).obj()) == SERVED
    page = await kube.get(path)
    [item] = page.obj()["items"]
    assert resources(item) == SERVED
    async with contextlib.aclosing(kube.watch(path, resourceVersion=rv)) as events:
        added = await until(events, lambda e: e["type"] == "ADDED" and e["object"]["metadata"]["name"] == "numbers")
    assert resources(added["object"]) == SERVED
    # The controller's slim pod record reads the GPU count from what the server serves.
    record = msgspec.convert(item, Pod)
    assert record.spec.containers[0].resources.requests.get("nvidia.com/gpu") == "4"


async def test_a_node_condition_with_any_status_is_accepted_and_decodes(kube: Kube) -> None:
    """The API server accepts a condition status outside True/False/Unknown on node status; the controller's
    node record must still decode such a node (an enum there froze the node informer)."""
    name = f"probe-{uuid.uuid4().hex[:8]}"
    path = f"/api/v1/nodes/{name}"
    created = await kube.post("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    assert created.status == 201, created.body
    try:
        status = {
            "conditions": [{"type": "example.com/Probe", "status": "Maybe"}],
            "capacity": {"nvidia.com/gpu": 8},
            "allocatable": {"nvidia.com/gpu": 8},
        }
        patched = await kube.patch(f"{path}/status", {"status": status}, kind="strategic")
        assert patched.status == 200, patched.body
        served = (await kube.get(path)).obj()
        [probe] = [c for c in served["status"]["conditions"] if c["type"] == "example.com/Probe"]
        assert probe["status"] == "Maybe"
        assert served["status"]["allocatable"]["nvidia.com/gpu"] == "8"
        node = msgspec.convert(served, Node)
        assert ("example.com/Probe", "Maybe") in [(c.type, c.status) for c in node.status.conditions]
    finally:
        await kube.delete(path)
