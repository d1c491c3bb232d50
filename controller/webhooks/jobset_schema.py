"""What the JobSet CRD's OpenAPI schema and CEL rules reject, as a pure function over raw JSON.

Role: in a real cluster the API server enforces these before the validating webhook runs (ranges, enums,
required fields, list sizes, list-map keys, the StartupPolicy/DependsOn exclusion and the ``self == oldSelf``
transition rules). ``validate_schema_rules`` restates them with the API server's messages so kubesim and the
tests can compare, and so a deployment without the CEL-capable CRD could still run them from the webhook.

Invariants: pure, never raises for JSON-compatible input; transition rules fire only when the field exists in
both the old and the new object (a documented API-server caveat: adding an optional block is allowed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from api.constants import MAX_DEPENDS_ON, MAX_VOLUME_CLAIM_POLICIES, MAX_VOLUME_CLAIM_TEMPLATES
from api.jobset_types import (
    DEPENDS_ON_STATUSES,
    FAILURE_ACTIONS,
    RESTART_STRATEGIES,
    STARTUP_POLICY_ORDERS,
    SUCCESS_OPERATORS,
    WHEN_DELETED_VALUES,
)
from controller.webhooks.dns import is_dns1123_subdomain
from controller.webhooks.fielderrors import ErrorList, FieldError, Path
from controller.webhooks.jsonview import JobSetView, check_depth, get_path, parse_jobset, raw_list

__all__ = ["validate_schema_rules"]

_SPEC = Path("spec")

_ENUMS: Final[dict[str, tuple[str, ...]]] = {
    "dependsOn.status": DEPENDS_ON_STATUSES,
    "successPolicy.operator": SUCCESS_OPERATORS,
    "startupPolicyOrder": STARTUP_POLICY_ORDERS,
    "restartStrategy": RESTART_STRATEGIES,
    "action": FAILURE_ACTIONS,
    "whenDeleted": WHEN_DELETED_VALUES,
}
_CEL_IMMUTABLE: Final = "Value is immutable"
_SPEC_IMMUTABLE_FIELDS: Final = ("network", "successPolicy", "failurePolicy", "startupPolicy", "volumeClaimPolicies")


def validate_schema_rules(obj: Any, old: Any = None) -> ErrorList:
    """What the CRD's OpenAPI schema and CEL rules reject (on UPDATE pass ``old`` for the transition rules).

    Messages are the API server's: ``... in body should be greater than or equal to 0``, ``Unsupported
    value``, ``Too many``, ``Duplicate value``, ``Required value`` and the CEL rule messages.
    """
    view, errors = parse_jobset(obj)
    if view is None:
        return errors
    errs = ErrorList()
    name = view.name
    if name:
        errs.extend(FieldError.invalid(Path("metadata.name"), name, m) for m in is_dns1123_subdomain(name))
    spec = view.spec
    rjobs_path = _SPEC.child("replicatedJobs")
    raw_rjobs = [rj.raw for rj in view.rjobs]
    errs.extend(_duplicate_keys(rjobs_path, raw_rjobs))
    for rjob in view.rjobs:
        errs.extend(_required(rjob.path, rjob.raw, ("name", "template")))
        if rjob.replicas < 0:
            errs.append(_minimum(rjob.path.child("replicas"), rjob.replicas, 0))
        if rjob.depends_on is not None:
            dpath = rjob.path.child("dependsOn")
            if len(rjob.depends_on) > MAX_DEPENDS_ON:
                errs.append(FieldError.too_many(dpath, len(rjob.depends_on), MAX_DEPENDS_ON))
            errs.extend(_duplicate_keys(dpath, raw_list(rjob.raw.get("dependsOn"))))
            for dep, raw_dep in zip(rjob.depends_on, raw_list(rjob.raw.get("dependsOn")), strict=False):
                errs.extend(_required(dep.path, raw_dep, ("name", "status")))
                errs.extend(_enum(dep.path.child("status"), raw_dep.get("status"), "dependsOn.status"))
    ttl = spec.get("ttlSecondsAfterFinished")
    if isinstance(ttl, int) and ttl < 0:
        errs.append(_minimum(_SPEC.child("ttlSecondsAfterFinished"), ttl, 0))
    errs.extend(_policy_schema_errors(spec))
    startup = spec.get("startupPolicy")
    in_order = isinstance(startup, Mapping) and startup.get("startupPolicyOrder") == "InOrder"
    if in_order and any(rj.raw.get("dependsOn") is not None for rj in view.rjobs):
        errs.append(FieldError.invalid(_SPEC, "object", "StartupPolicy and DependsOn APIs are mutually exclusive"))
    if old is not None and isinstance(old, Mapping) and isinstance(old.get("spec"), Mapping):
        too_deep = check_depth(old["spec"], _SPEC)
        if too_deep is not None:
            errs.append(FieldError.internal(_SPEC, f"the stored JobSet cannot be read: {too_deep}"))
        else:
            errs.extend(_transition_errors(view, old["spec"]))
    return errs


def _policy_schema_errors(spec: Mapping[str, Any]) -> ErrorList:
    errs = ErrorList()
    success = spec.get("successPolicy")
    if isinstance(success, Mapping):
        errs.extend(_required(_SPEC.child("successPolicy"), success, ("operator",)))
        errs.extend(_enum(_SPEC.child("successPolicy", "operator"), success.get("operator"), "successPolicy.operator"))
    startup = spec.get("startupPolicy")
    if isinstance(startup, Mapping):
        spath = _SPEC.child("startupPolicy")
        errs.extend(_required(spath, startup, ("startupPolicyOrder",)))
        errs.extend(_enum(spath.child("startupPolicyOrder"), startup.get("startupPolicyOrder"), "startupPolicyOrder"))
    failure = spec.get("failurePolicy")
    if isinstance(failure, Mapping):
        fpath = _SPEC.child("failurePolicy")
        errs.extend(_enum(fpath.child("restartStrategy"), failure.get("restartStrategy"), "restartStrategy"))
        for i, rule in enumerate(raw_list(failure.get("rules"))):
            rpath = fpath.child("rules").index(i)
            errs.extend(_required(rpath, rule, ("name", "action")))
            errs.extend(_enum(rpath.child("action"), rule.get("action"), "action"))
    coordinator = spec.get("coordinator")
    if isinstance(coordinator, Mapping):
        errs.extend(_required(_SPEC.child("coordinator"), coordinator, ("replicatedJob",)))
    policies = raw_list(spec.get("volumeClaimPolicies"))
    vpath = _SPEC.child("volumeClaimPolicies")
    if len(policies) > MAX_VOLUME_CLAIM_POLICIES:
        errs.append(FieldError.too_many(vpath, len(policies), MAX_VOLUME_CLAIM_POLICIES))
    for i, policy in enumerate(policies):
        ppath = vpath.index(i)
        templates = raw_list(policy.get("templates"))
        if len(templates) > MAX_VOLUME_CLAIM_TEMPLATES:
            errs.append(FieldError.too_many(ppath.child("templates"), len(templates), MAX_VOLUME_CLAIM_TEMPLATES))
        retention = policy.get("retentionPolicy")
        if isinstance(retention, Mapping):
            errs.extend(
                _enum(ppath.child("retentionPolicy", "whenDeleted"), retention.get("whenDeleted"), "whenDeleted")
            )
        if any(get_path(t, ("metadata", "namespace")) for t in templates):
            errs.append(
                FieldError.invalid(ppath, "object", "namespace cannot be set for VolumeClaimPolicies templates")
            )
    return errs


def _transition_errors(view: JobSetView, old_spec: Mapping[str, Any]) -> ErrorList:
    """CEL ``self == oldSelf`` rules; like the API server, they only fire when both old and new hold the field."""
    errs = ErrorList()
    for key in _SPEC_IMMUTABLE_FIELDS:
        new_value, old_value = view.spec.get(key), old_spec.get(key)
        if new_value is not None and old_value is not None and not _cel_equal(new_value, old_value):
            kind = "array" if isinstance(new_value, list) else "object"
            errs.append(FieldError.invalid(_SPEC.child(key), kind, _CEL_IMMUTABLE))
    old_by_name = {
        rj["name"]: rj
        for rj in raw_list(old_spec.get("replicatedJobs"))
        if isinstance(rj, Mapping) and isinstance(rj.get("name"), str)
    }
    for rjob in view.rjobs:
        old_rjob = old_by_name.get(rjob.name)
        new_deps = rjob.raw.get("dependsOn")
        old_deps = old_rjob.get("dependsOn") if old_rjob is not None else None
        if new_deps is None or old_deps is None:
            continue
        # dependsOn is a list-map: CEL equality ignores the order of its items.
        if not _cel_equal(_by_name(new_deps), _by_name(old_deps)):
            errs.append(FieldError.invalid(rjob.path.child("dependsOn"), "array", _CEL_IMMUTABLE))
    return errs


def _by_name(items: Any) -> Any:
    if not isinstance(items, list):
        return items
    return sorted((_canonical(i) for i in items), key=repr)


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((k, _canonical(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_canonical(v) for v in value)
    if isinstance(value, bool):
        return (bool, value)
    return value


def _cel_equal(a: Any, b: Any) -> bool:
    return bool(_canonical(a) == _canonical(b))


def _required(path: Path, obj: Any, keys: Sequence[str]) -> ErrorList:
    errs = ErrorList()
    if isinstance(obj, Mapping):
        errs.extend(FieldError.required(path.child(key), "") for key in keys if obj.get(key) is None)
    return errs


def _enum(path: Path, value: Any, enum: str) -> ErrorList:
    errs = ErrorList()
    valid = _ENUMS[enum]
    if value is not None and value not in valid:
        errs.append(FieldError.not_supported(path, value, valid))
    return errs


def _minimum(path: Path, value: int, minimum: int) -> FieldError:
    return FieldError.invalid(path, value, f"{path} in body should be greater than or equal to {minimum}")


def _duplicate_keys(path: Path, items: Sequence[Any]) -> ErrorList:
    errs = ErrorList()
    seen: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        name = item["name"]
        if name in seen:
            errs.append(FieldError.duplicate(path.index(i), {"name": name}))
        seen.add(name)
    return errs
