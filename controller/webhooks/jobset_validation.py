"""JobSet validation (the ``vjobset.kb.io`` validating webhook) as pure functions over raw JSON.

Role: every rejection of behaviour.md §5.5 with the reference controller's messages, plus our decision D2
(a replicated job may not depend on itself). Three entry points:

* ``validate_create(obj, gates, pvc_lookup)`` — the webhook's CREATE checks;
* ``validate_update(new, old, gates)`` — the UPDATE checks (immutability, suspended-template and ElasticJobSet
  exceptions); create checks are deliberately *not* re-run, like the reference;
* ``validate_schema_rules(obj, old=None)`` — re-exported from ``jobset_schema``: what the CRD schema and its
  CEL rules reject in the API server. The webhook does not need them when the real CRD is installed; kubesim
  and tests compare against them.

Error paths. The reference wraps its plain-``error`` rejections as ``InternalError`` with a nil path, which
Kubernetes prints as ``<nil>: Internal error: <message>``. We keep the type and the exact message but give each
one the path of the offending field (e.g. ``spec.replicatedJobs[1].dependsOn[0].name: Internal error:
replicatedJob: b cannot depend on replicatedJob: c``), so every error names a field under ``metadata`` or
``spec``. Field errors the reference already builds with a path keep that path verbatim — including its
``spec.volumeClaimPolicies[i].template[j]`` spelling (singular ``template``).

Equality for immutability follows ``apiequality.Semantic.DeepEqual`` on the raw JSON: null, absent, empty
list and empty object are the same; scalars must match exactly (so ``""`` vs absent differ, which only
matters for non-pointer Go fields and is a known, harmless deviation).

Our size limits (``jobset_limits``: total Jobs, replicated jobs, encoded bytes) are reported first on CREATE,
before the reference's errors; on UPDATE only the byte limit applies, to growth.

Invariants: pure (the only outside call is the injected ``pvc_lookup``); never raises for JSON-compatible
input — malformed input yields type errors with field paths and no rule runs on it; errors come out in the
reference's order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from api import extensions as ext
from api.constants import (
    COORDINATOR_KEY,
    GATE_ELASTIC_JOBSET,
    GATE_IN_PLACE_RESTART,
    GATE_RESTART_JOB,
    GROUP,
    KIND,
    MAX_REPLICAS_WITH_RESTART_JOB,
)
from api.jobset_types import RESTART_JOB_ACTIONS
from api.jsontypes import json_copy
from controller.decide import frameworkenv
from controller.webhooks.dns import (
    is_dns1035_label,
    is_dns1123_subdomain,
    is_domain_prefixed_path,
    is_valid_label_value,
)
from controller.webhooks.fielderrors import ErrorList, FieldError, Path, go_quote, invalid_status
from controller.webhooks.jobset_limits import limit_errors, update_size_errors
from controller.webhooks.jobset_schema import validate_schema_rules
from controller.webhooks.jsonview import (
    INT32_MAX,
    JobSetView,
    RJobView,
    check_depth,
    get_path,
    parse_jobset,
    raw_list,
    semantic_equal,
)

__all__ = [
    "PvcLookup",
    "rejection_status",
    "semantic_equal",
    "validate_create",
    "validate_delete",
    "validate_schema_rules",
    "validate_update",
]

PvcLookup = Callable[[str], Mapping[str, Any] | None]
"""Returns the PVC object of that name in the JobSet's namespace, ``None`` if absent; may raise on errors."""


DNS1035_TOO_LONG: Final = "must be no more than 63 characters"
GROUP_NAME_TOO_LONG: Final = ".spec.replicatedJob[].groupName is too long, must be less than 63 characters"
JOB_NAME_TOO_LONG: Final = "JobSet name is too long, job names generated for this JobSet will exceed 63 characters"
POD_NAME_TOO_LONG: Final = "JobSet name is too long, pod names generated for this JobSet will exceed 63 characters"
SUBDOMAIN_TOO_LONG: Final = ".spec.network.subdomain is too long, must be less than 63 characters"
IMMUTABLE: Final = "field is immutable"
MAX_MANAGED_BY_LENGTH: Final = 63
MAX_PVC_NAME_LENGTH: Final = 63
VALID_FAILURE_REASONS: Final = (
    "BackoffLimitExceeded",
    "DeadlineExceeded",
    "FailedIndexes",
    "MaxFailedIndexesExceeded",
    "PodFailurePolicy",
)
_RULE_NAME_RE: Final = re.compile(r"[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?")
_RULE_NAME_MIN, _RULE_NAME_MAX = 1, 128

