"""Pod admission for exclusive placement (``mpod.kb.io`` / ``vpod.kb.io``): pure functions over the raw pod.

Role (behaviour.md §5.1, 5.2): JobSet pods are admitted in two steps.

* ``mutate_pod`` (CREATE): pods of a JobSet (annotation ``jobset.sigs.k8s.io/jobset-name``) that do not use the
  node-selector strategy get the ``jobset.sigs.k8s.io/priority`` label from ``spec.priority``; with the
  ``alpha.jobset.sigs.k8s.io/exclusive-topology`` annotation (value = topology key T) the *leader* (completion
  index annotation ``"0"``) gets a required pod affinity to its own job-key and a required anti-affinity to
  other job-keys of the same priority, both on T and across all namespaces; a *follower* gets
  ``nodeSelector[T]`` copied from the node its scheduled leader runs on. A follower whose leader cannot be
  found or is not yet scheduled is left untouched (the validating step rejects it and the Job controller
  retries); a leader node that cannot be read, or that lacks T, rejects the pod.
* ``validate_pod`` (CREATE): such followers are rejected until they carry ``nodeSelector[T]`` and their single
  live leader (same controller owner) is scheduled, with the reference's messages in its order.

* ``mutate_pod`` also adds the variables of ``pyjobset.io/inject-env`` (``controller.decide.frameworkenv``) to
  every container of a pod of a JobSet that opts in, except those a container already sets. The JobSet comes
  from the controller's cache (:class:`JobSetLookup`); the pod's identity from its labels and completion-index
  annotation. This is done here rather than in the Job template because a rank is ``offset + completion index``
  and the downward API cannot add; the webhook sees each pod's index. A JobSet the cache does not hold (or with
  another UID) leaves the pod as the reference would.

Cache reads go through :class:`PlacementLookup` (in the controller: the pod store's suffix-stripped-name
index and the node store), like the reference's cache-backed client. Negative priorities are written as
``n<abs>`` (a label value cannot start with ``-``; the reference does the same since v0.13).

Invariants: pure (no I/O, no clock); the input pod is never modified (``mutate_pod`` returns RFC 6902
operations that turn it into the mutated pod); never raises for any JSON-compatible input; every rejection is
a :class:`Denial` carrying the HTTP code, reason and exact message the reference answers with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from api import constants as c
from api.jobset_types import JobSet
from api.jsontypes import JSON, json_copy
from api.records import Node, Pod, controller_uid
from controller.decide.frameworkenv import PodIdentity, pod_env
from controller.webhooks.fielderrors import go_quote

__all__ = [
    "Denial",
    "JobSetLookup",
    "PlacementLookup",
    "PodMutation",
    "is_leader",
    "json_diff",
    "leader_name_for",
    "mutate_pod",
    "priority_label_value",
    "strip_pod_suffix",
    "validate_pod",
]


MSG_SELECTOR_NOT_SET: Final = "follower pod node selector not set"
MSG_SELECTOR_MISSING: Final = "follower pod node selector for topology domain not found. missing selector: {}"
MSG_LEADER_COUNT: Final = "expected 1 leader pod ({}), but got {}. this is an expected, transient error"
MSG_LEADER_UNSCHEDULED: Final = (
    "leader pod not yet scheduled, not creating follower pod. this is an expected, transient error"
)
MSG_MISSING_LABEL: Final = "pod missing label: {}"
MSG_NO_FOLLOWER_OWNER: Final = "follower pod has no owner reference"
MSG_NO_LEADER_OWNER: Final = "leader pod {} has no owner reference"
MSG_OWNER_MISMATCH: Final = "follower pod owner UID ({}) != leader pod owner UID ({})"
MSG_NODE_NO_LABEL: Final = "node does not have topology label: {}"


class PlacementLookup(Protocol):
    """Reads the webhooks need from the controller's cache."""

    def pods_named(self, namespace: str, base_name: str) -> Sequence[Pod]:
        """Exclusive-placement pods of ``namespace`` whose name minus its last ``-suffix`` is ``base_name``."""
        ...

    def node(self, name: str) -> Node | None:
        """The node of that name, ``None`` when it does not exist."""
        ...


