"""Typed, read-only views of a raw JobSet JSON object, built without ever raising.

Role: the admission webhooks receive raw JSON and must answer malformed input (a string where an int belongs,
a list where a map belongs, absurd nesting) with a clean field error instead of an exception. ``parse_jobset``
walks exactly the fields the validation rules read, records a field error for every JSON-type mismatch, and
returns small frozen views the rules can trust. Absent fields take the values the CRD schema defaults them to
(``groupName: default``, ``replicas: 1``, ``restartStrategy: Recreate``, ``whenDeleted: Delete``), because the API
server applies those before any webhook runs; the values are read from the schema in ``api.jobset_types``.

Invariants: never raises for any JSON-compatible input; a view is only used when its error list is empty;
nesting is bounded (``MAX_DEPTH``) before any recursive code (equality, rendering) touches the object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from api.jobset_types import FailurePolicy, ReplicatedJob, RetentionPolicy, schema_default
from controller.webhooks.fielderrors import OMIT, ErrorList, FieldError, Path, go_quote

__all__ = [
    "INT32_MAX",
    "MAX_DEPTH",
    "CoordinatorView",
    "DependsOnView",
    "FailurePolicyView",
    "JobSetView",
    "PolicyView",
    "RJobView",
    "RuleView",
    "TemplateView",
    "check_depth",
    "get_path",
    "json_type",
    "parse_jobset",
    "raw_list",
    "semantic_equal",
]

_T = TypeVar("_T")
INT32_MAX: Final = 2**31 - 1
INT32_MIN: Final = -(2**31)
INT64_MAX: Final = 2**63 - 1
INT64_MIN: Final = -(2**63)
MAX_DEPTH: Final = 100
# The random suffix the API server appends to generateName; only its length and alphabet matter here.
GENERATED_SUFFIX: Final = "xxxxx"
_MAX_GENERATED_BASE: Final = 58
# What the CRD schema defaults (the API server applies these before any webhook runs).
_DEFAULT_GROUP_NAME: Final[str] = schema_default(ReplicatedJob, "group_name")
_DEFAULT_REPLICAS: Final[int] = schema_default(ReplicatedJob, "replicas")
_DEFAULT_RESTART_STRATEGY: Final[str] = schema_default(FailurePolicy, "restart_strategy")
_DEFAULT_WHEN_DELETED: Final[str] = schema_default(RetentionPolicy, "when_deleted")


def json_type(value: Any) -> str:
    """The OpenAPI type name of a decoded JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def check_depth(value: Any, root: Path, limit: int = MAX_DEPTH) -> FieldError | None:
    """An error at the first element nested deeper than ``limit`` levels below ``root``, else ``None``.

    Iterative on purpose: the input may be nested far beyond Python's recursion limit.
    """
    # (node, depth, parent entry, key) — the path is only rendered for the offending element.
    stack: list[tuple[Any, int, Any, str | int | None]] = [(value, 0, None, None)]
    while stack:
        entry = stack.pop()
        node, depth, _, _ = entry
        if depth > limit:
            return FieldError.invalid(_entry_path(entry, root), OMIT, f"nesting exceeds the maximum depth of {limit}")
        if isinstance(node, Mapping):
            stack.extend((child, depth + 1, entry, str(key)) for key, child in node.items())
        elif isinstance(node, list | tuple):
            stack.extend((child, depth + 1, entry, i) for i, child in enumerate(node))
    return None


def _entry_path(entry: tuple[Any, int, Any, str | int | None], root: Path) -> Path:
    keys: list[str | int] = []
    current: Any = entry
    while current is not None and current[3] is not None:
        keys.append(current[3])
        current = current[2]
    path = root
    for key in reversed(keys):
        path = path.index(key) if isinstance(key, int) else path.child(key)
    return path


