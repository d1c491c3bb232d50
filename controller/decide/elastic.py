"""Elastic JobSets: keep live Jobs' parallelism and completions in line with the spec (behaviour.md §4.2 step 11).

Runs only with feature gate ElasticJobSet on (the caller checks). Invariants:
* only replicated jobs whose template sets parallelism and completions to the same value are synced (the
  webhook admits only P == C changes; a P != C template is left alone, as the reference does);
* an active current-attempt Job whose parallelism or completions differs gets one merge patch carrying both;
* a Job already in sync gets no patch.
Cost: O(active Jobs).
"""

from __future__ import annotations

from api import constants as c
from api.jobset_types import JobSet
from api.plan import JobUpdate
from api.records import Job


def template_sizes(js: JobSet) -> dict[str, int]:
    """rjob name → the P == C size of its Job template, for rjobs whose template pins both to one value."""
    out: dict[str, int] = {}
    for rjob in js.spec.replicated_jobs:
        spec = rjob.template.get("spec")
        if not isinstance(spec, dict):
            continue
        p, comp = spec.get("parallelism"), spec.get("completions")
        if isinstance(p, int) and isinstance(comp, int) and p == comp:
            out[rjob.name] = p
    return out


def elastic_updates(js: JobSet, active: tuple[Job, ...]) -> list[JobUpdate]:
    sizes = template_sizes(js)
    if not sizes:
        return []
    updates = []
    for job in active:
        size = sizes.get(job.metadata.labels.get(c.REPLICATED_JOB_NAME_KEY, ""))
        if size is None or (job.spec.parallelism == size and job.spec.completions == size):
            continue
        updates.append(JobUpdate(name=job.metadata.name, patch={"spec": {"parallelism": size, "completions": size}}))
    return updates
