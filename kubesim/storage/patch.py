"""PATCH semantics: JSON merge patch, JSON patch, strategic merge patch and server-side apply.

Role: pure functions from (current object, patch) to the patched object, as kube-apiserver computes them.

- ``merge_patch``: RFC 7386 (``null`` deletes, objects merge, everything else replaces).
- ``json_patch``: RFC 6902 (add/remove/replace/move/copy/test); failures are 422 like the apiserver's.
- ``strategic_merge``: merge patch plus built-in merge keys for lists (``containers`` by ``name``,
  ``conditions`` by ``type``, ...) and the directives ``$patch`` (replace/delete/merge), ``$retainKeys``,
  ``$deleteFromPrimitiveList/<f>`` and ``$setElementOrder/<f>`` that kubectl sends.
Server-side apply builds on these and lives in :mod:`kubesim.storage.apply`.

Invariants: inputs are never modified (results are new objects); errors are the apiserver's (400 for a patch
document of the wrong shape, 422 for a JSON patch that does not apply, 415 for an unknown patch type).
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from kubesim.util import errors

JSON = dict[str, Any]

# Strategic merge keys of built-in list fields (by field name; ``ports`` depends on context).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "podIPs": "ip",
    "addresses": "type",
    "taints": "key",
    "secrets": "name",
}
PRIMITIVE_MERGE = {"finalizers"}


def merge_key(field: str, path: tuple[str, ...], sample: Any) -> str | None:
    if field == "ports":
        if isinstance(sample, dict) and "containerPort" in sample:
            return "containerPort"
        return "port" if path == ("spec",) else "containerPort"
    return MERGE_KEYS.get(field)


# ------------------------------------------------------------------------------------------ merge patch


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# ------------------------------------------------------------------------------------------ json patch


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _jp_error(f'add operation does not apply: doc is missing path: "{path}": missing value')
    return [_unescape(t) for t in path[1:].split("/")]


def _jp_error(message: str) -> errors.ApiError:
    return errors.ApiError(errors.status(422, "Invalid", message))


def _walk(doc: Any, tokens: list[str], path: str, op: str) -> Any:
    """The value at ``tokens`` below ``doc``; a missing step is the JSON-patch "missing path" error."""
    cur = doc
    for t in tokens:
        if isinstance(cur, dict) and t in cur:
            cur = cur[t]
        elif isinstance(cur, list) and t.isdigit() and int(t) < len(cur):
            cur = cur[int(t)]
        else:
            raise _jp_error(f'{op} operation does not apply: doc is missing path: "{path}": missing value')
    return cur


def _parent(doc: Any, tokens: list[str], path: str, op: str) -> tuple[Any, str]:
    return _walk(doc, tokens[:-1], path, op), tokens[-1]


def _get(doc: Any, path: str, op: str) -> Any:
    return _walk(doc, _pointer(path), path, op)


def _add(doc: Any, path: str, value: Any, op: str = "add") -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent, last = _parent(doc, tokens, path, op)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise _jp_error(f'{op} operation does not apply: doc is missing path: "{path}": missing value')
    else:
        raise _jp_error(f'{op} operation does not apply: doc is missing path: "{path}": missing value')
    return doc


def _remove(doc: Any, path: str, op: str = "remove") -> Any:
    tokens = _pointer(path)
    if not tokens:
        raise _jp_error(f'{op} operation does not apply: doc is missing path: "{path}": missing value')
    parent, last = _parent(doc, tokens, path, op)
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise _jp_error(f'{op} operation does not apply: doc is missing path: "{path}": missing value')


def json_patch(target: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise errors.bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(target)
    for item in ops:
        if not isinstance(item, dict):
            raise errors.bad_request("json: cannot unmarshal into Go value of type jsonpatch.Operation")
        op = item.get("op")
        path = item.get("path")
        if not isinstance(path, str):
            raise _jp_error(f"{op} operation does not apply: doc is missing path: missing value")
        if op == "add":
            doc = _add(doc, path, copy.deepcopy(item.get("value")))
        elif op == "remove":
            _remove(doc, path)
        elif op == "replace":
            _get(doc, path, "replace")
            tokens = _pointer(path)
            if not tokens:
                doc = copy.deepcopy(item.get("value"))
            else:
                parent, last = _parent(doc, tokens, path, "replace")
                if isinstance(parent, list):
                    parent[int(last)] = copy.deepcopy(item.get("value"))
                else:
                    parent[last] = copy.deepcopy(item.get("value"))
        elif op == "move":
            value = _remove(doc, str(item.get("from", "")), "move")
            doc = _add(doc, path, value, "move")
        elif op == "copy":
            value = copy.deepcopy(_get(doc, str(item.get("from", "")), "copy"))
            doc = _add(doc, path, value, "copy")
        elif op == "test":
            if _get(doc, path, "test") != item.get("value"):
                raise _jp_error(f"testing value {path} failed: test failed")
        else:
            raise errors.bad_request(f"Unexpected kind: {op}")
    return doc


# ------------------------------------------------------------------------------------------ strategic


def strategic_merge(target: Any, patch: Any, path: tuple[str, ...] = ()) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    out = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value if isinstance(value, list) else []
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(out.get(field), list) and isinstance(value, list):
                out[field] = [v for v in out[field] if v not in value]
            continue
        if value is None:
            out.pop(key, None)
        elif isinstance(value, list):
            out[key] = _merge_list(key, out.get(key), value, (*path, key))
        elif isinstance(value, dict):
            merged = strategic_merge(out.get(key), value, (*path, key))
            if merged is None:
                out.pop(key, None)
            else:
                out[key] = merged
        else:
            out[key] = value
    for field, order in orders.items():
        if isinstance(out.get(field), list):
            out[field] = _order(field, out[field], order, path)
    return out


def _merge_list(field: str, current: Any, patch: list[Any], path: tuple[str, ...]) -> list[Any]:
    cur = list(current) if isinstance(current, list) else []
    if field in PRIMITIVE_MERGE:
        out = list(cur)
        for v in patch:
            if v not in out:
                out.append(v)
        return out
    sample = next((p for p in patch if isinstance(p, dict)), None)
    key = merge_key(field, path[:-1], sample)
    if key is None or sample is None:
        if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
            return [p for p in patch if not (isinstance(p, dict) and "$patch" in p)]
        return copy.deepcopy(patch)
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [copy.deepcopy(p) for p in patch if isinstance(p, dict) and "$patch" not in p]
    out = list(cur)
    for item in patch:
        if not isinstance(item, dict):
            continue
        kv = item.get(key)
        idx = next((i for i, c in enumerate(out) if isinstance(c, dict) and c.get(key) == kv), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append({k: copy.deepcopy(v) for k, v in item.items() if k != "$patch"})
        else:
            merged = strategic_merge(out[idx], item, path)
            if merged is not None:
                out[idx] = merged
    return out


def _order(field: str, items: list[Any], order: list[Any], path: tuple[str, ...]) -> list[Any]:
    if not order:
        return items
    if not isinstance(order[0], dict):
        rank = {orjson.dumps(v): i for i, v in enumerate(order)}
        return sorted(items, key=lambda v: rank.get(orjson.dumps(v), len(rank)))
    key = merge_key(field, path, order[0]) or ""
    ranks = {str(o.get(key)): i for i, o in enumerate(order) if isinstance(o, dict)}
    return sorted(items, key=lambda v: ranks.get(str(v.get(key)) if isinstance(v, dict) else "", len(ranks)))
