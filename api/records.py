"""Slim, frozen records for the built-in kinds the controller caches: Job, Pod, Node, Service.

Role: JSON from LIST and WATCH is decoded straight into these msgspec Structs; every field the controller never
reads (managedFields, container specs, most of status) is dropped at decode time, which is what keeps 100k pods
and 65k nodes inside the memory goal. Records are ``gc=False``: they hold only strings, numbers and containers of
those, never cycles, so the cyclic collector can skip them (performance goal P8 of performance.md).

Invariants: records are immutable and shared between the store, indexes and reconcilers; nobody changes one in
place (``compact_pod`` swaps in shared strings and parts of equal value, once, before the record is cached).
A record's ``key`` is ``namespace/name`` (``name`` for cluster-scoped kinds).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, overload

import msgspec

from api import constants as c
from api.jobset_types import ObjectMeta
from api.jsontypes import JSON


class _Slim(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True, gc=False):
    pass


class Meta(_Slim, frozen=True, gc=False):
    """Slim object metadata (same wire names as ``ObjectMeta``)."""

    name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    generation: int = 0
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    annotations: dict[str, str] = msgspec.field(default_factory=dict)
    owner_references: tuple[OwnerRef, ...] = ()


class OwnerRef(_Slim, frozen=True, gc=False):
    api_version: str = ""
    kind: str = ""
    name: str = ""
    uid: str = ""
    controller: bool | None = None
    # No ``__post_init__``: a hook per reference cost as much as decoding it. The owning record interns
    # ``api_version`` and ``kind`` (``JobMeta.__post_init__``, ``compact_pod``; a Service's few are left alone).


def controller_uid(meta: Meta | JobMeta | PodMeta | ObjectMeta) -> str | None:
    """UID of the controlling owner, or None."""
    for ref in meta.owner_references:
        if ref.controller:
            return ref.uid
    return None


class _KeyedFields(_Slim, frozen=True, gc=False):
    """A fixed set of label/annotation keys, read like a mapping."""

    @overload
    def get(self, key: str) -> str | None: ...

    @overload
    def get(self, key: str, default: str) -> str: ...

    @overload
    def get(self, key: str, default: None) -> str | None: ...

    def get(self, key: str, default: str | None = None) -> str | None:
        attr = _KEY_ATTRS.get(key)
        value = getattr(self, attr, None) if attr is not None else None
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def items(self) -> list[tuple[str, str]]:
        return [(k, v) for k in _wire_to_attr(type(self)) if (v := self.get(k)) is not None]

    def keys(self) -> list[str]:
        """The keys that are set (so ``dict(x)`` and ``{**x}`` work as on a label map)."""
        return [k for k in _wire_to_attr(type(self)) if self.get(k) is not None]


_WIRE: dict[type, dict[str, str]] = {}
"""Class → (wire key → attribute name), filled by ``_wire_to_attr``."""

_KEY_ATTRS: dict[str, str] = {}
"""Wire key → attribute name over every ``_KeyedFields`` class (a key means the same attribute in each; built and
checked at import, below): ``get`` is one dict lookup, as label reads run for every pod event."""


def _wire_to_attr(cls: type[msgspec.Struct]) -> dict[str, str]:
    found = _WIRE.get(cls)
    if found is None:
        found = _WIRE[cls] = {f.encode_name: f.name for f in msgspec.structs.fields(cls)}
    return found


class JobLabels(_KeyedFields, frozen=True, gc=False):
    """The Job labels pyjobset reads: classification, failure policy, lifecycle metrics (every other key is skipped)."""

    jobset_name: str | None = msgspec.field(default=None, name=c.JOBSET_NAME_KEY)
    jobset_uid: str | None = msgspec.field(default=None, name=c.JOBSET_UID_KEY)
    replicated_job_name: str | None = msgspec.field(default=None, name=c.REPLICATED_JOB_NAME_KEY)
    job_index: str | None = msgspec.field(default=None, name=c.JOB_INDEX_KEY)
    restart_attempt: str | None = msgspec.field(default=None, name=c.RESTART_ATTEMPT_KEY)
    job_restart_attempt: str | None = msgspec.field(default=None, name=c.JOB_RESTART_ATTEMPT_KEY)


# --------------------------------------------------------------------------------------------- Job
#
# A large JobSet has tens of thousands of Jobs, each sent with ~12 labels, ~12 annotations and its pod template's
# labels and annotations again (~8.5 KB held per Job as maps). The Job record keeps only the label keys some part
# of pyjobset reads (``JobLabels``), no annotations and no template metadata (nothing reads them from a cached
# Job: resume builds its patch from the JobSet's template), and interns the strings that repeat across Jobs.


class JobCondition(_Slim, frozen=True, gc=False):
    type: str
    status: str
    reason: str = ""
    message: str = ""
    last_transition_time: str = ""


class PodTemplateSpecSlim(_Slim, frozen=True, gc=False):
    """The pod-template fields that suspend/resume propagates (behaviour.md §4.7)."""

    node_selector: dict[str, str] | None = None
    tolerations: tuple[JSON, ...] | None = None
    scheduling_gates: tuple[JSON, ...] | None = None


class PodTemplate(_Slim, frozen=True, gc=False):
    spec: PodTemplateSpecSlim = msgspec.field(default_factory=PodTemplateSpecSlim)


class JobSpec(_Slim, frozen=True, gc=False):
    parallelism: int | None = None
    completions: int | None = None
    suspend: bool | None = None
    completion_mode: str | None = None
    template: PodTemplate = msgspec.field(default_factory=PodTemplate)


class JobStatus(_Slim, frozen=True, gc=False):
    active: int = 0
    ready: int | None = None
    succeeded: int = 0
    failed: int = 0
    terminating: int | None = None
    start_time: str | None = None
    completion_time: str | None = None
    conditions: tuple[JobCondition, ...] = ()

    def __post_init__(self) -> None:
        for cond in self.conditions:
            _intern(cond, "type", "status", "reason")


class JobMeta(_Slim, frozen=True, gc=False):
    """Slim Job metadata: the labels pyjobset reads (``JobLabels``), no annotations."""

    name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    labels: JobLabels = msgspec.field(default_factory=JobLabels)
    owner_references: tuple[OwnerRef, ...] = ()

    def __post_init__(self) -> None:
        # The namespace, JobSet name and UID, rjob name and attempt repeat in every Job of a JobSet.
        _intern(self, "namespace", "creation_timestamp")
        _intern_refs(self.owner_references)
        labels = self.labels
        for name in labels.__struct_fields__:
            value = getattr(labels, name)
            if value is not None:
                msgspec.structs.force_setattr(labels, name, sys.intern(value))


class Job(_Slim, frozen=True, gc=False):
    metadata: JobMeta = msgspec.field(default_factory=JobMeta)
    spec: JobSpec = msgspec.field(default_factory=JobSpec)
    status: JobStatus = msgspec.field(default_factory=JobStatus)

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"

    def condition(self, ctype: str) -> JobCondition | None:
        for cond in self.status.conditions:
            if cond.type == ctype:
                return cond
        return None

    def has_true_condition(self, ctype: str) -> bool:
        c = self.condition(ctype)
        return c is not None and c.status == "True"


# --------------------------------------------------------------------------------------------- Pod
#
# Pods are the most numerous objects (100k+), so their metadata keeps only the label and annotation keys that
# some part of pyjobset reads, as fixed struct fields: unknown keys are skipped by the decoder instead of
# building a 30-entry dict per pod. ``get``/``in``/``[]`` keep the mapping-style reads working.


class PodLabels(_KeyedFields, frozen=True, gc=False):
    jobset_name: str | None = msgspec.field(default=None, name=c.JOBSET_NAME_KEY)
    jobset_uid: str | None = msgspec.field(default=None, name=c.JOBSET_UID_KEY)
    replicated_job_name: str | None = msgspec.field(default=None, name=c.REPLICATED_JOB_NAME_KEY)
    job_index: str | None = msgspec.field(default=None, name=c.JOB_INDEX_KEY)
    job_key: str | None = msgspec.field(default=None, name=c.JOB_KEY)
    restart_attempt: str | None = msgspec.field(default=None, name=c.RESTART_ATTEMPT_KEY)
    job_restart_attempt: str | None = msgspec.field(default=None, name=c.JOB_RESTART_ATTEMPT_KEY)
    priority: str | None = msgspec.field(default=None, name=c.PRIORITY_KEY)
    completion_index: str | None = msgspec.field(default=None, name=c.JOB_COMPLETION_INDEX_ANNOTATION)


class PodAnnotations(_KeyedFields, frozen=True, gc=False):
    jobset_name: str | None = msgspec.field(default=None, name=c.JOBSET_NAME_KEY)
    completion_index: str | None = msgspec.field(default=None, name=c.JOB_COMPLETION_INDEX_ANNOTATION)
    exclusive_topology: str | None = msgspec.field(default=None, name=c.EXCLUSIVE_TOPOLOGY_KEY)
    node_selector_strategy: str | None = msgspec.field(default=None, name=c.NODE_SELECTOR_STRATEGY_KEY)
    in_place_restart_attempt: str | None = msgspec.field(default=None, name=c.IN_PLACE_RESTART_ATTEMPT_KEY)


class PodMeta(_Slim, frozen=True, gc=False):
    name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    labels: PodLabels = msgspec.field(default_factory=PodLabels)
    annotations: PodAnnotations = msgspec.field(default_factory=PodAnnotations)
    owner_references: tuple[OwnerRef, ...] = ()


class ContainerStatus(_Slim, frozen=True, gc=False):
    restart_count: int = 0
    ready: bool = False


ConditionStatus = str
"""True, False or Unknown in practice, but decoded as plain ``str``: the API server accepts any status on a node
or pod condition (``"Maybe"`` included), and one such condition must not make a whole object undecodable (the
controller only ever compares with ``"True"``). Interned by the owning status's ``__post_init__``."""

