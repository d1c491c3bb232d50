"""Generate the ``jobsets.jobset.x-k8s.io`` CustomResourceDefinition from the JobSet API records.

Role: the one way ``deploy/crd/jobset.x-k8s.io_jobsets.yaml`` is made. The JobSet part of the schema comes from
walking the msgspec records of ``api.jobset_types`` with ``msgspec.inspect``; the embedded Kubernetes types
(the batch/v1 ``JobTemplateSpec`` of every replicated job, the core/v1 ``PersistentVolumeClaim`` templates and
``metav1.Condition``) come from a vendored, description-free subset of the Kubernetes OpenAPI v3 document
(``k8sopenapi/kubernetes-<version>.json``, package data), converted the way controller-gen converts Go types.

    python -m api.crdgen > deploy/crd/jobset.x-k8s.io_jobsets.yaml   # print the CRD
    python -m api.crdgen --write                                     # the same, into that file and the chart
    python -m api.crdgen --check                                     # exit 1 if the checked-in file drifted
    python -m api.crdgen --refresh-openapi DIR                       # re-vendor from api/openapi-spec/v3

What the records say and how it maps (invariants):
* A field without a Python default is ``required``; a field whose type is ``X | None`` is an optional property,
  never ``nullable`` (the reference CRD has no nullable field). Python defaults are what the controller assumes
  when a field is absent (decision D3 of behaviour.md), **not** CRD defaults; a CRD default exists only where the record
  says ``default`` in ``extra_json_schema`` (groupName, replicas, restartStrategy, whenDeleted).
* ``extra_json_schema`` is copied into the schema (descriptions, formats, enums, list types, CEL rules) except
  the private keys ``x-pyjobset-*``, which steer the generator: ``x-pyjobset-embed`` names the Kubernetes
  definition a plain JSON field stands for, ``x-pyjobset-required`` marks a field the reference always
  serialises (Go ``json:"x"`` without omitempty), which the API server therefore requires.
* ``Literal`` values become ``enum`` in declaration order; ``int`` constraints become ``minimum``/``maximum``;
  tuple lengths become ``minItems``/``maxItems``. The ``Condition`` record stands for ``metav1.Condition`` and
  gets that type's schema with its kubebuilder markers (required reason/message, patterns, lengths).

Why the embedded templates carry their full schema (and not ``x-kubernetes-preserve-unknown-fields``): the
reference CRD embeds the complete OpenAPI schema of ``JobTemplateSpec`` and ``PersistentVolumeClaim``, so the API
server *prunes* unknown fields inside a template (a misspelt ``contaniers`` silently disappears), rejects wrong
types, requires ``containers``, applies the Kubernetes ``+default`` markers (``ports[].protocol: TCP``,
``grpc.service: ""``, ``LocalObjectReference.name: ""`` ...) and keeps only ``name``, ``namespace``,
``labels``, ``annotations`` and ``finalizers`` of embedded object metadata (controller-gen's
``generateEmbeddedObjectMeta``). A preserve-unknown-fields template would keep all of those, and a JobSet read
back would differ from what the reference stores, so we reproduce the pruning and defaulting faithfully.
The conversion follows controller-gen: ``$ref``/``allOf`` are inlined; ``Quantity`` and ``IntOrString`` become
``anyOf: [integer, string]`` with ``x-kubernetes-int-or-string`` (Quantity also gets its grammar as
``pattern``); ``Time`` is a ``date-time`` string; list and map types and list-map keys are kept; Kubernetes
zero-value defaults (on required fields, ``{}`` on structs, inside maps and lists) are dropped because
controller-gen only emits explicit ``+default`` markers; ``enum`` is dropped because controller-gen does not
turn Kubernetes' ``+enum`` into a CRD enum (new values in newer Kubernetes releases must not be rejected).
Descriptions of Kubernetes types are left out: they are Kubernetes' prose, not ours, and without them the CRD
stays well under the 256 KiB ``last-applied-configuration`` annotation limit, so plain client-side
``kubectl apply -f deploy/crd/`` works (the reference CRD needs ``--server-side``).

The output is deterministic: keys are sorted, lists keep their meaning-bearing order, and nothing depends on
time, hash seeds or the environment. Checked against a real kube-apiserver (1.37): client-side apply works, the
schema is structural, pruning/defaulting inside templates and every CEL rule behave as described above.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from collections.abc import Iterator, Mapping
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Final, Literal, get_args, get_origin, get_type_hints

import msgspec
import msgspec.inspect as mi
import yaml

import k8sopenapi as openapi
from api import constants, jobset_types
from api.jsontypes import JSON, json_copy

K8S_VERSION: Final = "v1.36.3"
"""Kubernetes release whose OpenAPI the embedded schemas come from: the reference builds against k8s.io/api 0.36
(its pod templates carry 1.36 fields such as `schedulingGroup`, used by the workload-aware scheduling e2e)."""

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
"""The checkout this module runs from; only the ``--check``/``--write``/``--refresh-openapi`` tools use it."""
OPENAPI_SUBSET: Final[Traversable] = openapi.document(K8S_VERSION)
"""The vendored definitions, read at run time (``build_crd``): package data, so an installed wheel has them."""
CRD_PATH: Final = REPO_ROOT / "deploy" / "crd" / "jobset.x-k8s.io_jobsets.yaml"
CHART_CRD_PATH: Final = REPO_ROOT / "charts" / "pyjobset" / "crds" / "jobset.x-k8s.io_jobsets.yaml"
"""The Helm chart's copy (Helm installs ``crds/`` verbatim); written and checked together with ``CRD_PATH``."""