_SPEC = Path("spec")


def _gate(gates: Mapping[str, bool], name: str) -> bool:
    return bool(gates.get(name, False))


# ============================================================================================= create


def validate_create(obj: Any, gates: Mapping[str, bool], pvc_lookup: PvcLookup | None = None) -> ErrorList:
    """All CREATE rejections of behaviour.md §5.5 (plus D2), in the reference's order; empty means allowed."""
    view, errors = parse_jobset(obj)
    if view is None:
        return errors
    errs = limit_errors(obj, view)  # ours first; every rule below is linear, so a huge JobSet is answered fast
    in_place = view.failure_policy is not None and view.failure_policy.restart_strategy == "InPlaceRestart"
    if in_place and not _gate(gates, GATE_IN_PLACE_RESTART):
        assert view.failure_policy is not None
        errs.append(
            FieldError.internal(
                view.failure_policy.path.child("restartStrategy"),
                "InPlaceRestart restart strategy cannot be set when InPlaceRestart feature gate is disabled",
            )
        )
    if view.rjobs and view.rjobs[0].depends_on is not None:
        errs.append(
            FieldError.internal(
                view.rjobs[0].path.child("dependsOn"), "DependsOn can't be set for the first ReplicatedJob"
            )
        )
    errs.extend(_subdomain_errors(view))
    errs.extend(_managed_by_errors(view.managed_by))

    seen: set[str] = set()
    for rjob in view.rjobs:
        seen.add(rjob.name)
        errs.extend(_rjob_errors(view, rjob, seen))
        if in_place and _gate(gates, GATE_IN_PLACE_RESTART):
            errs.extend(_in_place_errors(rjob))

    for path, target in view.success_targets:
        if target not in seen:
            errs.append(
                FieldError.internal(
                    path, f"invalid replicatedJob name '{target}' does not appear in .spec.ReplicatedJobs"
                )
            )
    annotations = _annotations(obj)
    extra_reasons = (ext.REASON_STARTUP_DEADLINE_EXCEEDED,) if ext.STARTUP_DEADLINE in annotations else ()
    errs.extend(_failure_policy_errors(view, seen, gates, extra_reasons))
    errs.extend(_coordinator_errors(view))
    errs.extend(_volume_claim_errors(view, pvc_lookup))
    errs.extend(_extension_errors(annotations))
    errs.extend(framework_env_errors(obj))
    return errs


def _annotations(obj: Any) -> dict[str, str]:
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    raw = meta.get("annotations") if isinstance(meta, Mapping) else None
    if not isinstance(raw, Mapping):
        return {}
    return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}


_ANNOTATIONS = Path("metadata").child("annotations")


def _extension_errors(annotations: Mapping[str, str]) -> ErrorList:
    """Ours: the values of pyjobset's extension annotations (docs/design/extensions.md) must parse."""
    errs = ErrorList()
    for key, value, form in ext.option_errors(annotations):
        errs.append(FieldError.invalid(_ANNOTATIONS.key(key), value, f"pyjobset extension annotation: must be {form}"))
    return errs


def framework_env_errors(obj: Any, old: Any = None) -> ErrorList:
    """Malformed ``pyjobset.io/`` annotations (ours, docs/design/extensions.md), each naming the expected form.

    On UPDATE (``old`` given) only annotations whose value changed are checked, so a JobSet admitted before this
    check existed can still be updated."""
    annotations = _annotations(obj)
    before = _annotations(old) if old is not None else {}
    return ErrorList(
        FieldError.invalid(_ANNOTATIONS.key(key), value, message)
        for key, value, message in frameworkenv.annotation_errors(annotations)
        if old is None or before.get(key) != value
    )


def _dns1035_with(value: str, too_long: str) -> list[str]:
    return [too_long if DNS1035_TOO_LONG in msg else msg for msg in is_dns1035_label(value)]


def _subdomain_errors(view: JobSetView) -> ErrorList:
    errs = ErrorList()
    if view.subdomain:
        path = _SPEC.child("network", "subdomain")
        # Both checks run: the subdomain names the headless Service too, so it must be a DNS-1035 label.
        errs.extend(FieldError.invalid(path, view.subdomain, m) for m in is_dns1123_subdomain(view.subdomain))
        errs.extend(
            FieldError.invalid(path, view.subdomain, m) for m in _dns1035_with(view.subdomain, SUBDOMAIN_TOO_LONG)
        )
    return errs


