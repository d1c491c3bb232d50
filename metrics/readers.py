"""Reading the slim records the way the metrics need them: times, quantities, GPUs, attempts, pod summaries.

Role: small pure functions shared by the lifecycle tracker and the collectors. Invariants: never raise on
malformed input (a bad quantity counts as 0, a bad timestamp as unknown); never keep a reference to a record.
"""

from __future__ import annotations

from typing import Any

from api import constants as c
from api import timefmt
from api.jobset_types import JobSetStatus
from api.records import Pod


def parse_time(ts: str | None) -> float | None:
    """RFC 3339 (``2026-01-02T03:04:05Z``) → epoch seconds, or None."""
    when = timefmt.parse_time(ts)
    return None if when is None else when.timestamp()


def parse_count(q: str | int | float) -> int:
    """An extended-resource quantity (GPUs are whole numbers: "8", or 8 from a producer that sends numbers);
    anything unparsable counts as 0."""
    if isinstance(q, int | float):
        return int(q)
    try:
        return int(q)
    except ValueError:
        try:
            return int(float(q))
        except ValueError:
            return 0


def pod_gpus(pod: Pod, resource: str) -> int:
    """GPUs a pod asks for: the sum over its containers of requests (limits when no request: extended
    resources default their request to the limit)."""
    total = 0
    for ctr in pod.spec.containers:
        res = ctr.resources
        q = res.requests.get(resource) or res.limits.get(resource)
        if q:
            total += parse_count(q)
    return total


def attempt_of(raw: str | None) -> int:
    """The ``restart-attempt`` label value as a number (0 when absent or malformed)."""
    return int(raw) if raw and raw.isdigit() else 0


def pods_per_job(template: dict[str, Any]) -> int:
    """Pods one Job of a replicated job runs at once: parallelism (default 1), capped by completions."""
    spec = template.get("spec") or {}
    par = spec.get("parallelism")
    par = 1 if par is None else int(par)
    comp = spec.get("completions")
    return min(par, int(comp)) if comp is not None else par


def condition_true(status: JobSetStatus, ctype: str) -> bool:
    return any(cond.type == ctype and cond.status == "True" for cond in status.conditions)


PodState = tuple[str, int, bool, int, int, int, int]
"""What the tracker keeps per pod: (JobSet UID label, attempt, counted, bound, running, ready, GPUs held).

A plain tuple of atomic values, which the cyclic GC untracks (100k pods must not lengthen full collections)."""


def pod_state(pod: Pod, resource: str) -> PodState:
    """The tracker's summary of one pod: bound = has a node; running = Running or Succeeded; ready = Ready
    condition True or Succeeded; counted = not being deleted and not Failed; GPUs held while bound and unfinished."""
    labels = pod.metadata.labels
    phase = pod.status.phase
    bound = bool(pod.spec.node_name)
    ready = phase == "Succeeded" or any(
        cond.type == "Ready" and cond.status == "True" for cond in pod.status.conditions
    )
    held = pod_gpus(pod, resource) if bound and phase not in ("Succeeded", "Failed") else 0
    return (
        labels.get(c.JOBSET_UID_KEY) or "",
        attempt_of(labels.get(c.RESTART_ATTEMPT_KEY)),
        pod.metadata.deletion_timestamp is None and phase != "Failed",
        int(bound),
        int(phase in ("Running", "Succeeded")),
        int(ready),
        held,
    )
