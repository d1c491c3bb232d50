"""The resource registry: which resources the simulated API server serves, and how.

Role: one :class:`ResourceInfo` per served ``(group, resource)``; built-in kinds are registered at start-up and a
CustomResourceDefinition registers (and on deletion unregisters) its resource. Discovery, the HTTP router and
the store all read this registry, so a resource is served exactly when it is registered.

Naming: a resource is addressed by its *qualified name*, ``"pods"`` (core group) or ``"jobs.batch"`` /
``"jobsets.jobset.x-k8s.io"`` -- what ``kubectl get`` accepts. :meth:`Registry.lookup` also accepts a kind
(``"Pod"``, ``"Job.batch"``) and short names.

Invariants: storage is keyed by ``ResourceInfo.storage`` (group, resource); an alias view such as
``events.events.k8s.io`` shares the storage of ``events`` and converts objects with ``to_storage`` /
``from_storage``. A resource's ``versions`` lists served versions, storage version first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]


@dataclass(slots=True)
class ResourceInfo:
    group: str
    versions: list[str]
    resource: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    status: bool = False  # has a /status subresource
    scale: bool = False
    storage: tuple[str, str] = ("", "")
    strategic: bool = True  # built-in kinds accept strategic merge patch
    crd: JSON | None = None  # the CRD that serves this resource
    to_storage: Callable[[JSON], JSON] | None = None
    from_storage: Callable[[JSON], JSON] | None = None
    field_labels: tuple[str, ...] = ()
    printer_columns: list[JSON] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.singular:
            self.singular = self.kind.lower()
        if self.storage == ("", ""):
            self.storage = (self.group, self.resource)

    @property
    def version(self) -> str:
        return self.versions[0]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def api_version_for(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    @property
    def qualified(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @property
    def list_kind(self) -> str:
        return self.kind + "List"


_COMMON_FIELDS = ("metadata.name", "metadata.namespace")

POD_FIELDS = (
    *_COMMON_FIELDS,
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
)
EVENT_FIELDS = (
    *_COMMON_FIELDS,
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)


def _event_to_core(obj: JSON) -> JSON:
    """events.k8s.io/v1 Event -> core/v1 Event (the storage form)."""
    out: JSON = {
        k: v
        for k, v in obj.items()
        if k
        not in (
            "regarding",
            "note",
            "reportingController",
            "deprecatedSource",
            "deprecatedFirstTimestamp",
            "deprecatedLastTimestamp",
            "deprecatedCount",
        )
    }
    out["apiVersion"] = "v1"
    out["kind"] = "Event"
    if "regarding" in obj:
        out["involvedObject"] = obj["regarding"]
    if "note" in obj:
        out["message"] = obj["note"]
    if "reportingController" in obj:
        out["reportingComponent"] = obj["reportingController"]
    for new, old in (
        ("deprecatedSource", "source"),
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedCount", "count"),
    ):
        if new in obj:
            out[old] = obj[new]
    return out


def _event_from_core(obj: JSON) -> JSON:
    """core/v1 Event -> events.k8s.io/v1 Event."""
    out: JSON = {
        k: v
        for k, v in obj.items()
        if k
        not in ("involvedObject", "message", "reportingComponent", "source", "firstTimestamp", "lastTimestamp", "count")
    }
    out["apiVersion"] = "events.k8s.io/v1"
    out["kind"] = "Event"
    if "involvedObject" in obj:
        out["regarding"] = obj["involvedObject"]
    if "message" in obj:
        out["note"] = obj["message"]
    if obj.get("reportingComponent"):
        out["reportingController"] = obj["reportingComponent"]
    for new, old in (
        ("deprecatedSource", "source"),
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedCount", "count"),
    ):
        if obj.get(old):
            out[new] = obj[old]
    return out


def builtin_resources() -> list[ResourceInfo]:
    """The built-in resources kubesim serves."""
    r = ResourceInfo
    return [
        r(
            "",
            ["v1"],
            "namespaces",
            "Namespace",
            False,
            short_names=["ns"],
            status=True,
            field_labels=(*_COMMON_FIELDS, "status.phase"),
        ),
        r(
            "",
            ["v1"],
            "pods",
            "Pod",
            True,
            short_names=["po"],
            categories=["all"],
            status=True,
            field_labels=POD_FIELDS,
        ),
        r("", ["v1"], "services", "Service", True, short_names=["svc"], categories=["all"], status=True),
        r(
            "",
            ["v1"],
            "nodes",
            "Node",
            False,
            short_names=["no"],
            status=True,
            field_labels=(*_COMMON_FIELDS, "spec.unschedulable"),
        ),
        r("", ["v1"], "events", "Event", True, short_names=["ev"], field_labels=EVENT_FIELDS),
        r("", ["v1"], "persistentvolumeclaims", "PersistentVolumeClaim", True, short_names=["pvc"], status=True),
        r("", ["v1"], "persistentvolumes", "PersistentVolume", False, short_names=["pv"], status=True),
        r("", ["v1"], "secrets", "Secret", True, field_labels=(*_COMMON_FIELDS, "type")),
        r("", ["v1"], "configmaps", "ConfigMap", True, short_names=["cm"]),
        r("", ["v1"], "serviceaccounts", "ServiceAccount", True, short_names=["sa"]),
        r("", ["v1"], "endpoints", "Endpoints", True, short_names=["ep"]),
        r("", ["v1"], "resourcequotas", "ResourceQuota", True, short_names=["quota"], status=True),
        r("", ["v1"], "limitranges", "LimitRange", True, short_names=["limits"]),
        r(
            "batch",
            ["v1"],
            "jobs",
            "Job",
            True,
            categories=["all"],
            status=True,
            field_labels=(*_COMMON_FIELDS, "status.successful"),
        ),
        r("batch", ["v1"], "cronjobs", "CronJob", True, short_names=["cj"], categories=["all"], status=True),
        r(
            "apps",
            ["v1"],
            "deployments",
            "Deployment",
            True,
            short_names=["deploy"],
            categories=["all"],
            status=True,
            scale=True,
        ),
        r(
            "apps",
            ["v1"],
            "replicasets",
            "ReplicaSet",
            True,
            short_names=["rs"],
            categories=["all"],
            status=True,
            scale=True,
        ),
        r(
            "apps",
            ["v1"],
            "statefulsets",
            "StatefulSet",
            True,
            short_names=["sts"],
            categories=["all"],
            status=True,
            scale=True,
        ),
        r("apps", ["v1"], "daemonsets", "DaemonSet", True, short_names=["ds"], categories=["all"], status=True),
        r(
            "apiextensions.k8s.io",
            ["v1"],
            "customresourcedefinitions",
            "CustomResourceDefinition",
            False,
            short_names=["crd", "crds"],
            status=True,
        ),
        r("coordination.k8s.io", ["v1"], "leases", "Lease", True),
        r(
            "events.k8s.io",
            ["v1"],
            "events",
            "Event",
            True,
            short_names=["ev"],
            storage=("", "events"),
            to_storage=_event_to_core,
            from_storage=_event_from_core,
        ),
        r(
            "admissionregistration.k8s.io",
            ["v1"],
            "mutatingwebhookconfigurations",
            "MutatingWebhookConfiguration",
            False,
        ),
        r(
            "admissionregistration.k8s.io",
            ["v1"],
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
            False,
        ),
        r("rbac.authorization.k8s.io", ["v1"], "roles", "Role", True),
        r("rbac.authorization.k8s.io", ["v1"], "rolebindings", "RoleBinding", True),
        r("rbac.authorization.k8s.io", ["v1"], "clusterroles", "ClusterRole", False),
        r("rbac.authorization.k8s.io", ["v1"], "clusterrolebindings", "ClusterRoleBinding", False),
        r("scheduling.k8s.io", ["v1"], "priorityclasses", "PriorityClass", False, short_names=["pc"]),
        r("policy", ["v1"], "poddisruptionbudgets", "PodDisruptionBudget", True, short_names=["pdb"], status=True),
        r("storage.k8s.io", ["v1"], "storageclasses", "StorageClass", False, short_names=["sc"]),
        r("networking.k8s.io", ["v1"], "networkpolicies", "NetworkPolicy", True, short_names=["netpol"]),
    ]


class Registry:
    """Served resources by (group, resource), with lookups by qualified name, kind and short name."""

    def __init__(self) -> None:
        self._by_gr: dict[tuple[str, str], ResourceInfo] = {}
        self.generation = 0  # bumped on every change, so discovery caches know when to rebuild
        self._cache: dict[str, ResourceInfo | None] = {}
        self._cache_gen = -1

    def add(self, info: ResourceInfo) -> None:
        self._by_gr[(info.group, info.resource)] = info
        self.generation += 1

    def remove(self, group: str, resource: str) -> ResourceInfo | None:
        self.generation += 1
        return self._by_gr.pop((group, resource), None)

    def get(self, group: str, resource: str) -> ResourceInfo | None:
        return self._by_gr.get((group, resource))

    def all(self) -> list[ResourceInfo]:
        return list(self._by_gr.values())

    def groups(self) -> dict[str, list[ResourceInfo]]:
        out: dict[str, list[ResourceInfo]] = {}
        for info in self._by_gr.values():
            out.setdefault(info.group, []).append(info)
        return out

    def for_kind(self, group: str, kind: str) -> ResourceInfo | None:
        for info in self._by_gr.values():
            if info.group == group and info.kind == kind:
                return info
        return None

    def lookup(self, name: str) -> ResourceInfo | None:
        """Resolve ``pods``, ``jobs.batch``, ``Pod``, ``Job.batch``, ``po`` or ``jobsets.jobset.x-k8s.io``."""
        if self._cache_gen != self.generation:
            self._cache.clear()
            self._cache_gen = self.generation
        hit = self._cache.get(name)
        if hit is None:
            hit = self._cache[name] = self._lookup(name)
        return hit

    def _lookup(self, name: str) -> ResourceInfo | None:
        res, _, group = name.partition(".")
        if info := self._by_gr.get((group, res)):
            return info
        low = res.lower()
        for info in self._by_gr.values():
            if group and info.group != group:
                continue
            if low in (info.resource, info.singular, info.kind.lower()) or low in info.short_names:
                if not group and info.storage != (info.group, info.resource):
                    continue  # prefer the storage view (core events over events.k8s.io) for bare names
                return info
        return None
