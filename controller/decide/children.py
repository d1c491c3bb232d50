"""Builders for the objects a JobSet owns: child Jobs, the headless Service and PVCs (behaviour.md §2 and §3).

Role: turn a JobSet record and a replicated-job index into the exact manifest the reference controller would
create. Invariants: the JobSet's template is deep-copied before anything is changed (records are shared);
controller-set labels and annotations win over template ones; the same inputs always give the same manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api import constants as c
from api.jobset_types import JobSet, ReplicatedJob
from api.jsontypes import JSON, json_copy
from controller.decide import naming


def owner_reference(js: JobSet) -> JSON:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "name": js.metadata.name,
        "uid": js.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _exclusive_annotations(js: JobSet, rjob: ReplicatedJob) -> dict[str, str]:
    """Exclusive-placement keys: the rjob's job-template level wins over the JobSet level, and the
    node-selector strategy flag comes from whichever level supplied the topology key."""
    tmpl_ann = _mapping(_mapping(rjob.template.get("metadata")).get("annotations"))
    for source in (tmpl_ann, js.metadata.annotations):
        topology = source.get(c.EXCLUSIVE_TOPOLOGY_KEY)
        if isinstance(topology, str):
            out = {c.EXCLUSIVE_TOPOLOGY_KEY: topology}
            flag = source.get(c.NODE_SELECTOR_STRATEGY_KEY)
            if isinstance(flag, str):
                out[c.NODE_SELECTOR_STRATEGY_KEY] = flag
            return out
    return {}


def child_labels(
    js: JobSet, rjob: ReplicatedJob, job_index: int, *, job_restart_attempt: int | None = None
) -> dict[str, str]:
    """The controller's labels for one child Job (also written as annotations, on the Job and its pods).

    ``job_restart_attempt`` is given only when feature gate RestartJob is on.
    """
    name = naming.job_name(js.metadata.name, rjob.name, job_index)
    labels = {
        c.JOBSET_NAME_KEY: js.metadata.name,
        c.JOBSET_UID_KEY: js.metadata.uid,
        c.REPLICATED_JOB_NAME_KEY: rjob.name,
        c.RESTART_ATTEMPT_KEY: str(js.status.restarts),
        c.REPLICATED_JOB_REPLICAS_KEY: str(rjob.replicas),
        c.GLOBAL_REPLICAS_KEY: str(naming.global_replicas(js)),
        c.JOB_INDEX_KEY: str(job_index),
        c.JOB_GLOBAL_INDEX_KEY: naming.global_job_index(js, rjob.name, job_index),
        c.JOB_KEY: naming.job_key(js.metadata.namespace, name),
        c.GROUP_NAME_KEY: rjob.group_name,
        c.GROUP_REPLICAS_KEY: naming.group_replicas(js, rjob.group_name),
        c.JOB_GROUP_INDEX_KEY: naming.group_job_index(js, rjob.name, job_index),
    }
    if job_restart_attempt is not None:
        labels[c.JOB_RESTART_ATTEMPT_KEY] = str(job_restart_attempt)
    endpoint = naming.coordinator_endpoint(js)
    if endpoint is not None:
        labels[c.COORDINATOR_KEY] = endpoint
    return labels


def build_job(js: JobSet, rjob: ReplicatedJob, job_index: int, *, job_restart_attempt: int | None = None) -> JSON:
    """The batch/v1 Job manifest for ``rjob`` index ``job_index`` of ``js``."""
    name = naming.job_name(js.metadata.name, rjob.name, job_index)
    ours = child_labels(js, rjob, job_index, job_restart_attempt=job_restart_attempt)
    exclusive = _exclusive_annotations(js, rjob)

    template = json_copy(rjob.template)
    tmeta = _mapping(template.get("metadata"))
    spec: JSON = dict(_mapping(template.get("spec")))
    pod_template: JSON = dict(_mapping(spec.get("template")))
    pmeta = _mapping(pod_template.get("metadata"))
    pod_spec: JSON = dict(_mapping(pod_template.get("spec")))

    job_meta: JSON = {
        "name": name,
        "namespace": js.metadata.namespace,
        "labels": {**_str_map(tmeta.get("labels")), **ours},
        "annotations": {**_str_map(tmeta.get("annotations")), **ours, **exclusive},
        "ownerReferences": [owner_reference(js)],
    }
    pod_meta: JSON = {
        **pmeta,
        "labels": {**_str_map(pmeta.get("labels")), **ours},
        "annotations": {**_str_map(pmeta.get("annotations")), **ours, **exclusive},
    }

    if naming.dns_hostnames_enabled(js):
        pod_spec["subdomain"] = naming.subdomain(js)

    if c.EXCLUSIVE_TOPOLOGY_KEY in exclusive and c.NODE_SELECTOR_STRATEGY_KEY in exclusive:
        selector = dict(_str_map(pod_spec.get("nodeSelector")))
        selector[c.NAMESPACED_JOB_KEY] = f"{js.metadata.namespace}_{name}"
        pod_spec["nodeSelector"] = selector
        tolerations = list(pod_spec.get("tolerations") or [])
        tolerations.append({"key": c.NO_SCHEDULE_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"})
        pod_spec["tolerations"] = tolerations

    _add_claim_volumes(js, pod_spec)

    pod_template["metadata"] = pod_meta
    pod_template["spec"] = pod_spec
    spec["template"] = pod_template
    spec["suspend"] = bool(js.spec.suspend)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta, "spec": spec}


def _add_claim_volumes(js: JobSet, pod_spec: JSON) -> None:
    """Append a volume for every volume-claim template that a container or init container mounts by name."""
    if not js.spec.volume_claim_policies:
        return
    mounted: set[str] = set()
    for key in ("containers", "initContainers"):
        for container in pod_spec.get(key) or []:
            for mount in _mapping(container).get("volumeMounts") or []:
                mount_name = _mapping(mount).get("name")
                if isinstance(mount_name, str):
                    mounted.add(mount_name)
    volumes = list(pod_spec.get("volumes") or [])
    for policy in js.spec.volume_claim_policies:
        for tmpl in policy.templates:
            tname = _mapping(tmpl.get("metadata")).get("name")
            if isinstance(tname, str) and tname in mounted:
                volumes.append({"name": tname, "persistentVolumeClaim": {"claimName": f"{tname}-{js.metadata.name}"}})
    if volumes:
        pod_spec["volumes"] = volumes


def build_headless_service(js: JobSet) -> JSON:
    """The headless Service giving pods stable DNS names: no ports, selects every pod of the JobSet."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": naming.subdomain(js),
            "namespace": js.metadata.namespace,
            "ownerReferences": [owner_reference(js)],
        },
        "spec": {
            "clusterIP": "None",
            "selector": {c.JOBSET_NAME_KEY: js.metadata.name},
            "publishNotReadyAddresses": naming.publish_not_ready_addresses(js),
        },
    }


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str_map(value: object) -> dict[str, str]:
    return {k: v for k, v in _mapping(value).items() if isinstance(v, str)}