def _managed_by_errors(managed_by: str | None) -> ErrorList:
    errs = ErrorList()
    if managed_by is not None:
        path = _SPEC.child("managedBy")
        errs.extend(is_domain_prefixed_path(path, managed_by))
        if len(managed_by.encode("utf-8", "surrogatepass")) > MAX_MANAGED_BY_LENGTH:
            errs.append(FieldError.too_long(path, MAX_MANAGED_BY_LENGTH))
    return errs


def _rjob_errors(view: JobSetView, rjob: RJobView, seen: set[str]) -> ErrorList:
    errs = ErrorList()
    parallelism = 1 if rjob.parallelism is None else rjob.parallelism
    if parallelism * rjob.replicas > INT32_MAX:
        errs.append(
            FieldError.internal(
                rjob.path.child("replicas"),
                f"the product of replicas and parallelism must not exceed {INT32_MAX} for replicatedJob '{rjob.name}'",
            )
        )
    errs.extend(
        FieldError.invalid(rjob.path.child("groupName"), rjob.group_name, m)
        for m in _dns1035_with(rjob.group_name, GROUP_NAME_TOO_LONG)
    )
    longest_job = f"{view.validation_name}-{rjob.name}-{rjob.replicas - 1}"
    errs.extend(
        FieldError.invalid(rjob.path.child("name"), longest_job, m)
        for m in _dns1035_with(longest_job, JOB_NAME_TOO_LONG)
    )
    if rjob.indexed and rjob.completions is not None:
        longest_pod = f"{longest_job}-{rjob.completions - 1}-abcde"
        # The reference reports the job name as the bad value here too; kept for identical output.
        errs.extend(
            FieldError.invalid(rjob.path.child("name"), longest_job, m)
            for m in _dns1035_with(longest_pod, POD_NAME_TOO_LONG)
        )
    for dep in rjob.depends_on or ():
        if dep.name == rjob.name:
            # D2: the reference accepts this and the job is then never created (a silent deadlock).
            errs.append(
                FieldError.invalid(
                    dep.path.child("name"), dep.name, f"replicatedJob {rjob.name} cannot depend on itself"
                )
            )
        elif dep.name not in seen:
            errs.append(
                FieldError.internal(
                    dep.path.child("name"), f"replicatedJob: {rjob.name} cannot depend on replicatedJob: {dep.name}"
                )
            )
    return errs


def _in_place_errors(rjob: RJobView) -> ErrorList:
    errs = ErrorList()
    spec = rjob.path.child("template", "spec")
    if rjob.backoff_limit != INT32_MAX:
        errs.append(
            FieldError.invalid(
                spec.child("backoffLimit"),
                rjob.backoff_limit,
                f"replicatedJob {rjob.name}: must be set to {INT32_MAX} (MaxInt32) when in-place restart is enabled",
            )
        )
    if rjob.pod_replacement_policy != "Failed":
        errs.append(
            FieldError.invalid(
                spec.child("podReplacementPolicy"),
                rjob.pod_replacement_policy,
                f"replicatedJob {rjob.name}: must be set to Failed when in-place restart is enabled",
            )
        )
    if rjob.completions is None or rjob.parallelism is None or rjob.completions != rjob.parallelism:
        errs.append(
            FieldError.invalid(
                spec.child("completions"),
                rjob.completions,
                f"replicatedJob {rjob.name}: completions and parallelism must be set and equal to each other "
                "when in-place restart is enabled",
            )
        )
    return errs