Quantity = str | int | float
"""A resource quantity as it may arrive: the API server always sends a string (``"4"``, ``"500m"``), but other
producers (simulators, hand-written fixtures) send JSON numbers; both decode, and ``str()`` is applied on read."""


def _intern(obj: msgspec.Struct, *names: str) -> None:
    """Replace repeated strings by one shared copy (they recur in every object of a kind)."""
    for name in names:
        value = getattr(obj, name)
        if value:
            msgspec.structs.force_setattr(obj, name, sys.intern(value))


def _intern_refs(refs: tuple[OwnerRef, ...]) -> None:
    """Owner references repeat ``api_version`` and ``kind`` in every child: keep one copy of each string."""
    for ref in refs:
        msgspec.structs.force_setattr(ref, "api_version", sys.intern(ref.api_version))
        msgspec.structs.force_setattr(ref, "kind", sys.intern(ref.kind))


def _intern_conditions(conditions: tuple[PodCondition, ...]) -> None:
    """Condition types and statuses repeat in every pod and node: keep one copy of each string."""
    for cond in conditions:
        msgspec.structs.force_setattr(cond, "type", sys.intern(cond.type))
        msgspec.structs.force_setattr(cond, "status", sys.intern(cond.status))


class PodCondition(_Slim, frozen=True, gc=False):
    """Only type and status: reasons and messages of pod conditions are never read from the cache. Any status
    string decodes (see ``ConditionStatus``)."""

    type: str
    status: ConditionStatus