CRD_NAME: Final = f"{constants.PLURAL}.{constants.GROUP}"
LIST_KIND: Final = f"{constants.KIND}List"

EMBED_KEY: Final = "x-pyjobset-embed"
REQUIRED_KEY: Final = "x-pyjobset-required"
_PRIVATE_PREFIX: Final = "x-pyjobset-"

_JOB_TEMPLATE: Final = "io.k8s.api.batch.v1.JobTemplateSpec"
_PVC: Final = "io.k8s.api.core.v1.PersistentVolumeClaim"
_CONDITION: Final = "io.k8s.apimachinery.pkg.apis.meta.v1.Condition"
_OBJECT_META: Final = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_QUANTITY: Final = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_INT_OR_STRING: Final = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_TIME: Final = "io.k8s.apimachinery.pkg.apis.meta.v1.Time"
_MICRO_TIME: Final = "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime"
_RAW_EXTENSION: Final = "io.k8s.apimachinery.pkg.runtime.RawExtension"

VENDOR_ROOTS: Final = (_JOB_TEMPLATE, _PVC, _CONDITION)
"""Definitions the generator needs; the vendored file holds exactly their closure (special types are leaves)."""

_OPENAPI_FILES: Final = ("api__v1_openapi.json", "apis__batch__v1_openapi.json")

# Keys of a Kubernetes OpenAPI node that carry schema facts a CRD can hold. Everything else (descriptions,
# patch strategies, unions, discriminators, group-version-kind) is dropped when vendoring.
_VENDORED_KEYS: Final = frozenset(
    {"type", "format", "properties", "items", "additionalProperties", "required", "default", "$ref", "allOf"}
    | {"x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type"}
)

# The grammar of resource.Quantity as a regular expression (sign, decimal number, then a binary SI suffix, a
# decimal SI suffix or a decimal exponent), as the API server's structural schemas for quantities carry it.
QUANTITY_PATTERN: Final = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

# Embedded ObjectMeta as controller-gen emits it with generateEmbeddedObjectMeta=true.
_EMBEDDED_OBJECT_META: Final[JSON] = {
    "type": "object",
    "properties": {
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "name": {"type": "string"},
        "namespace": {"type": "string"},
    },
}

