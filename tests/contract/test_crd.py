"""CustomResourceDefinitions: serving, structural defaults, pruning and fieldValidation, OpenAPI validation,
list-map keys, ``x-kubernetes-validations`` CEL rules (incl. transition rules), printer columns, and the
project's JobSet CRD from ``deploy/crd/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.contract.client import Kube
from tests.contract.conftest import eventually, widget_crd

JSON = dict[str, Any]
CRD_DIR = Path(__file__).resolve().parents[2] / "deploy" / "crd"


def _w(widgets: str, obj_name: str, **spec: Any) -> JSON:
    return {
        "apiVersion": widgets.removeprefix("/apis/"),
        "kind": "Widget",
        "metadata": {"name": obj_name},
        "spec": spec,
    }


def _causes(reply: Any) -> list[tuple[str, str]]:
    assert reply.status == 422, reply.body
    assert reply.body["reason"] == "Invalid"
    return [(c["field"], c["message"]) for c in reply.body["details"]["causes"]]


async def test_crd_serves_its_resource_in_discovery(kube: Kube, widgets: str) -> None:
    doc = (await kube.get(widgets)).obj()
    names = {r["name"]: r for r in doc["resources"]}
    assert names["widgets"]["kind"] == "Widget"
    assert names["widgets"]["namespaced"] is True
    assert "wdg" in names["widgets"]["shortNames"]
    assert "widgets/status" in names
    group = widgets.split("/")[2]
    groups = (await kube.get("/apis")).obj()["groups"]
    assert group in [g["name"] for g in groups]


async def test_defaults_are_applied_on_create(kube: Kube, ns: str, widgets: str) -> None:
    body = _w(widgets, "d", size=1, parts=[{"name": "a"}])
    obj = (await kube.post(f"{widgets}/namespaces/{ns}/widgets", body)).obj()
    assert obj["spec"]["maxSize"] == 10
    assert obj["spec"]["color"] == "red"
    assert obj["spec"]["parts"] == [{"name": "a", "count": 1}]


async def test_unknown_fields_strict_warn_ignore(kube: Kube, ns: str, widgets: str) -> None:
    path = f"{widgets}/namespaces/{ns}/widgets"
    strict = await kube.post(path, _w(widgets, "s", size=1, bogus=True), fieldValidation="Strict")
    assert strict.status == 400
    assert 'unknown field "spec.bogus"' in strict.obj()["message"]
    warn = await kube.post(path, _w(widgets, "w", size=1, bogus=True), fieldValidation="Warn")
    assert warn.status == 201
    assert 'unknown field \\"spec.bogus\\"' in warn.headers.get(
        "Warning", ""
    ) or 'unknown field "spec.bogus"' in warn.headers.get("Warning", "")
    assert "bogus" not in warn.obj()["spec"]
    ignore = await kube.post(path, _w(widgets, "i", size=1, bogus=True), fieldValidation="Ignore")
    assert ignore.status == 201
    assert "Warning" not in ignore.headers
    assert "bogus" not in ignore.obj()["spec"]
    kept = await kube.post(path, _w(widgets, "k", size=1, free={"anything": {"goes": 1}}), fieldValidation="Strict")
    assert kept.status == 201
    assert kept.obj()["spec"]["free"] == {"anything": {"goes": 1}}


async def test_openapi_validation_causes(kube: Kube, ns: str, widgets: str) -> None:
    path = f"{widgets}/namespaces/{ns}/widgets"
    causes = dict(_causes(await kube.post(path, _w(widgets, "v", size=-1, color="pink", name="TOOLONGNAME1"))))
    assert causes["spec.size"].startswith("Invalid value: -1: spec.size in body should be greater than or equal to 0")
    assert causes["spec.color"].startswith('Unsupported value: "pink": supported values: "red", "green", "blue"')
    assert "spec.name" in causes
    missing = _causes(await kube.post(path, _w(widgets, "r")))
    assert ("spec.size", "Required value") in missing
    wrong_type = _causes(await kube.post(path, _w(widgets, "t", size="big")))
    assert wrong_type[0][0] == "spec.size"
    assert "must be of type integer" in wrong_type[0][1]


async def test_list_map_keys_must_be_unique_and_max_items(kube: Kube, ns: str, widgets: str) -> None:
    path = f"{widgets}/namespaces/{ns}/widgets"
    dup = _causes(await kube.post(path, _w(widgets, "u", size=1, parts=[{"name": "a"}, {"name": "a"}])))
    assert dup[0][0] == "spec.parts[1]"
    assert dup[0][1].startswith("Duplicate value:")
    many = _causes(await kube.post(path, _w(widgets, "m", size=1, parts=[{"name": str(i)} for i in range(4)])))
    assert ("spec.parts", "Too many: 4: must have at most 3 items") in many


async def test_cel_rule_and_transition_rules(kube: Kube, ns: str, widgets: str) -> None:
    path = f"{widgets}/namespaces/{ns}/widgets"
    over = _causes(await kube.post(path, _w(widgets, "c", size=11)))
    # kube-apiserver omits the value of an object or array a rule fails on, and shows a scalar's value.
    assert ("spec", "Invalid value: size must not exceed maxSize") in over
    ok = await kube.post(path, _w(widgets, "c", size=2, color="green", mode="a"))
    assert ok.status == 201
    recolor = await kube.patch(f"{path}/c", {"spec": {"color": "blue"}})
    causes = _causes(recolor)
    assert ("spec.color", "Forbidden: color is immutable") in causes
    assert recolor.body["details"]["causes"][0]["reason"] == "FieldValueForbidden"
    remode = _causes(await kube.patch(f"{path}/c", {"spec": {"mode": "b"}}))
    assert ("spec.mode", 'Invalid value: "b": Value is immutable') in remode
    fine = await kube.patch(f"{path}/c", {"spec": {"size": 3}})
    assert fine.status == 200


async def test_status_writes_do_not_rerun_spec_rules_on_unchanged_spec(kube: Kube, ns: str, widgets: str) -> None:
    path = f"{widgets}/namespaces/{ns}/widgets"
    await kube.post(path, _w(widgets, "s", size=1))
    reply = await kube.patch(f"{path}/s/status", {"status": {"phase": "Ready"}})
    assert reply.status == 200
    assert reply.obj()["status"] == {"phase": "Ready"}


async def test_custom_resource_update_requires_resource_version(kube: Kube, ns: str, widgets: str) -> None:
    path = f"{widgets}/namespaces/{ns}/widgets"
    obj = (await kube.post(path, _w(widgets, "rv", size=1))).obj()
    del obj["metadata"]["resourceVersion"]
    reply = await kube.put(f"{path}/rv", obj)
    assert reply.status == 422
    assert reply.obj()["details"]["causes"][0]["field"] == "metadata.resourceVersion"


async def test_printer_columns_in_table_output(kube: Kube, ns: str, widgets: str) -> None:
    path = f"{widgets}/namespaces/{ns}/widgets"
    await kube.post(path, _w(widgets, "tb", size=5))
    reply = await kube.request("GET", path, accept="application/json;as=Table;v=v1;g=meta.k8s.io")
    table = reply.obj()
    assert table["kind"] == "Table"
    cols = [c["name"] for c in table["columnDefinitions"]]
    assert cols[:3] == ["Name", "Size", "Phase"]
    assert table["rows"][0]["cells"][:2] == ["tb", 5]


async def test_deleting_the_crd_stops_serving_and_removes_objects(kube: Kube, ns: str, widgets: str) -> None:
    path = f"{widgets}/namespaces/{ns}/widgets"
    assert (await kube.post(path, _w(widgets, "gone", size=1))).status == 201
    group = widgets.split("/")[2]
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    await kube.delete(f"{crds}/widgets.{group}")

    async def crd_gone() -> bool:  # the CRD itself goes only once its objects are deleted (cleanup finalizer)
        return (await kube.get(f"{crds}/widgets.{group}")).status == 404

    async def unserved() -> bool:
        return (await kube.get(path)).status == 404

    await eventually(crd_gone, timeout=60)
    await eventually(unserved, timeout=60)
    # Created again, the resource is served empty: the objects were removed, not merely hidden.
    assert (await kube.post(crds, widget_crd(group))).status == 201

    async def served_again() -> Any:
        reply = await kube.get(path)
        return reply.obj() if reply.ok else None

    listing = await eventually(served_again, timeout=60)
    assert listing["items"] == []


@pytest.fixture
async def jobset_crd(kube: Kube) -> str:
    files = sorted(CRD_DIR.glob("*.yaml"))
    if not files:
        pytest.skip("deploy/crd/ has no CRD yet")
    crd = yaml.safe_load(files[0].read_text())
    name = crd["metadata"]["name"]
    reply = await kube.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert reply.status in (201, 409), reply.body

    async def served() -> bool:
        return (await kube.get(f"/apis/{crd['spec']['group']}/{crd['spec']['versions'][0]['name']}")).ok

    await eventually(served)
    return f"/apis/{crd['spec']['group']}/{crd['spec']['versions'][0]['name']}:{name}"


async def test_jobset_crd_accepts_a_valid_jobset_and_rejects_dependson_with_inorder(
    kube: Kube, ns: str, jobset_crd: str
) -> None:
    prefix = jobset_crd.split(":", maxsplit=1)[0]
    rj: JSON = {
        "name": "w",
        "replicas": 1,
        "template": {
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
                    }
                }
            }
        },
    }
    body = {
        "apiVersion": prefix.removeprefix("/apis/"),
        "kind": "JobSet",
        "metadata": {"name": "js"},
        "spec": {"suspend": True, "replicatedJobs": [rj]},
    }
    ok = await kube.post(f"{prefix}/namespaces/{ns}/jobsets", body)
    assert ok.status == 201, ok.body
    bad = dict(
        body,
        metadata={"name": "js2"},
        spec={
            "suspend": True,
            "startupPolicy": {"startupPolicyOrder": "InOrder"},
            "replicatedJobs": [rj, dict(rj, name="x", dependsOn=[{"name": "w", "status": "Ready"}])],
        },
    )
    reply = await kube.post(f"{prefix}/namespaces/{ns}/jobsets", bad)
    assert reply.status == 422
    assert "mutually exclusive" in reply.obj()["message"]


async def test_server_side_apply_merges_list_map_items_by_key(kube: Kube, ns: str, widgets: str) -> None:
    path = f"{widgets}/namespaces/{ns}/widgets/ssa"
    cfg = _w(widgets, "ssa", size=1, parts=[{"name": "a"}, {"name": "b"}])
    created = await kube.patch(path, cfg, "apply", fieldManager="applier")
    assert created.status == 201, created.body
    changed = await kube.patch(
        path,
        {"spec": {"parts": [{"name": "a", "count": 5}, {"name": "b", "count": 1}]}},
        "merge",
        fieldManager="editor",
    )
    assert changed.status == 200
    again = await kube.patch(path, cfg, "apply", fieldManager="applier")
    assert again.status == 200, again.body
    parts = {p["name"]: p for p in again.obj()["spec"]["parts"]}
    assert parts["a"]["count"] == 5, "another manager's field inside a list-map item survives a re-apply"
    assert again.obj()["metadata"]["generation"] == changed.obj()["metadata"]["generation"]
