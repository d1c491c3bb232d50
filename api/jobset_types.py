"""The ``jobset.x-k8s.io/v1alpha2`` JobSet API as typed, immutable msgspec records.

Role: the one source of truth for the JobSet schema. The controller decodes JobSets into these records, the
webhooks validate them, and ``deploy/crd/`` is generated from them (``api.crdgen``), so the CRD and the code
cannot drift. CRD-only facts (defaults applied by the API server, enums, list-map keys, CEL rules) are carried
as JSON-schema metadata on the field types; Python defaults are only what the controller assumes when a field
is absent (decision D3 of behaviour.md), and are *not* emitted as CRD defaults.

Invariants:
* records are frozen; the pod/job template and PVC templates stay plain JSON mappings that are never mutated
  (builders deep-copy them before changing anything);
* encoding with ``omit_defaults`` yields the same wire shape as the reference controller, except
  ``status.restarts`` which the reference always serialises (see ``encode_status``).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, get_args, get_type_hints

import msgspec

from api import constants as c
from api.constants import API_VERSION, KIND
from api.jsontypes import JSON


def _cel(rule: str, message: str) -> JSON:
    """One CEL validation rule of the CRD schema (``x-kubernetes-validations``), with the message users see."""
    return {"x-kubernetes-validations": [{"rule": rule, "message": message}]}


_IMMUTABLE = _cel("self == oldSelf", "Value is immutable")
_ATOMIC = {"x-kubernetes-list-type": "atomic"}
# Generator hints read by ``api.crdgen`` (never emitted): the Kubernetes definition a plain JSON field stands
# for, and "required on the wire" for fields the reference always serialises (Go ``json`` tag without omitempty).
_K8S_JOB_TEMPLATE = {"x-pyjobset-embed": "io.k8s.api.batch.v1.JobTemplateSpec"}
_K8S_PVC = {"x-pyjobset-embed": "io.k8s.api.core.v1.PersistentVolumeClaim"}
_WIRE_REQUIRED = {"x-pyjobset-required": True}


def _crd(**extra: Any) -> msgspec.Meta:
    return msgspec.Meta(extra_json_schema=extra)


def _map_list(*keys: str, **extra: Any) -> msgspec.Meta:
    return msgspec.Meta(
        extra_json_schema={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys), **extra}
    )


_Int32 = Annotated[int, msgspec.Meta(extra_json_schema={"format": "int32"})]


class _Record(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """Base of every API record: camelCase on the wire, unknown fields ignored, immutable."""


# --------------------------------------------------------------------------------------------- metadata


class OwnerReference(_Record, frozen=True):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(_Record, frozen=True):
    """The parts of ``metav1.ObjectMeta`` the controller reads; everything else is dropped at decode time."""

    name: str = ""
    generate_name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    generation: int = 0
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    annotations: dict[str, str] = msgspec.field(default_factory=dict)
    owner_references: tuple[OwnerReference, ...] = ()
    finalizers: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------- enums
#
# Each enum of the schema is a ``Literal`` type (mypy checks every comparison against it, the CRD generator emits
# it as ``enum``) and a tuple of its values in declaration order (what the webhook's schema check accepts).

DependsOnStatus = Literal["Ready", "Complete"]
SuccessOperator = Literal["All", "Any"]
StartupPolicyOrder = Literal["AnyOrder", "InOrder"]
FailureAction = Literal[
    "FailJobSet",
    "RestartJobSet",
    "RestartJobSetAndIgnoreMaxRestarts",
    "RestartJob",
    "RestartJobAndIgnoreMaxRestarts",
]
RestartStrategy = Literal["Recreate", "BlockingRecreate", "InPlaceRestart"]
WhenDeleted = Literal["Delete", "Retain"]

DEPENDS_ON_STATUSES: Final[tuple[DependsOnStatus, ...]] = get_args(DependsOnStatus)
SUCCESS_OPERATORS: Final[tuple[SuccessOperator, ...]] = get_args(SuccessOperator)
STARTUP_POLICY_ORDERS: Final[tuple[StartupPolicyOrder, ...]] = get_args(StartupPolicyOrder)
FAILURE_ACTIONS: Final[tuple[FailureAction, ...]] = get_args(FailureAction)
RESTART_STRATEGIES: Final[tuple[RestartStrategy, ...]] = get_args(RestartStrategy)
WHEN_DELETED_VALUES: Final[tuple[WhenDeleted, ...]] = get_args(WhenDeleted)
RESTART_JOB_ACTIONS: Final[tuple[FailureAction, ...]] = ("RestartJob", "RestartJobAndIgnoreMaxRestarts")
"""The actions that restart one Job instead of the whole JobSet (feature gate RestartJob)."""


# --------------------------------------------------------------------------------------------- spec


class DependsOn(_Record, frozen=True):
    name: Annotated[str, msgspec.Meta(description="Name of a previous ReplicatedJob this one waits for.")]
    status: Annotated[
        DependsOnStatus,
        msgspec.Meta(description="Status of the dependency that must be reached: Ready or Complete."),
    ]


class ReplicatedJob(_Record, frozen=True):
    name: Annotated[str, msgspec.Meta(description="Name of this ReplicatedJob; part of every child Job name.")]
    template: Annotated[
        JSON,
        _crd(description="batch/v1 JobTemplateSpec used for every Job of this ReplicatedJob.", **_K8S_JOB_TEMPLATE),
    ]
    group_name: Annotated[
        str,
        _crd(default=c.DEFAULT_GROUP_NAME, description="Groups ReplicatedJobs for the group-index labels."),
    ] = c.DEFAULT_GROUP_NAME
    replicas: Annotated[
        int,
        msgspec.Meta(ge=0, extra_json_schema={"default": 1, "format": "int32"}),
    ] = 1
    depends_on: (
        Annotated[
            tuple[DependsOn, ...],
            msgspec.Meta(
                max_length=c.MAX_DEPENDS_ON, extra_json_schema={**_map_list("name").extra_json_schema, **_IMMUTABLE}
            ),
        ]
        | None
    ) = None


class Network(_Record, frozen=True):
    enable_dns_hostnames: bool | None = msgspec.field(default=None, name="enableDNSHostnames")
    subdomain: str = ""
    publish_not_ready_addresses: bool | None = None


class SuccessPolicy(_Record, frozen=True):
    operator: SuccessOperator
    target_replicated_jobs: Annotated[tuple[str, ...], _crd(**_ATOMIC)] = ()


class FailurePolicyRule(_Record, frozen=True):
    name: str
    action: FailureAction
    on_job_failure_reasons: tuple[str, ...] = ()
    on_job_failure_message_patterns: tuple[str, ...] = ()
    target_replicated_jobs: Annotated[tuple[str, ...], _crd(**_ATOMIC)] = ()


class FailurePolicy(_Record, frozen=True):
    max_restarts: Annotated[int, _crd(format="int32")] = 0
    restart_strategy: Annotated[RestartStrategy, _crd(default="Recreate")] = "Recreate"
    rules: tuple[FailurePolicyRule, ...] = ()


class StartupPolicy(_Record, frozen=True):
    startup_policy_order: StartupPolicyOrder


class Coordinator(_Record, frozen=True):
    replicated_job: str
    job_index: int = 0
    pod_index: int = 0


class RetentionPolicy(_Record, frozen=True):
    when_deleted: Annotated[WhenDeleted, _crd(default="Delete")] = "Delete"


_PVC_NAMESPACE_RULE = _cel(
    "!has(self.templates) || self.templates.all(t, !has(t.metadata) || "
    "!has(t.metadata.namespace) || size(t.metadata.namespace) == 0)",
    "namespace cannot be set for VolumeClaimPolicies templates",
)


class VolumeClaimPolicy(_Record, frozen=True):
    templates: Annotated[
        tuple[
            Annotated[JSON, _crd(description="core/v1 PersistentVolumeClaim template.", **_K8S_PVC)],
            ...,
        ],
        msgspec.Meta(max_length=c.MAX_VOLUME_CLAIM_TEMPLATES, extra_json_schema=_ATOMIC),
    ] = ()
    retention_policy: RetentionPolicy | None = None


_SPEC_RULES = _cel(
    "!(has(self.startupPolicy) && self.startupPolicy.startupPolicyOrder == 'InOrder' && "
    "self.replicatedJobs.exists(x, has(x.dependsOn)))",
    "StartupPolicy and DependsOn APIs are mutually exclusive",
)


class JobSetSpec(_Record, frozen=True):
    replicated_jobs: Annotated[tuple[ReplicatedJob, ...], _map_list("name")] = ()
    network: Annotated[Network | None, _crd(**_IMMUTABLE)] = None
    success_policy: Annotated[SuccessPolicy | None, _crd(**_IMMUTABLE)] = None
    failure_policy: Annotated[FailurePolicy | None, _crd(**_IMMUTABLE)] = None
    startup_policy: Annotated[StartupPolicy | None, _crd(**_IMMUTABLE)] = None
    suspend: bool | None = None
    coordinator: Coordinator | None = None
    managed_by: str | None = None
    ttl_seconds_after_finished: Annotated[int, msgspec.Meta(ge=0, extra_json_schema={"format": "int32"})] | None = None
    volume_claim_policies: Annotated[
        tuple[Annotated[VolumeClaimPolicy, _crd(**_PVC_NAMESPACE_RULE)], ...],
        msgspec.Meta(max_length=c.MAX_VOLUME_CLAIM_POLICIES, extra_json_schema={**_ATOMIC, **_IMMUTABLE}),
    ] = ()


# --------------------------------------------------------------------------------------------- status


class Condition(_Record, frozen=True):
    """``metav1.Condition``."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: Annotated[str, _crd(**_WIRE_REQUIRED)] = ""
    message: Annotated[str, _crd(**_WIRE_REQUIRED)] = ""
    last_transition_time: Annotated[str, _crd(**_WIRE_REQUIRED)] = ""
    observed_generation: int | None = None


