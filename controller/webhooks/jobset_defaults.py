"""JobSet defaulting (the ``mjobset.kb.io`` mutating webhook, CREATE only), on the raw JSON object.

Role: fill what the reference webhook fills, nothing more (spec 5.4):

* ``spec.successPolicy`` → ``{operator: All}`` and ``spec.startupPolicy`` → ``{startupPolicyOrder: AnyOrder}``
  when absent or null;
* per replicated job: ``template.spec.completionMode`` → ``Indexed`` when absent or null, and the pod
  ``template.spec.template.spec.restartPolicy`` → ``OnFailure`` when absent or empty;
* ``spec.network`` → ``{}`` when absent, then ``enableDNSHostnames`` and ``publishNotReadyAddresses`` → ``true``
  when absent or null;
* failure-policy rules without a name → ``failurePolicyRule<i>``;
* volume-claim policies without ``retentionPolicy`` → ``{whenDeleted: Delete}``.

``managedBy`` is left untouched, and so is everything the CRD schema defaults (groupName, replicas,
restartStrategy, whenDeleted).

Invariants: pure; the input is never modified (a new object is returned, and the server turns the difference
into a JSON patch); a value of the wrong JSON type is left exactly as it was, so validation can reject it with a
field path instead of the defaulting step crashing or hiding it.
"""

from __future__ import annotations

from typing import Any

from controller.webhooks.jsonview import json_copy

__all__ = ["default_jobset"]

JSON = dict[str, Any]


def _child_obj(parent: JSON, key: str) -> JSON | None:
    """``parent[key]`` as an object, created when absent/null; ``None`` when it holds another JSON type."""
    value = parent.get(key)
    if value is None:
        value = {}
        parent[key] = value
    return value if isinstance(value, dict) else None


def default_jobset(obj: JSON) -> JSON:
    """Return a defaulted deep copy of a JobSet object (see the module docstring for the rules)."""
    out: Any = json_copy(obj)
    if not isinstance(out, dict):
        return obj
    spec = out.get("spec")
    if spec is None:
        # Go decodes a missing spec as the zero JobSetSpec, which the webhook then fills in.
        spec = out["spec"] = {}
    if not isinstance(spec, dict):
        return out

    if spec.get("successPolicy") is None:
        spec["successPolicy"] = {"operator": "All"}
    if spec.get("startupPolicy") is None:
        spec["startupPolicy"] = {"startupPolicyOrder": "AnyOrder"}

    rjobs = spec.get("replicatedJobs")
    if isinstance(rjobs, list):
        for rjob in rjobs:
            if isinstance(rjob, dict):
                _default_rjob(rjob)

    network = _child_obj(spec, "network")
    if network is not None:
        if network.get("enableDNSHostnames") is None:
            network["enableDNSHostnames"] = True
        if network.get("publishNotReadyAddresses") is None:
            network["publishNotReadyAddresses"] = True

    failure_policy = spec.get("failurePolicy")
    if isinstance(failure_policy, dict) and isinstance(failure_policy.get("rules"), list):
        for i, rule in enumerate(failure_policy["rules"]):
            if isinstance(rule, dict) and rule.get("name") in (None, ""):
                rule["name"] = f"failurePolicyRule{i}"

    policies = spec.get("volumeClaimPolicies")
    if isinstance(policies, list):
        for policy in policies:
            if isinstance(policy, dict) and policy.get("retentionPolicy") is None:
                policy["retentionPolicy"] = {"whenDeleted": "Delete"}
    return out


def _default_rjob(rjob: JSON) -> None:
    template = _child_obj(rjob, "template")
    job_spec = _child_obj(template, "spec") if template is not None else None
    if job_spec is None:
        return
    if job_spec.get("completionMode") is None:
        job_spec["completionMode"] = "Indexed"
    pod_template = _child_obj(job_spec, "template")
    pod_spec = _child_obj(pod_template, "spec") if pod_template is not None else None
    if pod_spec is not None and pod_spec.get("restartPolicy") in (None, ""):
        pod_spec["restartPolicy"] = "OnFailure"