class _Reader:
    """Typed getters that record a schema-style error instead of raising on a JSON-type mismatch."""

    def __init__(self) -> None:
        self.errors = ErrorList()

    def _mismatch(self, path: Path, value: Any, expected: str) -> None:
        actual = json_type(value)
        self.errors.append(
            FieldError.type_invalid(path, actual, f"{path} in body must be of type {expected}: {go_quote(actual)}")
        )

    def obj(self, parent: Mapping[str, Any] | None, key: str, path: Path) -> Mapping[str, Any] | None:
        value = parent.get(key) if parent is not None else None
        if value is None or isinstance(value, Mapping):
            return value
        self._mismatch(path, value, "object")
        return None

    def array(self, parent: Mapping[str, Any] | None, key: str, path: Path) -> list[Any] | None:
        value = parent.get(key) if parent is not None else None
        if value is None or isinstance(value, list):
            return value
        self._mismatch(path, value, "array")
        return None

    def string(self, parent: Mapping[str, Any] | None, key: str, path: Path) -> str | None:
        value = parent.get(key) if parent is not None else None
        if value is None or isinstance(value, str):
            return value
        self._mismatch(path, value, "string")
        return None

    def boolean(self, parent: Mapping[str, Any] | None, key: str, path: Path) -> bool | None:
        value = parent.get(key) if parent is not None else None
        if value is None or isinstance(value, bool):
            return value
        self._mismatch(path, value, "boolean")
        return None

    def integer(self, parent: Mapping[str, Any] | None, key: str, path: Path, *, int32: bool = True) -> int | None:
        value = parent.get(key) if parent is not None else None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self._mismatch(path, value, "integer")
            return None
        low, high = (INT32_MIN, INT32_MAX) if int32 else (INT64_MIN, INT64_MAX)
        if not low <= value <= high:
            bits = 32 if int32 else 64
            self.errors.append(FieldError.invalid(path, value, f"must fit in a {bits}-bit signed integer"))
            return None
        return value

    def strings(self, parent: Mapping[str, Any] | None, key: str, path: Path) -> list[tuple[Path, str]]:
        items = self.array(parent, key, path) or []
        out: list[tuple[Path, str]] = []
        for i, item in enumerate(items):
            if isinstance(item, str):
                out.append((path.index(i), item))
            else:
                self._mismatch(path.index(i), item, "string")
        return out

    def objects(self, parent: Mapping[str, Any] | None, key: str, path: Path) -> list[tuple[Path, Mapping[str, Any]]]:
        items = self.array(parent, key, path) or []
        out: list[tuple[Path, Mapping[str, Any]]] = []
        for i, item in enumerate(items):
            if isinstance(item, Mapping):
                out.append((path.index(i), item))
            else:
                self._mismatch(path.index(i), item, "object")
        return out


@dataclass(frozen=True, slots=True)
class DependsOnView:
    path: Path
    name: str
    status: str


@dataclass(frozen=True, slots=True)
class RJobView:
    index: int
    path: Path
    name: str
    group_name: str
    replicas: int
    depends_on: tuple[DependsOnView, ...] | None
    parallelism: int | None
    completions: int | None
    completion_mode: str | None
    backoff_limit: int | None
    pod_replacement_policy: str | None
    volume_names: tuple[str, ...]
    mounted_names: frozenset[str]
    raw: Mapping[str, Any]

    @property
    def indexed(self) -> bool:
        return self.completion_mode == "Indexed"


@dataclass(frozen=True, slots=True)
class RuleView:
    path: Path
    name: str
    action: str
    reasons: tuple[tuple[Path, str], ...]
    targets: tuple[tuple[Path, str], ...]


@dataclass(frozen=True, slots=True)
class FailurePolicyView:
    path: Path
    restart_strategy: str
    rules: tuple[RuleView, ...]


@dataclass(frozen=True, slots=True)
class CoordinatorView:
    replicated_job: str
    job_index: int
    pod_index: int


@dataclass(frozen=True, slots=True)
class TemplateView:
    path: Path
    name: str
    spec: Any


@dataclass(frozen=True, slots=True)
class PolicyView:
    path: Path
    when_deleted: str | None
    templates: tuple[TemplateView, ...]


@dataclass(frozen=True, slots=True)
class JobSetView:
    name: str
    validation_name: str
    namespace: str
    rjobs: tuple[RJobView, ...]
    subdomain: str
    success_targets: tuple[tuple[Path, str], ...]
    failure_policy: FailurePolicyView | None
    coordinator: CoordinatorView | None
    managed_by: str | None
    suspend: bool
    policies: tuple[PolicyView, ...]
    terminal: bool
    spec: Mapping[str, Any] = field(repr=False)

    @property
    def effective_subdomain(self) -> str:
        """The headless Service / pod subdomain: ``network.subdomain`` or the JobSet name."""
        return self.subdomain or self.validation_name


def _validation_name(name: str, generate_name: str) -> str:
    if name:
        return name
    if generate_name:
        return generate_name[:_MAX_GENERATED_BASE] + GENERATED_SUFFIX
    return ""