class JobSetLookup(Protocol):
    """The JobSet a pod belongs to, from the controller's cache."""

    def jobset(self, namespace: str, name: str) -> JobSet | None:
        """The JobSet ``namespace/name``, ``None`` when the cache does not hold it."""
        ...


@dataclass(frozen=True, slots=True)
class Denial:
    """A rejected admission: the ``status`` of the AdmissionResponse."""

    message: str
    code: int = 403
    reason: str = "Forbidden"
    details: JSON | None = None

    def status(self) -> JSON:
        out: JSON = {"status": "Failure", "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            out["details"] = self.details
        return out


@dataclass(frozen=True, slots=True)
class PodMutation:
    """``patch`` (RFC 6902 operations, empty = unchanged) or ``denial``."""

    patch: tuple[JSON, ...] = ()
    denial: Denial | None = None


class _LeaderError(Exception):
    """The leader cannot be determined; the message is the reference's error text."""


# --------------------------------------------------------------------------------------------- helpers


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str_map(value: Any) -> dict[str, str]:
    """A JSON object of strings as a dict (non-string values are dropped: they cannot be labels)."""
    return (
        {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}
        if isinstance(value, Mapping)
        else {}
    )


def is_leader(annotations: Mapping[str, Any]) -> bool:
    """The leader pod of a Job is the one with completion index ``"0"``."""
    return annotations.get(c.JOB_COMPLETION_INDEX_ANNOTATION) == "0"


def priority_label_value(priority: int) -> str:
    """``spec.priority`` as a label value: decimal, negatives as ``n<abs>``."""
    return f"n{-priority}" if priority < 0 else str(priority)


def strip_pod_suffix(name: str) -> str | None:
    """``<js>-<rjob>-<jobIndex>-<podIndex>-<random>`` minus ``-<random>``; ``None`` below five dash parts."""
    parts = name.split("-")
    if len(parts) < 5:
        return None
    return "-".join(parts[:-1])


def leader_name_for(labels: Mapping[str, str]) -> str:
    """The suffix-stripped leader name ``<js>-<rjob>-<jobIndex>-0``; raises ``_LeaderError`` on a missing label."""
    parts = []
    for key in (c.JOBSET_NAME_KEY, c.REPLICATED_JOB_NAME_KEY, c.JOB_INDEX_KEY):
        value = labels.get(key)
        if value is None:
            raise _LeaderError(MSG_MISSING_LABEL.format(key))
        parts.append(value)
    return f"{parts[0]}-{parts[1]}-{parts[2]}-0"


def _owner_uid(meta: Mapping[str, Any]) -> str | None:
    refs = meta.get("ownerReferences")
    if not isinstance(refs, list):
        return None
    for ref in refs:
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            uid = ref.get("uid")
            return uid if isinstance(uid, str) else ""
    return None


def _find_leader(pod: Mapping[str, Any], namespace: str, lookup: PlacementLookup) -> Pod:
    meta = _obj(pod.get("metadata"))
    name = leader_name_for(_str_map(meta.get("labels")))
    live = [
        p
        for p in lookup.pods_named(namespace, name)
        if p.metadata.deletion_timestamp is None and p.status.phase not in ("Failed", "Succeeded")
    ]
    if len(live) != 1:
        raise _LeaderError(MSG_LEADER_COUNT.format(name, len(live)))
    leader = live[0]
    follower_uid = _owner_uid(meta)
    if follower_uid is None:
        raise _LeaderError(MSG_NO_FOLLOWER_OWNER)
    leader_uid = controller_uid(leader.metadata)
    if leader_uid is None:
        raise _LeaderError(MSG_NO_LEADER_OWNER.format(go_quote(leader.metadata.name)))
    if follower_uid != leader_uid:
        raise _LeaderError(MSG_OWNER_MISMATCH.format(follower_uid, leader_uid))
    return leader


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def json_diff(old: Any, new: Any, pointer: str = "") -> list[JSON]:
    """RFC 6902 operations turning ``old`` into ``new`` (objects recursively, arrays replaced whole)."""
    if isinstance(old, dict) and isinstance(new, dict):
        ops: list[JSON] = []
        for key in old:
            if key not in new:
                ops.append({"op": "remove", "path": f"{pointer}/{_escape(key)}"})
        for key, value in new.items():
            path = f"{pointer}/{_escape(key)}"
            if key not in old:
                ops.append({"op": "add", "path": path, "value": value})
            else:
                ops.extend(json_diff(old[key], value, path))
        return ops
    if old == new and type(old) is type(new):
        return []
    return [{"op": "replace", "path": pointer, "value": new}]


def _child(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """``parent[key]`` as a dict, replacing an absent/null value (other types were rejected before)."""
    value = parent.get(key)
    if not isinstance(value, dict):
        value = parent[key] = {}
    return value


def _append_term(affinity: dict[str, Any], kind: str, term: JSON) -> None:
    section = _child(affinity, kind)
    terms = section.get("requiredDuringSchedulingIgnoredDuringExecution")
    section["requiredDuringSchedulingIgnoredDuringExecution"] = [*(terms if isinstance(terms, list) else []), term]


def _leader_terms(labels: Mapping[str, str], topology: str) -> tuple[JSON, JSON]:
    job_key = labels.get(c.JOB_KEY, "")
    affinity = {
        "labelSelector": {"matchExpressions": [{"key": c.JOB_KEY, "operator": "In", "values": [job_key]}]},
        "topologyKey": topology,
        "namespaceSelector": {},
    }
    anti = {
        "labelSelector": {
            "matchExpressions": [
                {"key": c.JOB_KEY, "operator": "Exists"},
                {"key": c.JOB_KEY, "operator": "NotIn", "values": [job_key]},
                {"key": c.PRIORITY_KEY, "operator": "In", "values": [labels.get(c.PRIORITY_KEY, "")]},
            ]
        },
        "topologyKey": topology,
        "namespaceSelector": {},
    }
    return affinity, anti


def _shape_errors(pod: Mapping[str, Any]) -> str | None:
    """Containers we write into must be objects (or absent): else the pod is not one we can mutate."""
    meta, spec = pod.get("metadata"), pod.get("spec")
    if not isinstance(meta, dict) or not isinstance(spec, dict):
        return "pod metadata and spec must be objects"
    for parent, keys in ((meta, ("labels",)), (spec, ("affinity", "nodeSelector"))):
        for key in keys:
            if parent.get(key) is not None and not isinstance(parent[key], dict):
                return f"pod field {key} must be an object"
    affinity = spec.get("affinity")
    if isinstance(affinity, dict):
        for kind in ("podAffinity", "podAntiAffinity"):
            if affinity.get(kind) is not None and not isinstance(affinity[kind], dict):
                return f"pod field affinity.{kind} must be an object"
    return None


def _node_not_found(name: str) -> Denial:
    return Denial(
        message=f"nodes {go_quote(name)} not found",
        code=404,
        reason="NotFound",
        details={"name": name, "kind": "nodes"},
    )


# --------------------------------------------------------------------------------------------- mutate


def mutate_pod(pod: Any, namespace: str, lookup: PlacementLookup, jobsets: JobSetLookup | None = None) -> PodMutation:
    """The ``mpod.kb.io`` defaulting of one pod being created (see the module docstring)."""
    if not isinstance(pod, Mapping):
        return PodMutation(denial=Denial("the admitted object is not a pod", code=400, reason="BadRequest"))
    annotations = _str_map(_obj(pod.get("metadata")).get("annotations"))
    if c.JOBSET_NAME_KEY not in annotations:
        return PodMutation()
    env = _framework_env(pod, namespace, annotations, jobsets)
    placement = c.NODE_SELECTOR_STRATEGY_KEY not in annotations
    if not placement and not env:
        return PodMutation()
    problem = _shape_errors(pod)
    if problem is not None:
        return PodMutation(denial=Denial(problem, code=400, reason="BadRequest"))
    out: JSON = json_copy(dict(pod))
    meta, spec = out["metadata"], out["spec"]
    if placement:
        priority = spec.get("priority")
        if isinstance(priority, int) and not isinstance(priority, bool):
            _child(meta, "labels")[c.PRIORITY_KEY] = priority_label_value(priority)
        topology = annotations.get(c.EXCLUSIVE_TOPOLOGY_KEY)
        if topology is not None:
            if is_leader(annotations):
                affinity, anti = _leader_terms(_str_map(meta.get("labels")), topology)
                aff = _child(spec, "affinity")
                _append_term(aff, "podAffinity", affinity)
                _append_term(aff, "podAntiAffinity", anti)
            else:
                denial = _follow_leader(pod, out, namespace, topology, lookup)
                if denial is not None:
                    return PodMutation(denial=denial)
    if env:
        _add_env(spec, env)
    return PodMutation(patch=tuple(json_diff(dict(pod), out)))


def _index(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _framework_env(
    pod: Mapping[str, Any], namespace: str, annotations: Mapping[str, str], jobsets: JobSetLookup | None
) -> list[tuple[str, str]]:
    """The ``inject-env`` variables for this pod; empty when its JobSet does not opt in or cannot be read."""
    if jobsets is None:
        return []
    labels = _str_map(_obj(pod.get("metadata")).get("labels"))
    name = labels.get(c.JOBSET_NAME_KEY) or annotations.get(c.JOBSET_NAME_KEY, "")
    js = jobsets.jobset(namespace, name)
    if js is None:
        return []
    uid = labels.get(c.JOBSET_UID_KEY)
    if uid is not None and js.metadata.uid and uid != js.metadata.uid:
        return []  # a pod of an older JobSet of the same name
    rjob = labels.get(c.REPLICATED_JOB_NAME_KEY)
    job_index = _index(labels.get(c.JOB_INDEX_KEY))
    completion = _index(annotations.get(c.JOB_COMPLETION_INDEX_ANNOTATION))
    if rjob is None or job_index is None or completion is None:
        return []
    attempt = _index(labels.get(c.RESTART_ATTEMPT_KEY)) or 0
    return pod_env(js, PodIdentity(rjob, job_index, completion, attempt))


def _add_env(spec: dict[str, Any], env: list[tuple[str, str]]) -> None:
    """Append to each container's ``env`` the variables it does not define (a user's value always wins)."""
    for kind in ("initContainers", "containers"):
        containers = spec.get(kind)
        if not isinstance(containers, list):
            continue
        for ctr in containers:
            if not isinstance(ctr, dict):
                continue
            current = ctr.get("env")
            if current is not None and not isinstance(current, list):
                continue  # malformed: the API server rejects the pod with its own message
            items = list(current or [])
            defined = {e.get("name") for e in items if isinstance(e, dict)}
            added = [{"name": k, "value": v} for k, v in env if k not in defined]
            if added:
                ctr["env"] = items + added


def _follow_leader(
    pod: Mapping[str, Any], out: JSON, namespace: str, topology: str, lookup: PlacementLookup
) -> Denial | None:
    try:
        leader = _find_leader(pod, namespace, lookup)
    except _LeaderError:
        return None  # left untouched: the validating webhook rejects it with the reason
    if not leader.spec.node_name:
        return None
    node = lookup.node(leader.spec.node_name)
    if node is None:
        return _node_not_found(leader.spec.node_name)
    value = node.metadata.labels.get(topology)
    if value is None:
        return Denial(MSG_NODE_NO_LABEL.format(topology))
    _child(out["spec"], "nodeSelector")[topology] = value
    return None


# --------------------------------------------------------------------------------------------- validate


def validate_pod(pod: Any, namespace: str, lookup: PlacementLookup) -> Denial | None:
    """The ``vpod.kb.io`` check of one pod being created; ``None`` means allowed."""
    if not isinstance(pod, Mapping):
        return Denial("the admitted object is not a pod", code=400, reason="BadRequest")
    meta = _obj(pod.get("metadata"))
    annotations = _str_map(meta.get("annotations"))
    if c.JOBSET_NAME_KEY not in annotations or c.NODE_SELECTOR_STRATEGY_KEY in annotations:
        return None
    topology = annotations.get(c.EXCLUSIVE_TOPOLOGY_KEY)
    if topology is None or is_leader(annotations):
        return None
    selector = _obj(pod.get("spec")).get("nodeSelector")
    if not isinstance(selector, Mapping):  # absent or null decodes to a nil map in Go
        return Denial(MSG_SELECTOR_NOT_SET)
    if topology not in selector:
        return Denial(MSG_SELECTOR_MISSING.format(topology))
    try:
        leader = _find_leader(pod, namespace, lookup)
    except _LeaderError as err:
        return Denial(str(err))
    if not leader.spec.node_name:
        return Denial(MSG_LEADER_UNSCHEDULED)
    return None
