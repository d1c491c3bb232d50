"""PATCH semantics: JSON merge patch, JSON patch, strategic merge patch and server-side apply.

Role: pure functions from (current object, patch) to the patched object, as kube-apiserver computes them.

- ``merge_patch``: RFC 7386 (``null`` deletes, objects merge, everything else replaces).
- ``json_patch``: RFC 6902 (add/remove/replace/move/copy/test); failures are 422 like the apiserver's.
- ``strategic_merge``: merge patch plus built-in merge keys for lists (``containers`` by ``name``,
  ``conditions`` by ``type``, ...) and the directives ``$patch`` (replace/delete/merge), ``$retainKeys``,
  ``$deleteFromPrimitiveList/<f>`` and ``$setElementOrder/<f>`` that kubectl sends.
- ``apply``: server-side apply with per-manager field ownership recorded in ``metadata.managedFields``
  (``operation: Apply``, ``fieldsV1``): fields a manager applied before and omits now are removed. Conflicts
  with other appliers' differing values are a 409 unless ``force``.

Invariants: inputs are never modified (results are new objects); ``managedFields`` entries are recorded only
for Apply operations (Update operations keep existing entries, a deliberate saving in CPU and memory).
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from kubesim import errors

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


def _merge_key(field: str, path: tuple[str, ...], sample: Any) -> str | None:
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


def _parent(doc: Any, tokens: list[str], path: str, op: str) -> tuple[Any, str]:
    cur = doc
    for t in tokens[:-1]:
        if isinstance(cur, dict) and t in cur:
            cur = cur[t]
        elif isinstance(cur, list) and t.isdigit() and int(t) < len(cur):
            cur = cur[int(t)]
        else:
            raise _jp_error(f'{op} operation does not apply: doc is missing path: "{path}": missing value')
    return cur, tokens[-1]


def _get(doc: Any, path: str, op: str) -> Any:
    cur = doc
    for t in _pointer(path):
        if isinstance(cur, dict) and t in cur:
            cur = cur[t]
        elif isinstance(cur, list) and t.isdigit() and int(t) < len(cur):
            cur = cur[int(t)]
        else:
            raise _jp_error(f'{op} operation does not apply: doc is missing path: "{path}": missing value')
    return cur


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
    key = _merge_key(field, path[:-1], sample)
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
    key = _merge_key(field, path, order[0]) or ""
    ranks = {str(o.get(key)): i for i, o in enumerate(order) if isinstance(o, dict)}
    return sorted(items, key=lambda v: ranks.get(str(v.get(key)) if isinstance(v, dict) else "", len(ranks)))


# ------------------------------------------------------------------------------------------ apply


def field_set(
    value: Any, strategic: bool, field: str = "", path: tuple[str, ...] = (), schema: JSON | None = None
) -> JSON:
    """The ``fieldsV1`` set of a configuration: built-in merge keys when ``strategic``, else the list and map
    types of a custom resource's structural ``schema`` (lists without a type are atomic)."""
    if isinstance(value, dict):
        if schema is not None and schema.get("x-kubernetes-map-type") == "atomic":
            return {}
        out: JSON = {}
        for k, v in value.items():
            if k in ("apiVersion", "kind") and not path:
                continue
            sub_schema = _schema_at(schema, k) if schema is not None else None
            out[f"f:{k}"] = field_set(v, strategic, k, (*path, k), sub_schema)
        return out
    if isinstance(value, list) and not strategic and schema is not None:
        list_type = schema.get("x-kubernetes-list-type")
        keys = schema.get("x-kubernetes-list-map-keys") or []
        items = schema.get("items") if isinstance(schema.get("items"), dict) else None
        if list_type == "map" and keys:
            out = {}
            for item in value:
                if isinstance(item, dict) and all(k in item for k in keys):
                    sub = field_set(item, False, field, path, items or {})
                    sub["."] = {}
                    out["k:" + orjson.dumps({k: item[k] for k in keys}).decode()] = sub
            return out
        if list_type == "set":
            return {"v:" + orjson.dumps(v).decode(): {} for v in value}
        return {}
    if isinstance(value, list) and strategic:
        sample = next((v for v in value if isinstance(v, dict)), None)
        key = _merge_key(field, path[:-1], sample)
        if key is not None and sample is not None:
            out = {}
            for item in value:
                if isinstance(item, dict) and key in item:
                    sub = field_set(item, strategic, field, path)
                    sub["."] = {}
                    out["k:" + orjson.dumps({key: item[key]}).decode()] = sub
            return out
        if field in PRIMITIVE_MERGE:
            return {"v:" + orjson.dumps(v).decode(): {} for v in value}
    return {}