class Accelerators(_KeyedFields, frozen=True, gc=False):
    """Accelerator quantities of a container's requests or limits; cpu and memory are skipped at decode.

    A quantity sent as a JSON number decodes too; ``get`` always answers a string."""

    nvidia_gpu: Quantity | None = msgspec.field(default=None, name="nvidia.com/gpu")
    amd_gpu: Quantity | None = msgspec.field(default=None, name="amd.com/gpu")
    google_tpu: Quantity | None = msgspec.field(default=None, name="google.com/tpu")

    @overload
    def get(self, key: str) -> str | None: ...

    @overload
    def get(self, key: str, default: str) -> str: ...

    @overload
    def get(self, key: str, default: None) -> str | None: ...

    def get(self, key: str, default: str | None = None) -> str | None:
        attr = _wire_to_attr(type(self)).get(key)
        value = getattr(self, attr) if attr is not None else None
        return default if value is None else str(value)


class ResourceReq(_Slim, frozen=True, gc=False):
    """Accelerator requests and limits only (the GPU occupancy metrics); other resources are skipped."""

    requests: Accelerators = msgspec.field(default_factory=Accelerators)
    limits: Accelerators = msgspec.field(default_factory=Accelerators)


class ContainerSlim(_Slim, frozen=True, gc=False):
    resources: ResourceReq = msgspec.field(default_factory=ResourceReq)


class PodSpec(_Slim, frozen=True, gc=False):
    node_name: str = ""
    priority: int | None = None
    node_selector: dict[str, str] | None = None
    containers: tuple[ContainerSlim, ...] = ()


PodPhase = str
"""``""``, Pending, Running, Succeeded, Failed or Unknown; plain ``str`` so that a phase added by a future API
version cannot make pods undecodable (unknown phases count as none of the known ones)."""


class PodStatus(_Slim, frozen=True, gc=False):
    phase: PodPhase = ""
    conditions: tuple[PodCondition, ...] = ()
    container_statuses: tuple[ContainerStatus, ...] = ()
    init_container_statuses: tuple[ContainerStatus, ...] = ()
    start_time: str | None = None


class Pod(_Slim, frozen=True, gc=False):
    metadata: PodMeta = msgspec.field(default_factory=PodMeta)
    spec: PodSpec = msgspec.field(default_factory=PodSpec)
    status: PodStatus = msgspec.field(default_factory=PodStatus)

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"


