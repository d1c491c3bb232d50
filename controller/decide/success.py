"""The success policy: when a JobSet with succeeded children is Completed (behaviour.md §4.6, decision D3).

Invariants:
* evaluated only when at least one current-attempt Job succeeded (the caller checks);
* ``Any`` needs one succeeded Job among the targeted replicated jobs; ``All`` needs as many as the targeted
  replicated jobs have replicas in total (no targets = every replicated job);
* a JobSet with zero replicas in total never completes (it never has a succeeded Job to trigger evaluation);
* a missing ``successPolicy`` (no defaulting webhook ran) is ``All`` with no targets (D3).
Cost: O(succeeded Jobs).
"""

from __future__ import annotations

from api import constants as c
from api.jobset_types import JobSet
from api.records import Job


def required_successes(js: JobSet) -> int:
    policy = js.spec.success_policy
    operator = policy.operator if policy is not None else "All"
    targets = set(policy.target_replicated_jobs) if policy is not None else set()
    if operator == "Any":
        return 1
    return sum(r.replicas for r in js.spec.replicated_jobs if not targets or r.name in targets)


def succeeded_in_targets(js: JobSet, successful: tuple[Job, ...]) -> int:
    policy = js.spec.success_policy
    targets = set(policy.target_replicated_jobs) if policy is not None else set()
    if not targets:
        return len(successful)
    return sum(1 for job in successful if job.metadata.labels.get(c.REPLICATED_JOB_NAME_KEY) in targets)


def is_met(js: JobSet, successful: tuple[Job, ...]) -> bool:
    """True when the success policy is satisfied by ``successful`` current-attempt Jobs."""
    if not successful:
        return False
    return succeeded_in_targets(js, successful) >= required_successes(js)
