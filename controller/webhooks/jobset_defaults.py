"""JobSet defaulting (the ``mjobset.kb.io`` mutating webhook, CREATE only), on the raw JSON object.

Role: fill what the reference webhook fills, nothing more (behaviour.md §5.4):

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

Invariants: pure; the input is never modified (a new object is returned, and ``defaulting_patch`` also gives
the RFC 6902 patch that turns the input into it, which is what the admission response carries); a value of
the wrong JSON type is left exactly as it was, so validation can reject it with a field path instead of the
defaulting step crashing or hiding it.
"""

from __future__ import annotations

from typing import Any

from api.jsontypes import JSON, json_copy

__all__ = ["default_jobset", "defaulting_patch"]


def _escape(token: str | int) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


class _Defaulter:
    """Applies the defaults to a private copy and records each change as an RFC 6902 ``add`` operation.

    Recording while applying (instead of diffing afterwards) keeps the patch minimal and never compares
    deep subtrees, so nesting depth cannot hurt. ``add`` on an existing member replaces it (RFC 6902 4.1),
    which covers fields that were present but null or empty.
    """

    def __init__(self) -> None:
        self.ops: list[JSON] = []

    def put(self, parent: JSON, pointer: str, key: str, value: Any) -> Any:
        parent[key] = value
        self.ops.append({"op": "add", "path": f"{pointer}/{_escape(key)}", "value": json_copy(value)})
        return value

    def child_obj(self, parent: JSON, pointer: str, key: str) -> JSON | None:
        """``parent[key]`` as an object, created when absent/null; ``None`` when it holds another JSON type."""
        value = parent.get(key)
        if value is None:
            value = self.put(parent, pointer, key, {})
        return value if isinstance(value, dict) else None


def default_jobset(obj: JSON) -> JSON:
    """Return a defaulted deep copy of a JobSet object (see the module docstring for the rules)."""
    return defaulting_patch(obj)[0]


def defaulting_patch(obj: JSON) -> tuple[JSON, list[JSON]]:
    """The defaulted copy of ``obj`` and the JSON patch (list of ``add`` operations) that produces it."""
    out: Any = json_copy(obj)
    d = _Defaulter()
    if not isinstance(out, dict):
        return obj, d.ops
    # Go decodes a missing spec as the zero JobSetSpec, which the webhook then fills in.
    spec = d.child_obj(out, "", "spec")
    if spec is None:
        return out, d.ops
    sp = "/spec"
    if spec.get("successPolicy") is None:
        d.put(spec, sp, "successPolicy", {"operator": "All"})
    if spec.get("startupPolicy") is None:
        d.put(spec, sp, "startupPolicy", {"startupPolicyOrder": "AnyOrder"})

    rjobs = spec.get("replicatedJobs")
    if isinstance(rjobs, list):
        for i, rjob in enumerate(rjobs):
            if isinstance(rjob, dict):
                _default_rjob(d, rjob, f"{sp}/replicatedJobs/{i}")

    network = d.child_obj(spec, sp, "network")
    if network is not None:
        for flag in ("enableDNSHostnames", "publishNotReadyAddresses"):
            if network.get(flag) is None:
                d.put(network, f"{sp}/network", flag, True)

    failure_policy = spec.get("failurePolicy")
    if isinstance(failure_policy, dict) and isinstance(failure_policy.get("rules"), list):
        for i, rule in enumerate(failure_policy["rules"]):
            if isinstance(rule, dict) and rule.get("name") in (None, ""):
                d.put(rule, f"{sp}/failurePolicy/rules/{i}", "name", f"failurePolicyRule{i}")

    policies = spec.get("volumeClaimPolicies")
    if isinstance(policies, list):
        for i, policy in enumerate(policies):
            if isinstance(policy, dict) and policy.get("retentionPolicy") is None:
                d.put(policy, f"{sp}/volumeClaimPolicies/{i}", "retentionPolicy", {"whenDeleted": "Delete"})
    return out, d.ops


def _default_rjob(d: _Defaulter, rjob: JSON, pointer: str) -> None:
    template = d.child_obj(rjob, pointer, "template")
    job_spec = d.child_obj(template, f"{pointer}/template", "spec") if template is not None else None
    if job_spec is None:
        return
    jp = f"{pointer}/template/spec"
    if job_spec.get("completionMode") is None:
        d.put(job_spec, jp, "completionMode", "Indexed")
    pod_template = d.child_obj(job_spec, jp, "template")
    pod_spec = d.child_obj(pod_template, f"{jp}/template", "spec") if pod_template is not None else None
    if pod_spec is not None and pod_spec.get("restartPolicy") in (None, ""):
        d.put(pod_spec, f"{jp}/template/spec", "restartPolicy", "OnFailure")