_PerJobCounts = Annotated[
    tuple[_Int32, ...], msgspec.Meta(max_length=c.MAX_REPLICAS_WITH_RESTART_JOB, extra_json_schema=_ATOMIC)
]
"""One counter per Job index of a replicated job (gate RestartJob)."""


class ReplicatedJobStatus(_Record, frozen=True):
    name: str
    ready: Annotated[int, _crd(format="int32", **_WIRE_REQUIRED)] = 0
    succeeded: Annotated[int, _crd(format="int32", **_WIRE_REQUIRED)] = 0
    failed: Annotated[int, _crd(format="int32", **_WIRE_REQUIRED)] = 0
    active: Annotated[int, _crd(format="int32", **_WIRE_REQUIRED)] = 0
    suspended: Annotated[int, _crd(format="int32", **_WIRE_REQUIRED)] = 0
    job_restarts: _PerJobCounts | None = None
    job_restarts_count_towards_max: _PerJobCounts | None = None


class JobSetStatus(_Record, frozen=True):
    conditions: Annotated[tuple[Condition, ...], _map_list("type")] = ()
    restarts: _Int32 = 0
    restarts_count_towards_max: _Int32 = 0
    terminal_state: str = ""
    replicated_jobs_status: Annotated[tuple[ReplicatedJobStatus, ...], _map_list("name")] = ()
    previous_in_place_restart_attempt: Annotated[int, msgspec.Meta(ge=0), _crd(format="int32")] | None = None
    current_in_place_restart_attempt: Annotated[int, msgspec.Meta(ge=0), _crd(format="int32")] | None = None