def _prune(
    obj: Any, old_set: JSON, new_set: JSON, strategic: bool, field: str = "", path: tuple[str, ...] = ()
) -> None:
    """Remove from ``obj`` what ``old_set`` owned and ``new_set`` no longer does."""
    if isinstance(obj, dict):
        for fk, sub in old_set.items():
            if not fk.startswith("f:"):
                continue
            name = fk[2:]
            if fk not in new_set:
                if path == ("metadata",) and name in ("name", "namespace"):
                    continue
                obj.pop(name, None)
            elif isinstance(sub, dict) and sub and name in obj:
                _prune(obj[name], sub, new_set[fk], strategic, name, (*path, name))
    elif isinstance(obj, list):
        keep = []
        for item in obj:
            ident = None
            if isinstance(item, dict):
                for k in old_set:
                    if k.startswith("k:"):
                        kd = orjson.loads(k[2:])
                        if all(item.get(a) == b for a, b in kd.items()):
                            ident = k
                            break
            else:
                vk = "v:" + orjson.dumps(item).decode()
                if vk in old_set:
                    ident = vk
            if ident is not None and ident not in new_set:
                continue
            if ident is not None and isinstance(item, dict):
                _prune(item, old_set[ident], new_set[ident], strategic, field, path)
            keep.append(item)
        obj[:] = keep


def _leaves(fs: JSON, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for k, v in fs.items():
        if k == ".":
            continue
        if isinstance(v, dict) and any(kk != "." for kk in v):
            out |= _leaves(v, (*prefix, k))
        else:
            out.add((*prefix, k))
    return out


def _value_at(obj: Any, path: tuple[str, ...]) -> Any:
    cur = obj
    for part in path:
        if part.startswith("f:") and isinstance(cur, dict):
            cur = cur.get(part[2:])
        elif part.startswith("k:") and isinstance(cur, list):
            kd = orjson.loads(part[2:])
            cur = next((i for i in cur if isinstance(i, dict) and all(i.get(a) == b for a, b in kd.items())), None)
        elif part.startswith("v:"):
            return orjson.loads(part[2:])
        else:
            return None
    return cur


def apply(
    current: JSON,
    config: JSON,
    manager: str,
    force: bool,
    strategic: bool,
    subresource: str = "",
    creating: bool = False,
    schema: JSON | None = None,
) -> JSON:
    """Server-side apply of ``config`` by ``manager`` onto ``current`` (``{}`` when creating)."""
    if not isinstance(config, dict):
        raise errors.bad_request("apply patch must be an object")
    new_set = field_set(
        {k: v for k, v in config.items() if k != "status" or subresource == "status"}, strategic, schema=schema
    )
    meta_new = new_set.get("f:metadata")
    if isinstance(meta_new, dict):
        for k in ("f:resourceVersion", "f:managedFields", "f:uid", "f:creationTimestamp", "f:generation"):
            meta_new.pop(k, None)
    managed = [dict(m) for m in (current.get("metadata") or {}).get("managedFields") or []]
    mine = next(
        (
            m
            for m in managed
            if m.get("manager") == manager
            and m.get("operation") == "Apply"
            and (m.get("subresource") or "") == subresource
        ),
        None,
    )
    if not force:
        conflicts = []
        for m in managed:
            if m is mine or (m.get("manager") == manager and m.get("operation") == "Apply"):
                continue
            for leaf in _leaves(m.get("fieldsV1") or {}) & _leaves(new_set):
                if _value_at(current, leaf) != _value_at(config, leaf):
                    conflicts.append((m.get("manager", ""), leaf))
        if conflicts:
            causes = [
                {
                    "reason": "FieldManagerConflict",
                    "message": f'conflict with "{mgr}"',
                    "field": "." + ".".join(p[2:] for p in leaf),
                }
                for mgr, leaf in conflicts
            ]
            plural = "" if len(causes) == 1 else "s"
            msg = f"Apply failed with {len(causes)} conflict{plural}: "
            msg += "; ".join(f"{c['message']}: {c['field']}" for c in causes)
            raise errors.ApiError(errors.status(409, "Conflict", msg, {"causes": causes}))
    base = copy.deepcopy(current)
    if mine is not None:
        _prune(base, mine.get("fieldsV1") or {}, new_set, strategic)
    cfg = copy.deepcopy(config)
    cfg.get("metadata", {}).pop("managedFields", None)
    cfg.get("metadata", {}).pop("resourceVersion", None)
    if subresource != "status" and not creating:
        cfg.pop("status", None)
    if strategic:
        out: JSON = strategic_merge(base, cfg)
    elif schema is not None:
        out = schema_merge(base, cfg, schema)
    else:
        out = merge_patch(base, cfg)
    if force:
        taken = _leaves(new_set)
        for m in managed:
            if m is not mine:
                _drop_leaves(m.setdefault("fieldsV1", {}), taken)
    entry = {
        "manager": manager,
        "operation": "Apply",
        "apiVersion": config.get("apiVersion", ""),
        "time": "",
        "fieldsType": "FieldsV1",
        "fieldsV1": new_set,
    }
    if subresource:
        entry["subresource"] = subresource
    managed = [m for m in managed if m is not mine and _has_fields(m)]
    managed.append(entry)
    out.setdefault("metadata", {})["managedFields"] = managed
    return out


def _has_fields(entry: JSON) -> bool:
    return bool(_leaves(entry.get("fieldsV1") or {}))


def _tracked(obj: JSON, include_status: bool) -> JSON:
    """The parts of an object whose fields managers own (server-set metadata excluded)."""
    out = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}
    if include_status and "status" in obj:
        out["status"] = obj["status"]
    meta = obj.get("metadata") or {}
    owned = {k: meta[k] for k in ("labels", "annotations", "finalizers", "ownerReferences") if k in meta}
    if owned:
        out["metadata"] = owned
    return out