def _failure_policy_errors(
    view: JobSetView, names: set[str], gates: Mapping[str, bool], extra_reasons: Sequence[str] = ()
) -> ErrorList:
    """``extra_reasons``: failure reasons our extensions add (``StartupDeadlineExceeded`` with the annotation)."""
    errs = ErrorList()
    policy = view.failure_policy
    if policy is None:
        return errs
    restart_job_rule = next((r for r in policy.rules if r.action in RESTART_JOB_ACTIONS), None)
    if restart_job_rule is not None:
        if not _gate(gates, GATE_RESTART_JOB):
            # The reference stops validating the failure policy after this one.
            errs.append(
                FieldError.internal(
                    restart_job_rule.path.child("action"),
                    "RestartJob and RestartJobAndIgnoreMaxRestarts failure policy actions are not allowed "
                    "when RestartJob feature gate is disabled",
                )
            )
            return errs
        big = next((rj for rj in view.rjobs if rj.replicas > MAX_REPLICAS_WITH_RESTART_JOB), None)
        if big is not None:
            errs.append(
                FieldError.internal(
                    big.path.child("replicas"),
                    "JobSet cannot have a failure policy rule with RestartJob or RestartJobAndIgnoreMaxRestarts "
                    f"action and a replicated job with replicas > {MAX_REPLICAS_WITH_RESTART_JOB}",
                )
            )

    indices_by_name: dict[str, list[int]] = {}
    for index, rule in enumerate(policy.rules):
        name_path = rule.path.child("name")
        length = len(rule.name.encode("utf-8", "surrogatepass"))
        if not _RULE_NAME_MIN <= length <= _RULE_NAME_MAX:
            errs.append(
                FieldError.internal(
                    name_path,
                    f"invalid failure policy rule name of length {length}, the rule name must be at least "
                    f"{_RULE_NAME_MIN} characters long and at most {_RULE_NAME_MAX} characters long",
                )
            )
        indices_by_name.setdefault(rule.name, []).append(index)
        if _RULE_NAME_RE.fullmatch(rule.name) is None:
            errs.append(
                FieldError.internal(
                    name_path,
                    f"invalid failure policy rule name '{rule.name}', a failure policy rule name must start with "
                    "an alphabetic character, optionally followed by a string of alphanumeric characters or "
                    "'_,:', and must end with an alphanumeric character or '_'",
                )
            )
        for path, target in rule.targets:
            if target not in names:
                errs.append(
                    FieldError.internal(
                        path,
                        f"invalid replicatedJob name '{target}' in failure policy does not appear in "
                        ".spec.ReplicatedJobs",
                    )
                )
        for path, reason in rule.reasons:
            if reason not in VALID_FAILURE_REASONS and reason not in extra_reasons:
                errs.append(
                    FieldError.internal(
                        path,
                        f"invalid job failure reason '{reason}' in failure policy is not a recognized job "
                        "failure reason",
                    )
                )
    # Go iterates a map here (random order); we report duplicates in order of first appearance.
    for name, indices in indices_by_name.items():
        if len(indices) > 1:
            shown = " ".join(str(i) for i in indices)
            errs.append(
                FieldError.internal(
                    policy.rules[indices[0]].path.child("name"),
                    f"rule names are not unique, rules with indices [{shown}] all have the same name '{name}'",
                )
            )
    return errs


def _coordinator_errors(view: JobSetView) -> ErrorList:
    errs = ErrorList()
    coordinator = view.coordinator
    if coordinator is None:
        return errs
    path = _SPEC.child("coordinator")
    rjob = next((rj for rj in view.rjobs if rj.name == coordinator.replicated_job), None)
    if rjob is None:
        errs.append(
            FieldError.internal(
                path.child("replicatedJob"), f"coordinator replicatedJob {coordinator.replicated_job} does not exist"
            )
        )
    elif not 0 <= coordinator.job_index < rjob.replicas:
        errs.append(
            FieldError.internal(
                path.child("jobIndex"),
                f"coordinator job index {coordinator.job_index} is invalid for replicatedJob {rjob.name}",
            )
        )
    elif not rjob.indexed or rjob.completions is None:
        errs.append(
            FieldError.internal(
                path.child("replicatedJob"),
                "job for coordinator pod must be indexed completion mode, and completions number must be set",
            )
        )
    elif not 0 <= coordinator.pod_index < rjob.completions:
        errs.append(
            FieldError.internal(
                path.child("podIndex"),
                f"coordinator pod index {coordinator.pod_index} is invalid for replicatedJob "
                f"{coordinator.replicated_job} job index {coordinator.job_index}",
            )
        )
    endpoint = (
        f"{view.validation_name}-{coordinator.replicated_job}-{coordinator.job_index}-"
        f"{coordinator.pod_index}.{view.effective_subdomain}"
    )
    label_errors = is_valid_label_value(endpoint)
    if label_errors:
        errs.append(
            FieldError.internal(
                path,
                f"spec will lead to invalid label value {go_quote(endpoint)} for coordinator label "
                f"{go_quote(COORDINATOR_KEY)} (long JobSet / ReplicatedJob / SubDomain name?): "
                f"{', '.join(label_errors)}",
            )
        )
    return errs


