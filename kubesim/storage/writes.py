"""The write path: CREATE, UPDATE (and ``/status``), PATCH of every type, with the apiserver's checks.

Role: the functions behind :class:`~kubesim.storage.store.Store`'s ``create``, ``update``, ``update_status``, ``patch``
and ``update_fn`` methods: kind and namespace checks, defaults (built-in strategies or the CRD's structural
schema), unknown fields under ``fieldValidation``, name generation, uid and timestamps, mutating and validating
admission, validation (422 with field causes), optimistic concurrency (409 on a stale resourceVersion), status
subresource separation and generation bumps, managed fields, and the retry loop of GuaranteedUpdate.

Invariants: nothing is committed unless every check passed; a write that changes nothing commits nothing; a body
of any shape gets an API error (never an unexpected exception); HTTP bodies may be handed over (``owned``)
instead of copied.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from kubesim.storage import apply as applying
from kubesim.storage import builtins, knownfields
from kubesim.storage import patch as patching
from kubesim.storage.objects import (
    FIELD_VALIDATION,
    JSON,
    WARNINGS,
    AdmissionAttributes,
    Hooks,
    check_meta_types,
    clone,
    now_rfc3339,
    random_suffix,
    same_object,
    set_field_validation,
    spec_changed,
    undecodable,
    warn,
)
from kubesim.storage.resources import ResourceInfo
from kubesim.util import errors
from kubesim.util.errors import ApiError

if TYPE_CHECKING:
    from kubesim.storage.store import Store

_PATCH_RETRIES = 8


def _check_kind(store: Store, info: ResourceInfo, obj: Any) -> JSON:
    if not isinstance(obj, dict):
        raise errors.bad_request("the body of the request was not a JSON object")
    kind = obj.get("kind")
    api_version = obj.get("apiVersion")
    if not kind:
        obj["kind"] = info.kind
    elif kind != info.kind:
        raise errors.bad_request(
            f"the kind of the object ({kind}) does not match the kind of the resource ({info.kind})"
        )
    if not api_version:
        obj["apiVersion"] = info.api_version
    else:
        group, _, version = str(api_version).rpartition("/")
        if group != info.group or version not in info.versions:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({info.api_version})"
            )
        obj["apiVersion"] = info.api_version
    meta = obj.get("metadata")
    if meta is None:
        obj["metadata"] = {}
    else:
        check_meta_types(info, meta)
    return obj


def _namespace_for(store: Store, info: ResourceInfo, obj: JSON, namespace: str | None) -> str:
    meta = obj["metadata"]
    if not info.namespaced:
        meta.pop("namespace", None)
        return ""
    body_ns = meta.get("namespace")
    if namespace and body_ns and body_ns != namespace:
        raise errors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    ns = namespace or body_ns or "default"
    meta["namespace"] = ns
    return str(ns)


def _validate(store: Store, info: ResourceInfo, obj: JSON, old: JSON | None, subresource: str = "") -> None:
    causes = builtins.validate(info, obj, old, subresource)
    if info.crd is not None and store.schema is not None:
        causes += store.schema.validate(info, obj, old)
    if causes:
        meta = obj.get("metadata") or {}
        raise errors.invalid(info.kind, info.group, meta.get("name") or meta.get("generateName", ""), causes)


def _apply_schema(store: Store, info: ResourceInfo) -> JSON | None:
    """The structural schema server-side apply merges a custom resource with."""
    if info.crd is None:
        return None
    for ver in (info.crd.get("spec") or {}).get("versions") or []:
        if ver.get("name") == info.version:
            schema = (ver.get("schema") or {}).get("openAPIV3Schema")
            return schema if isinstance(schema, dict) else None
    return None


def _check_unknown(store: Store, info: ResourceInfo, obj: JSON) -> None:
    """Drop (``Warn``/``Ignore``) or reject (``Strict``) fields a built-in kind does not have."""
    if info.crd is not None:
        return  # the CRD's structural schema prunes (kubesim.storage.schema)
    mode = FIELD_VALIDATION.get()
    if WARNINGS.get() is None and mode != "Strict":
        return  # in-process writers (the simulated controllers) send only known fields
    unknown = knownfields.unknown_fields(info, obj)
    if not unknown:
        return
    if mode == "Strict":
        fields = ", ".join(f'unknown field "{u}"' for u in unknown)
        raise errors.bad_request(
            f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: '
            f"strict decoding error: {fields}"
        )
    if mode == "Warn":
        for u in unknown:
            warn(f'unknown field "{u}"')


def _default(store: Store, info: ResourceInfo, obj: JSON) -> None:
    if info.crd is not None:
        if store.schema is not None:
            store.schema.default(info, obj)
    else:
        builtins.default(info, obj)


async def _admit(store: Store, hooks: Hooks, attrs: AdmissionAttributes) -> JSON | None:
    """Run hooks in order; the changed object, or None when no hook changed it."""
    changed = None
    for hook in hooks:
        result = await hook(attrs)
        if result is not None:
            changed = attrs.obj = result
    return changed


async def create(
    store: Store,
    resource: str | ResourceInfo,
    obj: JSON,
    namespace: str | None = None,
    *,
    dry_run: bool = False,
    field_manager: str | None = None,
    subresource: str = "",
    field_validation: str | None = None,
    owned: bool = False,
) -> JSON:
    """POST. ``owned=True`` hands ``obj`` over (the HTTP layer's freshly decoded body): it is not copied."""
    info = store.info(resource)
    try:
        if not owned:
            obj = clone(obj)
        return await store._create(info, obj, namespace, dry_run, field_manager, subresource, field_validation)
    except (AttributeError, TypeError, KeyError, ValueError, IndexError) as exc:
        raise undecodable(info, exc) from None


async def _create(
    store: Store,
    info: ResourceInfo,
    obj: JSON,
    namespace: str | None,
    dry_run: bool,
    field_manager: str | None,
    subresource: str,
    field_validation: str | None,
) -> JSON:
    set_field_validation(field_validation)
    if info.to_storage is not None:
        obj = info.to_storage(store._check_kind(info, obj))
    else:
        store._check_kind(info, obj)
    info_store = store.bucket(info).info
    ns = store._namespace_for(info, obj, namespace)
    meta = obj["metadata"]
    for fld in ("resourceVersion", "uid", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
        if fld == "resourceVersion" and meta.get(fld):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        meta.pop(fld, None)
    store._check_unknown(info_store, obj)
    store._default(info_store, obj)
    if store.mutating:
        attrs = AdmissionAttributes(
            "CREATE",
            info,
            ns,
            meta.get("name", ""),
            obj,
            None,
            subresource,
            dry_run,
            {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        )
        mutated = await store._admit(store.mutating, attrs)
        if mutated is not None:
            obj = mutated
            meta = obj.setdefault("metadata", {})
            store._default(info_store, obj)
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = str(meta["generateName"]) + random_suffix()
    name = meta.get("name", "")
    uid = str(uuid.uuid4())
    meta["uid"] = uid
    meta["creationTimestamp"] = now_rfc3339(store.clock)
    if builtins.has_generation(info_store):
        meta["generation"] = 1
    else:
        meta.pop("generation", None)
    builtins.prepare_create(info_store, obj, uid, store.ips)
    if info_store.crd is not None and store.schema is not None:
        store.schema.prepare_create(info_store, obj)
    if field_manager and field_manager != "unknown":
        applying.track_update(
            None,
            obj,
            field_manager,
            "",
            info_store.strategic,
            now_rfc3339(store.clock),
            info.api_version,
            store._apply_schema(info_store),
        )
    applying.record_manager(obj, field_manager or "unknown", "Update", now_rfc3339(store.clock), info.api_version)
    store._validate(info_store, obj, None)
    if store.validating:
        attrs = AdmissionAttributes(
            "CREATE",
            info,
            ns,
            name,
            obj,
            None,
            subresource,
            dry_run,
            {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        )
        await store._admit(store.validating, attrs)
    key = store._key(info, name, ns)
    bucket = store.bucket(info)
    if key in bucket.objects:
        raise errors.already_exists(info.resource, info.group, name)
    if info.namespaced:
        store._check_namespace_open(info, ns, name)
    if dry_run:
        return store.view(info, obj)
    store._commit(info_store, key, obj, None)
    # ``obj`` was serialised into the store and is not referenced by it: the caller may keep it.
    return store.view(info, obj)


def _check_namespace_open(store: Store, info: ResourceInfo, ns: str, name: str) -> None:
    ns_entry = store._buckets[("", "namespaces")].objects.get(("", ns))
    if ns_entry is None:
        raise errors.not_found("namespaces", "", ns)
    ns_obj = ns_entry.obj()
    if (ns_obj.get("metadata") or {}).get("deletionTimestamp"):
        raise errors.forbidden(
            info.resource,
            info.group,
            name,
            f"unable to create new content in namespace {ns} because it is being terminated",
            {
                "reason": "NamespaceTerminating",
                "message": f"namespace {ns} is being terminated",
                "field": "metadata.namespace",
            },
        )


def _prepare_update(store: Store, info: ResourceInfo, new: JSON, old: JSON, subresource: str) -> JSON:
    meta = new["metadata"]
    old_meta = old["metadata"]
    if subresource == "binding":
        bound: JSON = clone(old)
        bound["spec"] = new.get("spec", {})
        bound["status"] = new.get("status", {})
        return bound
    if subresource == "status":
        status = new.get("status")
        merged: JSON = clone(old)
        if status is None:
            merged.pop("status", None)
        else:
            merged["status"] = status
        if meta.get("managedFields") is not None:
            merged["metadata"]["managedFields"] = meta["managedFields"]
        return merged
    for fld in (
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "namespace",
        "generation",
    ):
        if fld in old_meta:
            meta[fld] = old_meta[fld]
        else:
            meta.pop(fld, None)
    if info.status:
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)
    if info.storage == ("", "namespaces"):
        new["status"] = old.get("status", {})
    if builtins.has_generation(info) and spec_changed(new, old):
        meta["generation"] = int(old_meta.get("generation") or 0) + 1
    if old_meta.get("deletionTimestamp"):
        added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
        if added:
            raise errors.invalid(
                info.kind,
                info.group,
                meta.get("name", ""),
                [
                    errors.field_cause(
                        "FieldValueForbidden",
                        "metadata.finalizers",
                        "Forbidden: no new finalizers can be added if the object is being deleted, found new "
                        f"finalizers []string{{{', '.join(f'{chr(34)}{a}{chr(34)}' for a in sorted(added))}}}",
                    )
                ],
            )
    return new


async def update(
    store: Store,
    resource: str | ResourceInfo,
    obj: JSON,
    namespace: str | None = None,
    *,
    subresource: str = "",
    dry_run: bool = False,
    field_manager: str | None = None,
    name: str | None = None,
    field_validation: str | None = None,
    owned: bool = False,
) -> JSON:
    """PUT. ``owned=True`` hands ``obj`` over (it is not copied)."""
    info = store.info(resource)
    set_field_validation(field_validation, "UpdateOptions")
    if not owned:
        obj = clone(obj)
    if info.to_storage is not None:
        obj = info.to_storage(store._check_kind(info, obj))
    else:
        store._check_kind(info, obj)
    info_store = store.bucket(info).info
    ns = store._namespace_for(info, obj, namespace)
    meta = obj["metadata"]
    body_name = meta.get("name")
    if name is not None and body_name and body_name != name:
        raise errors.bad_request(f"the name of the object ({body_name}) does not match the name on the URL ({name})")
    name = name or body_name
    if not name:
        raise errors.bad_request("name is required")
    meta["name"] = name
    want_rv = meta.get("resourceVersion")
    if not want_rv and info_store.crd is not None:
        raise errors.invalid(
            info.kind,
            info.group,
            name,
            [
                errors.field_cause(
                    "FieldValueInvalid",
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update",
                )
            ],
        )
    return await store._guaranteed_update(
        info, ns, name, lambda _old: obj, subresource, dry_run, field_manager, "Update", pinned=bool(want_rv)
    )


async def update_status(
    store: Store, resource: str | ResourceInfo, obj: JSON, namespace: str | None = None, **kw: Any
) -> JSON:
    return await store.update(resource, obj, namespace, subresource="status", **kw)


async def _guaranteed_update(store: Store, info: ResourceInfo, *args: Any, **kw: Any) -> JSON:
    try:
        return await store._guaranteed_update_impl(info, *args, **kw)
    except (AttributeError, TypeError, KeyError, ValueError, IndexError) as exc:
        raise undecodable(info, exc) from None


async def _guaranteed_update_impl(
    store: Store,
    info: ResourceInfo,
    ns: str,
    name: str,
    build: Callable[[JSON], JSON],
    subresource: str,
    dry_run: bool,
    field_manager: str | None,
    operation: str,
    pinned: bool,
    create_if_missing: Callable[[], Awaitable[JSON]] | None = None,
) -> JSON:
    """Read, build the new object from the old one, admit, then commit if nobody wrote meanwhile."""
    info_store = store.bucket(info).info
    key = store._key(info, name, ns)
    for _attempt in range(_PATCH_RETRIES):
        entry = store.bucket(info).objects.get(key)
        if entry is None:
            if create_if_missing is not None:
                return await create_if_missing()
            raise errors.not_found(info.resource, info.group, name)
        old = entry.obj()
        new = build(entry.obj())
        if info.to_storage is not None and new.get("apiVersion") != "v1":
            new = info.to_storage(new)
        new_meta = new.setdefault("metadata", {})
        want_rv = new_meta.get("resourceVersion")
        if want_rv and str(want_rv) != str(entry.rv):
            raise errors.conflict(info.resource, info.group, name, errors.STALE)
        uid = new_meta.get("uid")
        if uid and uid != old["metadata"].get("uid"):
            raise errors.conflict(
                info.resource,
                info.group,
                name,
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: {old['metadata'].get('uid')}",
            )
        new_meta["name"] = name
        if not subresource:
            store._check_unknown(info_store, new)
        store._default(info_store, new)
        new = store._prepare_update(info_store, new, old, subresource)
        if store.mutating:
            attrs = AdmissionAttributes(
                "UPDATE",
                info,
                ns,
                name,
                new,
                old,
                subresource,
                dry_run,
                {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"},
            )
            mutated = await store._admit(store.mutating, attrs)
            if mutated is not None:
                new = store._prepare_update(info_store, mutated, old, subresource)
        applying.record_manager(
            new, field_manager or "unknown", operation, now_rfc3339(store.clock), info.api_version, subresource
        )
        if operation == "Update" and field_manager and field_manager != "unknown":
            applying.track_update(
                old,
                new,
                field_manager,
                subresource,
                info_store.strategic,
                now_rfc3339(store.clock),
                info.api_version,
                store._apply_schema(info_store),
            )
        store._validate(info_store, new, old, subresource)
        if store.validating:
            attrs = AdmissionAttributes(
                "UPDATE",
                info,
                ns,
                name,
                new,
                old,
                subresource,
                dry_run,
                {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"},
            )
            await store._admit(store.validating, attrs)
        current = store.bucket(info).objects.get(key)
        if current is not entry:
            if pinned or current is None:
                if current is None:
                    raise errors.not_found(info.resource, info.group, name)
                raise errors.conflict(info.resource, info.group, name, errors.STALE)
            continue
        new["metadata"]["resourceVersion"] = old["metadata"].get("resourceVersion")
        if same_object(new, old):
            return store.view(info, old)
        if dry_run:
            return store.view(info, new)
        nmeta = new["metadata"]
        if (
            nmeta.get("deletionTimestamp")
            and not nmeta.get("finalizers")
            and not nmeta.get("deletionGracePeriodSeconds")
        ):
            return store.view(info, store._commit(info_store, key, None, entry, deleted=new))
        return store.view(info, store._commit(info_store, key, new, entry))
    raise errors.conflict(info.resource, info.group, name, errors.STALE)


async def patch(
    store: Store,
    resource: str | ResourceInfo,
    name: str,
    patch: Any,
    namespace: str | None = None,
    *,
    patch_type: str = "merge",
    subresource: str = "",
    dry_run: bool = False,
    field_manager: str | None = None,
    force: bool = False,
    field_validation: str | None = None,
) -> JSON:
    info = store.info(resource)
    if patch_type == "apply" and not field_manager:
        required = errors.field_cause(
            "FieldValueRequired", "fieldManager", "Required value: is required for apply patch"
        )
        raise errors.invalid("PatchOptions", "meta.k8s.io", "", [required])
    set_field_validation(field_validation, "PatchOptions")
    ns = (namespace or "default") if info.namespaced else ""
    info_store = store.bucket(info).info
    if patch_type == "strategic" and not info_store.strategic:
        raise ApiError(
            errors.status(
                415,
                "UnsupportedMediaType",
                "strategic merge patch is not supported for custom resources; use merge or json patch",
            )
        )
    pinned = False
    if patch_type in ("merge", "strategic") and isinstance(patch, dict):
        meta = patch.get("metadata")
        pinned = isinstance(meta, dict) and bool(meta.get("resourceVersion"))
    manager = field_manager or ("unknown" if patch_type != "apply" else "")

    def build(old: JSON) -> JSON:
        view = store.view(info, old)
        if patch_type == "merge":
            out = patching.merge_patch(view, patch)
        elif patch_type == "json":
            out = patching.json_patch(view, patch)
        elif patch_type == "strategic":
            out = patching.strategic_merge(view, patch)
        elif patch_type == "apply":
            out = applying.apply(
                view,
                patch,
                manager,
                force,
                info_store.strategic,
                subresource,
                schema=store._apply_schema(info_store),
            )
        else:
            raise ApiError(errors.status(415, "UnsupportedMediaType", f"unsupported patch type {patch_type}"))
        if not isinstance(out, dict):
            raise errors.bad_request("the patch did not produce an object")
        return out

    async def create_missing() -> JSON:
        obj = clone(patch)
        if not isinstance(obj, dict):
            raise errors.bad_request("apply patch must be an object")
        obj.setdefault("metadata", {})["name"] = name
        obj = applying.apply({}, obj, manager, force, info_store.strategic, "", creating=True)
        return await store.create(
            info, obj, ns or None, dry_run=dry_run, field_manager=manager, field_validation=FIELD_VALIDATION.get()
        )

    return await store._guaranteed_update(
        info,
        ns,
        name,
        build,
        subresource,
        dry_run,
        manager,
        "Apply" if patch_type == "apply" else "Update",
        pinned,
        create_missing if patch_type == "apply" and not subresource else None,
    )


async def update_fn(
    store: Store,
    resource: str | ResourceInfo,
    name: str,
    namespace: str | None,
    build: Callable[[JSON], JSON],
    *,
    subresource: str = "",
    field_manager: str | None = None,
) -> JSON:
    """Read-modify-write with retries: ``build`` gets a fresh copy of the object and returns the new one."""
    info = store.info(resource)
    ns = (namespace or "default") if info.namespaced else ""
    return await store._guaranteed_update(info, ns, name, build, subresource, False, field_manager, "Update", False)