def parse_jobset(obj: Any) -> tuple[JobSetView | None, ErrorList]:
    """Build the view of a JobSet object, or return the field errors that prevent it."""
    reader = _Reader()
    if not isinstance(obj, Mapping):
        reader._mismatch(Path(""), obj, "object")
        return None, reader.errors
    for top in ("metadata", "spec"):
        too_deep = check_depth(obj.get(top), Path(top))
        if too_deep is not None:
            return None, ErrorList([too_deep])

    metadata = reader.obj(obj, "metadata", Path("metadata")) or {}
    name = reader.string(metadata, "name", Path("metadata.name")) or ""
    generate_name = reader.string(metadata, "generateName", Path("metadata.generateName")) or ""
    namespace = reader.string(metadata, "namespace", Path("metadata.namespace")) or ""

    sp = Path("spec")
    spec = reader.obj(obj, "spec", sp) or {}
    rjobs = tuple(
        _parse_rjob(reader, i, p, raw)
        for i, (p, raw) in enumerate(reader.objects(spec, "replicatedJobs", sp.child("replicatedJobs")))
    )

    network = reader.obj(spec, "network", sp.child("network"))
    subdomain = reader.string(network, "subdomain", sp.child("network", "subdomain")) or ""
    reader.boolean(network, "enableDNSHostnames", sp.child("network", "enableDNSHostnames"))
    reader.boolean(network, "publishNotReadyAddresses", sp.child("network", "publishNotReadyAddresses"))

    success = reader.obj(spec, "successPolicy", sp.child("successPolicy"))
    reader.string(success, "operator", sp.child("successPolicy", "operator"))
    targets = tuple(reader.strings(success, "targetReplicatedJobs", sp.child("successPolicy", "targetReplicatedJobs")))

    startup = reader.obj(spec, "startupPolicy", sp.child("startupPolicy"))
    reader.string(startup, "startupPolicyOrder", sp.child("startupPolicy", "startupPolicyOrder"))

    failure_policy = _parse_failure_policy(reader, spec, sp.child("failurePolicy"))

    coordinator = None
    cp = sp.child("coordinator")
    raw_coordinator = reader.obj(spec, "coordinator", cp)
    if raw_coordinator is not None:
        coordinator = CoordinatorView(
            replicated_job=reader.string(raw_coordinator, "replicatedJob", cp.child("replicatedJob")) or "",
            job_index=reader.integer(raw_coordinator, "jobIndex", cp.child("jobIndex"), int32=False) or 0,
            pod_index=reader.integer(raw_coordinator, "podIndex", cp.child("podIndex"), int32=False) or 0,
        )

    managed_by = reader.string(spec, "managedBy", sp.child("managedBy"))
    suspend = reader.boolean(spec, "suspend", sp.child("suspend")) or False
    reader.integer(spec, "ttlSecondsAfterFinished", sp.child("ttlSecondsAfterFinished"))
    policies = _parse_policies(reader, spec, sp.child("volumeClaimPolicies"))
    terminal = _is_terminal(obj.get("status"))

    view = JobSetView(
        name=name,
        validation_name=_validation_name(name, generate_name),
        namespace=namespace,
        rjobs=rjobs,
        subdomain=subdomain,
        success_targets=targets,
        failure_policy=failure_policy,
        coordinator=coordinator,
        managed_by=managed_by,
        suspend=suspend,
        policies=policies,
        terminal=terminal,
        spec=spec,
    )
    return (None if reader.errors else view), reader.errors


def _parse_rjob(reader: _Reader, index: int, path: Path, raw: Mapping[str, Any]) -> RJobView:
    depends_on: tuple[DependsOnView, ...] | None = None
    if raw.get("dependsOn") is not None:
        items = reader.objects(raw, "dependsOn", path.child("dependsOn"))
        depends_on = tuple(
            DependsOnView(
                path=p,
                name=reader.string(item, "name", p.child("name")) or "",
                status=reader.string(item, "status", p.child("status")) or "",
            )
            for p, item in items
        )
    tp = path.child("template")
    template = reader.obj(raw, "template", tp)
    reader.obj(template, "metadata", tp.child("metadata"))
    jp = tp.child("spec")
    job_spec = reader.obj(template, "spec", jp)
    pp = jp.child("template")
    pod_template = reader.obj(job_spec, "template", pp)
    pmp = pp.child("metadata")
    pod_meta = reader.obj(pod_template, "metadata", pmp)
    reader.obj(pod_meta, "labels", pmp.child("labels"))
    reader.obj(pod_meta, "annotations", pmp.child("annotations"))
    psp = pp.child("spec")
    pod_spec = reader.obj(pod_template, "spec", psp)
    reader.string(pod_spec, "restartPolicy", psp.child("restartPolicy"))
    reader.obj(pod_spec, "nodeSelector", psp.child("nodeSelector"))
    reader.array(pod_spec, "tolerations", psp.child("tolerations"))
    reader.array(pod_spec, "schedulingGates", psp.child("schedulingGates"))
    volume_names = tuple(
        reader.string(volume, "name", p.child("name")) or ""
        for p, volume in reader.objects(pod_spec, "volumes", psp.child("volumes"))
    )
    mounted: set[str] = set()
    for key in ("initContainers", "containers"):
        for cpath, container in reader.objects(pod_spec, key, psp.child(key)):
            for mpath, mount in reader.objects(container, "volumeMounts", cpath.child("volumeMounts")):
                mounted.add(reader.string(mount, "name", mpath.child("name")) or "")
    return RJobView(
        index=index,
        path=path,
        name=reader.string(raw, "name", path.child("name")) or "",
        group_name=_default(reader.string(raw, "groupName", path.child("groupName")), _DEFAULT_GROUP_NAME),
        replicas=_default(reader.integer(raw, "replicas", path.child("replicas")), _DEFAULT_REPLICAS),
        depends_on=depends_on,
        parallelism=reader.integer(job_spec, "parallelism", jp.child("parallelism")),
        completions=reader.integer(job_spec, "completions", jp.child("completions")),
        completion_mode=reader.string(job_spec, "completionMode", jp.child("completionMode")),
        backoff_limit=reader.integer(job_spec, "backoffLimit", jp.child("backoffLimit")),
        pod_replacement_policy=reader.string(job_spec, "podReplacementPolicy", jp.child("podReplacementPolicy")),
        volume_names=volume_names,
        mounted_names=frozenset(mounted),
        raw=raw,
    )