def _volume_claim_errors(view: JobSetView, pvc_lookup: PvcLookup | None) -> ErrorList:
    errs = ErrorList()
    if not view.policies:
        return errs
    claim_names: set[str] = set()
    # Indexed once so that many claims times many replicated jobs stays linear.
    mounted = frozenset().union(*(rjob.mounted_names for rjob in view.rjobs))
    volumes: dict[str, list[Path]] = {}
    for rjob in view.rjobs:
        vpath = rjob.path.child("template", "spec", "template", "spec", "volumes")
        for i, name in enumerate(rjob.volume_names):
            volumes.setdefault(name, []).append(vpath.index(i).child("name"))
    for policy in view.policies:
        for index, template in enumerate(policy.templates):
            # The reference names this path ``template[j]`` although the field is ``templates``; kept verbatim.
            tpath = policy.path.child("template").index(index)
            name_path = tpath.child("name")
            if template.name in claim_names:
                errs.append(
                    FieldError.invalid(
                        name_path, template.name, "names must be unique for VolumeClaimPolicies template"
                    )
                )
            errs.extend(FieldError.invalid(name_path, template.name, m) for m in is_dns1123_subdomain(template.name))
            pvc_name = f"{template.name}-{view.validation_name}"
            if len(pvc_name.encode("utf-8", "surrogatepass")) > MAX_PVC_NAME_LENGTH:
                errs.append(
                    FieldError.invalid(name_path, template.name, "VolumeClaimPolicies template name is too long")
                )
            errs.extend(_claim_mount_errors(view, template.name, mounted, volumes.get(template.name, ())))
            if pvc_lookup is not None:
                errs.extend(
                    _existing_pvc_errors(
                        view, policy.path, policy.when_deleted, tpath, template.spec, pvc_name, pvc_lookup
                    )
                )
            claim_names.add(template.name)
    return errs


def _claim_mount_errors(view: JobSetView, claim: str, mounted: frozenset[str], conflicts: Sequence[Path]) -> ErrorList:
    errs = ErrorList(
        FieldError.invalid(path, claim, f"volume name conflicts with VolumeClaimPolicy template name: {claim}")
        for path in conflicts
    )
    if claim not in mounted:
        errs.append(
            FieldError.invalid(
                _SPEC.child("replicatedJobs"),
                raw_list(view.spec.get("replicatedJobs")),
                f"replicatedJob containers don't have a matching volumeMount: {claim} from VolumeClaimPolicies",
            )
        )
    return errs


def _existing_pvc_errors(
    view: JobSetView,
    policy_path: Path,
    when_deleted: str | None,
    template_path: Path,
    template_spec: Any,
    pvc_name: str,
    pvc_lookup: PvcLookup,
) -> ErrorList:
    errs = ErrorList()
    try:
        existing = pvc_lookup(pvc_name)
    except Exception as exc:  # noqa: BLE001 — any lookup failure becomes the reference's internal error
        errs.append(FieldError.internal(template_path, f"failed to check for existing PVC {pvc_name}: {exc}"))
        return errs
    if existing is None:
        return errs
    existing_spec = existing.get("spec") if isinstance(existing, Mapping) else None
    unreadable = check_depth(existing_spec, Path("spec")) is not None
    if unreadable or not semantic_equal(existing_spec, template_spec):
        errs.append(
            FieldError.invalid(
                template_path.child("spec"),
                template_spec,
                f"spec does not match existing PVC {pvc_name} in namespace {view.namespace}",
            )
        )
    if when_deleted is not None and when_deleted != "Retain":
        errs.append(
            FieldError.invalid(
                policy_path.child("retentionPolicy", "whenDeleted"),
                when_deleted,
                "retentionPolicy must be retain when PVC exists",
            )
        )
    return errs


# ============================================================================================= update