# metav1.Condition's kubebuilder validation markers, which the OpenAPI document does not carry.
_CONDITION_MARKERS: Final[dict[str, JSON]] = {
    "type": {
        "maxLength": 316,
        "pattern": r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    },
    "status": {"enum": ["True", "False", "Unknown"]},
    "observedGeneration": {"minimum": 0},
    "reason": {"maxLength": 1024, "minLength": 1, "pattern": r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"},
    "message": {"maxLength": 32768},
}
_CONDITION_REQUIRED: Final = ["lastTransitionTime", "message", "reason", "status", "type"]

# Descriptions of our own API, in our words; ``kubectl explain jobset.spec...`` shows them. Keys are
# ``<Record>.<wire name>`` of fields whose record carries no description itself; tests check every key exists.
TYPE_DESCRIPTIONS: Final[dict[str, str]] = {
    "JobSet": "JobSet runs a group of Kubernetes Jobs (replicated from templates) as one unit of work.",
    "JobSetSpec": "Desired state of a JobSet.",
    "JobSetStatus": "Observed state of a JobSet, written by the JobSet controller.",
    "ReplicatedJob": "A Job template and the number of Jobs to create from it.",
    "DependsOn": "A dependency on an earlier ReplicatedJob reaching a status.",
    "Network": "Networking options: headless Service, pod hostnames and subdomain.",
    "SuccessPolicy": "When the JobSet counts as completed.",
    "FailurePolicy": "How child Job failures restart or fail the JobSet.",
    "FailurePolicyRule": "An action taken when a failed child Job matches the rule.",
    "StartupPolicy": "Order in which ReplicatedJobs are started (deprecated: use dependsOn).",
    "Coordinator": "The pod whose stable network endpoint is published as the coordinator.",
    "VolumeClaimPolicy": "PersistentVolumeClaims shared by the JobSet's pods and their retention.",
    "RetentionPolicy": "What happens to the shared PersistentVolumeClaims when the JobSet is deleted.",
    "ReplicatedJobStatus": "Counts of the current attempt's child Jobs of one ReplicatedJob.",
}
FIELD_DESCRIPTIONS: Final[dict[str, str]] = {
    "JobSetSpec.replicatedJobs": "The groups of identical Jobs that make up the JobSet, keyed by name.",
    "JobSetSpec.network": "Networking options for the JobSet's pods. Immutable.",
    "JobSetSpec.successPolicy": "When to mark the JobSet completed; by default when every Job completed. Immutable.",
    "JobSetSpec.failurePolicy": "When to restart or fail the JobSet after a child Job failed. Immutable.",
    "JobSetSpec.startupPolicy": "Deprecated in favour of dependsOn: start ReplicatedJobs in order. Immutable.",
    "JobSetSpec.suspend": "Suspends all child Jobs while true.",
    "JobSetSpec.coordinator": "Publishes one pod's stable endpoint on every Job and pod as the coordinator.",
    "JobSetSpec.managedBy": "Controller that reconciles this JobSet; other values than "
    "jobset.sigs.k8s.io/jobset-controller are skipped by this controller. Immutable.",
    "JobSetSpec.ttlSecondsAfterFinished": "Seconds after the JobSet finished before it is deleted.",
    "JobSetSpec.volumeClaimPolicies": "Shared PersistentVolumeClaims created for the JobSet. Immutable.",
    "ReplicatedJob.replicas": "Number of Jobs created from the template.",
    "ReplicatedJob.dependsOn": "ReplicatedJobs (listed earlier) that must reach a status before this one starts. "
    "Immutable.",
    "Network.enableDNSHostnames": "Create a headless Service and give pods stable DNS hostnames.",
    "Network.subdomain": "Name of the headless Service and pod subdomain; defaults to the JobSet name.",
    "Network.publishNotReadyAddresses": "Publish DNS records of pods before they are ready (default true).",
    "SuccessPolicy.operator": "All: every targeted Job must complete; Any: one completed Job is enough.",
    "SuccessPolicy.targetReplicatedJobs": "ReplicatedJobs the operator applies to; empty means all.",
    "FailurePolicy.maxRestarts": "Maximum number of JobSet restarts counted toward the limit.",
    "FailurePolicy.restartStrategy": "How a restart recreates the Jobs.",
    "FailurePolicy.rules": "Rules evaluated in order for each failed Job; the first match decides.",
    "FailurePolicyRule.name": "Unique name of the rule.",
    "FailurePolicyRule.action": "What to do when the rule matches.",
    "FailurePolicyRule.onJobFailureReasons": "Job failure reasons the rule matches; empty matches any.",
    "FailurePolicyRule.onJobFailureMessagePatterns": "RE2 patterns of Job failure messages; empty matches any.",
    "FailurePolicyRule.targetReplicatedJobs": "ReplicatedJobs the rule applies to; empty means all.",
    "StartupPolicy.startupPolicyOrder": "AnyOrder starts everything at once; InOrder waits for each to be ready.",
    "Coordinator.replicatedJob": "ReplicatedJob containing the coordinator pod.",
    "Coordinator.jobIndex": "Index of the Job containing the coordinator pod.",
    "Coordinator.podIndex": "Completion index of the coordinator pod.",
    "VolumeClaimPolicy.templates": "PersistentVolumeClaim templates; each claim is named <template>-<jobset>.",
    "VolumeClaimPolicy.retentionPolicy": "Lifecycle of the claims created from the templates.",
    "RetentionPolicy.whenDeleted": "Delete the claims with the JobSet, or Retain them.",
    "JobSetStatus.conditions": "Latest observations of the JobSet's state.",
    "JobSetStatus.restarts": "Number of JobSet restarts so far.",
    "JobSetStatus.restartsCountTowardsMax": "Number of restarts that count toward failurePolicy.maxRestarts.",
    "JobSetStatus.terminalState": "Completed or Failed once the JobSet finished; empty before.",
    "JobSetStatus.replicatedJobsStatus": "Per-ReplicatedJob counts of child Jobs.",
    "JobSetStatus.previousInPlaceRestartAttempt": "In-place restart attempt that agents at or below restart from.",
    "JobSetStatus.currentInPlaceRestartAttempt": "In-place restart attempt whose agents may lift their barrier.",
    "ReplicatedJobStatus.name": "Name of the ReplicatedJob.",
    "ReplicatedJobStatus.ready": "Jobs whose ready and succeeded pods reach the expected pod count.",
    "ReplicatedJobStatus.succeeded": "Jobs that completed.",
    "ReplicatedJobStatus.failed": "Jobs that failed.",
    "ReplicatedJobStatus.active": "Unfinished Jobs with at least one active pod.",
    "ReplicatedJobStatus.suspended": "Unfinished Jobs that are suspended.",
    "ReplicatedJobStatus.jobRestarts": "Individual restarts of each Job index.",
    "ReplicatedJobStatus.jobRestartsCountTowardsMax": "Individual restarts of each Job index counted toward "
    "failurePolicy.maxRestarts.",
}

PRINTER_COLUMNS: Final[list[JSON]] = [
    {"name": name, "type": kind, "jsonPath": path, **({"description": text} if text else {})}
    for name, kind, path, text in (
        ("TerminalState", "string", ".status.terminalState", "Final state of the JobSet"),
        ("Restarts", "string", ".status.restarts", "Number of restarts"),
        ("Completed", "string", '.status.conditions[?(@.type=="Completed")].status', ""),
        ("Suspended", "string", ".spec.suspend", "Whether the JobSet is suspended"),
        ("Age", "date", ".metadata.creationTimestamp", "Time since creation"),
    )
]


class CRDGenError(Exception):
    """A record or a vendored definition that the generator cannot express as a structural schema."""


# --------------------------------------------------------------------------------------------- records


def _literal_order(annotation: Any) -> list[Any]:
    """Every ``Literal`` value inside an annotation, in declaration order (msgspec.inspect sorts them)."""
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    out: list[Any] = []
    for arg in get_args(annotation):
        if not isinstance(arg, msgspec.Meta):
            out.extend(_literal_order(arg))
    return out


class _RecordWalker:
    """Turns msgspec type information into structural-schema nodes."""

    def __init__(self, k8s: _K8sConverter) -> None:
        self._k8s = k8s

    def struct(self, info: mi.StructType) -> JSON:
        cls = info.cls
        if cls is jobset_types.Condition:
            return self._k8s.definition(_CONDITION)
        hints = get_type_hints(cls, include_extras=True)
        props: JSON = {}
        required: list[str] = []
        for field in info.fields:
            node, wire_required = self.node(field.type, _literal_order(hints[field.name]))
            key = f"{cls.__name__}.{field.encode_name}"
            if key in FIELD_DESCRIPTIONS:
                if _own_description(field.type):
                    raise CRDGenError(f"{key} is described both on the record and in FIELD_DESCRIPTIONS")
                # A field's description wins over its type's, as in Go doc comments.
                node = {**node, "description": FIELD_DESCRIPTIONS[key]}
            props[field.encode_name] = node
            if field.required or wire_required:
                required.append(field.encode_name)
        schema: JSON = {"type": "object", "properties": props}
        if required:
            schema["required"] = sorted(required)
        if cls.__name__ in TYPE_DESCRIPTIONS:
            schema["description"] = TYPE_DESCRIPTIONS[cls.__name__]
        return schema

    def node(self, t: mi.Type, order: list[Any]) -> tuple[JSON, bool]:
        """Schema of one type, and whether a field of this type must be listed as required."""
        if isinstance(t, mi.Metadata):
            extra = dict(t.extra_json_schema or {})
            wire_required = bool(extra.pop(REQUIRED_KEY, False))
            embed = extra.pop(EMBED_KEY, None)
            unknown = [k for k in extra if k.startswith(_PRIVATE_PREFIX)]
            if unknown:
                raise CRDGenError(f"unknown generator keys {unknown}")
            if embed is not None:
                base = self._k8s.definition(str(embed))
                extra.pop("type", None)
                if extra.pop("x-kubernetes-preserve-unknown-fields", None):
                    raise CRDGenError(f"{embed}: an embedded type cannot also preserve unknown fields")
            else:
                base, inner_required = self.node(t.type, order)
                wire_required = wire_required or inner_required
            return _merge(base, extra), wire_required
        if isinstance(t, mi.UnionType):
            members = [m for m in t.types if not isinstance(m, mi.NoneType)]
            if len(members) != 1:
                raise CRDGenError(f"only `X | None` unions are expressible, got {t}")
            return self.node(members[0], order)
        return self.plain(t, order), False

    def plain(self, t: mi.Type, order: list[Any]) -> JSON:
        if isinstance(t, mi.StructType):
            return self.struct(t)
        if isinstance(t, mi.StrType):
            return _drop_none(
                {"type": "string", "minLength": t.min_length, "maxLength": t.max_length, "pattern": t.pattern}
            )
        if isinstance(t, mi.BoolType):
            return {"type": "boolean"}
        if isinstance(t, mi.IntType):
            if t.multiple_of is not None:
                raise CRDGenError("multipleOf is not used by the JobSet API")
            low = t.ge if t.gt is None else t.gt + 1
            high = t.le if t.lt is None else t.lt - 1
            return _drop_none({"type": "integer", "minimum": low, "maximum": high})
        if isinstance(t, mi.FloatType):
            return {"type": "number"}
        if isinstance(t, mi.LiteralType):
            values = sorted(t.values, key=lambda v: order.index(v) if v in order else len(order))
            kinds = {type(v) for v in values}
            if kinds != {str}:
                raise CRDGenError(f"only string literals are expressible, got {values}")
            return {"type": "string", "enum": values}
        if isinstance(t, mi.VarTupleType | mi.ListType | mi.SetType | mi.FrozenSetType):
            item, _ = self.node(t.item_type, order)
            return _drop_none({"type": "array", "items": item, "minItems": t.min_length, "maxItems": t.max_length})
        if isinstance(t, mi.DictType):
            if isinstance(t.value_type, mi.AnyType):
                raise CRDGenError("a free-form JSON field needs x-pyjobset-embed naming its Kubernetes type")
            value, _ = self.node(t.value_type, order)
            return {"type": "object", "additionalProperties": value}
        raise CRDGenError(f"type {t!r} has no structural-schema form")


def _own_description(t: mi.Type) -> bool:
    """Whether the annotation of a field itself (not its type's record) carries a description."""
    if isinstance(t, mi.UnionType):
        return any(_own_description(m) for m in t.types)
    return isinstance(t, mi.Metadata) and ("description" in (t.extra_json_schema or {}) or _own_description(t.type))


def _drop_none(d: JSON) -> JSON:
    return {k: v for k, v in d.items() if v is not None}


def _merge(base: JSON, extra: Mapping[str, Any]) -> JSON:
    """``base`` overlaid with ``extra``; CEL rules of both are kept (outer rules after inner ones)."""
    out = dict(base)
    for key, value in extra.items():
        if key == "x-kubernetes-validations" and key in out:
            out[key] = [*out[key], *value]
        else:
            out[key] = json_copy(value)
    return out


# --------------------------------------------------------------------------------------------- kubernetes


class _K8sConverter:
    """Converts vendored Kubernetes OpenAPI v3 definitions into CRD schema nodes, as controller-gen would."""

    def __init__(self, definitions: Mapping[str, JSON]) -> None:
        self._defs = definitions
        self._stack: list[str] = []

    def definition(self, name: str) -> JSON:
        special = self._special(name)
        if special is not None:
            return special
        if name not in self._defs:
            raise CRDGenError(f"{name} is not in the vendored OpenAPI subset; run --refresh-openapi")
        if name in self._stack:
            raise CRDGenError(f"recursive Kubernetes type {name} cannot be inlined")
        self._stack.append(name)
        try:
            node = self._convert(self._defs[name])
        finally:
            self._stack.pop()
        if name == _CONDITION:
            for prop, markers in _CONDITION_MARKERS.items():
                node["properties"][prop].update(markers)
            node["required"] = list(_CONDITION_REQUIRED)
        return node

    @staticmethod
    def _special(name: str) -> JSON | None:
        if name == _OBJECT_META:
            return json_copy(_EMBEDDED_OBJECT_META)
        if name == _QUANTITY:
            return {
                "anyOf": [{"type": "integer"}, {"type": "string"}],
                "pattern": QUANTITY_PATTERN,
                "x-kubernetes-int-or-string": True,
            }
        if name == _INT_OR_STRING:
            return {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}
        if name in (_TIME, _MICRO_TIME):
            return {"type": "string", "format": "date-time"}
        if name == _RAW_EXTENSION:
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        return None

    def _convert(self, node: Mapping[str, Any]) -> JSON:
        ref = _single_ref(node)
        if ref is not None:
            return self.definition(ref)
        out: JSON = {}
        for key in ("type", "format", "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type"):
            if key in node:
                out[key] = json_copy(node[key])
        if "items" in node:
            out["items"] = self._convert(node["items"])
        if isinstance(node.get("additionalProperties"), dict):
            out["additionalProperties"] = self._convert(node["additionalProperties"])
        if "properties" in node:
            required = list(node.get("required", []))
            props: JSON = {}
            for prop, sub in node["properties"].items():
                converted = self._convert(sub)
                converted.pop("default", None)
                default = sub.get("default")
                # Kubernetes' OpenAPI gives every required or non-pointer field its zero value as default;
                # only explicit ``+default`` markers on optional scalar fields survive into a CRD.
                if default is not None and prop not in required and not isinstance(default, dict | list):
                    converted["default"] = default
                props[prop] = converted
            out["properties"] = props
            if required:
                out["required"] = sorted(required)
        return out


def _single_ref(node: Mapping[str, Any]) -> str | None:
    if "$ref" in node:
        return str(node["$ref"]).rsplit("/", 1)[-1]
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and "$ref" in all_of[0]:
        return str(all_of[0]["$ref"]).rsplit("/", 1)[-1]
    return None


# --------------------------------------------------------------------------------------------- vendoring


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield str(value).rsplit("/", 1)[-1]
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _trim(node: Any) -> Any:
    if isinstance(node, dict):
        out: JSON = {}
        for key, value in node.items():
            if key == "properties":
                out[key] = {prop: _trim(sub) for prop, sub in value.items()}
            elif key in _VENDORED_KEYS:
                out[key] = _trim(value)
        return out
    if isinstance(node, list):
        return [_trim(v) for v in node]
    return node


def vendor_subset(openapi_dir: Path) -> JSON:
    """The closure of ``VENDOR_ROOTS`` in a Kubernetes ``api/openapi-spec/v3`` directory, trimmed to CRD facts."""
    schemas: JSON = {}
    for filename in _OPENAPI_FILES:
        doc = json.loads((openapi_dir / filename).read_text(encoding="utf-8"))
        schemas.update(doc["components"]["schemas"])
    leaves = {_OBJECT_META, _QUANTITY, _INT_OR_STRING, _TIME, _MICRO_TIME, _RAW_EXTENSION}
    chosen: JSON = {}
    pending = list(VENDOR_ROOTS)
    while pending:
        name = pending.pop()
        if name in chosen or name in leaves:
            continue
        chosen[name] = _trim(schemas[name])
        pending.extend(_refs(schemas[name]))
    return {
        "source": f"Kubernetes {K8S_VERSION} api/openapi-spec/v3 (descriptions and patch metadata removed)",
        "definitions": dict(sorted(chosen.items())),
    }


def load_definitions(path: Path | Traversable = OPENAPI_SUBSET) -> dict[str, JSON]:
    data = json.loads(path.read_text(encoding="utf-8"))
    defs: dict[str, JSON] = data["definitions"]
    return defs


# --------------------------------------------------------------------------------------------- the CRD


def jobset_schema(definitions: Mapping[str, JSON]) -> JSON:
    """The ``openAPIV3Schema`` of the JobSet resource."""
    walker = _RecordWalker(_K8sConverter(definitions))
    root = walker.struct(typing.cast(mi.StructType, mi.type_info(jobset_types.JobSet)))
    # Object metadata at the root is validated by the API server itself; a CRD may only say "object".
    root["properties"]["metadata"] = {"type": "object"}
    return root


def build_crd(definitions: Mapping[str, JSON] | None = None) -> JSON:
    defs = load_definitions() if definitions is None else definitions
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME, "labels": {"app.kubernetes.io/name": "jobset"}},
        "spec": {
            "group": constants.GROUP,
            "names": {
                "kind": constants.KIND,
                "listKind": LIST_KIND,
                "plural": constants.PLURAL,
                "singular": constants.SINGULAR,
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": constants.VERSION,
                    "served": True,
                    "storage": True,
                    "additionalPrinterColumns": json_copy(PRINTER_COLUMNS),
                    "schema": {"openAPIV3Schema": jobset_schema(defs)},
                    "subresources": {"status": {}},
                }
            ],
        },
    }


