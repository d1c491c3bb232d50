"""Errors and bad input: real ``Status`` bodies with the apiserver's codes and reasons; nothing is lost."""

from __future__ import annotations

from tests.contract.client import Kube
from tests.contract.conftest import cm


def _status(reply: object) -> dict:  # type: ignore[type-arg]
    body = reply.body  # type: ignore[attr-defined]
    assert isinstance(body, dict), body
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == reply.status  # type: ignore[attr-defined]
    return body


async def test_unknown_resource_and_path_are_404(kube: Kube, ns: str) -> None:
    assert (await kube.get(f"/api/v1/namespaces/{ns}/nosuchthings")).status == 404
    assert (await kube.get("/apis/nosuch.example.com/v1")).status == 404


async def test_malformed_json_is_400_and_nothing_is_stored(kube: Kube, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    before = len((await kube.get(path)).obj()["items"])
    reply = await kube.request("POST", path, raw=b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {')
    assert reply.status == 400
    assert _status(reply)["reason"] == "BadRequest"
    assert len((await kube.get(path)).obj()["items"]) == before


async def test_malformed_yaml_is_400(kube: Kube, ns: str) -> None:
    reply = await kube.request(
        "POST",
        f"/api/v1/namespaces/{ns}/configmaps",
        raw=b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [unclosed\n",
        content_type="application/yaml",
    )
    assert reply.status == 400
    assert _status(reply)["reason"] == "BadRequest"


async def test_yaml_body_is_accepted(kube: Kube, ns: str) -> None:
    reply = await kube.request(
        "POST",
        f"/api/v1/namespaces/{ns}/configmaps",
        raw=b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fromyaml}\ndata: {a: b}\n",
        content_type="application/yaml",
    )
    assert reply.status == 201
    assert reply.obj()["data"] == {"a": "b"}


async def test_wrong_kind_for_the_endpoint_is_400(kube: Kube, ns: str) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "wrong"}}
    reply = await kube.post(f"/api/v1/namespaces/{ns}/configmaps", secret)
    assert reply.status == 400
    assert _status(reply)["reason"] == "BadRequest"
    assert (await kube.get(f"/api/v1/namespaces/{ns}/configmaps/wrong")).status == 404


async def test_namespace_mismatch_is_400(kube: Kube, ns: str) -> None:
    reply = await kube.post(f"/api/v1/namespaces/{ns}/configmaps", cm("mm", "default"))
    assert reply.status == 400
    assert "does not match the namespace" in _status(reply)["message"]


async def test_missing_namespace_is_404(kube: Kube) -> None:
    reply = await kube.post("/api/v1/namespaces/no-such-ns-xyz/configmaps", cm("x", "no-such-ns-xyz"))
    assert reply.status == 404
    assert _status(reply)["details"]["kind"] == "namespaces"


async def test_invalid_name_is_422_with_field_cause(kube: Kube, ns: str) -> None:
    reply = await kube.post(f"/api/v1/namespaces/{ns}/configmaps", cm("Bad_Name", ns))
    assert reply.status == 422
    status = _status(reply)
    assert status["reason"] == "Invalid"
    assert status["message"].startswith('ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"')
    assert status["details"]["kind"] == "ConfigMap"
    assert status["details"]["causes"][0]["field"] == "metadata.name"
    assert status["details"]["causes"][0]["reason"] == "FieldValueInvalid"


async def test_invalid_label_value_is_422(kube: Kube, ns: str) -> None:
    reply = await kube.post(f"/api/v1/namespaces/{ns}/configmaps", cm("lbl", ns, {"a": "not valid!"}))
    assert reply.status == 422
    assert _status(reply)["details"]["causes"][0]["field"] == "metadata.labels"


async def test_pod_without_containers_is_422(kube: Kube, ns: str) -> None:
    reply = await kube.post(
        f"/api/v1/namespaces/{ns}/pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "empty"}, "spec": {}}
    )
    assert reply.status == 422
    fields = [c["field"] for c in _status(reply)["details"]["causes"]]
    assert "spec.containers" in fields


async def test_oversized_body_is_413_and_server_keeps_serving(kube: Kube, ns: str) -> None:
    big = cm("big", ns, data={"blob": "x" * (4 * 1024 * 1024)})
    reply = await kube.post(f"/api/v1/namespaces/{ns}/configmaps", big)
    assert reply.status == 413
    assert (await kube.get(f"/api/v1/namespaces/{ns}/configmaps")).status == 200


async def test_unsupported_patch_content_type_is_415(kube: Kube, ns: str) -> None:
    await kube.post(f"/api/v1/namespaces/{ns}/configmaps", cm("ct", ns))
    reply = await kube.request(
        "PATCH", f"/api/v1/namespaces/{ns}/configmaps/ct", {"data": {}}, content_type="text/plain"
    )
    assert reply.status == 415
    assert _status(reply)["reason"] == "UnsupportedMediaType"


async def test_post_to_a_named_resource_is_405(kube: Kube, ns: str) -> None:
    await kube.post(f"/api/v1/namespaces/{ns}/configmaps", cm("m", ns))
    reply = await kube.post(f"/api/v1/namespaces/{ns}/configmaps/m", cm("m", ns))
    assert reply.status == 405
    assert _status(reply)["reason"] == "MethodNotAllowed"


async def test_invalid_json_patch_document_is_rejected(kube: Kube, ns: str) -> None:
    await kube.post(f"/api/v1/namespaces/{ns}/configmaps", cm("jp", ns))
    reply = await kube.patch(f"/api/v1/namespaces/{ns}/configmaps/jp", {"op": "add"}, "json")
    assert reply.status in (400, 422, 500)
    assert (await kube.get(f"/api/v1/namespaces/{ns}/configmaps/jp")).obj()["data"] == {"k": "v"}


async def test_strategic_merge_patch_on_custom_resource_is_415(kube: Kube, ns: str, widgets: str) -> None:
    body = {
        "apiVersion": widgets.removeprefix("/apis/"),
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 1},
    }
    assert (await kube.post(f"{widgets}/namespaces/{ns}/widgets", body)).status == 201
    reply = await kube.patch(f"{widgets}/namespaces/{ns}/widgets/w", {"spec": {"size": 2}}, "strategic")
    assert reply.status == 415