def _from_leaves(leaves: set[tuple[str, ...]]) -> JSON:
    root: JSON = {}
    for leaf in sorted(leaves):
        cur = root
        for part in leaf:
            nxt = cur.setdefault(part, {})
            if part.startswith("k:"):
                nxt.setdefault(".", {})
            cur = nxt
    return root


def track_update(
    old: JSON | None,
    new: JSON,
    manager: str,
    subresource: str,
    strategic: bool,
    now: str,
    api_version: str,
    schema: JSON | None = None,
) -> None:
    """Give ``manager`` (an Update writer) the fields it set or changed, taking them from other managers."""
    managed = [dict(m) for m in (new.get("metadata") or {}).get("managedFields") or [] if isinstance(m, dict)]
    if any(m.get("manager") == manager and m.get("operation") == "Apply" and not m.get("time") for m in managed):
        return  # this request was an apply that creates: its Apply entry already records the fields
    include_status = subresource == "status"
    new_leaves = _leaves(field_set(_tracked(new, include_status), strategic, schema=schema))
    if old is None:
        changed, removed = new_leaves, set()
    else:
        old_leaves = _leaves(field_set(_tracked(old, include_status), strategic, schema=schema))
        changed = {
            leaf for leaf in new_leaves if leaf not in old_leaves or _value_at(old, leaf) != _value_at(new, leaf)
        }
        removed = old_leaves - new_leaves
    if not changed and not removed:
        return
    mine = None
    for m in managed:
        if (
            m.get("manager") == manager
            and m.get("operation") == "Update"
            and (m.get("subresource") or "") == (subresource)
        ):
            mine = m
        else:
            _drop_leaves(m.setdefault("fieldsV1", {}), changed | removed)
    owned = (_leaves(mine.get("fieldsV1") or {}) if mine else set()) | changed
    owned -= removed
    entry: JSON = {
        "manager": manager,
        "operation": "Update",
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": _from_leaves(owned),
    }
    if subresource:
        entry["subresource"] = subresource
    managed = [m for m in managed if m is not mine and _has_fields(m)]
    if owned:
        managed.append(entry)
    new.setdefault("metadata", {})["managedFields"] = managed


def _schema_at(schema: JSON | None, key: str) -> JSON | None:
    if not isinstance(schema, dict):
        return None
    props = schema.get("properties") or {}
    if key in props:
        sub = props[key]
        return sub if isinstance(sub, dict) else None
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def schema_merge(current: Any, config: Any, schema: JSON | None) -> Any:
    """Merge an applied configuration into a custom resource the way structured merge does with its schema:
    objects merge field by field (unless ``x-kubernetes-map-type: atomic``), ``x-kubernetes-list-type: map``
    lists merge item by item on their keys, ``set`` lists are unions, other lists are replaced."""
    if config is None:
        return None
    schema = schema if isinstance(schema, dict) else {}
    if isinstance(config, dict):
        if not isinstance(current, dict) or schema.get("x-kubernetes-map-type") == "atomic":
            return copy.deepcopy(config)
        out = dict(current)
        for key, value in config.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = schema_merge(current.get(key), value, _schema_at(schema, key))
        return out
    if isinstance(config, list) and isinstance(current, list):
        list_type = schema.get("x-kubernetes-list-type")
        items = schema.get("items") if isinstance(schema.get("items"), dict) else None
        keys = schema.get("x-kubernetes-list-map-keys") or []
        if list_type == "map" and keys:

            def ident(item: Any) -> tuple[Any, ...] | None:
                return tuple(orjson.dumps(item.get(k)) for k in keys) if isinstance(item, dict) else None

            by_key = {ident(c): c for c in current if ident(c) is not None}
            merged = [schema_merge(by_key.get(ident(item)), item, items) for item in config]
            seen = {ident(item) for item in config}
            return merged + [c for c in current if ident(c) not in seen]
        if list_type == "set":
            return list(current) + [v for v in config if v not in current]
    return copy.deepcopy(config)


def _drop_leaves(fs: JSON, leaves: set[tuple[str, ...]], prefix: tuple[str, ...] = ()) -> None:
    for k in list(fs):
        p = (*prefix, k)
        if p in leaves:
            del fs[k]
        elif isinstance(fs[k], dict):
            _drop_leaves(fs[k], leaves, p)


def record_manager(obj: JSON, manager: str, operation: str, now: str, api_version: str, subresource: str = "") -> None:
    """Stamp the time on this write's Apply entry (Update writes are not tracked, see module docstring)."""
    for m in (obj.get("metadata") or {}).get("managedFields") or []:
        if (
            isinstance(m, dict)
            and m.get("manager") == manager
            and m.get("operation") == "Apply"
            and (operation == "Apply" or not m.get("time"))
        ):
            m["time"] = now
            m["apiVersion"] = m.get("apiVersion") or api_version
