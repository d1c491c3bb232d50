"""The protobuf OpenAPI v2 document: what ``Accept`` gets which form, and the encoding read back field by field."""

from __future__ import annotations

from typing import Any

import pytest

from kubesim.apiserver import openapiv2pb
from kubesim.apiserver.protobuf import fields


@pytest.mark.parametrize(
    ("accept", "wanted"),
    [
        ("application/com.github.proto-openapi.spec.v2@v1.0+protobuf", "protobuf"),
        ("application/com.github.proto-openapi.spec.v2.v1.0+protobuf, application/json", "protobuf"),
        ("application/json", "json"),
        ("", "json"),
        ("*/*", "json"),
        ("text/plain", None),
        ("application/yaml", None),
    ],
)
def test_negotiation_follows_the_first_acceptable_type(accept: str, wanted: str | None) -> None:
    assert openapiv2pb.negotiate(accept) == wanted


def _by_number(buf: bytes) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    for number, _wire, value in fields(buf):
        out.setdefault(number, []).append(value)
    return out


def test_document_encodes_swagger_info_paths_and_definitions() -> None:
    doc = {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.37.2"},
        "paths": {
            "/api/v1/namespaces/{namespace}/pods": {
                "post": {
                    "operationId": "postPod",
                    "parameters": [{"name": "fieldValidation", "in": "query", "type": "string"}],
                    "responses": {"200": {"description": "OK"}},
                    "x-kubernetes-action": "post",
                }
            }
        },
        "definitions": {
            "io.k8s.api.core.v1.Pod": {
                "type": "object",
                "properties": {"spec": {"type": "object"}},
                "x-kubernetes-group-version-kind": [{"group": "", "kind": "Pod", "version": "v1"}],
            }
        },
    }
    top = _by_number(openapiv2pb.encode_document(doc))
    assert top[1] == [b"2.0"]
    assert _by_number(top[2][0]) == {1: [b"Kubernetes"], 2: [b"v1.37.2"]}
    [named_path] = _by_number(top[8][0])[2]
    path = _by_number(named_path)
    assert path[1] == [b"/api/v1/namespaces/{namespace}/pods"]
    post = _by_number(_by_number(path[2][0])[4][0])
    assert post[5] == [b"postPod"]
    query = _by_number(_by_number(_by_number(_by_number(post[8][0])[1][0])[2][0])[3][0])
    assert query[2] == [b"query"]
    assert query[4] == [b"fieldValidation"]
    assert query[6] == [b"string"]
    ext = _by_number(post[13][0])
    assert ext[1] == [b"x-kubernetes-action"]
    assert _by_number(ext[2][0]) == {2: [b'"post"']}
    [named_def] = _by_number(top[9][0])[1]
    definition = _by_number(named_def)
    assert definition[1] == [b"io.k8s.api.core.v1.Pod"]
    schema = _by_number(definition[2][0])
    assert _by_number(schema[22][0]) == {1: [b"object"]}
    assert 25 in schema
    assert 31 in schema
