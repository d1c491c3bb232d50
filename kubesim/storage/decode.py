"""Body shape checks: what kube-apiserver's typed decoder rejects before any strategy runs.

Role: kube-apiserver decodes a request body into Go structs, so a field of the wrong JSON type (``"spec": []``
for a Pod, ``"data": {"k": 1}`` for a ConfigMap) is a 400 ``cannot be handled as a <Kind>`` before defaults,
validation or admission see it. kubesim keeps objects as plain dicts; :func:`check_body` gives its strategies
the same guarantee for the parts they read, so anything that still fails inside them is a simulator bug (500).

Invariants: only shapes are checked here (values are validation's business, 422); the message names the field
and the type it must have, as the Go decoder's does.
"""

from __future__ import annotations

from typing import Any

from kubesim.storage import knownfields
from kubesim.storage.resources import ResourceInfo
from kubesim.util.errors import ApiError, bad_request

JSON = dict[str, Any]


def json_type(value: Any) -> str:
    """The JSON type name of ``value`` as Go's decoder reports it."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    if value is None:
        return "null"
    return "string"


def type_error(info: ResourceInfo, value: Any, field: str, want: str) -> ApiError:
    """The Go decoder's 400 for ``value`` at ``field`` (a Go struct field path) where ``want`` was expected."""
    return bad_request(
        f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: json: cannot unmarshal '
        f"{json_type(value)} into Go struct field {field} of type {want}"
    )


def decode_error(info: ResourceInfo, what: str, field: str, want: str) -> ApiError:
    return bad_request(
        f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: json: cannot unmarshal '
        f"{what} into Go struct field ObjectMeta.metadata.{field} of type {want}"
    )


def check_meta_types(info: ResourceInfo, meta: Any) -> None:
    """Reject metadata that would not decode into ObjectMeta (a 400, as the apiserver's decoder does); a ``null``
    label or annotation map is dropped (Go decodes it as an empty map)."""
    if not isinstance(meta, dict):
        raise decode_error(info, json_type(meta), "", "v1.ObjectMeta")
    for fld in ("name", "generateName", "namespace", "resourceVersion", "uid"):
        v = meta.get(fld)
        if v is not None and not isinstance(v, str):
            raise decode_error(info, json_type(v), fld, "string")
    for fld in ("labels", "annotations"):
        m = meta.get(fld)
        if m is None:
            meta.pop(fld, None)
            continue
        if not isinstance(m, dict):
            raise decode_error(info, json_type(m), fld, "map[string]string")
        for v in m.values():
            if not isinstance(v, str):
                raise decode_error(info, json_type(v), fld, "string")
    fins = meta.get("finalizers")
    if fins is not None and (not isinstance(fins, list) or not all(isinstance(f, str) for f in fins)):
        raise decode_error(info, json_type(fins), "finalizers", "[]string")
    refs = meta.get("ownerReferences")
    if refs is not None and (not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs)):
        raise decode_error(info, json_type(refs), "ownerReferences", "[]v1.OwnerReference")


def check_body(info: ResourceInfo, obj: JSON, *, spec: bool = True) -> None:
    """400 when a part of ``obj`` has a type the kind's Go struct cannot hold; a ``null`` top-level part is
    dropped (Go decodes it as the zero value). ``spec=False`` skips the walk through ``spec`` (writes to a
    subresource, which keep the stored spec)."""
    for part in ("spec", "status"):
        value = obj.get(part, {})
        if value is None:
            del obj[part]
        elif not isinstance(value, dict):
            raise type_error(info, value, f"{info.kind}.{part}", "object")
    found = knownfields.shape_mismatch(info, obj) if spec else None
    if found is not None:
        path, value, want = found
        raise type_error(info, value, f"{info.kind}.{path}", want)


def check_apply_config(info: ResourceInfo, config: Any) -> JSON:
    """An apply patch is a whole (partial) object: an object whose metadata decodes into ObjectMeta."""
    if not isinstance(config, dict):
        raise bad_request("apply patch must be an object")
    if "metadata" in config:
        check_meta_types(info, config["metadata"])
    return config


def decode_object(info: ResourceInfo, obj: Any) -> JSON:
    """A POST/PUT body as an object of ``info``'s kind: ``kind``/``apiVersion`` filled in or checked, metadata
    and body shapes checked (:func:`check_body`); else a 400."""
    if not isinstance(obj, dict):
        raise bad_request("the body of the request was not a JSON object")
    kind = obj.get("kind")
    api_version = obj.get("apiVersion")
    if not kind:
        obj["kind"] = info.kind
    elif kind != info.kind:
        raise bad_request(f"the kind of the object ({kind}) does not match the kind of the resource ({info.kind})")
    if not api_version:
        obj["apiVersion"] = info.api_version
    else:
        group, _, version = str(api_version).rpartition("/")
        if group != info.group or version not in info.versions:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({info.api_version})"
            )
        obj["apiVersion"] = info.api_version
    meta = obj.get("metadata")
    if meta is None:
        obj["metadata"] = {}
    else:
        check_meta_types(info, meta)
    check_body(info, obj)
    return obj
