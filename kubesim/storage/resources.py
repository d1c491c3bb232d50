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


# events.k8s.io/v1 field -> core/v1 field, for the fields the two Event versions share under other names.
_EVENT_RENAMES = (
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
)
_EVENT_DEPRECATED = (
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
)


def _event_to_core(obj: JSON) -> JSON:
    """events.k8s.io/v1 Event -> core/v1 Event (the storage form)."""
    renamed = _EVENT_RENAMES + _EVENT_DEPRECATED
    out: JSON = {k: v for k, v in obj.items() if k not in {new for new, _ in renamed}}
    out["apiVersion"] = "v1"
    out["kind"] = "Event"
    for new, old in renamed:
        if new in obj:
            out[old] = obj[new]
    return out


def _event_from_core(obj: JSON) -> JSON:
    """core/v1 Event -> events.k8s.io/v1 Event."""
    out: JSON = {k: v for k, v in obj.items() if k not in {old for _, old in _EVENT_RENAMES + _EVENT_DEPRECATED}}
    out["apiVersion"] = "events.k8s.io/v1"
    out["kind"] = "Event"
    for new, old in _EVENT_RENAMES:
        if old in obj and (obj[old] or old != "reportingComponent"):  # an empty reportingComponent is unset
            out[new] = obj[old]
    for new, old in _EVENT_DEPRECATED:
        if obj.get(old):
            out[new] = obj[old]
    return out


NAMESPACED, CLUSTER = True, False


def _v1(
    group: str,
    resource: str,
    kind: str,
    namespaced: bool,
    short: str = "",
    *,
    status: bool = False,
    listed: bool = False,
    scale: bool = False,
    fields: tuple[str, ...] = (),
) -> ResourceInfo:
    """A built-in resource served at ``v1``; ``short`` holds space-separated short names, ``listed`` puts it in
    the ``all`` category (``kubectl get all``)."""
    return ResourceInfo(
        group,
        ["v1"],
        resource,
        kind,
        namespaced,
        short_names=short.split(),
        categories=["all"] if listed else [],
        status=status,
        scale=scale,
        field_labels=fields,
    )


def builtin_resources() -> list[ResourceInfo]:
    """The built-in resources kubesim serves."""
    ns, cl = NAMESPACED, CLUSTER
    apps, rbac = "apps", "rbac.authorization.k8s.io"
    admission = "admissionregistration.k8s.io"
    return [
        _v1("", "namespaces", "Namespace", cl, "ns", status=True, fields=(*_COMMON_FIELDS, "status.phase")),
        _v1("", "pods", "Pod", ns, "po", status=True, listed=True, fields=POD_FIELDS),
        _v1("", "services", "Service", ns, "svc", status=True, listed=True),
        _v1("", "nodes", "Node", cl, "no", status=True, fields=(*_COMMON_FIELDS, "spec.unschedulable")),
        _v1("", "events", "Event", ns, "ev", fields=EVENT_FIELDS),
        _v1("", "persistentvolumeclaims", "PersistentVolumeClaim", ns, "pvc", status=True),
        _v1("", "persistentvolumes", "PersistentVolume", cl, "pv", status=True),
        _v1("", "secrets", "Secret", ns, fields=(*_COMMON_FIELDS, "type")),
        _v1("", "configmaps", "ConfigMap", ns, "cm"),
        _v1("", "serviceaccounts", "ServiceAccount", ns, "sa"),
        _v1("", "endpoints", "Endpoints", ns, "ep"),
        _v1("", "resourcequotas", "ResourceQuota", ns, "quota", status=True),
        _v1("", "limitranges", "LimitRange", ns, "limits"),
        _v1("batch", "jobs", "Job", ns, status=True, listed=True, fields=(*_COMMON_FIELDS, "status.successful")),
        _v1("batch", "cronjobs", "CronJob", ns, "cj", status=True, listed=True),
        _v1(apps, "deployments", "Deployment", ns, "deploy", status=True, listed=True, scale=True),
        _v1(apps, "replicasets", "ReplicaSet", ns, "rs", status=True, listed=True, scale=True),
        _v1(apps, "statefulsets", "StatefulSet", ns, "sts", status=True, listed=True, scale=True),
        _v1(apps, "daemonsets", "DaemonSet", ns, "ds", status=True, listed=True),
        _v1(
            "apiextensions.k8s.io", "customresourcedefinitions", "CustomResourceDefinition", cl, "crd crds", status=True
        ),
        _v1("coordination.k8s.io", "leases", "Lease", ns),
        ResourceInfo(
            "events.k8s.io",
            ["v1"],
            "events",
            "Event",
            ns,
            short_names=["ev"],
            storage=("", "events"),
            to_storage=_event_to_core,
            from_storage=_event_from_core,
        ),
        _v1(admission, "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", cl),
        _v1(admission, "validatingwebhookconfigurations", "ValidatingWebhookConfiguration", cl),
        _v1(rbac, "roles", "Role", ns),
        _v1(rbac, "rolebindings", "RoleBinding", ns),
        _v1(rbac, "clusterroles", "ClusterRole", cl),
        _v1(rbac, "clusterrolebindings", "ClusterRoleBinding", cl),
        _v1("scheduling.k8s.io", "priorityclasses", "PriorityClass", cl, "pc"),
        _v1("node.k8s.io", "runtimeclasses", "RuntimeClass", cl),  # watched by Kueue (pod overhead)
        _v1("policy", "poddisruptionbudgets", "PodDisruptionBudget", ns, "pdb", status=True),
        _v1("storage.k8s.io", "storageclasses", "StorageClass", cl, "sc"),
        _v1("networking.k8s.io", "networkpolicies", "NetworkPolicy", ns, "netpol"),
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
