"""Unknown-field detection for built-in kinds, from the Kubernetes OpenAPI definitions the project vendors.

Role: kube-apiserver drops fields its Go types do not have, and with ``fieldValidation=Strict`` (kubectl's
default) rejects the request instead (``strict decoding error: unknown field "spec.contianers"``). kubesim has no
Go types, so it walks the ``spec`` of Pods, Jobs and PersistentVolumeClaims against the vendored definitions in
``k8sopenapi/kubernetes-*.json`` (PodSpec, JobSpec, PersistentVolumeClaimSpec and everything they reference)
and reports unknown fields by path.

Invariants: a subtree whose definition is not vendored (or a field marked
``x-kubernetes-preserve-unknown-fields``) is never reported; the vendored file is package data of ``k8sopenapi``
(an installed wheel has it too), and without any the check is off; :func:`unknown_fields` removes what it
reports, so the stored object is what the apiserver would store after decoding.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson

import k8sopenapi as openapi
from kubesim.resources import ResourceInfo

JSON = dict[str, Any]
ROOTS: dict[tuple[str, str], str] = {
    ("", "pods"): "io.k8s.api.core.v1.PodSpec",
    ("batch", "jobs"): "io.k8s.api.batch.v1.JobSpec",
    ("", "persistentvolumeclaims"): "io.k8s.api.core.v1.PersistentVolumeClaimSpec",
}
TOP_LEVEL = {"apiVersion", "kind", "metadata", "spec", "status"}


@functools.cache
def definitions() -> dict[str, JSON]:
    files = openapi.documents()
    if not files:
        return {}
    doc = orjson.loads(files[-1].read_bytes())
    defs = doc.get("definitions") or (doc.get("components") or {}).get("schemas") or {}
    return defs if isinstance(defs, dict) else {}


_RESOLVED: dict[int, JSON | None] = {}


def _resolve(schema: JSON) -> JSON | None:
    """Follow ``$ref`` (directly or as the single member of ``allOf``); None when the target is not vendored.

    Cached by identity: every schema node lives as long as the loaded definitions."""
    key = id(schema)
    if key in _RESOLVED:
        return _RESOLVED[key]
    node: JSON | None = schema
    for _ in range(8):
        assert node is not None
        ref = node.get("$ref")
        if ref is None and len(node.get("allOf") or []) == 1:
            ref = node["allOf"][0].get("$ref")
        if ref is None:
            break
        node = definitions().get(str(ref).rsplit("/", 1)[-1])
        if node is None:
            break
    _RESOLVED[key] = node
    return node


def _path(parts: tuple[str | int, ...]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def _walk(value: Any, schema: JSON, parts: tuple[str | int, ...], out: list[str]) -> None:
    resolved = _resolve(schema)
    if resolved is None or resolved.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        props = resolved.get("properties")
        extra = resolved.get("additionalProperties")
        if props is None and not isinstance(extra, dict):
            return
        for name in list(value):
            sub = (props or {}).get(name)
            if sub is None and isinstance(extra, dict):
                sub = extra
            if sub is None:
                out.append(_path((*parts, name)))
                del value[name]
                continue
            child = value[name]
            if isinstance(child, dict | list):
                _walk(child, sub, (*parts, name), out)
    elif isinstance(value, list):
        items = resolved.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                if isinstance(item, dict | list):
                    _walk(item, items, (*parts, i), out)


_ROOT_REFS: dict[str, JSON] = {}


def unknown_fields(info: ResourceInfo, obj: JSON) -> list[str]:
    """Paths of fields the apiserver would not decode; they are removed from ``obj``."""
    root = ROOTS.get(info.storage)
    if root is None or not definitions():
        return []
    out: list[str] = []
    for name in list(obj):
        if name not in TOP_LEVEL:
            out.append(name)
            del obj[name]
    spec = obj.get("spec")
    if isinstance(spec, dict) and root in definitions():
        ref = _ROOT_REFS.setdefault(root, {"$ref": root})
        _walk(spec, ref, ("spec",), out)
    return out
