"""CustomResourceDefinitions: serving, structural-schema defaults and pruning, validation and CEL rules.

Role: :func:`install` wires CRD support into a :class:`~kubesim.storage.store.Store`:

- a CRD that is created or updated registers (or re-registers) its resource and, shortly after, gets the
  ``NamesAccepted`` and ``Established`` conditions, as the apiextensions controllers set them; a deleted CRD
  carries the ``customresourcecleanup.apiextensions.k8s.io`` finalizer until its objects are gone (see
  :mod:`kubesim.storage.gc`);
- :class:`SchemaHooks` is the store's ``schema`` hook: ``default`` applies ``default`` values from the
  structural schema and prunes unknown fields (``x-kubernetes-preserve-unknown-fields`` honoured; with
  ``fieldValidation=Strict`` unknown fields are a 400, with ``Warn`` a warning), ``validate`` returns 422 field
  causes from the OpenAPI schema (:mod:`kubesim.storage.validation`) and the ``x-kubernetes-validations`` CEL rules.

Invariants: defaulting never overwrites a value that is present; pruning never touches ``apiVersion``,
``kind`` or ``metadata``; a CRD's resource is served exactly while the CRD exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from typing import Any

from kubesim.storage.buckets import DELETED, WatchEvent
from kubesim.storage.objects import report_unknown_fields
from kubesim.storage.resources import ResourceInfo
from kubesim.storage.store import Store
from kubesim.util import errors
from kubesim.util.timefmt import now_rfc3339

JSON = dict[str, Any]
CRD_RESOURCE = ("apiextensions.k8s.io", "customresourcedefinitions")
CRD_CLEANUP = "customresourcecleanup.apiextensions.k8s.io"


def version_schema(crd: JSON, version: str) -> JSON | None:
    for ver in (crd.get("spec") or {}).get("versions") or []:
        if ver.get("name") == version:
            schema = (ver.get("schema") or {}).get("openAPIV3Schema")
            return schema if isinstance(schema, dict) else None
    return None


def info_from_crd(crd: JSON) -> ResourceInfo | None:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
    if not spec.get("group") or not names.get("plural") or not names.get("kind") or not versions:
        return None
    versions.sort(key=lambda v: not v.get("storage", False))
    subresources = versions[0].get("subresources") or {}
    fields = ["metadata.name", "metadata.namespace"]
    for v in versions:
        for sf in v.get("selectableFields") or []:
            path = str(sf.get("jsonPath", "")).lstrip(".")
            if path and path not in fields:
                fields.append(path)
    return ResourceInfo(
        group=spec["group"],
        versions=[v["name"] for v in versions],
        resource=names["plural"],
        kind=names["kind"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        singular=names.get("singular") or names["kind"].lower(),
        short_names=list(names.get("shortNames") or []),
        categories=list(names.get("categories") or []),
        status="status" in subresources,
        scale="scale" in subresources,
        strategic=False,
        crd=crd,
        field_labels=tuple(fields),
    )


# ------------------------------------------------------------------------------------------ defaults


def apply_defaults(value: Any, schema: JSON) -> Any:
    """Fill ``default`` values of absent properties (recursively), as the structural defaulter does."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for name, sub in props.items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value and isinstance(sub, dict):
                if value[name] is None and not sub.get("nullable"):
                    if "default" in sub:
                        value[name] = copy.deepcopy(sub["default"])
                    continue
                apply_defaults(value[name], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name, item in value.items():
                if name not in props:
                    apply_defaults(item, extra)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in value:
                apply_defaults(item, items)
    return value


def prune(value: Any, schema: JSON, path: str, unknown: list[str], top: bool = False) -> Any:
    """Drop fields the schema does not know (collecting their paths) unless unknown fields are preserved."""
    if schema.get("x-kubernetes-preserve-unknown-fields") and not schema.get("properties"):
        return value
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        if schema.get("x-kubernetes-embedded-resource"):
            props = {**props, "apiVersion": {}, "kind": {}, "metadata": {"x-kubernetes-preserve-unknown-fields": True}}
        for name in list(value):
            if top and name in ("apiVersion", "kind", "metadata"):
                continue
            sub = props.get(name)
            if sub is None and isinstance(extra, dict):
                sub = extra
            if sub is None:
                if extra is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                    continue
                unknown.append(f"{path}.{name}" if path else name)
                del value[name]
                continue
            prune(value[name], sub, f"{path}.{name}" if path else name, unknown)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                prune(item, items, f"{path}[{i}]", unknown)
    return value


class SchemaHooks:
    """The store's ``schema`` hook for custom resources."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._validators: dict[tuple[str, str, int], Any] = {}

    def _schema(self, info: ResourceInfo) -> JSON | None:
        return version_schema(info.crd or {}, info.version)

    def default(self, info: ResourceInfo, obj: JSON) -> None:
        schema = self._schema(info)
        if schema is None:
            return
        unknown: list[str] = []
        meta = obj.get("metadata")
        prune(obj, schema, "", unknown, top=True)
        report_unknown_fields(info, unknown)
        apply_defaults(obj, schema)
        if meta is not None:
            obj["metadata"] = meta

    def prepare_create(self, info: ResourceInfo, obj: JSON) -> None:
        if info.status:
            obj.pop("status", None)

    def validate(self, info: ResourceInfo, obj: JSON, old: JSON | None) -> list[JSON]:
        schema = self._schema(info)
        if schema is None:
            return []
        from kubesim.storage import validation  # deferred: the CEL library is slow to import

        crd_meta = (info.crd or {}).get("metadata") or {}
        key = (info.qualified, info.version, int(crd_meta.get("generation") or 0))
        validator = self._validators.get(key)
        if validator is None:
            validator = self._validators[key] = validation.SchemaValidator(schema)
        return list(validator.validate(obj, old))


# ------------------------------------------------------------------------------------------ lifecycle


class CrdController:
    """Registers CRD resources and sets the CRD's accepted/established status."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._tasks: set[asyncio.Task[None]] = set()

    def on_event(self, info: ResourceInfo, ev: WatchEvent) -> None:
        if info.storage != CRD_RESOURCE:
            return
        crd = ev.shared_obj()
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        if ev.type == DELETED:
            self.store.unregister(spec.get("group", ""), names.get("plural", ""))
            return
        served = info_from_crd(crd)
        if served is None:
            return
        existing = self.store.registry.get(served.group, served.resource)
        if (
            existing is None
            or existing.crd is None
            or existing.crd.get("metadata", {}).get("generation") != crd.get("metadata", {}).get("generation")
            or existing.versions != served.versions
        ):
            self.store.register(served)
        conds = {c.get("type"): c.get("status") for c in (crd.get("status") or {}).get("conditions") or []}
        fins = (crd.get("metadata") or {}).get("finalizers") or []
        if (conds.get("Established") != "True" or CRD_CLEANUP not in fins) and not (crd.get("metadata") or {}).get(
            "deletionTimestamp"
        ):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            task = loop.create_task(self._establish(crd["metadata"]["name"]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _establish(self, name: str) -> None:
        await asyncio.sleep(0)
        resource = "customresourcedefinitions.apiextensions.k8s.io"

        def add_finalizer(crd: JSON) -> JSON:
            fins = crd["metadata"].setdefault("finalizers", [])
            if CRD_CLEANUP not in fins:
                fins.append(CRD_CLEANUP)
            return crd

        def set_status(crd: JSON) -> JSON:
            now = now_rfc3339(self.store.clock)
            spec = crd.get("spec") or {}
            status = crd.setdefault("status", {})
            status["acceptedNames"] = dict((spec.get("names") or {}).items())
            status["acceptedNames"].setdefault("singular", str(spec.get("names", {}).get("kind", "")).lower())
            status["storedVersions"] = sorted(
                {v["name"] for v in spec.get("versions") or [] if v.get("storage")}
                | set(status.get("storedVersions") or [])
            )
            conds = [c for c in status.get("conditions") or [] if c.get("type") not in ("NamesAccepted", "Established")]
            conds.append(
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": now,
                }
            )
            conds.append(
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": now,
                }
            )
            status["conditions"] = conds
            return crd

        with contextlib.suppress(errors.ApiError):
            await self.store.update_fn(resource, name, None, add_finalizer, field_manager="kube-apiserver")
            await self.store.update_fn(
                resource, name, None, set_status, subresource="status", field_manager="kube-apiserver"
            )


def install(store: Store) -> None:
    """Enable CRD serving, defaults and validation on ``store`` (idempotent)."""
    if isinstance(store.hooks.schema, SchemaHooks):
        return
    store.hooks.schema = SchemaHooks(store)
    store.subscribe(CrdController(store).on_event)