async def test_invalid_field_validation_directive_is_422(kube: Kube, ns: str) -> None:
    reply = await kube.post(f"/api/v1/namespaces/{ns}/configmaps", cm("fv", ns), fieldValidation="Sometimes")
    assert reply.status == 422
    status = _status(reply)
    assert status["reason"] == "Invalid"
    assert status["message"].startswith('CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value')
    assert [(c["reason"], c["field"]) for c in status["details"]["causes"]] == [
        ("FieldValueNotSupported", "fieldValidation")
    ]
    assert (await kube.get(f"/api/v1/namespaces/{ns}/configmaps/fv")).status == 404


async def test_system_namespaces_may_not_be_deleted(kube: Kube) -> None:
    reply = await kube.delete("/api/v1/namespaces/kube-system")
    assert reply.status == 403
    assert _status(reply)["reason"] == "Forbidden"
    assert (await kube.get("/api/v1/namespaces/kube-system")).obj()["status"]["phase"] == "Active"


async def test_wrongly_typed_metadata_is_400(kube: Kube, ns: str) -> None:
    body = cm("typed", ns)
    body["metadata"]["labels"] = {"a": 5}
    reply = await kube.post(f"/api/v1/namespaces/{ns}/configmaps", body)
    assert reply.status == 400
    assert "cannot unmarshal number" in _status(reply)["message"]
    body["metadata"] = "nope"
    assert (await kube.post(f"/api/v1/namespaces/{ns}/configmaps", body)).status == 400


async def test_malformed_delete_options_are_400(kube: Kube, ns: str) -> None:
    await kube.post(f"/api/v1/namespaces/{ns}/configmaps", cm("do", ns))
    reply = await kube.delete(f"/api/v1/namespaces/{ns}/configmaps/do", {"preconditions": "x"})
    assert reply.status == 400
    assert (await kube.get(f"/api/v1/namespaces/{ns}/configmaps/do")).ok
    reply = await kube.delete(f"/api/v1/namespaces/{ns}/configmaps/do", {"propagationPolicy": "Sideways"})
    assert reply.status == 422


async def test_unknown_fields_in_builtin_pods_strict_warn_ignore(kube: Kube, ns: str) -> None:
    def body(name: str) -> dict:  # type: ignore[type-arg]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "schedulingGates": [{"name": "example.com/hold"}],
                "bogusTop": 1,
                "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10", "imagee": "typo"}],
            },
        }

    path = f"/api/v1/namespaces/{ns}/pods"
    strict = await kube.post(path, body("s"), fieldValidation="Strict")
    assert strict.status == 400
    message = _status(strict)["message"]
    assert 'unknown field "spec.bogusTop"' in message
    assert 'unknown field "spec.containers[0].imagee"' in message
    warned = await kube.post(path, body("w"), fieldValidation="Warn")
    assert warned.status == 201
    assert "spec.bogusTop" in warned.headers.get("Warning", "")
    assert "bogusTop" not in warned.obj()["spec"]
    assert "imagee" not in warned.obj()["spec"]["containers"][0]
    ignored = await kube.post(path, body("i"), fieldValidation="Ignore")
    assert ignored.status == 201
    assert "Warning" not in ignored.headers
