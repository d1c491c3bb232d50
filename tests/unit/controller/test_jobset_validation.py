"""JobSet validating webhook, rule by rule (behaviour.md §5.5, decision D2; conformance 71-102 and 131).

Every rejection rule has a case that asserts the exact rendered error(s) — so it fails if the rule is removed
or its message drifts — and the acceptance cases prove the rules do not over-reach.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from controller.webhooks import (
    ErrorList,
    FieldError,
    Path,
    default_jobset,
    invalid_status,
    validate_create,
    validate_schema_rules,
    validate_update,
)
from controller.webhooks.dns import (
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_domain_prefixed_path,
    is_valid_label_value,
)
from controller.webhooks.fielderrors import go_quote, render_value
from controller.webhooks.jobset_validation import rejection_status, semantic_equal, validate_delete
from tests.builders import JobSetBuilder

JSON = dict[str, Any]
Gates = Mapping[str, bool]

R1035 = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
R1123 = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
IN_PLACE = {"InPlaceRestart": True}
RESTART_JOB = {"RestartJob": True}
ELASTIC = {"ElasticJobSet": True}


# ----------------------------------------------------------------------------------------------- helpers


def valid(name: str = "test-js") -> JSON:
    """The conformance base fixture after defaulting: rjob a (1 replica) and b (3 replicas), Indexed, P=C=1."""
    obj: JSON = default_jobset(JobSetBuilder(name).rjob("a", 1).rjob("b", 3).obj())
    return obj


def rj(obj: JSON, i: int) -> JSON:
    rjob: JSON = obj["spec"]["replicatedJobs"][i]
    return rjob


def job_spec(obj: JSON, i: int) -> JSON:
    spec: JSON = rj(obj, i)["template"]["spec"]
    return spec


def pod_spec(obj: JSON, i: int) -> JSON:
    spec: JSON = job_spec(obj, i)["template"]["spec"]
    return spec


def mount(obj: JSON, i: int, claim: str, *, init: bool = False) -> None:
    key = "initContainers" if init else "containers"
    containers = pod_spec(obj, i).setdefault(key, [{"name": "init", "image": "busybox"}])
    containers[0].setdefault("volumeMounts", []).append({"name": claim, "mountPath": f"/{claim}"})


def claim_policy(*names: str, when_deleted: str | None = "Delete") -> JSON:
    policy: JSON = {
        "templates": [
            {
                "metadata": {"name": n},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }
            for n in names
        ]
    }
    if when_deleted is not None:
        policy["retentionPolicy"] = {"whenDeleted": when_deleted}
    return policy


def texts(errors: ErrorList) -> list[str]:
    return [str(e) for e in errors]


@dataclass(frozen=True)
class Case:
    edit: Callable[[JSON], Any]
    expected: list[str]
    gates: Gates = field(default_factory=dict)
    name: str = "test-js"

    def build(self) -> JSON:
        obj = valid(self.name)
        self.edit(obj)
        return obj


def setp(path: str, value: Any) -> Callable[[JSON], None]:
    """An edit that sets a dotted path (integers index lists), e.g. ``setp("spec.replicatedJobs.1.replicas", 0)``."""

    def edit(obj: JSON) -> None:
        node: Any = obj
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        last = parts[-1]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return edit


def chain(*edits: Callable[[JSON], Any]) -> Callable[[JSON], None]:
    def edit(obj: JSON) -> None:
        for e in edits:
            e(obj)

    return edit


def add_rjob(name: str, replicas: int = 1) -> Callable[[JSON], None]:
    def edit(obj: JSON) -> None:
        extra = copy.deepcopy(rj(obj, 0))
        extra.update(name=name, replicas=replicas)
        obj["spec"]["replicatedJobs"].append(extra)

    return edit


def with_claims(*policies: JSON, mounts: tuple[str, ...] = ()) -> Callable[[JSON], None]:
    def edit(obj: JSON) -> None:
        obj["spec"]["volumeClaimPolicies"] = list(policies)
        for claim in mounts:
            mount(obj, 0, claim)

    return edit


# ----------------------------------------------------------------------------------------------- create: rejections

LONG60 = "j" * 60
P52 = "p" * 52
C30 = "c" * 30

CREATE_REJECTIONS = {
    "r1-in-place-restart-strategy-with-gate-off": Case(
        setp("spec.failurePolicy", {"restartStrategy": "InPlaceRestart"}),
        [
            "spec.failurePolicy.restartStrategy: Internal error: InPlaceRestart restart strategy cannot be set "
            "when InPlaceRestart feature gate is disabled"
        ],
    ),
    "r2-depends-on-set-for-first-rjob-even-empty": Case(  # conformance 88
        setp("spec.replicatedJobs.0.dependsOn", []),
        ["spec.replicatedJobs[0].dependsOn: Internal error: DependsOn can't be set for the first ReplicatedJob"],
    ),
    "r3-subdomain-not-dns1123-nor-dns1035": Case(
        setp("spec.network.subdomain", "Net_1"),
        [
            f'spec.network.subdomain: Invalid value: "Net_1": {R1123}',
            f'spec.network.subdomain: Invalid value: "Net_1": {R1035}',
        ],
    ),
    "r3-subdomain-with-dot-is-not-a-dns1035-label": Case(
        setp("spec.network.subdomain", "net.work"),
        [f'spec.network.subdomain: Invalid value: "net.work": {R1035}'],
    ),
    "r3-subdomain-too-long-custom-message": Case(
        setp("spec.network.subdomain", "s" * 64),
        [
            f'spec.network.subdomain: Invalid value: "{"s" * 64}": .spec.network.subdomain is too long, '
            "must be less than 63 characters"
        ],
    ),
    "r4-managed-by-empty": Case(setp("spec.managedBy", ""), ["spec.managedBy: Required value"]),
    "r4-managed-by-not-domain-prefixed": Case(
        setp("spec.managedBy", "foo"),
        ['spec.managedBy: Invalid value: "foo": must be a domain-prefixed path (such as "acme.io/foo")'],
    ),
    "r4-managed-by-bad-domain": Case(
        setp("spec.managedBy", "Acme/foo"), [f'spec.managedBy: Invalid value: "Acme": {R1123}']
    ),
    "r4-managed-by-bad-path": Case(
        setp("spec.managedBy", "acme.io/f o"),
        [
            'spec.managedBy: Invalid value: "f o": Invalid path (regex used for validation is '
            "'[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')"
        ],
    ),
    "r4-managed-by-longer-than-63": Case(
        setp("spec.managedBy", "acme.io/" + "a" * 56), ["spec.managedBy: Too long: may not be more than 63 bytes"]
    ),
    "r5-parallelism-times-replicas-overflows-int32": Case(
        setp("spec.replicatedJobs.1.template.spec.parallelism", 2**30),
        [
            "spec.replicatedJobs[1].replicas: Internal error: the product of replicas and parallelism must not "
            "exceed 2147483647 for replicatedJob 'b'"
        ],
    ),
    "r6-group-name-not-dns1035": Case(
        setp("spec.replicatedJobs.0.groupName", "Group"),
        [f'spec.replicatedJobs[0].groupName: Invalid value: "Group": {R1035}'],
    ),
    "r6-group-name-too-long-custom-message": Case(
        setp("spec.replicatedJobs.0.groupName", "g" * 64),
        [
            f'spec.replicatedJobs[0].groupName: Invalid value: "{"g" * 64}": .spec.replicatedJob[].groupName is '
            "too long, must be less than 63 characters"
        ],
    ),
    "r7-job-names-too-long-custom-message": Case(
        lambda obj: None,
        [
            f'spec.replicatedJobs[0].name: Invalid value: "{LONG60}-a-0": JobSet name is too long, job names '
            "generated for this JobSet will exceed 63 characters",
            f'spec.replicatedJobs[0].name: Invalid value: "{LONG60}-a-0": JobSet name is too long, pod names '
            "generated for this JobSet will exceed 63 characters",
            f'spec.replicatedJobs[1].name: Invalid value: "{LONG60}-b-2": JobSet name is too long, job names '
            "generated for this JobSet will exceed 63 characters",
            f'spec.replicatedJobs[1].name: Invalid value: "{LONG60}-b-2": JobSet name is too long, pod names '
            "generated for this JobSet will exceed 63 characters",
        ],
        name=LONG60,
    ),
    "r7-rjob-name-uppercase-makes-job-names-invalid": Case(
        setp("spec.replicatedJobs.0.name", "A"),
        [
            f'spec.replicatedJobs[0].name: Invalid value: "test-js-A-0": {R1035}',
            f'spec.replicatedJobs[0].name: Invalid value: "test-js-A-0": {R1035}',
        ],
    ),
    "r8-pod-names-too-long-only-for-indexed-with-completions": Case(
        setp("spec.replicatedJobs.1.template.spec.completionMode", "NonIndexed"),
        [
            f'spec.replicatedJobs[0].name: Invalid value: "{P52}-a-0": JobSet name is too long, pod names '
            "generated for this JobSet will exceed 63 characters"
        ],
        name=P52,
    ),
    "r9-depends-on-unknown-rjob": Case(  # conformance 131
        setp("spec.replicatedJobs.1.dependsOn", [{"name": "a", "status": "Ready"}, {"name": "zzz", "status": "Ready"}]),
        [
            "spec.replicatedJobs[1].dependsOn[1].name: Internal error: replicatedJob: b cannot depend on "
            "replicatedJob: zzz"
        ],
    ),
    "r9-depends-on-a-later-rjob": Case(
        chain(add_rjob("c"), setp("spec.replicatedJobs.1.dependsOn", [{"name": "c", "status": "Complete"}])),
        [
            "spec.replicatedJobs[1].dependsOn[0].name: Internal error: replicatedJob: b cannot depend on "
            "replicatedJob: c"
        ],
    ),
    "d2-rjob-depends-on-itself": Case(
        setp("spec.replicatedJobs.1.dependsOn", [{"name": "b", "status": "Ready"}]),
        ['spec.replicatedJobs[1].dependsOn[0].name: Invalid value: "b": replicatedJob b cannot depend on itself'],
    ),
    "r10-in-place-restart-needs-backoff-max-and-pod-replacement-failed": Case(
        chain(
            setp("spec.failurePolicy", {"restartStrategy": "InPlaceRestart"}),
            setp("spec.replicatedJobs.0.template.spec.backoffLimit", 2147483647),
            setp("spec.replicatedJobs.0.template.spec.podReplacementPolicy", "Failed"),
            setp("spec.replicatedJobs.1.template.spec.backoffLimit", 6),
        ),
        [
            "spec.replicatedJobs[1].template.spec.backoffLimit: Invalid value: 6: replicatedJob b: must be set to "
            "2147483647 (MaxInt32) when in-place restart is enabled",
            "spec.replicatedJobs[1].template.spec.podReplacementPolicy: Invalid value: null: replicatedJob b: must "
            "be set to Failed when in-place restart is enabled",
        ],
        gates=IN_PLACE,
    ),
    "r10-in-place-restart-needs-completions-equal-parallelism": Case(
        chain(
            setp("spec.failurePolicy", {"restartStrategy": "InPlaceRestart"}),
            *(setp(f"spec.replicatedJobs.{i}.template.spec.backoffLimit", 2147483647) for i in (0, 1)),
            *(setp(f"spec.replicatedJobs.{i}.template.spec.podReplacementPolicy", "Failed") for i in (0, 1)),
            setp("spec.replicatedJobs.0.template.spec.completions", 2),
            lambda obj: job_spec(obj, 1).pop("completions"),
        ),
        [
            "spec.replicatedJobs[0].template.spec.completions: Invalid value: 2: replicatedJob a: completions and "
            "parallelism must be set and equal to each other when in-place restart is enabled",
            "spec.replicatedJobs[1].template.spec.completions: Invalid value: null: replicatedJob b: completions "
            "and parallelism must be set and equal to each other when in-place restart is enabled",
        ],
        gates=IN_PLACE,
    ),
    "r11-success-policy-target-unknown": Case(  # conformance 75
        setp("spec.successPolicy.targetReplicatedJobs", ["b", "q"]),
        [
            "spec.successPolicy.targetReplicatedJobs[1]: Internal error: invalid replicatedJob name 'q' does not "
            "appear in .spec.ReplicatedJobs"
        ],
    ),
    "r12-restart-job-action-with-gate-off-stops-policy-validation": Case(
        setp("spec.failurePolicy", {"rules": [{"name": "1bad", "action": "RestartJobAndIgnoreMaxRestarts"}]}),
        [
            "spec.failurePolicy.rules[0].action: Internal error: RestartJob and RestartJobAndIgnoreMaxRestarts "
            "failure policy actions are not allowed when RestartJob feature gate is disabled"
        ],
    ),
    "r12-restart-job-action-with-more-than-1024-replicas": Case(
        chain(
            setp("spec.failurePolicy", {"rules": [{"name": "r", "action": "RestartJob"}]}),
            setp("spec.replicatedJobs.1.replicas", 1025),
        ),
        [
            "spec.replicatedJobs[1].replicas: Internal error: JobSet cannot have a failure policy rule with "
            "RestartJob or RestartJobAndIgnoreMaxRestarts action and a replicated job with replicas > 1024"
        ],
        gates=RESTART_JOB,
    ),
    "r12-rule-name-empty": Case(
        setp("spec.failurePolicy", {"rules": [{"name": "", "action": "FailJobSet"}]}),
        [
            "spec.failurePolicy.rules[0].name: Internal error: invalid failure policy rule name of length 0, the "
            "rule name must be at least 1 characters long and at most 128 characters long",
            "spec.failurePolicy.rules[0].name: Internal error: invalid failure policy rule name '', a failure "
            "policy rule name must start with an alphabetic character, optionally followed by a string of "
            "alphanumeric characters or '_,:', and must end with an alphanumeric character or '_'",
        ],
    ),
    "r12-rule-name-longer-than-128": Case(
        setp("spec.failurePolicy", {"rules": [{"name": "n" * 129, "action": "FailJobSet"}]}),
        [
            "spec.failurePolicy.rules[0].name: Internal error: invalid failure policy rule name of length 129, the "
            "rule name must be at least 1 characters long and at most 128 characters long"
        ],
    ),
    "r12-rule-name-regex": Case(
        setp(
            "spec.failurePolicy",
            {"rules": [{"name": "ok_1", "action": "FailJobSet"}, {"name": "no-dash", "action": "FailJobSet"}]},
        ),
        [
            "spec.failurePolicy.rules[1].name: Internal error: invalid failure policy rule name 'no-dash', a "
            "failure policy rule name must start with an alphabetic character, optionally followed by a string of "
            "alphanumeric characters or '_,:', and must end with an alphanumeric character or '_'"
        ],
    ),
    "r12-rule-names-not-unique": Case(
        setp(
            "spec.failurePolicy",
            {"rules": [{"name": n, "action": "FailJobSet"} for n in ("x", "y", "x", "y", "x")]},
        ),
        [
            "spec.failurePolicy.rules[0].name: Internal error: rule names are not unique, rules with indices "
            "[0 2 4] all have the same name 'x'",
            "spec.failurePolicy.rules[1].name: Internal error: rule names are not unique, rules with indices "
            "[1 3] all have the same name 'y'",
        ],
    ),
    "r12-rule-target-unknown": Case(
        setp(
            "spec.failurePolicy", {"rules": [{"name": "r", "action": "FailJobSet", "targetReplicatedJobs": ["a", "q"]}]}
        ),
        [
            "spec.failurePolicy.rules[0].targetReplicatedJobs[1]: Internal error: invalid replicatedJob name 'q' "
            "in failure policy does not appear in .spec.ReplicatedJobs"
        ],
    ),
    "r12-rule-failure-reason-unknown": Case(
        setp(
            "spec.failurePolicy",
            {"rules": [{"name": "r", "action": "FailJobSet", "onJobFailureReasons": ["PodFailurePolicy", "OOM"]}]},
        ),
        [
            "spec.failurePolicy.rules[0].onJobFailureReasons[1]: Internal error: invalid job failure reason 'OOM' "
            "in failure policy is not a recognized job failure reason"
        ],
    ),
    "r13-coordinator-rjob-missing": Case(
        setp("spec.coordinator", {"replicatedJob": "zz"}),
        ["spec.coordinator.replicatedJob: Internal error: coordinator replicatedJob zz does not exist"],
    ),
    "r13-coordinator-job-index-out-of-range": Case(
        setp("spec.coordinator", {"replicatedJob": "b", "jobIndex": 3}),
        ["spec.coordinator.jobIndex: Internal error: coordinator job index 3 is invalid for replicatedJob b"],
    ),
    "r13-coordinator-job-index-negative": Case(
        setp("spec.coordinator", {"replicatedJob": "b", "jobIndex": -1}),
        ["spec.coordinator.jobIndex: Internal error: coordinator job index -1 is invalid for replicatedJob b"],
    ),
    "r13-coordinator-rjob-not-indexed": Case(
        chain(
            setp("spec.coordinator", {"replicatedJob": "b"}),
            setp("spec.replicatedJobs.1.template.spec.completionMode", "NonIndexed"),
        ),
        [
            "spec.coordinator.replicatedJob: Internal error: job for coordinator pod must be indexed completion "
            "mode, and completions number must be set"
        ],
    ),
    "r13-coordinator-rjob-without-completions": Case(
        chain(setp("spec.coordinator", {"replicatedJob": "b"}), lambda obj: job_spec(obj, 1).pop("completions")),
        [
            "spec.coordinator.replicatedJob: Internal error: job for coordinator pod must be indexed completion "
            "mode, and completions number must be set"
        ],
    ),
    "r13-coordinator-pod-index-out-of-range": Case(
        setp("spec.coordinator", {"replicatedJob": "b", "jobIndex": 2, "podIndex": 1}),
        [
            "spec.coordinator.podIndex: Internal error: coordinator pod index 1 is invalid for replicatedJob b "
            "job index 2"
        ],
    ),
    "r13-coordinator-endpoint-not-a-label-value": Case(
        chain(setp("spec.coordinator", {"replicatedJob": "b"}), setp("spec.network.subdomain", "s" * 30)),
        [
            f'spec.coordinator: Internal error: spec will lead to invalid label value "{C30}-b-0-0.{"s" * 30}" '
            'for coordinator label "jobset.sigs.k8s.io/coordinator" (long JobSet / ReplicatedJob / SubDomain '
            "name?): must be no more than 63 characters"
        ],
        name=C30,
    ),
    "r14-claim-template-names-not-unique": Case(
        with_claims(claim_policy("cache"), claim_policy("cache"), mounts=("cache",)),
        [
            'spec.volumeClaimPolicies[1].template[0].name: Invalid value: "cache": names must be unique for '
            "VolumeClaimPolicies template"
        ],
    ),
    "r14-claim-template-name-not-dns1123": Case(
        with_claims(claim_policy("Cache"), mounts=("Cache",)),
        [f'spec.volumeClaimPolicies[0].template[0].name: Invalid value: "Cache": {R1123}'],
    ),
    "r14-claim-pvc-name-too-long": Case(
        with_claims(claim_policy("c" * 56), mounts=("c" * 56,)),
        [
            f'spec.volumeClaimPolicies[0].template[0].name: Invalid value: "{"c" * 56}": VolumeClaimPolicies '
            "template name is too long"
        ],
    ),
    "r14-claim-volume-name-conflict": Case(
        chain(
            with_claims(claim_policy("cache"), mounts=("cache",)),
            setp("spec.replicatedJobs.1.template.spec.template.spec.volumes", [{"name": "x"}, {"name": "cache"}]),
        ),
        [
            'spec.replicatedJobs[1].template.spec.template.spec.volumes[1].name: Invalid value: "cache": volume '
            "name conflicts with VolumeClaimPolicy template name: cache"
        ],
    ),
}


@pytest.mark.parametrize("case", CREATE_REJECTIONS.values(), ids=CREATE_REJECTIONS.keys())
def test_create_rejection(case: Case) -> None:
    assert texts(validate_create(case.build(), case.gates)) == case.expected


def test_create_rejects_claim_without_any_volume_mount() -> None:
    obj = valid()
    obj["spec"]["volumeClaimPolicies"] = [claim_policy("cache")]
    errors = validate_create(obj, {})
    assert len(errors) == 1
    err = errors[0]
    assert err.field == "spec.replicatedJobs"
    assert err.bad_value == obj["spec"]["replicatedJobs"]
    assert str(err).startswith('spec.replicatedJobs: Invalid value: [{"name":"a","replicas":1,"template":')
    assert str(err).endswith(
        ": replicatedJob containers don't have a matching volumeMount: cache from VolumeClaimPolicies"
    )


def test_generate_name_is_checked_with_the_five_random_characters() -> None:
    obj = valid()
    obj["metadata"] = {"generateName": "g" * 51, "namespace": "default"}
    # 51 + 5 random characters: job names fit (60), pod names do not (68).
    assert texts(validate_create(obj, {})) == [
        f'spec.replicatedJobs[{i}].name: Invalid value: "{"g" * 51}xxxxx-{n}": JobSet name is too long, pod '
        "names generated for this JobSet will exceed 63 characters"
        for i, n in ((0, "a-0"), (1, "b-2"))
    ]


# ----------------------------------------------------------------------------------------------- create: PVC lookup


def pvc(spec: JSON) -> JSON:
    return {"metadata": {"name": "cache-test-js", "namespace": "default"}, "spec": spec}


def claims_obj(when_deleted: str = "Retain") -> JSON:
    obj = valid()
    with_claims(claim_policy("cache", when_deleted=when_deleted), mounts=("cache",))(obj)
    return obj


def test_existing_pvc_with_different_spec_is_rejected() -> None:
    obj = claims_obj()
    lookups: list[str] = []

    def lookup(name: str) -> JSON:
        lookups.append(name)
        return pvc({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}})

    assert texts(validate_create(obj, {}, lookup)) == [
        'spec.volumeClaimPolicies[0].template[0].spec: Invalid value: {"accessModes":["ReadWriteOnce"],'
        '"resources":{"requests":{"storage":"1Gi"}}}: spec does not match existing PVC cache-test-js in '
        "namespace default"
    ]
    assert lookups == ["cache-test-js"]


def test_existing_pvc_requires_retain() -> None:
    obj = claims_obj(when_deleted="Delete")
    template_spec = obj["spec"]["volumeClaimPolicies"][0]["templates"][0]["spec"]
    assert texts(validate_create(obj, {}, lambda _name: pvc(copy.deepcopy(template_spec)))) == [
        'spec.volumeClaimPolicies[0].retentionPolicy.whenDeleted: Invalid value: "Delete": retentionPolicy must '
        "be retain when PVC exists"
    ]


def test_existing_matching_pvc_with_retain_is_accepted() -> None:
    obj = claims_obj()
    template_spec = copy.deepcopy(obj["spec"]["volumeClaimPolicies"][0]["templates"][0]["spec"])
    template_spec["selector"] = None  # null and absent are the same to Semantic.DeepEqual
    assert validate_create(obj, {}, lambda _name: pvc(template_spec)) == []


def test_pvc_lookup_failure_is_an_internal_error() -> None:
    def lookup(_name: str) -> JSON:
        raise RuntimeError("etcd unavailable")

    assert texts(validate_create(claims_obj(), {}, lookup)) == [
        "spec.volumeClaimPolicies[0].template[0]: Internal error: failed to check for existing PVC "
        "cache-test-js: etcd unavailable"
    ]


# ----------------------------------------------------------------------------------------------- create: acceptance

CREATE_ACCEPTED = {
    "base-fixture": Case(lambda obj: None, []),
    "replicas-zero": Case(setp("spec.replicatedJobs.1.replicas", 0), []),  # conformance 77
    "no-replicated-jobs": Case(setp("spec.replicatedJobs", []), []),  # conformance 91
    "depends-on-previous-ready-and-complete": Case(
        chain(
            add_rjob("c"),
            setp("spec.replicatedJobs.1.dependsOn", [{"name": "a", "status": "Ready"}]),
            setp(
                "spec.replicatedJobs.2.dependsOn",
                [{"name": "a", "status": "Complete"}, {"name": "b", "status": "Ready"}],
            ),
        ),
        [],
    ),
    "depends-on-with-any-order-startup": Case(  # conformance 86
        setp("spec.replicatedJobs.1.dependsOn", [{"name": "a", "status": "Ready"}]), []
    ),
    "non-indexed-pod-names-not-checked": Case(
        chain(*(setp(f"spec.replicatedJobs.{i}.template.spec.completionMode", "NonIndexed") for i in (0, 1))),
        [],
        name=P52,
    ),
    "indexed-without-completions-pod-names-not-checked": Case(
        chain(*(lambda obj, i=i: job_spec(obj, i).pop("completions") for i in (0, 1))), [], name=P52
    ),
    # The product at exactly 2147483647 (a prime) within our own limit of Jobs per JobSet: one replica.
    "parallelism-times-replicas-exactly-int32-max": Case(
        setp("spec.replicatedJobs.0.template.spec.parallelism", 2147483647),
        [],
    ),
    "valid-subdomain-and-managed-by": Case(
        chain(
            setp("spec.network.subdomain", "network-subdomain"),
            setp("spec.managedBy", "kueue.x-k8s.io/multikueue"),
        ),
        [],
    ),
    "in-place-restart-fully-configured-with-gate": Case(
        chain(
            setp("spec.failurePolicy", {"restartStrategy": "InPlaceRestart", "maxRestarts": 3}),
            *(setp(f"spec.replicatedJobs.{i}.template.spec.backoffLimit", 2147483647) for i in (0, 1)),
            *(setp(f"spec.replicatedJobs.{i}.template.spec.podReplacementPolicy", "Failed") for i in (0, 1)),
        ),
        [],
        gates=IN_PLACE,
    ),
    "in-place-rules-ignored-for-recreate-with-gate": Case(
        setp("spec.failurePolicy", {"restartStrategy": "Recreate"}), [], gates=IN_PLACE
    ),
    "restart-job-with-gate-and-1024-replicas": Case(
        chain(
            setp("spec.failurePolicy", {"rules": [{"name": "r", "action": "RestartJob"}]}),
            setp("spec.replicatedJobs.1.replicas", 1024),
        ),
        [],
        gates=RESTART_JOB,
    ),
    "failure-policy-rules-all-valid": Case(
        setp(
            "spec.failurePolicy",
            {
                "maxRestarts": 2,
                "rules": [
                    {
                        "name": "rule_1:a,b",
                        "action": "RestartJobSet",
                        "onJobFailureReasons": ["BackoffLimitExceeded", "DeadlineExceeded", "FailedIndexes"],
                        "onJobFailureMessagePatterns": ["(unparsed[regex"],
                        "targetReplicatedJobs": ["a", "b"],
                    },
                    {"name": "R", "action": "FailJobSet", "onJobFailureReasons": ["MaxFailedIndexesExceeded"]},
                ],
            },
        ),
        [],
    ),
    "success-policy-targets-exist": Case(
        setp("spec.successPolicy", {"operator": "Any", "targetReplicatedJobs": ["b"]}), []
    ),
    "coordinator-last-pod-of-last-job": Case(
        chain(
            setp("spec.coordinator", {"replicatedJob": "b", "jobIndex": 2, "podIndex": 1}),
            setp("spec.replicatedJobs.1.template.spec.completions", 2),
            setp("spec.replicatedJobs.1.template.spec.parallelism", 2),
        ),
        [],
    ),
    "claims-mounted-by-init-container-in-another-rjob": Case(
        chain(
            setp("spec.volumeClaimPolicies", [claim_policy("cache", "data"), claim_policy("out", when_deleted=None)]),
            lambda obj: mount(obj, 1, "cache", init=True),
            lambda obj: mount(obj, 0, "data"),
            lambda obj: mount(obj, 0, "out"),
        ),
        [],
    ),
}


@pytest.mark.parametrize("case", CREATE_ACCEPTED.values(), ids=CREATE_ACCEPTED.keys())
def test_create_accepted(case: Case) -> None:
    assert texts(validate_create(case.build(), case.gates, lambda _name: None)) == case.expected


# ----------------------------------------------------------------------------------------------- update

UpdateEdit = Callable[[JSON, JSON], Any]


@dataclass(frozen=True)
class UpdateCase:
    edit: UpdateEdit  # (old, new) -> None; mutates new (and old when the stored state matters)
    expected: list[str]
    gates: Gates = field(default_factory=dict)


def suspended(old: JSON, new: JSON) -> None:
    old["spec"]["suspend"] = True
    new["spec"]["suspend"] = True


def new_only(edit: Callable[[JSON], Any]) -> UpdateEdit:
    return lambda _old, new: edit(new)


def both(*edits: UpdateEdit) -> UpdateEdit:
    def edit(old: JSON, new: JSON) -> None:
        for e in edits:
            e(old, new)

    return edit


def set_pc(i: int, parallelism: int | None, completions: int | None, *, which: str = "new") -> UpdateEdit:
    def edit(old: JSON, new: JSON) -> None:
        target = new if which == "new" else old
        for key, value in (("parallelism", parallelism), ("completions", completions)):
            if value is None:
                job_spec(target, i).pop(key, None)
            else:
                job_spec(target, i)[key] = value

    return edit


def terminal(condition: str) -> UpdateEdit:
    def edit(old: JSON, _new: JSON) -> None:
        old["status"] = {"conditions": [{"type": condition, "status": "True"}]}

    return edit


IMMUTABLE_PREFIX = "spec.replicatedJobs: Invalid value: ["
IMMUTABLE_SUFFIX = "]: field is immutable"
IMMUTABLE = "<replicatedJobs immutable>"  # placeholder: the bad value is the whole (munged) list

UPDATE_CASES = {
    "suspended-node-selector-change-accepted": UpdateCase(  # conformance 71
        both(
            suspended, new_only(setp("spec.replicatedJobs.0.template.spec.template.spec.nodeSelector", {"pool": "x"}))
        ),
        [],
    ),
    "suspending-while-changing-scheduling-fields-accepted": UpdateCase(
        new_only(
            chain(
                setp("spec.suspend", True),
                setp(
                    "spec.replicatedJobs.1.template.spec.template.spec.tolerations",
                    [{"key": "k", "operator": "Exists"}],
                ),
                setp("spec.replicatedJobs.1.template.spec.template.spec.schedulingGates", [{"name": "kueue"}]),
                setp("spec.replicatedJobs.1.template.spec.template.metadata.labels", {"kueue": "yes"}),
                setp("spec.replicatedJobs.1.template.spec.template.metadata.annotations", {"a": "b"}),
            )
        ),
        [],
    ),
    "resuming-with-node-selector-change-accepted": UpdateCase(
        both(
            lambda old, _new: setp("spec.suspend", True)(old),
            new_only(setp("spec.replicatedJobs.0.template.spec.template.spec.nodeSelector", {"pool": "x"})),
        ),
        [],
    ),
    "running-node-selector-change-rejected": UpdateCase(  # conformance 72
        new_only(setp("spec.replicatedJobs.0.template.spec.template.spec.nodeSelector", {"pool": "x"})), [IMMUTABLE]
    ),
    "running-pod-hostname-subdomain-change-rejected": UpdateCase(  # conformance 73
        new_only(
            chain(
                setp("spec.replicatedJobs.0.template.spec.template.spec.hostname", "h"),
                setp("spec.replicatedJobs.0.template.spec.template.spec.subdomain", "s"),
            )
        ),
        [IMMUTABLE],
    ),
    "suspended-image-change-still-rejected": UpdateCase(
        both(suspended, new_only(setp("spec.replicatedJobs.0.template.spec.template.spec.containers.0.image", "x"))),
        [IMMUTABLE],
    ),
    "suspending-accepted": UpdateCase(new_only(setp("spec.suspend", True)), []),  # conformance 78
    "resuming-accepted": UpdateCase(  # conformance 79
        both(lambda old, _new: setp("spec.suspend", True)(old), new_only(setp("spec.suspend", False))), []
    ),
    "managed-by-change-rejected-even-suspended": UpdateCase(  # conformance 83
        both(
            suspended,
            lambda old, new: (setp("spec.managedBy", "a.io/x")(old), setp("spec.managedBy", "b.io/y")(new)),
        ),
        ['spec.managedBy: Invalid value: "b.io/y": field is immutable'],
    ),
    "managed-by-removed-rejected": UpdateCase(
        lambda old, _new: setp("spec.managedBy", "a.io/x")(old),
        ["spec.managedBy: Invalid value: null: field is immutable"],
    ),
    "running-pod-annotation-added-rejected": UpdateCase(  # conformance 85
        new_only(setp("spec.replicatedJobs.0.template.spec.template.metadata.annotations", {"new": "x"})), [IMMUTABLE]
    ),
    "replicas-change-rejected": UpdateCase(new_only(setp("spec.replicatedJobs.1.replicas", 4)), [IMMUTABLE]),
    "rjob-added-rejected": UpdateCase(new_only(add_rjob("c")), [IMMUTABLE]),
    "rjob-removed-rejected": UpdateCase(new_only(lambda new: new["spec"]["replicatedJobs"].pop()), [IMMUTABLE]),
    "rjob-renamed-while-suspended-rejected": UpdateCase(
        both(suspended, new_only(setp("spec.replicatedJobs.1.name", "c"))), [IMMUTABLE]
    ),
    "empty-and-absent-maps-are-equal": UpdateCase(
        new_only(
            chain(
                setp("spec.replicatedJobs.0.template.spec.template.metadata.annotations", None),
                setp("spec.replicatedJobs.0.template.metadata", {"labels": {}}),
                setp("spec.replicatedJobs.1.template.spec.template.spec.tolerations", []),
            )
        ),
        [],
    ),
    "other-spec-fields-left-to-cel": UpdateCase(
        new_only(chain(setp("spec.ttlSecondsAfterFinished", 5), setp("spec.coordinator", {"replicatedJob": "a"}))), []
    ),
    "elastic-scale-up-accepted": UpdateCase(  # conformance 98
        both(set_pc(1, 2, 2, which="old"), set_pc(1, 2, 2), set_pc(1, 4, 4)), [], gates=ELASTIC
    ),
    "elastic-scale-down-accepted": UpdateCase(set_pc(1, 1, None), [], gates=ELASTIC),
    "elastic-unequal-rejected": UpdateCase(  # conformance 99
        set_pc(1, 4, 5),
        [
            "spec.replicatedJobs[1].template.spec.completions: Invalid value: 5: completions must be equal to "
            "parallelism for Elastic Indexed Jobs"
        ],
        gates=ELASTIC,
    ),
    "elastic-zero-rejected": UpdateCase(  # conformance 101
        set_pc(1, 0, 0),
        [
            "spec.replicatedJobs[1].template.spec.parallelism: Invalid value: 0: parallelism must be >= 1",
            "spec.replicatedJobs[1].template.spec.completions: Invalid value: 0: completions must be >= 1",
        ],
        gates=ELASTIC,
    ),
    "elastic-terminal-completed-forbidden": UpdateCase(
        both(terminal("Completed"), set_pc(0, 2, 2)),
        [
            "spec.replicatedJobs[0].template.spec: Forbidden: Cannot mutate parallelism or completions when JobSet "
            "is in a terminal state (Completed or Failed)"
        ],
        gates=ELASTIC,
    ),
    "elastic-terminal-failed-forbidden": UpdateCase(
        both(terminal("Failed"), set_pc(0, 2, 2)),
        [
            "spec.replicatedJobs[0].template.spec: Forbidden: Cannot mutate parallelism or completions when JobSet "
            "is in a terminal state (Completed or Failed)"
        ],
        gates=ELASTIC,
    ),
    "elastic-gate-off-rejected": UpdateCase(set_pc(1, 4, 4), [IMMUTABLE]),  # conformance 65, 102
    "elastic-non-indexed-rejected": UpdateCase(
        both(
            lambda old, new: [
                setp("spec.replicatedJobs.1.template.spec.completionMode", "NonIndexed")(o) for o in (old, new)
            ],
            set_pc(1, 4, 4),
        ),
        [IMMUTABLE],
        gates=ELASTIC,
    ),
    "elastic-does-not-unlock-other-fields": UpdateCase(
        both(set_pc(1, 4, 4), new_only(setp("spec.replicatedJobs.1.template.spec.backoffLimit", 9))),
        [IMMUTABLE],
        gates=ELASTIC,
    ),
}


@pytest.mark.parametrize("case", UPDATE_CASES.values(), ids=UPDATE_CASES.keys())
def test_update(case: UpdateCase) -> None:
    old, new = valid(), valid()
    case.edit(old, new)
    got = texts(validate_update(new, old, case.gates))
    shown = [IMMUTABLE if t.startswith(IMMUTABLE_PREFIX) and t.endswith(IMMUTABLE_SUFFIX) else t for t in got]
    assert shown == case.expected


def test_immutable_error_shows_the_new_list_with_the_allowed_fields_taken_from_old() -> None:
    old, new = valid(), valid()
    old["spec"]["suspend"] = True
    pod_spec(new, 0)["nodeSelector"] = {"pool": "x"}  # allowed while suspended: masked with old's value
    rj(new, 1)["replicas"] = 5  # not allowed
    (err,) = validate_update(new, old, {})
    assert err.field == "spec.replicatedJobs"
    assert err.bad_value[1]["replicas"] == 5
    assert "nodeSelector" not in err.bad_value[0]["template"]["spec"]["template"]["spec"]
    assert "nodeSelector" in pod_spec(new, 0)  # the caller's object is not modified


def test_update_does_not_rerun_create_checks() -> None:
    old, new = valid(), valid()
    for obj in (old, new):
        obj["spec"]["successPolicy"]["targetReplicatedJobs"] = ["nope"]
    new["spec"]["suspend"] = True
    assert validate_update(new, old, {}) == []


# ----------------------------------------------------------------------------------------------- schema and CEL


@dataclass(frozen=True)
class SchemaCase:
    edit: Callable[[JSON], Any]
    expected: list[str]


SCHEMA_CASES = {
    "replicas-negative": SchemaCase(  # conformance 76
        setp("spec.replicatedJobs.1.replicas", -1),
        [
            "spec.replicatedJobs[1].replicas: Invalid value: -1: spec.replicatedJobs[1].replicas in body should be "
            "greater than or equal to 0"
        ],
    ),
    "ttl-negative": SchemaCase(
        setp("spec.ttlSecondsAfterFinished", -5),
        [
            "spec.ttlSecondsAfterFinished: Invalid value: -5: spec.ttlSecondsAfterFinished in body should be "
            "greater than or equal to 0"
        ],
    ),
    "depends-on-status-enum": SchemaCase(  # conformance 89
        setp("spec.replicatedJobs.1.dependsOn", [{"name": "a", "status": "Failed"}]),
        [
            'spec.replicatedJobs[1].dependsOn[0].status: Unsupported value: "Failed": supported values: "Ready", '
            '"Complete"'
        ],
    ),
    "depends-on-more-than-5": SchemaCase(
        chain(
            *(add_rjob(f"r{i}") for i in range(6)),
            setp("spec.replicatedJobs.7.dependsOn", [{"name": f"r{i}", "status": "Ready"} for i in range(6)]),
        ),
        ["spec.replicatedJobs[7].dependsOn: Too many: 6: must have at most 5 items"],
    ),
    "depends-on-duplicate-names": SchemaCase(
        setp(
            "spec.replicatedJobs.1.dependsOn", [{"name": "a", "status": "Ready"}, {"name": "a", "status": "Complete"}]
        ),
        ['spec.replicatedJobs[1].dependsOn[1]: Duplicate value: {"name":"a"}'],
    ),
    "depends-on-item-fields-required": SchemaCase(
        setp("spec.replicatedJobs.1.dependsOn", [{}]),
        [
            "spec.replicatedJobs[1].dependsOn[0].name: Required value",
            "spec.replicatedJobs[1].dependsOn[0].status: Required value",
        ],
    ),
    "rjob-duplicate-names": SchemaCase(
        setp("spec.replicatedJobs.1.name", "a"), ['spec.replicatedJobs[1]: Duplicate value: {"name":"a"}']
    ),
    "rjob-name-and-template-required": SchemaCase(
        setp("spec.replicatedJobs.1", {"replicas": 1}),
        ["spec.replicatedJobs[1].name: Required value", "spec.replicatedJobs[1].template: Required value"],
    ),
    "in-order-startup-with-depends-on": SchemaCase(  # conformance 87
        chain(
            setp("spec.startupPolicy", {"startupPolicyOrder": "InOrder"}),
            setp("spec.replicatedJobs.1.dependsOn", [{"name": "a", "status": "Ready"}]),
        ),
        ['spec: Invalid value: "object": StartupPolicy and DependsOn APIs are mutually exclusive'],
    ),
    "success-operator-enum-and-required": SchemaCase(
        setp("spec.successPolicy", {"operator": "Most"}),
        ['spec.successPolicy.operator: Unsupported value: "Most": supported values: "All", "Any"'],
    ),
    "success-operator-required": SchemaCase(
        setp("spec.successPolicy", {}), ["spec.successPolicy.operator: Required value"]
    ),
    "startup-order-enum": SchemaCase(
        setp("spec.startupPolicy", {"startupPolicyOrder": "Random"}),
        ['spec.startupPolicy.startupPolicyOrder: Unsupported value: "Random": supported values: "AnyOrder", "InOrder"'],
    ),
    "restart-strategy-and-action-enums": SchemaCase(
        setp("spec.failurePolicy", {"restartStrategy": "Never", "rules": [{"name": "r", "action": "Panic"}]}),
        [
            'spec.failurePolicy.restartStrategy: Unsupported value: "Never": supported values: "Recreate", '
            '"BlockingRecreate", "InPlaceRestart"',
            'spec.failurePolicy.rules[0].action: Unsupported value: "Panic": supported values: "FailJobSet", '
            '"RestartJobSet", "RestartJobSetAndIgnoreMaxRestarts", "RestartJob", "RestartJobAndIgnoreMaxRestarts"',
        ],
    ),
    "rule-name-and-action-required": SchemaCase(
        setp("spec.failurePolicy", {"rules": [{}]}),
        ["spec.failurePolicy.rules[0].name: Required value", "spec.failurePolicy.rules[0].action: Required value"],
    ),
    "startup-order-required": SchemaCase(
        setp("spec.startupPolicy", {}), ["spec.startupPolicy.startupPolicyOrder: Required value"]
    ),
    "coordinator-rjob-required": SchemaCase(
        setp("spec.coordinator", {"jobIndex": 0}), ["spec.coordinator.replicatedJob: Required value"]
    ),
    "claim-template-namespace-set": SchemaCase(  # conformance 95
        setp("spec.volumeClaimPolicies", [{"templates": [{"metadata": {"name": "c", "namespace": "other"}}]}]),
        [
            'spec.volumeClaimPolicies[0]: Invalid value: "object": namespace cannot be set for '
            "VolumeClaimPolicies templates"
        ],
    ),
    "claim-policies-more-than-50": SchemaCase(  # conformance 96
        setp("spec.volumeClaimPolicies", [claim_policy(f"c{i}") for i in range(51)]),
        ["spec.volumeClaimPolicies: Too many: 51: must have at most 50 items"],
    ),
    "claim-templates-more-than-50": SchemaCase(
        setp("spec.volumeClaimPolicies", [claim_policy(*(f"c{i}" for i in range(51)))]),
        ["spec.volumeClaimPolicies[0].templates: Too many: 51: must have at most 50 items"],
    ),
    "when-deleted-enum": SchemaCase(
        setp("spec.volumeClaimPolicies", [claim_policy("c", when_deleted="Keep")]),
        [
            'spec.volumeClaimPolicies[0].retentionPolicy.whenDeleted: Unsupported value: "Keep": '
            'supported values: "Delete", "Retain"'
        ],
    ),
    "metadata-name-not-a-subdomain": SchemaCase(
        setp("metadata.name", "Bad_Name"), [f'metadata.name: Invalid value: "Bad_Name": {R1123}']
    ),
    "wrong-json-type-is-a-schema-error": SchemaCase(
        setp("spec.replicatedJobs.0.replicas", "3"),
        [
            'spec.replicatedJobs[0].replicas: Invalid value: "string": spec.replicatedJobs[0].replicas in body must '
            'be of type integer: "string"'
        ],
    ),
}


@pytest.mark.parametrize("case", SCHEMA_CASES.values(), ids=SCHEMA_CASES.keys())
def test_schema_rule(case: SchemaCase) -> None:
    obj = valid()
    case.edit(obj)
    assert texts(validate_schema_rules(obj)) == case.expected


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda obj: None, id="base-fixture"),
        pytest.param(setp("spec.replicatedJobs.1.replicas", 0), id="replicas-zero"),
        pytest.param(
            setp("spec.replicatedJobs.1.dependsOn", [{"name": "a", "status": "Ready"}]), id="any-order-depends-on"
        ),
        pytest.param(setp("spec.volumeClaimPolicies", [claim_policy(f"c{i}") for i in range(50)]), id="fifty-policies"),
        pytest.param(setp("spec.replicatedJobs", []), id="no-rjobs"),
    ],
)
def test_schema_accepts(edit: Callable[[JSON], Any]) -> None:
    obj = valid()
    edit(obj)
    assert validate_schema_rules(obj) == []


TRANSITION_CASES = {
    "success-policy-targets-changed": (  # conformance 80
        setp("spec.successPolicy.targetReplicatedJobs", ["a"]),
        ['spec.successPolicy: Invalid value: "object": Value is immutable'],
    ),
    "failure-policy-max-restarts-changed": (  # conformance 81
        setp("spec.failurePolicy.maxRestarts", 21),
        ['spec.failurePolicy: Invalid value: "object": Value is immutable'],
    ),
    "depends-on-status-changed": (  # conformance 90
        setp("spec.replicatedJobs.1.dependsOn.0.status", "Complete"),
        ['spec.replicatedJobs[1].dependsOn: Invalid value: "array": Value is immutable'],
    ),
    "when-deleted-changed": (  # conformance 94
        setp("spec.volumeClaimPolicies.0.retentionPolicy.whenDeleted", "Retain"),
        ['spec.volumeClaimPolicies: Invalid value: "array": Value is immutable'],
    ),
    "network-changed": (
        setp("spec.network.publishNotReadyAddresses", False),
        ['spec.network: Invalid value: "object": Value is immutable'],
    ),
    "startup-policy-changed": (
        setp("spec.startupPolicy.startupPolicyOrder", "InOrder"),
        [
            'spec: Invalid value: "object": StartupPolicy and DependsOn APIs are mutually exclusive',
            'spec.startupPolicy: Invalid value: "object": Value is immutable',
        ],
    ),
}


def stored() -> JSON:
    obj = valid()
    obj["spec"]["failurePolicy"] = {"maxRestarts": 3}
    obj["spec"]["replicatedJobs"][1]["dependsOn"] = [{"name": "a", "status": "Ready"}]
    obj["spec"]["volumeClaimPolicies"] = [claim_policy("c")]
    return obj


@pytest.mark.parametrize(("edit", "expected"), TRANSITION_CASES.values(), ids=TRANSITION_CASES.keys())
def test_cel_transition_rule(edit: Callable[[JSON], Any], expected: list[str]) -> None:
    old, new = stored(), stored()
    edit(new)
    assert texts(validate_schema_rules(new, old)) == expected


def test_cel_transition_rules_do_not_fire_when_the_old_object_lacks_the_field() -> None:
    old, new = valid(), stored()
    del old["spec"]["network"]
    new["spec"]["network"]["subdomain"] = "other"
    assert validate_schema_rules(new, old) == []


def test_unchanged_update_passes_schema_and_webhook() -> None:
    old, new = stored(), stored()
    new["spec"]["suspend"] = True
    assert validate_schema_rules(new, old) == []
    assert validate_update(new, old, {}) == []


# ----------------------------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(
            {"metadata": [], "spec": {}},
            ['metadata: Invalid value: "array": metadata in body must be of type object: "array"'],
            id="metadata-array",
        ),
        pytest.param(
            {"metadata": {"name": "x"}, "spec": {"replicatedJobs": {"a": {}}}},
            [
                'spec.replicatedJobs: Invalid value: "object": spec.replicatedJobs in body must be of type '
                'array: "object"'
            ],
            id="rjobs-map",
        ),
        pytest.param(
            {"metadata": {"name": "x"}, "spec": {"replicatedJobs": [{"name": "a", "replicas": 2**31}]}},
            ["spec.replicatedJobs[0].replicas: Invalid value: 2147483648: must fit in a 32-bit signed integer"],
            id="replicas-overflow-int32",
        ),
        pytest.param(
            {"metadata": {"name": "x"}, "spec": {"suspend": "yes", "coordinator": {"jobIndex": True}}},
            [
                'spec.coordinator.jobIndex: Invalid value: "boolean": spec.coordinator.jobIndex in body must be of '
                'type integer: "boolean"',
                'spec.suspend: Invalid value: "string": spec.suspend in body must be of type boolean: "string"',
            ],
            id="bool-and-int-confused",
        ),
        pytest.param(
            {"metadata": {"name": "x"}, "spec": {"replicatedJobs": [{"name": "a", "dependsOn": [None, 3]}]}},
            [
                'spec.replicatedJobs[0].dependsOn[0]: Invalid value: "null": spec.replicatedJobs[0].dependsOn[0] in '
                'body must be of type object: "null"',
                'spec.replicatedJobs[0].dependsOn[1]: Invalid value: "integer": spec.replicatedJobs[0].dependsOn[1] '
                'in body must be of type object: "integer"',
            ],
            id="depends-on-items",
        ),
    ],
)
def test_malformed_input_gets_type_errors_with_paths(obj: JSON, expected: list[str]) -> None:
    assert texts(validate_create(obj, {})) == expected
    assert texts(validate_update(obj, valid(), {})) == expected


def test_deep_nesting_is_rejected_with_the_offending_path() -> None:
    obj = valid()
    node: JSON = pod_spec(obj, 0)
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]
    (err,) = validate_create(obj, {})
    assert err.field.startswith("spec.replicatedJobs[0].template.spec.template.spec.x.x.x")
    assert str(err).endswith(": Invalid value: nesting exceeds the maximum depth of 100")


def test_update_with_unreadable_stored_object_is_internal_error() -> None:
    assert texts(validate_update(valid(), {"spec": {"replicatedJobs": 5}}, {})) == [
        'spec: Internal error: the stored JobSet cannot be read: spec.replicatedJobs: Invalid value: "integer": '
        'spec.replicatedJobs in body must be of type array: "integer"'
    ]


# ----------------------------------------------------------------------------------------------- rendering primitives


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        pytest.param('a"b\n\x00é\u0085', '"a\\"b\\n\\x00é\\u0085"', id="string-go-quoted"),
        pytest.param(True, "true", id="bool"),
        pytest.param(-3, "-3", id="int"),
        pytest.param(1000000.0, "1e+06", id="float-exponent"),
        pytest.param(2.5, "2.5", id="float"),
        pytest.param(None, "null", id="nil"),
        pytest.param({"b": 1, "a": "<&>"}, '{"a":"\\u003c\\u0026\\u003e","b":1}', id="json-sorted-html-escaped"),
    ],
)
def test_bad_values_render_like_go(value: Any, rendered: str) -> None:
    assert render_value(value) == rendered


def test_error_list_aggregate_and_422_status() -> None:
    p = Path("spec").child("replicatedJobs").index(0).child("name")
    errors = ErrorList(
        [FieldError.invalid(p, "x", "bad"), FieldError.invalid(p, "x", "bad"), FieldError.forbidden(Path("spec"), "no")]
    )
    assert errors.aggregate() == '[spec.replicatedJobs[0].name: Invalid value: "x": bad, spec: Forbidden: no]'
    status = invalid_status("JobSet", "jobset.x-k8s.io", "my-js", errors[:1])
    assert status["code"] == 422
    assert status["reason"] == "Invalid"
    assert (
        status["message"]
        == 'JobSet.jobset.x-k8s.io "my-js" is invalid: spec.replicatedJobs[0].name: Invalid value: "x": bad'
    )
    assert status["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "message": 'Invalid value: "x": bad', "field": "spec.replicatedJobs[0].name"}
    ]


def test_error_bodies_for_every_type() -> None:
    p = Path("f")
    assert [
        str(e)
        for e in (
            FieldError.required(p, "why"),
            FieldError.duplicate(p, "v"),
            FieldError.not_found(p, 3),
            FieldError.not_supported(p, "v", []),
            FieldError.too_long(p, 1),
            FieldError.too_many(p, -1, 2),
            FieldError.internal(p, "boom"),
            FieldError.type_invalid(p, "string", "d"),
        )
    ] == [
        "f: Required value: why",
        'f: Duplicate value: "v"',
        "f: Not found: 3",
        'f: Unsupported value: "v"',
        "f: Too long: may not be more than 1 byte",
        "f: Too many: must have at most 2 items",
        "f: Internal error: boom",
        'f: Invalid value: "string": d',
    ]


@pytest.mark.parametrize(
    ("check", "value", "expected"),
    [
        pytest.param(is_dns1123_label, "a.b", ["must not contain dots"], id="label-dots"),
        pytest.param(is_dns1123_label, "a" * 64, ["must be no more than 63 characters"], id="label-long"),
        pytest.param(is_dns1123_subdomain, "a" * 254, ["must be no more than 253 characters"], id="subdomain-long"),
        pytest.param(is_dns1035_label, "1abc", [R1035], id="1035-leading-digit"),
        pytest.param(is_dns1035_label, "é", [R1035], id="1035-non-ascii"),
        pytest.param(is_valid_label_value, "", [], id="label-value-empty-ok"),
        pytest.param(is_valid_label_value, "My_value.1", [], id="label-value-ok"),
        pytest.param(
            is_valid_label_value,
            "-x",
            [
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
                "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
                "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
            ],
            id="label-value-bad",
        ),
        pytest.param(is_dns1035_label, "ab-1", [], id="1035-ok"),
    ],
)
def test_dns_validators(check: Callable[[str], list[str]], value: str, expected: list[str]) -> None:
    assert check(value) == expected


def test_domain_prefixed_path_ok() -> None:
    assert is_domain_prefixed_path(Path("p"), "jobset.sigs.k8s.io/jobset-controller") == []


def test_go_quote_escapes_like_strconv() -> None:
    assert go_quote("\t\x7f\U0001f600\u200b") == '"\\t\\x7f\U0001f600\\u200b"'


def test_semantic_equal_treats_null_empty_and_absent_alike_but_not_false_and_zero() -> None:
    assert semantic_equal({"a": None, "b": [], "c": {"d": {}}}, {})
    assert not semantic_equal({"a": False}, {"a": 0})
    assert not semantic_equal({"a": ""}, {})


def test_rejection_status_names_the_jobset_like_the_reference() -> None:
    obj = valid("my-js")
    obj["spec"]["successPolicy"]["targetReplicatedJobs"] = ["q"]
    status = rejection_status(obj, validate_create(obj, {}))
    assert status["message"] == (
        'JobSet.jobset.x-k8s.io "my-js" is invalid: spec.successPolicy.targetReplicatedJobs[0]: Internal error: '
        "invalid replicatedJob name 'q' does not appear in .spec.ReplicatedJobs"
    )
    assert status["details"]["kind"] == "JobSet"
    assert status["details"]["group"] == "jobset.x-k8s.io"
    unnamed = rejection_status({"metadata": {"generateName": "g-"}}, [])
    assert unnamed["message"] == 'JobSet.jobset.x-k8s.io "" is invalid'


def test_delete_is_always_allowed() -> None:
    assert validate_delete({"spec": "garbage"}) == []


def test_cel_transition_rules_with_unreadable_stored_object_are_an_internal_error() -> None:
    old = valid()
    node = old["spec"]["network"]
    for _ in range(150):
        node["x"] = {}
        node = node["x"]
    (err,) = validate_schema_rules(valid(), old)
    assert err.field == "spec"
    assert str(err).startswith("spec: Internal error: the stored JobSet cannot be read: spec.network.x.x")
