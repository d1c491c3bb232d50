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
from kubesim.storage.resources import ResourceInfo

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


# What the unknown-field walk needs of a schema node, resolved once (cached by identity, as ``_resolve``):
# None when nothing below it is checked, else (properties or None, additionalProperties or None, items or None).
_Fields = tuple[JSON | None, JSON | None, JSON | None]
_FIELDS: dict[int, _Fields | None] = {}


def _fields(schema: JSON) -> _Fields | None:
    key = id(schema)
    if key in _FIELDS:
        return _FIELDS[key]
    resolved = _resolve(schema)
    hit: _Fields | None = None
    if resolved is not None and not resolved.get("x-kubernetes-preserve-unknown-fields"):
        props, extra, items = resolved.get("properties"), resolved.get("additionalProperties"), resolved.get("items")
        hit = (
            props if isinstance(props, dict) else None,
            extra if isinstance(extra, dict) else None,
            items if isinstance(items, dict) else None,
        )
    _FIELDS[key] = hit
    return hit


def _walk(value: Any, schema: JSON, parts: tuple[str | int, ...], out: list[str]) -> None:
    node = _fields(schema)
    if node is None:
        return
    props, extra, items = node
    if isinstance(value, dict):
        if props is None and extra is None:
            return
        unknown = None
        for name, child in value.items():
            sub = props.get(name) if props is not None else None
            if sub is None:
                sub = extra
            if sub is None:
                out.append(_path((*parts, name)))
                unknown = [name] if unknown is None else [*unknown, name]
            elif isinstance(child, dict | list):
                _walk(child, sub, (*parts, name), out)
        for name in unknown or ():
            del value[name]
    elif isinstance(value, list) and items is not None:
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


Mismatch = tuple[str, Any, str]  # path, value, the JSON type the Go field needs
_Node = tuple[str | None, dict[str, JSON], JSON | None, JSON | None]  # kind, properties, additional, items
_NODES: dict[int, _Node] = {}


def _node(schema: JSON) -> _Node:
    """What the shape check needs of a schema node, resolved once (cached by identity, as ``_resolve``)."""
    hit = _NODES.get(id(schema))
    if hit is None:
        resolved = _resolve(schema)
        if resolved is None or resolved.get("x-kubernetes-preserve-unknown-fields"):
            hit = (None, {}, None, None)
        else:
            kind = resolved.get("type") or ("object" if "properties" in resolved else None)
            extra, items = resolved.get("additionalProperties"), resolved.get("items")
            hit = (
                kind if kind in ("object", "array") else None,
                resolved.get("properties") or {},
                extra if isinstance(extra, dict) else None,
                items if isinstance(items, dict) else None,
            )
        _NODES[id(schema)] = hit
    return hit


def _shape(value: Any, schema: JSON) -> tuple[list[str | int], Any, str] | None:
    """The first wrongly typed object or list below ``value`` (its path reversed), or None."""
    kind, props, extra, items = _node(schema)
    if kind == "object":
        if not isinstance(value, dict):
            return [], value, "object"
        for name, child in value.items():
            sub = props.get(name) or extra
            if sub is not None and child is not None and _node(sub)[0] is not None:
                found = _shape(child, sub)
                if found is not None:
                    found[0].append(name)
                    return found
    elif kind == "array":
        if not isinstance(value, list):
            return [], value, "array"
        if items is not None and _node(items)[0] is not None:
            for i, item in enumerate(value):
                found = _shape(item, items)
                if found is not None:
                    found[0].append(i)
                    return found
    return None


def shape_mismatch(info: ResourceInfo, obj: JSON) -> Mismatch | None:
    """The first place in ``spec`` where an object or a list has another JSON type than the Go field (which the
    apiserver's decoder rejects), or None. Primitive fields are left to validation."""
    root = ROOTS.get(info.storage)
    spec = obj.get("spec")
    if root is None or not isinstance(spec, dict) or root not in definitions():
        return None
    found = _shape(spec, _ROOT_REFS.setdefault(root, {"$ref": root}))
    if found is None:
        return None
    parts, value, want = found
    return _path(("spec", *reversed(parts))), value, want
