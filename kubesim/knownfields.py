"""Unknown-field detection for built-in kinds, from the Kubernetes OpenAPI definitions the project vendors.

Role: kube-apiserver drops fields its Go types do not have, and with ``fieldValidation=Strict`` (kubectl's
default) rejects the request instead (``strict decoding error: unknown field "spec.contianers"``). kubesim has no
Go types, so it walks the ``spec`` of Pods, Jobs and PersistentVolumeClaims against the vendored definitions in
``deploy/openapi/kubernetes-*.json`` (PodSpec, JobSpec, PersistentVolumeClaimSpec and everything they reference)
and reports unknown fields by path.

Invariants: a subtree whose definition is not vendored (or a field marked
``x-kubernetes-preserve-unknown-fields``) is never reported; without the vendored file (an installed wheel) the
check is off; :func:`unknown_fields` removes what it reports, so the stored object is what the apiserver would
store after decoding.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import orjson

from kubesim.resources import ResourceInfo

JSON = dict[str, Any]
OPENAPI_DIR = Path(__file__).resolve().parents[1] / "deploy" / "openapi"
ROOTS: dict[tuple[str, str], str] = {
    ("", "pods"): "io.k8s.api.core.v1.PodSpec",
    ("batch", "jobs"): "io.k8s.api.batch.v1.JobSpec",
    ("", "persistentvolumeclaims"): "io.k8s.api.core.v1.PersistentVolumeClaimSpec",
}
TOP_LEVEL = {"apiVersion", "kind", "metadata", "spec", "status"}


@functools.cache
def definitions() -> dict[str, JSON]:
    files = sorted(OPENAPI_DIR.glob("kubernetes-*.json")) if OPENAPI_DIR.is_dir() else []
    if not files:
        return {}
    doc = orjson.loads(files[-1].read_bytes())
    defs = doc.get("definitions") or (doc.get("components") or {}).get("schemas") or {}
    return defs if isinstance(defs, dict) else {}


def _resolve(schema: JSON) -> JSON | None:
    """Follow ``$ref`` (directly or as the single member of ``allOf``); None when the target is not vendored."""
    for _ in range(8):
        ref = schema.get("$ref")
        if ref is None and len(schema.get("allOf") or []) == 1:
            ref = schema["allOf"][0].get("$ref")
        if ref is None:
            return schema
        target = definitions().get(str(ref).rsplit("/", 1)[-1])
        if target is None:
            return None
        schema = target
    return None


def _walk(value: Any, schema: JSON, path: str, out: list[str]) -> None:
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
                out.append(f"{path}.{name}")
                del value[name]
                continue
            _walk(value[name], sub, f"{path}.{name}", out)
    elif isinstance(value, list):
        items = resolved.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                _walk(item, items, f"{path}[{i}]", out)


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
        _walk(spec, {"$ref": root}, "spec", out)
    return out
