"""Environment for distributed frameworks (``pyjobset.io/inject-env``): what each pod of a JobSet is told.

Role: parse and check the ``pyjobset.io/inject-env`` and ``pyjobset.io/master-port`` annotations, and compute,
for one pod identified by (replicated job, job index, completion index, restart attempt), the variables of the
generic, torch and jax flavours. The pod mutating webhook adds them to every container that does not set them.

Ranks: pods are ordered by replicated-job order, then job index, then completion index; a Job of a replicated
job holds ``completions`` pods (``parallelism`` when ``completions`` is unset, 1 when both are). The rank depends
only on the JobSet's spec and the pod's identity, never on the restart attempt or on creation order, so it is the
same after every restart, and it is right when replicated jobs have different parallelism.

Invariants: pure (no I/O, no clock); total over any decoded JobSet and any annotation string (errors are
returned, never raised); the variable names and defaults are the contract's, word for word.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api import extensions as x
from api.jobset_types import JobSet, ReplicatedJob
from controller.decide import naming

__all__ = [
    "PodIdentity",
    "annotation_errors",
    "flavours",
    "master_port",
    "pod_env",
    "pods_per_job",
    "world_size",
]

_INJECT_FORM = 'a comma-separated list of "torch", "jax" and "generic", e.g. "torch" or "generic,jax"'
_PORT_FORM = 'an integer port from 1 to 65535, e.g. "29500"'


def flavours(value: str) -> tuple[tuple[str, ...], str | None]:
    """The flavours named by an ``inject-env`` value, in contract order, or an error saying what is wrong."""
    names = [part.strip() for part in value.split(",")]
    if not value.strip() or any(not n for n in names):
        return (), f"{value!r} has an empty item; use {_INJECT_FORM}"
    unknown = [n for n in names if n not in x.ENV_FLAVOURS]
    if unknown:
        return (), f"unknown flavour {unknown[0]!r}; use {_INJECT_FORM}"
    return tuple(f for f in x.ENV_FLAVOURS if f in names), None


def master_port(value: str | None, default: int) -> tuple[int, str | None]:
    """The port from ``pyjobset.io/master-port`` (``default`` when absent), or an error."""
    if value is None:
        return default, None
    text = value.strip()
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        return default, f"{value!r} is not a port; use {_PORT_FORM}"
    return int(text), None


def annotation_errors(annotations: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """``(annotation key, its value, what is wrong and the expected form)`` for each malformed annotation."""
    out: list[tuple[str, str, str]] = []
    inject = annotations.get(x.INJECT_ENV_KEY)
    if inject is not None:
        _, err = flavours(inject)
        if err is not None:
            out.append((x.INJECT_ENV_KEY, inject, err))
    port = annotations.get(x.MASTER_PORT_KEY)
    if port is not None:
        _, err = master_port(port, 0)
        if err is not None:
            out.append((x.MASTER_PORT_KEY, port, err))
    return out


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def pods_per_job(rjob: ReplicatedJob) -> int:
    """Completion indexes of one Job of ``rjob``: ``completions``, else ``parallelism``, else 1."""
    tmpl = rjob.template if isinstance(rjob.template, Mapping) else {}
    spec = tmpl.get("spec")
    spec = spec if isinstance(spec, Mapping) else {}
    for key in ("completions", "parallelism"):
        n = _int(spec.get(key))
        if n is not None:
            return max(n, 0)
    return 1


def world_size(js: JobSet) -> int:
    """Pods of the whole JobSet."""
    return sum(r.replicas * pods_per_job(r) for r in js.spec.replicated_jobs)


@dataclass(frozen=True, slots=True)
class PodIdentity:
    """Where a pod sits in its JobSet (from its labels and completion-index annotation)."""

    replicated_job: str
    job_index: int
    completion_index: int
    restart_attempt: int = 0


def _rank(js: JobSet, pod: PodIdentity) -> tuple[int, int] | None:
    """(global rank, global job index) of the pod; ``None`` when it is not a pod this spec can have."""
    pod_offset = job_offset = 0
    for rjob in js.spec.replicated_jobs:
        per_job = pods_per_job(rjob)
        if rjob.name == pod.replicated_job:
            if not (0 <= pod.job_index < rjob.replicas and 0 <= pod.completion_index < per_job):
                return None
            return pod_offset + pod.job_index * per_job + pod.completion_index, job_offset + pod.job_index
        pod_offset += rjob.replicas * per_job
        job_offset += rjob.replicas
    return None


def coordinator_host(js: JobSet) -> str:
    """``spec.coordinator``'s stable hostname, else rank 0's (the first pod of the first non-empty Job)."""
    endpoint = naming.coordinator_endpoint(js)
    if endpoint is not None:
        return endpoint
    for rjob in js.spec.replicated_jobs:
        if rjob.replicas > 0 and pods_per_job(rjob) > 0:
            return f"{naming.job_name(js.metadata.name, rjob.name, 0)}-0.{naming.subdomain(js)}"
    return ""


def pod_env(js: JobSet, pod: PodIdentity) -> list[tuple[str, str]]:
    """The variables the JobSet's ``inject-env`` asks for, for this pod, in a stable order.

    Empty when the JobSet does not opt in, when its annotations are malformed (admission refuses those), or when
    the pod's identity does not fit the spec (a pod of a replicated job or index the spec does not have).
    """
    annotations = js.metadata.annotations
    value = annotations.get(x.INJECT_ENV_KEY)
    if value is None or annotation_errors(annotations):
        return []
    names, _ = flavours(value)
    ranked = _rank(js, pod)
    if ranked is None:
        return []
    rank, global_job = ranked
    size = str(world_size(js))
    host = coordinator_host(js)
    port_value = annotations.get(x.MASTER_PORT_KEY)
    out: list[tuple[str, str]] = []
    if "generic" in names:
        out += [
            ("JOBSET_NAME", js.metadata.name),
            ("JOBSET_REPLICATED_JOB", pod.replicated_job),
            ("JOBSET_JOB_INDEX", str(pod.job_index)),
            ("JOBSET_GLOBAL_INDEX", str(global_job)),
            ("JOBSET_RESTART_ATTEMPT", str(pod.restart_attempt)),
            ("JOBSET_WORLD_SIZE", size),
            ("JOBSET_RANK", str(rank)),
            ("JOBSET_COORDINATOR", host),
        ]
    if "torch" in names:
        port, _ = master_port(port_value, x.DEFAULT_TORCH_PORT)
        out += [
            ("MASTER_ADDR", host),
            ("MASTER_PORT", str(port)),
            ("WORLD_SIZE", size),
            ("RANK", str(rank)),
            ("NODE_RANK", str(rank)),
            ("GROUP_RANK", str(rank)),
        ]
    if "jax" in names:
        port, _ = master_port(port_value, x.DEFAULT_JAX_PORT)
        out += [
            ("JAX_COORDINATOR_ADDRESS", f"{host}:{port}"),
            ("JAX_NUM_PROCESSES", size),
            ("JAX_PROCESS_ID", str(rank)),
        ]
    return out
