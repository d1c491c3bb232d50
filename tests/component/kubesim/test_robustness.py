"""Property: whatever body a client sends, kubesim answers with an API error or a stored object -- never an
unexpected exception -- and never loses or changes an unrelated stored object."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubesim import ApiError
from kubesim.storage.store import Store

JSON = dict[str, Any]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.text(max_size=12),
    st.floats(allow_nan=False, allow_infinity=False),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=12,
)
keys = st.sampled_from(
    [
        "metadata",
        "spec",
        "status",
        "kind",
        "apiVersion",
        "data",
        "name",
        "labels",
        "containers",
        "template",
        "finalizers",
        "ownerReferences",
        "selector",
        "x",
    ]
)
bodies = st.recursive(
    st.dictionaries(keys, values, max_size=5),
    lambda inner: st.dictionaries(keys, st.one_of(values, inner), max_size=5),
    max_leaves=20,
)
resources = st.sampled_from(["configmaps", "pods", "jobs.batch", "services", "namespaces", "leases"])
patch_types = st.sampled_from(["merge", "json", "strategic", "apply"])


def _sentinel() -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "sentinel", "namespace": "default"},
        "data": {"keep": "me"},
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(resource=resources, body=bodies, ptype=patch_types, patch=st.one_of(bodies, st.lists(bodies, max_size=3)))
def test_arbitrary_bodies_never_crash_or_lose_objects(resource: str, body: JSON, ptype: str, patch: Any) -> None:
    async def run() -> None:
        store = Store()
        sentinel = await store.create("configmaps", _sentinel())
        for call in (
            lambda: store.create(resource, body, "default"),
            lambda: store.update(
                resource, dict(body, metadata={"name": "sentinel", "namespace": "default"}), "default"
            ),
            lambda: store.patch("configmaps", "sentinel", patch, "default", patch_type=ptype, field_manager="fuzz"),
            lambda: store.patch(resource, "sentinel", patch, "default", patch_type=ptype, field_manager="fuzz"),
        ):
            code = 200
            try:
                await call()
            except ApiError as err:
                code = err.code
            assert code < 500
        after = await store.get("configmaps", "sentinel", "default")
        assert after["metadata"]["uid"] == sentinel["metadata"]["uid"]

    asyncio.run(run())


async def test_bad_query_parameters_and_yaml_bombs_are_4xx() -> None:
    import aiohttp

    from kubesim import SimCluster

    async with SimCluster(with_cluster=False) as sim, aiohttp.ClientSession() as http:
        base = f"{sim.url}/api/v1/namespaces/default/configmaps"
        cases = [
            ("GET", base, {"limit": "abc"}),
            ("GET", base, {"watch": "1", "timeoutSeconds": "soon"}),
            ("GET", base, {"watch": "1", "resourceVersion": "abc"}),
            ("GET", base, {"labelSelector": "a in (b"}),
            ("GET", base, {"fieldSelector": "nonsense"}),
            ("GET", base, {"limit": "1", "continue": "%%%"}),
            ("POST", base, {"dryRun": "Sometimes"}),
            ("DELETE", f"{base}/x", {"propagationPolicy": "Sideways"}),
            ("DELETE", f"{base}/x", {"gracePeriodSeconds": "x"}),
        ]
        body = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}'
        async with http.post(base, data=body, headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == 201
        for method, url, params in cases:
            data = body if method == "POST" else None
            async with http.request(
                method, url, params=params, data=data, headers={"Content-Type": "application/json"}
            ) as resp:
                assert 400 <= resp.status < 500, (method, params, resp.status, await resp.text())
        bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
            for i in range(20)
        )
        async with http.post(base, data=bomb.encode(), headers={"Content-Type": "application/yaml"}) as resp:
            assert resp.status == 400
        async with http.get(f"{base}/x") as resp:
            assert resp.status == 200