class JobSet(_Record, frozen=True):
    api_version: str = API_VERSION
    kind: str = KIND
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: Annotated[JobSetSpec, _crd(**_SPEC_RULES)] = msgspec.field(default_factory=JobSetSpec)
    status: JobSetStatus = msgspec.field(default_factory=JobSetStatus)

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"


# --------------------------------------------------------------------------------------------- schema facts


def schema_default(record: type[msgspec.Struct], field: str) -> Any:
    """The default the CRD schema gives ``record.field`` (the API server fills it in before any webhook sees the
    object); ``LookupError`` for a field the schema does not default."""
    for meta in get_args(get_type_hints(record, include_extras=True)[field])[1:]:
        extra = meta.extra_json_schema if isinstance(meta, msgspec.Meta) else None
        if extra and "default" in extra:
            return extra["default"]
    raise LookupError(f"the CRD schema gives {record.__name__}.{field} no default")


# --------------------------------------------------------------------------------------------- codecs

_jobset_decoder = msgspec.json.Decoder(JobSet)
_jobset_list_decoder = msgspec.json.Decoder(list[JobSet])
_encoder = msgspec.json.Encoder()


def decode_jobset(raw: bytes | str) -> JobSet:
    """Decode one JobSet from JSON bytes; raises ``msgspec.ValidationError`` naming the bad field."""
    return _jobset_decoder.decode(raw)


def jobset_from_obj(obj: JSON) -> JobSet:
    """Convert an already-parsed JSON object (e.g. a watch event body) into a record."""
    return msgspec.convert(obj, JobSet)


def to_obj(record: msgspec.Struct) -> Any:
    """Plain JSON-compatible builtins for a record (``omit_defaults`` applies)."""
    return msgspec.to_builtins(record)


_RJS_COUNTERS = ("ready", "succeeded", "failed", "active", "suspended")


def encode_status(status: JobSetStatus) -> JSON:
    """The wire form of a status, as upstream writes it: like ``to_obj``, but ``restarts``, every
    ``replicatedJobsStatus`` counter and every condition's reason/message/time are always present (the CRD
    marks them required)."""
    obj: JSON = msgspec.to_builtins(status)
    obj["restarts"] = status.restarts
    for cond, rec in zip(obj.get("conditions") or [], status.conditions, strict=True):
        # metav1.Condition requires reason, message and lastTransitionTime on the wire (message may be "").
        cond["reason"] = rec.reason
        cond["message"] = rec.message
        cond["lastTransitionTime"] = rec.last_transition_time
    rjs_list = obj.get("replicatedJobsStatus") or []
    for rjs, rjs_rec in zip(rjs_list, status.replicated_jobs_status, strict=True):
        for name in _RJS_COUNTERS:
            rjs[name] = getattr(rjs_rec, name)
    return obj