def build_pvcs(js: JobSet) -> list[JSON]:
    """One PersistentVolumeClaim per volume-claim template: ``<template>-<jobset>`` (behaviour.md §3).

    Labels are the template's plus ``jobset-name``; annotations and spec are the template's. Only claims whose
    policy retains nothing (``whenDeleted: Delete``, the default) get the JobSet as controller owner, so the
    garbage collector removes them with it; ``Retain`` claims outlive the JobSet.
    """
    out: list[JSON] = []
    for policy in js.spec.volume_claim_policies:
        retention = policy.retention_policy.when_deleted if policy.retention_policy is not None else "Delete"
        for tmpl in policy.templates:
            tmeta = _mapping(tmpl.get("metadata"))
            tname = tmeta.get("name")
            if not isinstance(tname, str) or not tname:
                continue
            meta: JSON = {
                "name": f"{tname}-{js.metadata.name}",
                "namespace": js.metadata.namespace,
                "labels": {**_str_map(tmeta.get("labels")), c.JOBSET_NAME_KEY: js.metadata.name},
            }
            annotations = _str_map(tmeta.get("annotations"))
            if annotations:
                meta["annotations"] = annotations
            if retention == "Delete":
                meta["ownerReferences"] = [owner_reference(js)]
            out.append(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": meta,
                    "spec": json_copy(dict(_mapping(tmpl.get("spec")))),
                }
            )
    return out