def compact_pod(pod: Pod, prev: Pod | None = None) -> None:
    """Make a freshly decoded pod share its repeated strings, before it is cached (``cache.informer`` calls it).

    Pods are the most numerous and the most frequently updated objects, so this is one Python call per pod
    instead of a ``__post_init__`` hook per struct (each hook cost about as much as decoding its fields). With
    ``prev``, the cached version of the same pod, every part equal to ``prev``'s (compared in C: namespace,
    labels, annotations, owner references, spec, conditions; most updates change one of them at most) is
    *replaced by* ``prev``'s, which shares its interned strings and the part itself; the rest is interned. A
    record is only ever changed here, before anybody else holds it.
    """
    meta, spec, status = pod.metadata, pod.spec, pod.status
    setattr_ = msgspec.structs.force_setattr
    intern = sys.intern
    if prev is not None:
        pmeta = prev.metadata
        ns = pmeta.namespace
        setattr_(meta, "namespace", ns if meta.namespace == ns else intern(meta.namespace))
        if meta.labels == pmeta.labels:
            setattr_(meta, "labels", pmeta.labels)
        else:
            _intern_fields(meta.labels)
        if meta.annotations == pmeta.annotations:
            setattr_(meta, "annotations", pmeta.annotations)
        else:
            _intern_fields(meta.annotations)
        if meta.owner_references == pmeta.owner_references:
            setattr_(meta, "owner_references", pmeta.owner_references)
        else:
            _intern_refs(meta.owner_references)
        if spec == prev.spec:
            setattr_(pod, "spec", prev.spec)
        elif spec.node_name:
            setattr_(spec, "node_name", intern(spec.node_name))
        if status.conditions == prev.status.conditions:
            setattr_(status, "conditions", prev.status.conditions)
        else:
            _intern_conditions(status.conditions)
    else:
        setattr_(meta, "namespace", intern(meta.namespace))
        _intern_fields(meta.labels)
        _intern_fields(meta.annotations)
        _intern_refs(meta.owner_references)
        if spec.node_name:
            setattr_(spec, "node_name", intern(spec.node_name))
        _intern_conditions(status.conditions)
    if status.phase:
        setattr_(status, "phase", intern(status.phase))


def _intern_fields(part: msgspec.Struct) -> None:
    """Intern every set string field of a fixed-keys label or annotation struct."""
    for name in part.__struct_fields__:
        value = getattr(part, name)
        if value is not None:
            msgspec.structs.force_setattr(part, name, sys.intern(value))


Compactor = Callable[[Any, Any], None]


def compactor(record_type: type) -> Compactor | None:
    """The function that compacts a freshly decoded record of ``record_type`` given its cached predecessor
    (None when the type interns in its own ``__post_init__`` hooks or not at all)."""
    return compact_pod if record_type is Pod else None


# --------------------------------------------------------------------------------------------- Node


class NodeSpec(_Slim, frozen=True, gc=False):
    unschedulable: bool = False


class NodeStatus(_Slim, frozen=True, gc=False):
    allocatable: dict[str, Quantity] = msgspec.field(default_factory=dict)
    conditions: tuple[PodCondition, ...] = ()

    def __post_init__(self) -> None:
        _intern_conditions(self.conditions)


class NodeMeta(_Slim, frozen=True, gc=False):
    """Nodes keep every label (exclusive placement may name any node label as its topology key)."""

    name: str = ""
    uid: str = ""
    resource_version: str = ""
    labels: dict[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        # Node label keys and most values (os, zone, pool, instance type) repeat across 65k nodes.
        msgspec.structs.force_setattr(self, "labels", {sys.intern(k): sys.intern(v) for k, v in self.labels.items()})


class Node(_Slim, frozen=True, gc=False):
    metadata: NodeMeta = msgspec.field(default_factory=NodeMeta)
    spec: NodeSpec = msgspec.field(default_factory=NodeSpec)
    status: NodeStatus = msgspec.field(default_factory=NodeStatus)

    @property
    def key(self) -> str:
        return self.metadata.name


def _build_key_attrs() -> None:
    pending: list[type[_KeyedFields]] = list(_KeyedFields.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        for wire, attr in _wire_to_attr(cls).items():
            if _KEY_ATTRS.setdefault(wire, attr) != attr:
                raise TypeError(f"{cls.__name__}: key {wire!r} must be attribute {_KEY_ATTRS[wire]!r} as elsewhere")


_build_key_attrs()


# --------------------------------------------------------------------------------------------- Service


class ServiceSpec(_Slim, frozen=True, gc=False):
    cluster_ip: str | None = msgspec.field(default=None, name="clusterIP")
    selector: dict[str, str] | None = None
    publish_not_ready_addresses: bool | None = None


class Service(_Slim, frozen=True, gc=False):
    metadata: Meta = msgspec.field(default_factory=Meta)
    spec: ServiceSpec = msgspec.field(default_factory=ServiceSpec)

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"
