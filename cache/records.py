"""Slim, frozen records for the built-in kinds the controller caches: Job, Pod, Node, Service.

Role: JSON from LIST and WATCH is decoded straight into these msgspec Structs; every field the controller never
reads (managedFields, container specs, most of status) is dropped at decode time, which is what keeps 100k pods
and 65k nodes inside the memory goal. Records are ``gc=False``: they hold only strings, numbers and containers of
those, never cycles, so the cyclic collector can skip them (performance goal P8).

Invariants: records are immutable and shared between the store, indexes and reconcilers; nobody changes one in
place. A record's ``key`` is ``namespace/name`` (``name`` for cluster-scoped kinds).
"""

from __future__ import annotations

from typing import Any

import msgspec

from cache.jobset_types import ObjectMeta

JSON = dict[str, Any]


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


def controller_uid(meta: Meta | ObjectMeta) -> str | None:
    """UID of the controlling owner, or None."""
    for ref in meta.owner_references:
        if ref.controller:
            return ref.uid
    return None


# --------------------------------------------------------------------------------------------- Job


class JobCondition(_Slim, frozen=True, gc=False):
    type: str
    status: str
    reason: str = ""
    message: str = ""
    last_transition_time: str = ""


class PodTemplateMeta(_Slim, frozen=True, gc=False):
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    annotations: dict[str, str] = msgspec.field(default_factory=dict)


class PodTemplateSpecSlim(_Slim, frozen=True, gc=False):
    """The pod-template fields that suspend/resume propagates (spec section 4.7)."""

    node_selector: dict[str, str] | None = None
    tolerations: tuple[JSON, ...] | None = None
    scheduling_gates: tuple[JSON, ...] | None = None


class PodTemplate(_Slim, frozen=True, gc=False):
    metadata: PodTemplateMeta = msgspec.field(default_factory=PodTemplateMeta)
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


class Job(_Slim, frozen=True, gc=False):
    metadata: Meta = msgspec.field(default_factory=Meta)
    spec: JobSpec = msgspec.field(default_factory=JobSpec)
    status: JobStatus = msgspec.field(default_factory=JobStatus)

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"

    def condition(self, ctype: str) -> JobCondition | None:
        for c in self.status.conditions:
            if c.type == ctype:
                return c
        return None

    def has_true_condition(self, ctype: str) -> bool:
        c = self.condition(ctype)
        return c is not None and c.status == "True"


# --------------------------------------------------------------------------------------------- Pod


class ContainerStatus(_Slim, frozen=True, gc=False):
    name: str = ""
    restart_count: int = 0
    ready: bool = False


class PodCondition(_Slim, frozen=True, gc=False):
    type: str
    status: str
    reason: str = ""
    message: str = ""


class ResourceReq(_Slim, frozen=True, gc=False):
    requests: dict[str, str] = msgspec.field(default_factory=dict)
    limits: dict[str, str] = msgspec.field(default_factory=dict)


class ContainerSlim(_Slim, frozen=True, gc=False):
    resources: ResourceReq = msgspec.field(default_factory=ResourceReq)


class PodSpec(_Slim, frozen=True, gc=False):
    node_name: str = ""
    priority: int | None = None
    node_selector: dict[str, str] | None = None
    containers: tuple[ContainerSlim, ...] = ()


class PodStatus(_Slim, frozen=True, gc=False):
    phase: str = ""
    conditions: tuple[PodCondition, ...] = ()
    container_statuses: tuple[ContainerStatus, ...] = ()
    init_container_statuses: tuple[ContainerStatus, ...] = ()
    start_time: str | None = None


class Pod(_Slim, frozen=True, gc=False):
    metadata: Meta = msgspec.field(default_factory=Meta)
    spec: PodSpec = msgspec.field(default_factory=PodSpec)
    status: PodStatus = msgspec.field(default_factory=PodStatus)

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"


# --------------------------------------------------------------------------------------------- Node


class NodeSpec(_Slim, frozen=True, gc=False):
    unschedulable: bool = False


class NodeStatus(_Slim, frozen=True, gc=False):
    allocatable: dict[str, str] = msgspec.field(default_factory=dict)
    conditions: tuple[PodCondition, ...] = ()


class Node(_Slim, frozen=True, gc=False):
    metadata: Meta = msgspec.field(default_factory=Meta)
    spec: NodeSpec = msgspec.field(default_factory=NodeSpec)
    status: NodeStatus = msgspec.field(default_factory=NodeStatus)

    @property
    def key(self) -> str:
        return self.metadata.name


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
