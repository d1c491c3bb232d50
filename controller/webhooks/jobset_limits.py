"""Size limits of our own on JobSets, checked at admission (behaviour.md §5.5 "Size limits").

Role: refuse, with a message naming the field and the fix, a JobSet too large for one controller to carry: more
than ``MAX_JOBS_PER_JOBSET`` child Jobs in total, more than ``MAX_REPLICATED_JOBS`` replicated jobs, or a JSON
encoding over ``MAX_JOBSET_BYTES``. The reference has none of these limits (its CRD and webhook accept any
size); they are a deliberate choice of pyjobset. ``replicas: 0`` and an empty ``replicatedJobs`` stay accepted as
the reference accepts them (no Job is created for them).

Invariants: pure; never raises for JSON-compatible input; cost O(size of the object) (one JSON encoding). An
UPDATE is refused for its size only when it grows an object past the limit, so an object stored before the
limit existed can still be updated (finalizers removed, suspended, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from api.constants import MAX_JOBS_PER_JOBSET, MAX_JOBSET_BYTES, MAX_REPLICATED_JOBS
from controller.webhooks.fielderrors import ErrorList, ErrorType, FieldError, Path
from controller.webhooks.jsonview import JobSetView

__all__ = ["encoded_size", "limit_errors", "update_size_errors"]

_RJOBS = Path("spec").child("replicatedJobs")


def encoded_size(value: Any) -> int:
    """Bytes of ``value`` as compact JSON (what the API server stores, give or take its own fields)."""
    try:
        return len(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        return 0


def limit_errors(obj: Any, view: JobSetView) -> ErrorList:
    """The CREATE size refusals; empty when the JobSet is within every limit."""
    errs = ErrorList()
    size = encoded_size(obj)
    if size > MAX_JOBSET_BYTES:
        errs.append(_too_big(obj, view, size))
    if len(view.rjobs) > MAX_REPLICATED_JOBS:
        errs.append(
            FieldError(
                ErrorType.TOO_MANY,
                str(_RJOBS),
                len(view.rjobs),
                f"must have at most {MAX_REPLICATED_JOBS} items (a pyjobset limit): give replicated jobs that share "
                "a template one entry with more replicas, or split the work into several JobSets",
            )
        )
    total = sum(max(rj.replicas, 0) for rj in view.rjobs)
    if total > MAX_JOBS_PER_JOBSET:
        largest = max(view.rjobs, key=lambda rj: rj.replicas)
        errs.append(
            FieldError.invalid(
                largest.path.child("replicas"),
                largest.replicas,
                f"the JobSet would own {total} Jobs (the sum of replicas over spec.replicatedJobs) and at most "
                f"{MAX_JOBS_PER_JOBSET} are allowed (a pyjobset limit): lower replicas (e.g. run more pods per Job "
                "through parallelism and completions), or split the work into several JobSets",
            )
        )
    return errs


def update_size_errors(new: Any, old: Any, view: JobSetView) -> ErrorList:
    """The UPDATE size refusal: the new object is over ``MAX_JOBSET_BYTES`` and larger than the stored one."""
    size = encoded_size(new)
    if size <= MAX_JOBSET_BYTES or size <= encoded_size(old):
        return ErrorList()
    return ErrorList([_too_big(new, view, size)])


def _too_big(obj: Any, view: JobSetView, size: int) -> FieldError:
    """Point at the largest part (a replicated job's template, the annotations, the labels, or the spec)."""
    parts: list[tuple[int, Path]] = [
        (encoded_size(rj.raw.get("template")), rj.path.child("template")) for rj in view.rjobs
    ]
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    if isinstance(meta, Mapping):
        for key in ("annotations", "labels"):
            parts.append((encoded_size(meta.get(key)), Path("metadata").child(key)))
    biggest, path = max(parts, key=lambda p: p[0], default=(0, Path("spec")))
    if biggest * 2 < size:  # no single part dominates: name the larger half of the object
        spec = obj.get("spec") if isinstance(obj, Mapping) else None
        path = Path("spec") if encoded_size(spec) >= encoded_size(meta) else Path("metadata")
    return FieldError(
        ErrorType.TOO_LONG,
        str(path),
        "<value omitted>",
        f"the JobSet is {size} bytes as JSON and at most {MAX_JOBSET_BYTES} are allowed (a pyjobset limit; etcd "
        "refuses objects over 1.5 MiB): move large scripts or configuration out of the pod templates (e.g. into a "
        "ConfigMap mounted as a volume), or split the JobSet",
    )
