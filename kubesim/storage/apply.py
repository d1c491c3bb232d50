"""Server-side apply: field ownership (``metadata.managedFields``), conflicts, pruning and merging.

Role: ``apply`` computes the result of an ``application/apply-patch+yaml`` request by ``manager``: the applied
configuration's field set (``fieldsV1``; built-in merge keys, or a custom resource's list-map keys, sets and
atomic maps from its structural schema), conflicts with other managers that own a field with a different value
(409 unless ``force``, which takes the fields over), removal of fields the manager applied before and omits now,
and the merge itself (strategic for built-in kinds, schema-driven for custom resources). ``track_update`` gives
``Update`` writers that name a field manager the fields they set or changed.

Invariants: inputs are never modified; a manager's entry is replaced, never duplicated; entries left without
fields are dropped; ``time`` is stamped by the store when the write commits (``record_manager``).
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from kubesim.storage.patch import PRIMITIVE_MERGE, merge_key, merge_patch, strategic_merge
from kubesim.util import errors

JSON = dict[str, Any]


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
        key = merge_key(field, path[:-1], sample)
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