def _default(value: _T | None, default: _T) -> _T:
    return default if value is None else value


def _parse_failure_policy(reader: _Reader, spec: Mapping[str, Any], path: Path) -> FailurePolicyView | None:
    raw = reader.obj(spec, "failurePolicy", path)
    if raw is None:
        return None
    reader.integer(raw, "maxRestarts", path.child("maxRestarts"))
    rules: list[RuleView] = []
    for p, rule in reader.objects(raw, "rules", path.child("rules")):
        reader.strings(rule, "onJobFailureMessagePatterns", p.child("onJobFailureMessagePatterns"))
        rules.append(
            RuleView(
                path=p,
                name=reader.string(rule, "name", p.child("name")) or "",
                action=reader.string(rule, "action", p.child("action")) or "",
                reasons=tuple(reader.strings(rule, "onJobFailureReasons", p.child("onJobFailureReasons"))),
                targets=tuple(reader.strings(rule, "targetReplicatedJobs", p.child("targetReplicatedJobs"))),
            )
        )
    strategy = _default(reader.string(raw, "restartStrategy", path.child("restartStrategy")), _DEFAULT_RESTART_STRATEGY)
    return FailurePolicyView(path=path, restart_strategy=strategy, rules=tuple(rules))


def _parse_policies(reader: _Reader, spec: Mapping[str, Any], path: Path) -> tuple[PolicyView, ...]:
    policies: list[PolicyView] = []
    for ppath, policy in reader.objects(spec, "volumeClaimPolicies", path):
        retention = reader.obj(policy, "retentionPolicy", ppath.child("retentionPolicy"))
        when_deleted = None
        if retention is not None:
            when_deleted = _default(
                reader.string(retention, "whenDeleted", ppath.child("retentionPolicy", "whenDeleted")),
                _DEFAULT_WHEN_DELETED,
            )
        templates: list[TemplateView] = []
        for tpath, template in reader.objects(policy, "templates", ppath.child("templates")):
            meta = reader.obj(template, "metadata", tpath.child("metadata"))
            reader.string(meta, "namespace", tpath.child("metadata", "namespace"))
            templates.append(
                TemplateView(
                    path=tpath,
                    name=reader.string(meta, "name", tpath.child("metadata", "name")) or "",
                    spec=reader.obj(template, "spec", tpath.child("spec")),
                )
            )
        policies.append(PolicyView(path=ppath, when_deleted=when_deleted, templates=tuple(templates)))
    return tuple(policies)


def _is_terminal(status: Any) -> bool:
    """Whether a (stored) status carries Completed=True or Failed=True; malformed status counts as not."""
    if not isinstance(status, Mapping) or not isinstance(status.get("conditions"), list):
        return False
    return any(
        isinstance(c, Mapping) and c.get("type") in ("Completed", "Failed") and c.get("status") == "True"
        for c in status["conditions"]
    )


# ============================================================================================= raw JSON helpers


def get_path(obj: Any, keys: Sequence[str]) -> Any:
    """``obj[k1][k2]...`` or ``None`` when a step is missing or not an object."""
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def raw_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


_EMPTY: Final = object()


def _prune(value: Any) -> Any:
    if value is None:
        return _EMPTY
    if isinstance(value, Mapping):
        out = {k: p for k, v in value.items() if (p := _prune(v)) is not _EMPTY}
        return out or _EMPTY
    if isinstance(value, list | tuple):
        return [_prune(v) for v in value] or _EMPTY
    if isinstance(value, bool):
        return (bool, value)  # JSON true is not the number 1
    return value


def semantic_equal(a: Any, b: Any) -> bool:
    """``Semantic.DeepEqual`` on raw JSON: null, absent, ``[]`` and ``{}`` compare equal; scalars exactly."""
    return bool(_prune(a) == _prune(b))
