"""Conformance 66-102 (webhook integration scenarios) through the real admission path of the simulated cluster.

Base fixture as in the reference suite: JobSet ``test-js`` with ``replicated-job-a`` (1 replica) and
``replicated-job-b`` (3 replicas). Each case creates it (optionally changed), then optionally applies an update,
and checks the outcome: accepted (plus what the stored object shows) or rejected (plus the message). Rejections
come from our validating webhook or, where the reference relies on them, the CRD schema and CEL rules that the
simulated API server evaluates — the same layering as a real cluster.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import kubesim
from cache.client import ApiClient, resource_path
from cache.errors import ApiError
from tests.builders import JobSetBuilder
from tests.component.controller.test_admission import Env, running_env

JSON = dict[str, Any]
Change = Callable[[JSON], None]


@pytest.fixture
async def sim() -> AsyncIterator[kubesim.SimCluster]:
    async with kubesim.SimCluster(nodes=0) as cluster:
        yield cluster


@pytest.fixture
def kubeconfig(sim: kubesim.SimCluster, tmp_path: Path) -> str:
    return sim.write_kubeconfig(tmp_path / "kubeconfig")


def base(namespace: str) -> JSON:
    js = JobSetBuilder("test-js", namespace).rjob("replicated-job-a", 1).rjob("replicated-job-b", 3).obj()
    for rj in js["spec"]["replicatedJobs"]:  # leave these to the defaulting webhook
        del rj["template"]["spec"]["completionMode"]
        del rj["template"]["spec"]["template"]["spec"]["restartPolicy"]
    return js


def rjob(js: JSON, i: int) -> JSON:
    return js["spec"]["replicatedJobs"][i]  # type: ignore[no-any-return]


def pod_spec(js: JSON, i: int) -> JSON:
    return rjob(js, i)["template"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def at(path: str) -> Callable[[JSON], Any]:
    def get(obj: JSON) -> Any:
        node: Any = obj
        for part in path.split("."):
            node = node[int(part)] if part.isdigit() else node.get(part)
            if node is None:
                return None
        return node

    return get


def claim_policies(count: int, *, retention: JSON | None = None) -> Change:
    def change(js: JSON) -> None:
        policies = []
        for i in range(count):
            policy: JSON = {
                "templates": [{"metadata": {"name": f"vol{i}"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]
            }
            if retention is not None:
                policy["retentionPolicy"] = retention
            policies.append(policy)
        js["spec"]["volumeClaimPolicies"] = policies
        for i in (0, 1):
            pod_spec(js, i)["containers"][0]["volumeMounts"] = [
                {"name": f"vol{n}", "mountPath": f"/v{n}"} for n in range(count)
            ]

    return change


def seq(*changes: Change) -> Change:
    def change(js: JSON) -> None:
        for c in changes:
            c(js)

    return change


def setter(path: str, value: Any) -> Change:
    def change(js: JSON) -> None:
        parts = path.split(".")
        node: Any = js
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        last = parts[-1]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return change


def dropper(path: str) -> Change:
    def change(js: JSON) -> None:
        *head, last = path.split(".")
        node: Any = at(".".join(head))(js) if head else js
        node.pop(last, None)

    return change


@dataclass(frozen=True)
class Case:
    create: Change | None = None
    update: Change | None = None
    rejected: str | None = None
    """Substring of the rejection message; None = accepted."""
    check: tuple[tuple[str, Any], ...] = ()
    """(dotted path, expected value) on the stored object after the last accepted write."""
    gates: tuple[tuple[str, bool], ...] = ()


RJ_A, RJ_B = "spec.replicatedJobs.0", "spec.replicatedJobs.1"
INDEXED_2 = seq(setter(f"{RJ_B}.template.spec.parallelism", 2), setter(f"{RJ_B}.template.spec.completions", 2))
DEPENDS = setter(f"{RJ_B}.dependsOn", [{"name": "replicated-job-a", "status": "Ready"}])

CASES: dict[str, Case] = {
    "66-completion-mode-defaulted": Case(check=((f"{RJ_A}.template.spec.completionMode", "Indexed"),)),
    "67-non-indexed-kept": Case(
        create=setter(f"{RJ_A}.template.spec.completionMode", "NonIndexed"),
        check=((f"{RJ_A}.template.spec.completionMode", "NonIndexed"),),
    ),
    "68-dns-hostnames-defaulted": Case(
        create=dropper("spec.network"), check=(("spec.network.enableDNSHostnames", True),)
    ),
    "69-publish-not-ready-defaulted": Case(
        create=dropper("spec.network"), check=(("spec.network.publishNotReadyAddresses", True),)
    ),
    "70-restart-policy-defaulted": Case(check=((f"{RJ_A}.template.spec.template.spec.restartPolicy", "OnFailure"),)),
    "71-suspended-node-selector-update": Case(
        create=setter("spec.suspend", True),
        update=setter(f"{RJ_A}.template.spec.template.spec.nodeSelector", {"pool": "x"}),
        check=((f"{RJ_A}.template.spec.template.spec.nodeSelector", {"pool": "x"}),),
    ),
    "72-running-node-selector-update": Case(
        update=setter(f"{RJ_A}.template.spec.template.spec.nodeSelector", {"pool": "x"}),
        rejected="spec.replicatedJobs: Invalid value:",
    ),
    "73-running-hostname-update": Case(
        update=setter(f"{RJ_A}.template.spec.template.spec.hostname", "new-host"), rejected="field is immutable"
    ),
    "74-success-policy-defaulted": Case(
        create=dropper("spec.successPolicy"), check=(("spec.successPolicy", {"operator": "All"}),)
    ),
    "75-success-policy-unknown-target": Case(
        create=setter("spec.successPolicy", {"operator": "All", "targetReplicatedJobs": ["nope"]}),
        rejected="invalid replicatedJob name 'nope' does not appear in .spec.ReplicatedJobs",
    ),
    "76-negative-replicas": Case(
        create=setter(f"{RJ_A}.replicas", -1), rejected="should be greater than or equal to 0"
    ),
    "77-zero-replicas": Case(create=setter(f"{RJ_A}.replicas", 0), check=((f"{RJ_A}.replicas", 0),)),
    "78-suspend-running": Case(update=setter("spec.suspend", True), check=(("spec.suspend", True),)),
    "79-resume-suspended": Case(
        create=setter("spec.suspend", True), update=setter("spec.suspend", False), check=(("spec.suspend", False),)
    ),
    "80-success-policy-targets-immutable": Case(
        update=setter("spec.successPolicy.targetReplicatedJobs", ["replicated-job-a"]), rejected="immutable"
    ),
    "81-failure-policy-immutable": Case(
        create=setter("spec.failurePolicy", {"maxRestarts": 3}),
        update=setter("spec.failurePolicy.maxRestarts", 21),
        rejected="immutable",
    ),
    "82-restart-strategy-defaulted": Case(
        create=setter("spec.failurePolicy", {}), check=(("spec.failurePolicy.restartStrategy", "Recreate"),)
    ),
    "83-managed-by-immutable-even-suspended": Case(
        create=setter("spec.suspend", True),
        update=setter("spec.managedBy", "example.com/other"),
        rejected='spec.managedBy: Invalid value: "example.com/other": field is immutable',
    ),
    "85-running-annotation-added": Case(
        update=setter(f"{RJ_A}.template.spec.template.metadata.annotations", {"a": "b"}), rejected="field is immutable"
    ),
    "86-depends-on-any-order": Case(
        create=seq(DEPENDS, setter("spec.startupPolicy", {"startupPolicyOrder": "AnyOrder"})),
        check=((f"{RJ_B}.dependsOn.0.status", "Ready"),),
    ),
    "87-depends-on-in-order": Case(
        create=seq(DEPENDS, setter("spec.startupPolicy", {"startupPolicyOrder": "InOrder"})),
        rejected="StartupPolicy and DependsOn APIs are mutually exclusive",
    ),
    "88-depends-on-first": Case(
        create=setter(f"{RJ_A}.dependsOn", [{"name": "replicated-job-b", "status": "Ready"}]),
        rejected="DependsOn can't be set for the first ReplicatedJob",
    ),
    "89-depends-on-status-enum": Case(
        create=setter(f"{RJ_B}.dependsOn", [{"name": "replicated-job-a", "status": "Failed"}]),
        rejected='Unsupported value: "Failed"',
    ),
    "90-depends-on-immutable": Case(
        create=DEPENDS, update=setter(f"{RJ_B}.dependsOn.0.status", "Complete"), rejected="immutable"
    ),
    "91-no-replicated-jobs": Case(create=setter("spec.replicatedJobs", []), check=(("spec.replicatedJobs", []),)),
    "93-retention-defaulted": Case(
        create=claim_policies(1), check=(("spec.volumeClaimPolicies.0.retentionPolicy.whenDeleted", "Delete"),)
    ),
    "94-retention-immutable": Case(
        create=claim_policies(1, retention={"whenDeleted": "Delete"}),
        update=setter("spec.volumeClaimPolicies.0.retentionPolicy.whenDeleted", "Retain"),
        rejected="immutable",
    ),
    "95-template-namespace": Case(
        create=seq(claim_policies(1), setter("spec.volumeClaimPolicies.0.templates.0.metadata.namespace", "x")),
        rejected="namespace",
    ),
    "96-too-many-policies": Case(create=claim_policies(51), rejected="must have at most 50 items"),
    "98-elastic-scale-up": Case(
        create=INDEXED_2,
        update=seq(setter(f"{RJ_B}.template.spec.parallelism", 4), setter(f"{RJ_B}.template.spec.completions", 4)),
        check=((f"{RJ_B}.template.spec.parallelism", 4), (f"{RJ_B}.template.spec.completions", 4)),
        gates=(("ElasticJobSet", True),),
    ),
    "99-elastic-unequal": Case(
        create=INDEXED_2,
        update=seq(setter(f"{RJ_B}.template.spec.parallelism", 4), setter(f"{RJ_B}.template.spec.completions", 5)),
        rejected="completions must be equal to parallelism for Elastic Indexed Jobs",
        gates=(("ElasticJobSet", True),),
    ),
    "101-elastic-zero": Case(
        create=INDEXED_2,
        update=seq(setter(f"{RJ_B}.template.spec.parallelism", 0), setter(f"{RJ_B}.template.spec.completions", 0)),
        rejected="parallelism must be >= 1",
        gates=(("ElasticJobSet", True),),
    ),
    "102-elastic-gate-off": Case(
        create=INDEXED_2,
        update=seq(setter(f"{RJ_B}.template.spec.parallelism", 4), setter(f"{RJ_B}.template.spec.completions", 4)),
        rejected="field is immutable",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_webhook_scenario(
    case: Case, sim: kubesim.SimCluster, api: ApiClient, jobset_crd: None, namespace: str, tmp_path: Path
) -> None:
    async with running_env(sim, api, tmp_path, gates=dict(case.gates)) as env:
        await run_case(env, case, namespace)


async def run_case(env: Env, case: Case, namespace: str) -> None:
    path = resource_path("jobset.x-k8s.io", "v1alpha2", "jobsets", namespace)
    obj = base(namespace)
    if case.create is not None:
        case.create(obj)
    rejection: ApiError | None = None
    try:
        stored = await env.api.create(path, obj)
        if case.update is not None:
            changed = copy.deepcopy(stored)
            case.update(changed)
            stored = await env.api.replace(f"{path}/test-js", changed)
    except ApiError as err:
        rejection = err
    if rejection is not None:
        assert case.rejected is not None, f"unexpected rejection: {rejection.message}"
        assert rejection.status == 422, rejection.message
        assert case.rejected in rejection.message, rejection.message
        return
    assert case.rejected is None, "expected a rejection"
    for dotted, want in case.check:
        got = at(dotted)(stored)
        assert got == want, (dotted, got)


async def test_existing_pvc_is_looked_up_through_the_api(
    sim: kubesim.SimCluster, api: ApiClient, jobset_crd: None, namespace: str, tmp_path: Path
) -> None:
    """Validation reads the PVC a volume-claim template would create (behaviour.md §5.5 rule 14)."""
    pvc = {
        "metadata": {"name": "vol0-test-js"},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    await api.create(resource_path("", "v1", "persistentvolumeclaims", namespace), pvc)
    async with running_env(sim, api, tmp_path) as env:
        obj = base(namespace)
        claim_policies(1, retention={"whenDeleted": "Delete"})(obj)
        path = resource_path("jobset.x-k8s.io", "v1alpha2", "jobsets", namespace)
        with pytest.raises(ApiError) as caught:
            await env.api.create(path, obj)
        message = caught.value.message
        assert f"spec does not match existing PVC vol0-test-js in namespace {namespace}" in message
        assert "retentionPolicy must be retain when PVC exists" in message


async def test_slow_pvc_lookup_is_bounded() -> None:
    """A PVC read that hangs turns into the reference's internal error well inside the API server's timeout."""
    from cache.store import Store
    from controller.webhooks.server import AdmissionHandlers, CachePlacementLookup

    never = asyncio.Event()

    async def hang(_namespace: str, _name: str) -> JSON | None:
        await never.wait()
        return None

    handlers = AdmissionHandlers(
        gates={},
        lookup=CachePlacementLookup(Store(lambda p: p.key), Store(lambda n: n.key)),
        pvc_getter=hang,
        pvc_timeout=0.05,
    )
    obj = base("ns")
    claim_policies(1)(obj)
    answer = await handlers.validate_jobset({"uid": "u", "operation": "CREATE", "namespace": "ns", "object": obj})
    assert answer["allowed"] is False
    assert "failed to check for existing PVC vol0-test-js: no answer within 0.05s" in answer["status"]["message"]