def validate_update(new: Any, old: Any, gates: Mapping[str, bool]) -> ErrorList:
    """The UPDATE rejections of behaviour.md §5.5: ElasticJobSet scaling rules, then immutability; empty = allowed."""
    new_view, errors = parse_jobset(new)
    if new_view is None:
        return errors
    old_view, old_errors = parse_jobset(old)
    if old_view is None:
        first = old_errors[0] if old_errors else None
        return ErrorList([FieldError.internal(_SPEC, f"the stored JobSet cannot be read: {first}")])

    errs = update_size_errors(new, old, new_view)
    old_by_name = {rj.name: rj for rj in old_view.rjobs}
    munged = json_copy(raw_list(new_view.spec.get("replicatedJobs")))

    if _gate(gates, GATE_ELASTIC_JOBSET):
        for rjob in new_view.rjobs:
            old_rjob = old_by_name.get(rjob.name)
            if old_rjob is None or not rjob.indexed:
                continue
            errs.extend(_elastic_errors(rjob, old_rjob, terminal=old_view.terminal))
            for key in ("parallelism", "completions"):
                _put(munged[rjob.index], ("template", "spec", key), get_path(old_rjob.raw, ("template", "spec", key)))

    if old_view.suspend or new_view.suspend:
        # Kueue / DWS inject scheduling directives into the pod template of suspended JobSets.
        for rjob in new_view.rjobs:
            old_rjob = old_by_name.get(rjob.name)
            if old_rjob is None:
                continue
            for keys in _SUSPENDED_MUTABLE:
                _put(munged[rjob.index], keys, get_path(old_rjob.raw, keys))

    old_rjobs = raw_list(old_view.spec.get("replicatedJobs"))
    if not semantic_equal(munged, old_rjobs):
        errs.append(FieldError.invalid(_SPEC.child("replicatedJobs"), munged, IMMUTABLE))
    if new_view.managed_by != old_view.managed_by:
        errs.append(FieldError.invalid(_SPEC.child("managedBy"), new_view.managed_by, IMMUTABLE))
    errs.extend(_extension_errors(_annotations(new)))
    errs.extend(framework_env_errors(new, old))
    return errs


_POD = ("template", "spec", "template")
_SUSPENDED_MUTABLE: Final = (
    (*_POD, "metadata", "annotations"),
    (*_POD, "metadata", "labels"),
    (*_POD, "spec", "nodeSelector"),
    (*_POD, "spec", "tolerations"),
    (*_POD, "spec", "schedulingGates"),
)


def _elastic_errors(rjob: RJobView, old_rjob: RJobView, *, terminal: bool) -> ErrorList:
    errs = ErrorList()
    parallelism_changed = rjob.parallelism != old_rjob.parallelism
    completions_changed = rjob.completions != old_rjob.completions
    if not (parallelism_changed or completions_changed):
        return errs
    path = rjob.path.child("template", "spec")
    if terminal:
        errs.append(
            FieldError.forbidden(
                path,
                "Cannot mutate parallelism or completions when JobSet is in a terminal state (Completed or Failed)",
            )
        )
        return errs
    if parallelism_changed and rjob.parallelism is not None and rjob.parallelism < 1:
        errs.append(FieldError.invalid(path.child("parallelism"), rjob.parallelism, "parallelism must be >= 1"))
    if completions_changed and rjob.completions is not None and rjob.completions < 1:
        errs.append(FieldError.invalid(path.child("completions"), rjob.completions, "completions must be >= 1"))
    if rjob.parallelism is not None and rjob.completions is not None and rjob.parallelism != rjob.completions:
        errs.append(
            FieldError.invalid(
                path.child("completions"),
                rjob.completions,
                "completions must be equal to parallelism for Elastic Indexed Jobs",
            )
        )
    return errs


def _put(obj: Any, keys: Sequence[str], value: Any) -> None:
    """Set ``obj[k1][k2]...`` to ``value`` (creating objects on the way); ``None`` removes the key."""
    for key in keys[:-1]:
        if not isinstance(obj, dict):
            return
        child = obj.get(key)
        if not isinstance(child, dict):
            if value is None:
                return
            child = obj[key] = {}
        obj = child
    if isinstance(obj, dict):
        if value is None:
            obj.pop(keys[-1], None)
        else:
            obj[keys[-1]] = json_copy(value)


def validate_delete(_obj: Any) -> ErrorList:
    """DELETE is always allowed (the reference's ``ValidateDelete`` returns nothing)."""
    return ErrorList()


def rejection_status(obj: Any, errors: Sequence[FieldError]) -> dict[str, Any]:
    """The 422 ``Status`` the webhook answers with: ``JobSet.jobset.x-k8s.io "<name>" is invalid: ...``.

    The name is ``metadata.name`` as sent (empty for ``generateName`` objects, like the reference).
    """
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return invalid_status(KIND, GROUP, name if isinstance(name, str) else "", errors)
