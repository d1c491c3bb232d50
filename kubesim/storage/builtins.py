"""Defaulting, create-time preparation and validation for built-in kinds (the apiserver's "strategies").

Role: what kube-apiserver does to a built-in object between decoding and storage: scheme defaults (a Pod's
``restartPolicy``, a Job's ``backoffLimit``), ``PrepareForCreate`` (a Job's generated selector and
``controller-uid`` labels, a Service's clusterIP, a Namespace's finalizer and phase) and the subset of
validation that clients observably depend on (names, labels, required fields), reported as 422 field causes.

Invariants: functions change the object in place and never touch ``metadata.resourceVersion``; validation
returns a list of causes (empty when valid) instead of raising, so callers can merge causes from several
validators into one Invalid error.
"""

from __future__ import annotations

import ipaddress
import re
from decimal import ROUND_CEILING, Decimal
from typing import Any

import orjson

from kubesim.storage.resources import ResourceInfo
from kubesim.util.errors import field_cause
from kubesim.util.jsonutil import clone

JSON = dict[str, Any]

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")

# Kinds whose metadata.generation the apiserver maintains.
GENERATION_KINDS = {
    ("batch", "jobs"),
    ("batch", "cronjobs"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("policy", "poddisruptionbudgets"),
    ("networking.k8s.io", "networkpolicies"),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
}

# Resources whose names are DNS-1123 labels rather than subdomains.
LABEL_NAMED = {("", "namespaces"), ("", "services")}
# Resources whose names are path segments only (anything without '/', '%', '.', '..').
PATH_NAMED = {
    ("", "events"),
    ("rbac.authorization.k8s.io", "roles"),
    ("rbac.authorization.k8s.io", "rolebindings"),
    ("rbac.authorization.k8s.io", "clusterroles"),
    ("rbac.authorization.k8s.io", "clusterrolebindings"),
}


def has_generation(info: ResourceInfo) -> bool:
    return info.crd is not None or info.storage in GENERATION_KINDS


# ------------------------------------------------------------------------------------------ validation


def validate_name(info: ResourceInfo, name: str, field: str = "metadata.name") -> list[JSON]:
    if info.storage in PATH_NAMED:
        if name in (".", "..") or "/" in name or "%" in name:
            return [field_cause("FieldValueInvalid", field, f"Invalid value: \"{name}\": may not contain '/' or '%'")]
        return []
    if info.storage in LABEL_NAMED:
        if len(name) > 63 or not DNS1123_LABEL.match(name):
            what = "a lowercase RFC 1123 label"
            if info.storage == ("", "services"):
                what = "a DNS-1035 label"
            return [
                field_cause(
                    "FieldValueInvalid",
                    field,
                    f'Invalid value: "{name}": {what} must consist of lower case alphanumeric '
                    "characters or '-', and must start and end with an alphanumeric character",
                )
            ]
        return []
    if len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        return [
            field_cause(
                "FieldValueInvalid",
                field,
                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
                "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                "character (e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            )
        ]
    return []


# Label keys and values repeat across objects: remember the valid ones (bounded) to keep writes cheap.
_VALID_KEYS: set[str] = set()
_VALID_VALUES: set[str] = set()
_CACHE_MAX = 50_000


def _remember(cache: set[str], item: str) -> None:
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache.add(item)


def validate_qualified_key(key: str, field: str) -> list[JSON]:
    if key in _VALID_KEYS:
        return []
    prefix, slash, name = key.rpartition("/")
    bad = not name or len(name) > 63 or not QUALIFIED_NAME.match(name)
    if slash and (not prefix or len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        bad = True
    if bad:
        return [
            field_cause(
                "FieldValueInvalid",
                field,
                f'Invalid value: "{key}": name part must consist of alphanumeric characters, '
                "'-', '_' or '.', and must start and end with an alphanumeric character",
            )
        ]
    _remember(_VALID_KEYS, key)
    return []


def validate_meta(info: ResourceInfo, obj: JSON) -> list[JSON]:
    meta = obj.get("metadata") or {}
    causes: list[JSON] = []
    name = meta.get("name") or ""
    if not name:
        causes.append(
            field_cause("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")
        )
    else:
        causes += validate_name(info, name)
    valid_keys, valid_values = _VALID_KEYS, _VALID_VALUES
    for key, val in (meta.get("labels") or {}).items():
        if key not in valid_keys:  # the remembered keys and values skip their checks (the common case)
            causes += validate_qualified_key(key, "metadata.labels")
        if isinstance(val, str) and val in valid_values:
            continue
        if isinstance(val, str) and len(val) <= 63 and LABEL_VALUE.match(val):
            _remember(valid_values, val)
        else:
            causes.append(
                field_cause(
                    "FieldValueInvalid",
                    "metadata.labels",
                    f'Invalid value: "{val}": a valid label must be an empty string or '
                    "consist of alphanumeric characters, '-', '_' or '.', and must start and "
                    "end with an alphanumeric character",
                )
            )
    annotations = meta.get("annotations") or {}
    total = 0
    for key, val in annotations.items():
        if key not in valid_keys:
            causes += validate_qualified_key(key, "metadata.annotations")
        total += len(key) + (len(val) if isinstance(val, str) else 0)
    if total > 256 * 1024:
        causes.append(
            field_cause("FieldValueTooLong", "metadata.annotations", "Too long: must have at most 262144 bytes")
        )
    for i, ref in enumerate(meta.get("ownerReferences") or []):
        for fld in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(fld):
                causes.append(
                    field_cause("FieldValueRequired", f"metadata.ownerReferences[{i}].{fld}", "Required value")
                )
    controllers = [r for r in meta.get("ownerReferences") or [] if r.get("controller")]
    if len(controllers) > 1:
        causes.append(
            field_cause(
                "FieldValueInvalid",
                "metadata.ownerReferences",
                "Invalid value: only one reference can have Controller set to true",
            )
        )
    return causes


def _validate_pod_spec(spec: Any, path: str) -> list[JSON]:
    causes: list[JSON] = []
    if not isinstance(spec, dict):
        return [field_cause("FieldValueRequired", path, "Required value")]
    containers = spec.get("containers")
    if not containers:
        causes.append(field_cause("FieldValueRequired", f"{path}.containers", "Required value"))
    seen: set[str] = set()
    for kind in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(kind) or []):
            cname = c.get("name", "") if isinstance(c, dict) else ""
            cpath = f"{path}.{kind}[{i}]"
            if not cname:
                causes.append(field_cause("FieldValueRequired", f"{cpath}.name", "Required value"))
            elif not DNS1123_LABEL.match(cname) or len(cname) > 63:
                causes.append(
                    field_cause(
                        "FieldValueInvalid",
                        f"{cpath}.name",
                        f'Invalid value: "{cname}": a lowercase RFC 1123 label must consist '
                        "of lower case alphanumeric characters or '-', and must start and end "
                        "with an alphanumeric character",
                    )
                )
            elif cname in seen:
                causes.append(field_cause("FieldValueDuplicate", f"{cpath}.name", f'Duplicate value: "{cname}"'))
            seen.add(cname)
            if isinstance(c, dict) and not c.get("image"):
                causes.append(field_cause("FieldValueRequired", f"{cpath}.image", "Required value"))
    return causes


def _pod_spec_changed(new: JSON, old: JSON) -> bool:
    """Whether a pod update changes a field other than the mutable ones (images, activeDeadlineSeconds, added
    tolerations, terminationGracePeriodSeconds, removed schedulingGates; nodeSelector and affinity while the
    pod is still gated)."""
    masked = dict(new)
    for kind in ("containers", "initContainers"):
        new_c, old_c = new.get(kind), old.get(kind)
        if isinstance(new_c, list) and isinstance(old_c, list) and len(new_c) == len(old_c):
            masked[kind] = [
                dict(n, image=o.get("image")) if isinstance(n, dict) and isinstance(o, dict) else n
                for n, o in zip(new_c, old_c, strict=True)
            ]
    for fld in ("activeDeadlineSeconds", "terminationGracePeriodSeconds"):
        if fld in old:
            masked[fld] = old[fld]
        else:
            masked.pop(fld, None)
    old_tols = old.get("tolerations") or []
    if all(t in (new.get("tolerations") or []) for t in old_tols):
        masked["tolerations"] = old.get("tolerations")
        if "tolerations" not in old:
            masked.pop("tolerations", None)
    old_gates = old.get("schedulingGates") or []
    if all(g in old_gates for g in new.get("schedulingGates") or []):
        masked["schedulingGates"] = old.get("schedulingGates")
        if "schedulingGates" not in old:
            masked.pop("schedulingGates", None)
    if old_gates:
        for fld in ("nodeSelector", "affinity"):
            if fld in old:
                masked[fld] = old[fld]
            else:
                masked.pop(fld, None)
    return masked != old


def validate(info: ResourceInfo, obj: JSON, old: JSON | None, subresource: str = "") -> list[JSON]:
    """Validation causes for a built-in object (metadata is validated for every kind)."""
    causes = validate_meta(info, obj)
    spec = obj.get("spec")
    if info.storage == ("", "pods"):
        causes += _validate_pod_spec(spec, "spec")
        old_spec = (old or {}).get("spec")
        if (
            subresource == ""
            and isinstance(spec, dict)
            and isinstance(old_spec, dict)
            and _pod_spec_changed(spec, old_spec)
        ):
            causes.append(
                field_cause(
                    "FieldValueForbidden",
                    "spec",
                    "Forbidden: pod updates may not change fields other than "
                    "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                    "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to "
                    "existing tolerations), `spec.terminationGracePeriodSeconds` "
                    "(allow it to be set to 1 if it was previously negative)",
                )
            )
    elif info.storage in _SELECTOR_IMMUTABLE:
        old_spec = (old or {}).get("spec")
        if (
            subresource == ""
            and isinstance(spec, dict)
            and isinstance(old_spec, dict)
            and spec.get("selector") != old_spec.get("selector")
        ):
            shown = orjson.dumps(spec.get("selector"), option=orjson.OPT_SORT_KEYS).decode()
            causes.append(
                field_cause("FieldValueInvalid", "spec.selector", f"Invalid value: {shown}: field is immutable")
            )
    elif info.storage == ("batch", "jobs"):
        causes += _validate_job(obj, old)
        if old is not None and subresource == "status":
            causes += job_status_causes(obj.get("status") or {}, old.get("status") or {})
    return causes


# apps/v1 workloads whose label selector cannot change after creation (ValidateImmutableField on update).
_SELECTOR_IMMUTABLE = {("apps", "deployments"), ("apps", "replicasets"), ("apps", "daemonsets")}


def _true(status: JSON, ctype: str) -> bool:
    return any(
        isinstance(c, dict) and c.get("type") == ctype and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def job_status_causes(new: JSON, old: JSON) -> list[JSON]:
    """The strengthened Job status rules (Kubernetes 1.32+, feature JobManagedBy): each rule is checked only
    when a field it looks at changes, so unrelated status writes to a Job with a bad status still go through."""
    causes: list[JSON] = []
    complete, failed = _true(new, "Complete"), _true(new, "Failed")
    finished = complete or failed
    was_complete, was_failed = _true(old, "Complete"), _true(old, "Failed")

    def changed(*fields: str) -> bool:
        return any(new.get(f) != old.get(f) for f in fields)

    complete_changed = complete != was_complete
    failed_changed = failed != was_failed
    finished_changed = finished != (was_complete or was_failed)
    if (was_complete and not complete) or (was_failed and not failed):
        causes.append(
            field_cause(
                "FieldValueInvalid",
                "status.conditions",
                'Invalid value: "array": cannot disable the terminal condition',
            )
        )
    if failed and (failed_changed or changed("failedIndexes")) and not _true(new, "FailureTarget"):
        causes.append(
            field_cause(
                "FieldValueInvalid",
                "status.conditions",
                'Invalid value: "array": cannot set Failed=True condition without the FailureTarget=true condition',
            )
        )
    if (
        complete
        and (complete_changed or _true(new, "SuccessCriteriaMet") != _true(old, "SuccessCriteriaMet"))
        and not _true(new, "SuccessCriteriaMet")
    ):
        causes.append(
            field_cause(
                "FieldValueInvalid",
                "status.conditions",
                'Invalid value: "array": cannot set Complete=True condition without the '
                "SuccessCriteriaMet=true condition",
            )
        )
    if complete and failed and (complete_changed or failed_changed):
        causes.append(
            field_cause(
                "FieldValueInvalid",
                "status.conditions",
                'Invalid value: "array": cannot set Complete=True and Failed=true conditions',
            )
        )
    if finished and (finished_changed or changed("active")) and int(new.get("active") or 0) > 0:
        causes.append(
            field_cause(
                "FieldValueInvalid",
                "status.active",
                f"Invalid value: {new.get('active')}: active>0 is invalid for finished job",
            )
        )
    if finished and (finished_changed or changed("startTime")) and not new.get("startTime"):
        causes.append(
            field_cause(
                "FieldValueRequired", "status.startTime", "Required value: startTime is required for finished job"
            )
        )
    if complete and (complete_changed or changed("completionTime")) and not new.get("completionTime"):
        causes.append(
            field_cause(
                "FieldValueRequired",
                "status.completionTime",
                "Required value: completionTime is required for Complete job",
            )
        )
    if not complete and (complete_changed or changed("completionTime")) and new.get("completionTime"):
        causes.append(
            field_cause(
                "FieldValueInvalid",
                "status.completionTime",
                f'Invalid value: "{new.get("completionTime")}": completionTime cannot be set before job is complete',
            )
        )
    if old.get("completionTime") and new.get("completionTime") != old.get("completionTime"):
        causes.append(
            field_cause(
                "FieldValueInvalid",
                "status.completionTime",
                f'Invalid value: "{new.get("completionTime")}": field is immutable',
            )
        )
    return causes


_JOB_IMMUTABLE = ("podFailurePolicy", "successPolicy", "managedBy")


def _immutable(field: str, value: Any) -> JSON:
    shown = f'"{value}"' if isinstance(value, str) else ('"object"' if isinstance(value, dict | list) else value)
    return field_cause("FieldValueInvalid", field, f"Invalid value: {shown}: field is immutable")


def _job_update_causes(spec: JSON, old_spec: JSON, old_status: JSON) -> list[JSON]:
    """Job spec update rules: the pod template is immutable except for scheduling directives, labels and
    annotations while the Job is suspended and has not started; completions only change together with
    parallelism on an Indexed Job (elastic Indexed Jobs); the policies are immutable."""
    causes: list[JSON] = []
    for fld in _JOB_IMMUTABLE:
        if spec.get(fld) != old_spec.get(fld):
            causes.append(_immutable(f"spec.{fld}", spec.get(fld)))
    tmpl, old_tmpl = spec.get("template") or {}, old_spec.get("template") or {}
    if tmpl != old_tmpl:
        suspended_conds = [c for c in old_status.get("conditions") or [] if c.get("type") == "Suspended"]
        mutable = (
            bool(old_spec.get("suspend"))
            and (not old_status.get("startTime") or any(c.get("status") == "True" for c in suspended_conds))
            and not old_status.get("active")
        )
        if not mutable:
            causes.append(_immutable("spec.template", tmpl))
        else:
            # As kube-apiserver (mutable scheduling directives and pod resources, both on by default): only the
            # pod spec is compared, less its scheduling directives and container resources.
            pod, old_pod = clone(tmpl.get("spec") or {}), old_tmpl.get("spec") or {}
            for fld in ("nodeSelector", "affinity", "tolerations", "schedulingGates"):
                _copy_field(pod, old_pod, fld)
            for kind in ("containers", "initContainers"):
                new_cs, old_cs = pod.get(kind) or [], old_pod.get(kind) or []
                if len(new_cs) == len(old_cs):
                    for c, old_c in zip(new_cs, old_cs, strict=True):
                        if isinstance(c, dict) and isinstance(old_c, dict) and c.get("name") == old_c.get("name"):
                            _copy_field(c, old_c, "resources")
            if pod != old_pod:
                causes.append(_immutable("spec.template.spec", tmpl.get("spec")))
    if spec.get("completions") != old_spec.get("completions"):
        elastic = (
            spec.get("completionMode") == "Indexed"
            and spec.get("completions") == spec.get("parallelism")
            and old_spec.get("completions") == old_spec.get("parallelism")
        )
        if not elastic:
            causes.append(_immutable("spec.completions", spec.get("completions")))
    return causes


def _copy_field(dst: JSON, src: JSON, fld: str) -> None:
    if fld in src:
        dst[fld] = src[fld]
    else:
        dst.pop(fld, None)


def _validate_job(obj: JSON, old: JSON | None) -> list[JSON]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [field_cause("FieldValueRequired", "spec", "Required value")]
    causes: list[JSON] = []
    tmpl = spec.get("template") or {}
    causes += _validate_pod_spec(tmpl.get("spec"), "spec.template.spec")
    policy = (tmpl.get("spec") or {}).get("restartPolicy")
    if policy not in ("OnFailure", "Never"):
        causes.append(
            field_cause(
                "FieldValueNotSupported",
                "spec.template.spec.restartPolicy",
                f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"',
            )
        )
    for fld in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds"):
        v = spec.get(fld)
        if v is not None and (not isinstance(v, int) or v < 0):
            causes.append(
                field_cause(
                    "FieldValueInvalid", f"spec.{fld}", f"Invalid value: {v}: must be greater than or equal to 0"
                )
            )
    if spec.get("completionMode") == "Indexed" and spec.get("completions") is None:
        causes.append(
            field_cause("FieldValueRequired", "spec.completions", "Required value: when completion mode is Indexed")
        )
    if spec.get("backoffLimitPerIndex") is not None and spec.get("completionMode") != "Indexed":
        causes.append(
            field_cause(
                "FieldValueForbidden", "spec.backoffLimitPerIndex", "Forbidden: requires indexed completion mode"
            )
        )
    if old is not None:
        old_spec = old.get("spec") or {}
        if spec.get("completionMode") != old_spec.get("completionMode"):
            causes.append(
                field_cause(
                    "FieldValueInvalid",
                    "spec.completionMode",
                    f'Invalid value: "{spec.get("completionMode")}": field is immutable',
                )
            )
        if spec.get("selector") != old_spec.get("selector"):
            causes.append(field_cause("FieldValueInvalid", "spec.selector", "Invalid value: field is immutable"))
        causes += _job_update_causes(spec, old_spec, old.get("status") or {})
    return causes


# ------------------------------------------------------------------------------------------ defaults


_SI_SUFFIXES = ((18, "E"), (15, "P"), (12, "T"), (9, "G"), (6, "M"), (3, "k"), (0, ""), (-3, "m"), (-6, "u"), (-9, "n"))


def canonical_quantity(value: Any) -> Any:
    """A quantity sent as a JSON number, as the API server stores and returns it: a string in canonical decimal SI
    form (``4`` → ``"4"``, ``0.5`` → ``"500m"``, ``2000`` → ``"2k"``; below a nano-unit rounds up). Strings and
    anything else are returned unchanged (the server's re-canonicalisation of strings is not simulated)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    amount = Decimal(str(value))
    if amount == 0:
        return "0"
    for exp, suffix in _SI_SUFFIXES:
        scaled = amount.scaleb(-exp)
        if scaled == scaled.to_integral_value():
            return f"{int(scaled)}{suffix}"
    return f"{int(amount.scaleb(9).to_integral_value(rounding=ROUND_CEILING))}n"


def _canonical_resources(res: Any, parts: tuple[str, ...] = ("requests", "limits")) -> None:
    """Container ``resources.requests``/``limits`` (or a node status's ``capacity``/``allocatable``): numbers
    become canonical quantity strings (issue 13)."""
    if not isinstance(res, dict):
        return
    for part in parts:
        amounts = res.get(part)
        if isinstance(amounts, dict):
            for name, value in amounts.items():
                amounts[name] = canonical_quantity(value)


def _default_container(c: JSON) -> None:
    _canonical_resources(c.get("resources"))
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    image = str(c.get("image", ""))
    tagged = ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
    c.setdefault("imagePullPolicy", "IfNotPresent" if tagged or "@" in image else "Always")
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        p.setdefault("protocol", "TCP")
    res = c.get("resources") or {}
    if res.get("limits") and not res.get("requests"):
        res["requests"] = dict(res["limits"])


def default_pod_spec(spec: JSON, restart_policy: str = "Always") -> None:
    spec.setdefault("restartPolicy", restart_policy)
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for kind in ("initContainers", "containers"):
        for c in spec.get(kind) or []:
            if isinstance(c, dict):
                _default_container(c)


def default(info: ResourceInfo, obj: JSON) -> None:
    """Scheme defaults for a built-in kind (applied on create and update, like decoding does)."""
    gr = info.storage
    spec = obj.get("spec")
    if gr == ("", "pods") and isinstance(spec, dict):
        default_pod_spec(spec)
        if spec.get("serviceAccountName") is None:
            spec["serviceAccountName"] = spec.get("serviceAccount") or "default"
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec.setdefault("priority", 0)
        tols = spec.setdefault("tolerations", [])
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
            if not any(t.get("key") == key for t in tols if isinstance(t, dict)):
                tols.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
    elif gr == ("batch", "jobs") and isinstance(spec, dict):
        tmpl = spec.setdefault("template", {})
        tspec = tmpl.get("spec")
        if isinstance(tspec, dict):
            default_pod_spec(tspec, "Never")
        spec.setdefault("completionMode", "NonIndexed")
        if spec.get("completions") is None and spec.get("parallelism") is None:
            spec["completions"] = 1
            spec["parallelism"] = 1
        spec.setdefault("parallelism", 1)
        if spec.get("backoffLimit") is None:
            spec["backoffLimit"] = 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6
        spec.setdefault("suspend", False)
        spec.setdefault("manualSelector", False)
        if spec.get("podReplacementPolicy") is None:
            failure_policy = spec.get("podFailurePolicy")
            spec["podReplacementPolicy"] = "Failed" if failure_policy else "TerminatingOrFailed"
    elif gr == ("", "services") and isinstance(spec, dict):
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        for p in spec.get("ports") or []:
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p.get("port"))
    elif gr == ("", "nodes"):
        _canonical_resources(obj.get("status"), ("capacity", "allocatable"))
    elif gr == ("", "namespaces"):
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
    elif gr == ("", "secrets"):
        obj.setdefault("type", "Opaque")


class ClusterIPs:
    """A tiny allocator for Service clusterIPs in 10.96.0.0/12."""

    def __init__(self) -> None:
        self._net = ipaddress.ip_network("10.96.0.0/12")
        self._next = 10

    def allocate(self) -> str:
        self._next += 1
        return str(self._net.network_address + self._next)


def prepare_create(info: ResourceInfo, obj: JSON, uid: str, ips: ClusterIPs) -> None:
    """``PrepareForCreate``: server-owned fields of a new object (status reset, generated selectors)."""
    gr = info.storage
    meta = obj["metadata"]
    if gr == ("", "pods"):
        obj["status"] = {"phase": "Pending", "qosClass": _qos(obj.get("spec") or {})}
    elif gr == ("batch", "jobs"):
        spec = obj.setdefault("spec", {})
        obj["status"] = {}
        tmpl = spec.setdefault("template", {})
        tmeta = tmpl.setdefault("metadata", {})
        tlabels = tmeta.setdefault("labels", {})
        if not spec.get("manualSelector"):
            name = meta.get("name", "")
            for key in ("batch.kubernetes.io/controller-uid", "controller-uid"):
                tlabels[key] = uid
            for key in ("batch.kubernetes.io/job-name", "job-name"):
                tlabels[key] = name
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        labels = meta.setdefault("labels", {})
        labels.setdefault("batch.kubernetes.io/controller-uid", uid)
        labels.setdefault("batch.kubernetes.io/job-name", meta.get("name", ""))
        labels.setdefault("controller-uid", uid)
        labels.setdefault("job-name", meta.get("name", ""))
    elif gr == ("", "services"):
        spec = obj.setdefault("spec", {})
        if spec.get("clusterIP") != "None" and spec.get("type", "ClusterIP") != "ExternalName":
            if not spec.get("clusterIP"):
                spec["clusterIP"] = ips.allocate()
            spec["clusterIPs"] = [spec["clusterIP"]]
        elif spec.get("clusterIP") == "None":
            spec["clusterIPs"] = ["None"]
        spec.setdefault("ipFamilies", ["IPv4"])
        obj["status"] = {"loadBalancer": {}}
    elif gr == ("", "namespaces"):
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
        obj["status"] = {"phase": "Active"}
    elif gr in (("", "persistentvolumeclaims"),):
        obj["status"] = {"phase": "Pending"}
    elif info.status and info.crd is None and gr != ("", "nodes"):
        obj.pop("status", None)
    if info.crd is not None and info.status:
        obj.pop("status", None)


def _qos(spec: JSON) -> str:
    requests_any = False
    guaranteed = True
    for c in spec.get("containers") or []:
        res = c.get("resources") or {} if isinstance(c, dict) else {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            requests_any = True
        for r in ("cpu", "memory"):
            if not lim.get(r) or (req.get(r) and req.get(r) != lim.get(r)):
                guaranteed = False
    if not requests_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