_HEADER: Final = (
    "# Generated by `python -m api.crdgen` from api/jobset_types.py and\n"
    f"# k8sopenapi/kubernetes-{K8S_VERSION}.json. Do not edit by hand.\n"
)


class _Dumper(yaml.SafeDumper):
    """Block-style YAML with multi-line strings as literal blocks; otherwise PyYAML's safe defaults."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def render(crd: Mapping[str, Any]) -> str:
    body = yaml.dump(dict(crd), Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=120)
    return _HEADER + "---\n" + body


def generate() -> str:
    return render(build_crd())


# --------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.crdgen", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail if the checked-in CRD drifted")
    mode.add_argument("--write", action="store_true", help="write the CRD into deploy/crd/ and the Helm chart")
    mode.add_argument(
        "--refresh-openapi",
        metavar="DIR",
        type=Path,
        help="re-vendor the Kubernetes definitions from an api/openapi-spec/v3 directory",
    )
    args = parser.parse_args(argv)
    try:
        if args.refresh_openapi is not None:
            subset = vendor_subset(args.refresh_openapi)
            target = openapi.SOURCE_DIR / openapi.document_name(K8S_VERSION)
            target.write_text(json.dumps(subset, indent=1, sort_keys=True) + "\n", encoding="utf-8")
            return 0
        text = generate()
    except (CRDGenError, OSError, KeyError, ValueError) as exc:
        print(f"crdgen: {exc}", file=sys.stderr)
        return 2
    if args.check:
        stale = [p for p in (CRD_PATH, CHART_CRD_PATH) if not p.exists() or p.read_text(encoding="utf-8") != text]
        for path in stale:
            print(f"crdgen: {path} is out of date; run `python -m api.crdgen --write`", file=sys.stderr)
        return 1 if stale else 0
    if args.write:
        for path in (CRD_PATH, CHART_CRD_PATH):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
