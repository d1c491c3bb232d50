"""The write path: CREATE, UPDATE (and ``/status``), PATCH of every type, binding, with the apiserver's checks.

Role: :class:`WritePath` is what :class:`~kubesim.storage.store.Store`'s ``create``, ``update``,
``update_status``, ``patch``, ``update_fn`` and ``bind`` are: kind and namespace checks, defaults (built-in
strategies or the CRD's structural schema), unknown fields under ``fieldValidation``, name generation, uid and
timestamps, mutating and validating admission, validation (422 with field causes), optimistic concurrency (409
on a stale resourceVersion), status subresource separation and generation bumps, managed fields, and the retry
loop of GuaranteedUpdate (:meth:`WritePath.guaranteed_update`, driven by an :class:`UpdateRequest`).

Invariants: nothing is committed unless every check passed; a write that changes nothing commits nothing; a body
that does not decode into the kind's shape is a 400 (:func:`kubesim.storage.decode.check_body`), anything else
that goes wrong is a simulator bug and propagates (the HTTP server answers 500 and logs it); HTTP bodies may be
handed over (``owned``) instead of copied.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

from kubesim.storage import apply as applying
from kubesim.storage import builtins, knownfields
from kubesim.storage import patch as patching
from kubesim.storage.decode import check_apply_config, check_body, check_meta_types, decode_object
from kubesim.storage.hooks import WriteHooks, admit
from kubesim.storage.objects import (
    FIELD_VALIDATION,
    JSON,
    WARNINGS,
    AdmissionAttributes,
    AdmissionHook,
    random_suffix,
    report_unknown_fields,
    same_object,
    set_field_validation,
    spec_changed,
)
from kubesim.storage.objectstore import ObjectStore
from kubesim.storage.resources import ResourceInfo
from kubesim.util import errors
from kubesim.util.errors import ApiError
from kubesim.util.jsonutil import clone
from kubesim.util.timefmt import now_rfc3339

_PATCH_RETRIES = 8
_SERVER_FIELDS_ON_CREATE = ("resourceVersion", "uid", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink")
_SERVER_FIELDS_ON_UPDATE = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "namespace",
    "generation",
)

Build = Callable[[JSON], JSON]


@dataclass(frozen=True, slots=True)
class UpdateRequest:
    """One read-modify-write through GuaranteedUpdate.

    ``operation`` is the managedFields operation (``"Update"`` or ``"Apply"``); ``pinned`` says the caller named
    a resourceVersion, so a concurrent write is a 409 instead of a retry.
    """

    info: ResourceInfo
    namespace: str
    name: str
    subresource: str = ""
    dry_run: bool = False
    field_manager: str | None = None
    operation: str = "Update"
    pinned: bool = False


class UpdateOptions(TypedDict, total=False):
    """The keyword options of :meth:`WritePath.update` besides ``subresource``."""

    dry_run: bool
    field_manager: str | None
    name: str | None
    field_validation: str | None
    owned: bool


def new_uid() -> str:
    """A random (version 4) UUID in its canonical text form, as ``str(uuid.uuid4())`` gives, at a third of
    the cost (one per create)."""
    h = bytearray(os.urandom(16))
    h[6] = (h[6] & 0x0F) | 0x40  # version 4
    h[8] = (h[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def apply_schema(info: ResourceInfo) -> JSON | None:
    """The structural schema server-side apply merges a custom resource with (None for built-in kinds)."""
    if info.crd is None:
        return None
    for ver in (info.crd.get("spec") or {}).get("versions") or []:
        if ver.get("name") == info.version:
            schema = (ver.get("schema") or {}).get("openAPIV3Schema")
            return schema if isinstance(schema, dict) else None
    return None


def _namespace_of(info: ResourceInfo, namespace: str | None) -> str:
    return (namespace or "default") if info.namespaced else ""


class WritePath:
    """Creates, updates, patches and binds through one :class:`ObjectStore` (see the module docstring)."""

    def __init__(self, objects: ObjectStore, hooks: WriteHooks) -> None:
        self.objects = objects
        self.hooks = hooks

    # ------------------------------------------------------------------------------------ shared checks

    def _decode_request(
        self,
        resource: str | ResourceInfo,
        body: Any,
        namespace: str | None,
        owned: bool,
        field_validation: str | None,
        options_kind: str = "CreateOptions",
    ) -> tuple[ResourceInfo, ResourceInfo, JSON, str]:
        """A POST/PUT body checked (kind, metadata, shape) and converted to the stored form, with the request's
        ``fieldValidation`` set: the served and the stored resource, the object (a copy unless ``owned``) and
        its namespace."""
        info = self.objects.info(resource)
        set_field_validation(field_validation, options_kind)
        obj = decode_object(info, body if owned else clone(body))
        if info.to_storage is not None:
            obj = info.to_storage(obj)
        return info, self.objects.bucket(info).info, obj, self._namespace_for(info, obj, namespace)

    @staticmethod
    def _namespace_for(info: ResourceInfo, obj: JSON, namespace: str | None) -> str:
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

    def _validate(self, info: ResourceInfo, obj: JSON, old: JSON | None, subresource: str = "") -> None:
        causes = builtins.validate(info, obj, old, subresource)
        if info.crd is not None and self.hooks.schema is not None:
            causes += self.hooks.schema.validate(info, obj, old)
        if causes:
            meta = obj.get("metadata") or {}
            raise errors.invalid(info.kind, info.group, meta.get("name") or meta.get("generateName", ""), causes)

    @staticmethod
    def _check_unknown(info: ResourceInfo, obj: JSON) -> None:
        """Drop (``Warn``/``Ignore``) or reject (``Strict``) fields a built-in kind does not have."""
        if info.crd is not None:
            return  # the CRD's structural schema prunes (kubesim.storage.schema)
        if WARNINGS.get() is None and FIELD_VALIDATION.get() != "Strict":
            return  # in-process writers (the simulated controllers) send only known fields
        report_unknown_fields(info, knownfields.unknown_fields(info, obj))

    def _default(self, info: ResourceInfo, obj: JSON) -> None:
        if info.crd is None:
            builtins.default(info, obj)
        elif self.hooks.schema is not None:
            self.hooks.schema.default(info, obj)

    def _track_update(self, old: JSON | None, new: JSON, req: UpdateRequest, store_info: ResourceInfo) -> None:
        """managedFields for a named ``Update`` writer (anonymous in-process writers stay cheap)."""
        manager = req.field_manager
        if req.operation == "Update" and manager and manager != "unknown":
            applying.track_update(
                old,
                new,
                manager,
                req.subresource,
                store_info.strategic,
                now_rfc3339(self.objects.clock),
                req.info.api_version,
                apply_schema(store_info),
            )

    async def _admit(
        self, hooks: list[AdmissionHook], operation: str, req: UpdateRequest, obj: JSON, old: JSON | None
    ) -> JSON | None:
        """Run admission ``hooks`` on the write ``req`` describes; the mutated object or None."""
        if not hooks:
            return None
        options = "CreateOptions" if operation == "CREATE" else "UpdateOptions"
        attrs = AdmissionAttributes(
            operation,
            req.info,
            req.namespace,
            req.name,
            obj,
            old,
            req.subresource,
            req.dry_run,
            {"kind": options, "apiVersion": "meta.k8s.io/v1"},
        )
        return await admit(hooks, attrs)

    def check_namespace_open(self, info: ResourceInfo, ns: str, name: str) -> None:
        """404 when ``ns`` does not exist, 403 while it terminates (no new content)."""
        entry = self.objects.entry_at(self.objects.info("namespaces"), ("", ns))
        if entry is None:
            raise errors.not_found("namespaces", "", ns)
        # A namespace's own fields never contain this key: only a set deletionTimestamp does (no decoding).
        if b'"deletionTimestamp"' in entry.raw and (entry.obj().get("metadata") or {}).get("deletionTimestamp"):
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

    # ------------------------------------------------------------------------------------ create

    async def create(
        self,
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
        info, store_info, obj, ns = self._decode_request(resource, obj, namespace, owned, field_validation)
        meta = obj["metadata"]
        for fld in _SERVER_FIELDS_ON_CREATE:
            if fld == "resourceVersion" and meta.get(fld):
                raise errors.bad_request("resourceVersion should not be set on objects to be created")
            meta.pop(fld, None)
        self._check_unknown(store_info, obj)
        self._default(store_info, obj)
        if self.hooks.mutating:
            req = UpdateRequest(info, ns, meta.get("name", ""), subresource, dry_run, field_manager)
            mutated = await self._admit(self.hooks.mutating, "CREATE", req, obj, None)
            if mutated is not None:
                obj = mutated
                meta = obj.setdefault("metadata", {})
                self._default(store_info, obj)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = str(meta["generateName"]) + random_suffix()
        name = meta.get("name", "")
        req = UpdateRequest(info, ns, name, subresource, dry_run, field_manager)
        uid = new_uid()
        now = now_rfc3339(self.objects.clock)
        meta["uid"] = uid
        meta["creationTimestamp"] = now
        if builtins.has_generation(store_info):
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        builtins.prepare_create(store_info, obj, uid, self.objects.ips)
        if store_info.crd is not None and self.hooks.schema is not None:
            self.hooks.schema.prepare_create(store_info, obj)
        self._track_update(None, obj, req, store_info)
        if "managedFields" in meta:
            applying.record_manager(obj, field_manager or "unknown", "Update", now, info.api_version)
        self._validate(store_info, obj, None)
        if self.hooks.validating:
            await self._admit(self.hooks.validating, "CREATE", req, obj, None)
        key = self.objects.key(info, name, ns)
        if self.objects.entry_at(info, key) is not None:
            raise errors.already_exists(info.resource, info.group, name)
        if info.namespaced:
            self.check_namespace_open(info, ns, name)
        if dry_run:
            return self.objects.view(info, obj)
        self.objects.commit(store_info, key, obj, None)
        # ``obj`` was serialised into the store and is not referenced by it: the caller may keep it.
        return self.objects.view(info, obj)

    # ------------------------------------------------------------------------------------ update

    @staticmethod
    def _prepare_update(info: ResourceInfo, new: JSON, old: JSON, subresource: str) -> JSON:
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
        for fld in _SERVER_FIELDS_ON_UPDATE:
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
                listed = ", ".join(f'"{a}"' for a in sorted(added))
                raise errors.invalid(
                    info.kind,
                    info.group,
                    meta.get("name", ""),
                    [
                        errors.field_cause(
                            "FieldValueForbidden",
                            "metadata.finalizers",
                            "Forbidden: no new finalizers can be added if the object is being deleted, found new "
                            f"finalizers []string{{{listed}}}",
                        )
                    ],
                )
        return new

    async def update(
        self,
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
        info, store_info, obj, ns = self._decode_request(
            resource, obj, namespace, owned, field_validation, "UpdateOptions"
        )
        meta = obj["metadata"]
        body_name = meta.get("name")
        if name is not None and body_name and body_name != name:
            raise errors.bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        name = name or body_name
        if not name:
            raise errors.bad_request("name is required")
        meta["name"] = name
        want_rv = meta.get("resourceVersion")
        if not want_rv and store_info.crd is not None:
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
        req = UpdateRequest(info, ns, name, subresource, dry_run, field_manager, pinned=bool(want_rv))
        return await self.guaranteed_update(req, lambda _old: obj)

    async def update_status(
        self, resource: str | ResourceInfo, obj: JSON, namespace: str | None = None, **options: Unpack[UpdateOptions]
    ) -> JSON:
        """PUT .../status: only ``status`` changes. Options as :meth:`update`."""
        return await self.update(resource, obj, namespace, subresource="status", **options)

    async def update_fn(
        self,
        resource: str | ResourceInfo,
        name: str,
        namespace: str | None,
        build: Build,
        *,
        subresource: str = "",
        field_manager: str | None = None,
    ) -> JSON:
        """Read-modify-write with retries: ``build`` gets a fresh copy of the object and returns the new one."""
        info = self.objects.info(resource)
        req = UpdateRequest(info, _namespace_of(info, namespace), name, subresource, field_manager=field_manager)
        return await self.guaranteed_update(req, build)

    async def guaranteed_update(
        self,
        req: UpdateRequest,
        build: Build,
        create_if_missing: Callable[[], Awaitable[JSON]] | None = None,
    ) -> JSON:
        """Read, build the new object from the old one, admit, then commit if nobody wrote meanwhile."""
        info, name = req.info, req.name
        store_info = self.objects.bucket(info).info
        key = self.objects.key(info, name, req.namespace)
        for _attempt in range(_PATCH_RETRIES):
            entry = self.objects.entry_at(info, key)
            if entry is None:
                if create_if_missing is not None:
                    return await create_if_missing()
                raise errors.not_found(info.resource, info.group, name)
            old = entry.obj()
            new = build(entry.obj())
            if not isinstance(new, dict):
                raise errors.bad_request("the patch did not produce an object")
            check_body(info, new, spec=not req.subresource)
            if info.to_storage is not None and new.get("apiVersion") != "v1":
                new = info.to_storage(new)
            new_meta = new.setdefault("metadata", {})
            check_meta_types(info, new_meta)
            want_rv = new_meta.get("resourceVersion")
            if want_rv and str(want_rv) != str(entry.rv):
                raise errors.conflict(info.resource, info.group, name, errors.STALE)
            uid = new_meta.get("uid")
            if uid and uid != old["metadata"].get("uid"):
                raise errors.conflict(
                    info.resource,
                    info.group,
                    name,
                    f"Precondition failed: UID in precondition: {uid}, "
                    f"UID in object meta: {old['metadata'].get('uid')}",
                )
            new_meta["name"] = name
            if not req.subresource:
                self._check_unknown(store_info, new)
            self._default(store_info, new)
            new = self._prepare_update(store_info, new, old, req.subresource)
            mutated = await self._admit(self.hooks.mutating, "UPDATE", req, new, old)
            if mutated is not None:
                new = self._prepare_update(store_info, mutated, old, req.subresource)
            applying.record_manager(
                new,
                req.field_manager or "unknown",
                req.operation,
                now_rfc3339(self.objects.clock),
                info.api_version,
                req.subresource,
            )
            self._track_update(old, new, req, store_info)
            self._validate(store_info, new, old, req.subresource)
            await self._admit(self.hooks.validating, "UPDATE", req, new, old)
            current = self.objects.entry_at(info, key)
            if current is not entry:
                if current is None:
                    raise errors.not_found(info.resource, info.group, name)
                if req.pinned:
                    raise errors.conflict(info.resource, info.group, name, errors.STALE)
                continue
            new["metadata"]["resourceVersion"] = old["metadata"].get("resourceVersion")
            if same_object(new, old):
                return self.objects.view(info, old)
            if req.dry_run:
                return self.objects.view(info, new)
            nmeta = new["metadata"]
            if (
                nmeta.get("deletionTimestamp")
                and not nmeta.get("finalizers")
                and not nmeta.get("deletionGracePeriodSeconds")
            ):
                return self.objects.view(info, self.objects.commit_delete(store_info, key, new, entry))
            return self.objects.view(info, self.objects.commit(store_info, key, new, entry))
        raise errors.conflict(info.resource, info.group, name, errors.STALE)

    # ------------------------------------------------------------------------------------ patch

    async def patch(
        self,
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
        info = self.objects.info(resource)
        if patch_type == "apply" and not field_manager:
            required = errors.field_cause(
                "FieldValueRequired", "fieldManager", "Required value: is required for apply patch"
            )
            raise errors.invalid("PatchOptions", "meta.k8s.io", "", [required])
        set_field_validation(field_validation, "PatchOptions")
        ns = _namespace_of(info, namespace)
        store_info = self.objects.bucket(info).info
        if patch_type == "strategic" and not store_info.strategic:
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
        if patch_type == "apply":
            check_apply_config(info, patch)

        def build(old: JSON) -> JSON:
            view = self.objects.view(info, old)
            if patch_type == "merge":
                out = patching.merge_patch(view, patch)
            elif patch_type == "json":
                out = patching.json_patch(view, patch)
            elif patch_type == "strategic":
                out = patching.strategic_merge(view, patch)
            elif patch_type == "apply":
                out = applying.apply(
                    view, patch, manager, force, store_info.strategic, subresource, schema=apply_schema(store_info)
                )
            else:
                raise ApiError(errors.status(415, "UnsupportedMediaType", f"unsupported patch type {patch_type}"))
            if not isinstance(out, dict):
                raise errors.bad_request("the patch did not produce an object")
            return out

        async def create_missing() -> JSON:
            obj = clone(patch)
            obj.setdefault("metadata", {})["name"] = name
            obj = applying.apply({}, obj, manager, force, store_info.strategic, "", creating=True)
            return await self.create(
                info, obj, ns or None, dry_run=dry_run, field_manager=manager, field_validation=FIELD_VALIDATION.get()
            )

        operation = "Apply" if patch_type == "apply" else "Update"
        req = UpdateRequest(info, ns, name, subresource, dry_run, manager, operation, pinned)
        creating = create_missing if patch_type == "apply" and not subresource else None
        return await self.guaranteed_update(req, build, creating)

    # ------------------------------------------------------------------------------------ binding

    async def bind(self, name: str, namespace: str, node: str) -> JSON:
        """POST pods/<name>/binding: set ``spec.nodeName`` once (409 when already bound)."""
        info = self.objects.info("pods")

        def build(old: JSON) -> JSON:
            spec = old.setdefault("spec", {})
            if spec.get("nodeName"):
                raise errors.conflict("pods", "", name, f'pod {name} is already assigned to node "{spec["nodeName"]}"')
            if old["metadata"].get("deletionTimestamp"):
                raise errors.conflict("pods", "", name, "pod is being deleted, cannot be assigned to a host")
            spec["nodeName"] = node
            conds = old.setdefault("status", {}).setdefault("conditions", [])
            conds[:] = [c for c in conds if c.get("type") != "PodScheduled"]
            conds.append(
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": now_rfc3339(self.objects.clock),
                }
            )
            return old

        req = UpdateRequest(info, namespace, name, "binding", field_manager="kube-scheduler")
        return await self.guaranteed_update(req, build)
