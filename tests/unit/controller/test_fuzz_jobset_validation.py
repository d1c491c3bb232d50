"""Property tests: the JobSet webhook functions never crash and always answer with field paths.

Generated JobSets range from valid (which must be accepted after defaulting) through plausible-but-wrong
(right keys, random JSON values) to huge and absurdly nested ones. Whatever comes in, defaulting and
validation return normally, and every error names a field under ``metadata`` or ``spec``.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from controller.webhooks import (
    ErrorList,
    default_jobset,
    invalid_status,
    validate_create,
    validate_schema_rules,
    validate_update,
)
from controller.webhooks.jobset_defaults import defaulting_patch
from tests.unit.controller.test_jobset_defaults import apply_add_patch

JSON = dict[str, Any]

# PYJOBSET_FUZZ_EXAMPLES raises the budget for a long soak run; the default keeps CI on shared cores quick.
FUZZ = settings(
    max_examples=int(os.environ.get("PYJOBSET_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
GATES = st.fixed_dictionaries(
    {"InPlaceRestart": st.booleans(), "RestartJob": st.booleans(), "ElasticJobSet": st.booleans()}
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a well-typed value, sometimes any JSON value (wrong type, null, nested garbage)."""
    return st.one_of(valid, valid, valid, json_values)


def sparse(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[JSON]:
    """An object whose keys are each present or absent."""
    return st.fixed_dictionaries({}, optional=fields)


names = st.text(alphabet="abcdefgxyz-0123AB_.", min_size=0, max_size=70)
small_ints = st.integers(min_value=-3, max_value=2**31 + 3)

pod_spec = sparse(
    {
        "restartPolicy": maybe(st.sampled_from(["Never", "OnFailure", ""])),
        "nodeSelector": maybe(st.dictionaries(names, names, max_size=2)),
        "volumes": maybe(st.lists(sparse({"name": maybe(names)}), max_size=3)),
        "containers": maybe(
            st.lists(sparse({"volumeMounts": maybe(st.lists(sparse({"name": maybe(names)}), max_size=2))}), max_size=2)
        ),
        "initContainers": maybe(st.lists(sparse({"volumeMounts": st.lists(sparse({"name": names}))}), max_size=1)),
    }
)
job_spec = sparse(
    {
        "parallelism": maybe(small_ints),
        "completions": maybe(small_ints),
        "completionMode": maybe(st.sampled_from(["Indexed", "NonIndexed"])),
        "backoffLimit": maybe(small_ints),
        "podReplacementPolicy": maybe(st.sampled_from(["Failed", "TerminatingOrFailed"])),
        "template": maybe(sparse({"metadata": maybe(sparse({"labels": json_values})), "spec": maybe(pod_spec)})),
    }
)
rjob = sparse(
    {
        "name": maybe(names),
        "groupName": maybe(names),
        "replicas": maybe(small_ints),
        "dependsOn": maybe(st.lists(sparse({"name": maybe(names), "status": maybe(names)}), max_size=7)),
        "template": maybe(sparse({"metadata": json_values, "spec": maybe(job_spec)})),
    }
)
rule = sparse(
    {
        "name": maybe(names),
        "action": maybe(st.sampled_from(["FailJobSet", "RestartJob", "RestartJobSet", "x"])),
        "onJobFailureReasons": maybe(st.lists(maybe(names), max_size=3)),
        "onJobFailureMessagePatterns": maybe(st.lists(names, max_size=2)),
        "targetReplicatedJobs": maybe(st.lists(maybe(names), max_size=3)),
    }
)
policy = sparse(
    {
        "templates": maybe(
            st.lists(
                sparse({"metadata": maybe(sparse({"name": maybe(names), "namespace": names})), "spec": json_values}),
                max_size=3,
            )
        ),
        "retentionPolicy": maybe(sparse({"whenDeleted": maybe(st.sampled_from(["Delete", "Retain", "x"]))})),
    }
)
spec = sparse(
    {
        "replicatedJobs": maybe(st.lists(maybe(rjob), max_size=6)),
        "network": maybe(
            sparse(
                {
                    "subdomain": maybe(names),
                    "enableDNSHostnames": maybe(st.booleans()),
                    "publishNotReadyAddresses": json_values,
                }
            )
        ),
        "successPolicy": maybe(
            sparse({"operator": maybe(names), "targetReplicatedJobs": maybe(st.lists(maybe(names)))})
        ),
        "failurePolicy": maybe(
            sparse(
                {
                    "maxRestarts": maybe(small_ints),
                    "restartStrategy": maybe(names),
                    "rules": maybe(st.lists(rule, max_size=4)),
                }
            )
        ),
        "startupPolicy": maybe(sparse({"startupPolicyOrder": maybe(st.sampled_from(["AnyOrder", "InOrder"]))})),
        "suspend": maybe(st.booleans()),
        "coordinator": maybe(
            sparse({"replicatedJob": maybe(names), "jobIndex": maybe(small_ints), "podIndex": maybe(small_ints)})
        ),
        "managedBy": maybe(names),
        "ttlSecondsAfterFinished": maybe(small_ints),
        "volumeClaimPolicies": maybe(st.lists(policy, max_size=3)),
    }
)
jobsets = sparse(
    {
        "metadata": maybe(sparse({"name": maybe(names), "generateName": maybe(names), "namespace": names})),
        "spec": maybe(spec),
        "status": json_values,
    }
)


def assert_clean(errors: ErrorList) -> None:
    assert isinstance(errors, ErrorList)
    for err in errors:
        assert err.field.startswith(("metadata", "spec")), str(err)
        assert str(err)  # rendering never raises either
    invalid_status("JobSet", "jobset.x-k8s.io", "fuzz", errors)


def lookup(name: str) -> JSON | None:
    if name.startswith("a"):
        raise RuntimeError("lookup failed")
    return {"spec": {"x": name}} if name.startswith("b") else None


@FUZZ
@given(obj=jobsets, gates=GATES)
def test_create_never_crashes_and_names_fields(obj: JSON, gates: dict[str, bool]) -> None:
    before = copy.deepcopy(obj)
    assert_clean(validate_create(obj, gates, lookup))
    defaulted, ops = defaulting_patch(obj)
    assert apply_add_patch(obj, ops) == defaulted
    assert_clean(validate_create(defaulted, gates, lookup))
    assert_clean(validate_schema_rules(defaulted))
    assert obj == before  # nothing here mutates its input


@FUZZ
@given(new=jobsets, old=jobsets, gates=GATES)
@example(new={}, old={"spec": {"replicatedJobs": [{"name": []}]}}, gates={})  # unhashable name in the old object
def test_update_never_crashes_and_names_fields(new: JSON, old: JSON, gates: dict[str, bool]) -> None:
    assert_clean(validate_update(new, old, gates))
    assert_clean(validate_schema_rules(new, old))


@FUZZ
@given(obj=jobsets, gates=GATES)
def test_update_against_itself_is_always_allowed_once_readable(obj: JSON, gates: dict[str, bool]) -> None:
    errors = validate_update(obj, copy.deepcopy(obj), gates)
    # Only type errors (the object cannot be read) may come back; an identical object is never "immutable".
    assert all("field is immutable" not in str(e) for e in errors)


# ------------------------------------------------------------------------------------------- valid JobSets

lower = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=6)


@st.composite
def valid_jobsets(draw: st.DrawFn) -> JSON:
    rjob_names = draw(st.lists(lower, min_size=0, max_size=5, unique=True))
    rjobs: list[JSON] = []
    claim = "data"
    for i, name in enumerate(rjob_names):
        parallelism = draw(st.integers(1, 4))
        job: JSON = {
            "parallelism": parallelism,
            "completions": draw(st.sampled_from([parallelism, None])),
            "template": {"spec": {"containers": [{"name": "c", "image": "i", "volumeMounts": [{"name": claim}]}]}},
        }
        if job["completions"] is None:
            del job["completions"]
        if draw(st.booleans()):
            job["completionMode"] = draw(st.sampled_from(["Indexed", "NonIndexed"]))
        item: JSON = {"name": name, "replicas": draw(st.integers(0, 8)), "template": {"spec": job}}
        if i > 0 and draw(st.booleans()):
            deps = draw(st.lists(st.sampled_from(rjob_names[:i]), min_size=1, max_size=3, unique=True))
            item["dependsOn"] = [{"name": d, "status": draw(st.sampled_from(["Ready", "Complete"]))} for d in deps]
        if draw(st.booleans()):
            item["groupName"] = draw(lower)
        rjobs.append(item)
    obj: JSON = {"metadata": {"name": draw(lower), "namespace": "default"}, "spec": {"replicatedJobs": rjobs}}
    if rjob_names and draw(st.booleans()):
        obj["spec"]["successPolicy"] = {
            "operator": draw(st.sampled_from(["All", "Any"])),
            "targetReplicatedJobs": draw(st.lists(st.sampled_from(rjob_names), max_size=2)),
        }
    if draw(st.booleans()):
        obj["spec"]["failurePolicy"] = {
            "maxRestarts": draw(st.integers(0, 5)),
            "rules": [
                {
                    "action": draw(
                        st.sampled_from(["FailJobSet", "RestartJobSet", "RestartJobSetAndIgnoreMaxRestarts"])
                    ),
                    "onJobFailureReasons": draw(
                        st.lists(st.sampled_from(["BackoffLimitExceeded", "PodFailurePolicy"]))
                    ),
                    "targetReplicatedJobs": draw(st.lists(st.sampled_from(rjob_names), max_size=2))
                    if rjob_names
                    else [],
                }
                for _ in range(draw(st.integers(0, 3)))
            ],
        }
    if rjob_names and draw(st.booleans()):
        obj["spec"]["volumeClaimPolicies"] = [{"templates": [{"metadata": {"name": claim}, "spec": {}}]}]
    if draw(st.booleans()):
        obj["spec"]["network"] = {"subdomain": draw(lower)}
    return obj


@FUZZ
@given(obj=valid_jobsets(), gates=GATES)
def test_valid_jobsets_are_accepted_after_defaulting(obj: JSON, gates: dict[str, bool]) -> None:
    defaulted = default_jobset(obj)
    assert validate_create(defaulted, gates, lambda _name: None) == []
    assert validate_schema_rules(defaulted) == []
    assert validate_update(defaulted, copy.deepcopy(defaulted), gates) == []


# ------------------------------------------------------------------------------------------- huge and deep


def test_huge_jobset_is_answered() -> None:
    rjobs = [
        {"name": f"r{i}", "replicas": 1, "template": {"spec": {"template": {"spec": {"containers": []}}}}}
        for i in range(2000)
    ]
    rjobs[-1]["dependsOn"] = [{"name": "r0", "status": "Ready"}, {"name": "nope", "status": "Ready"}]
    obj = default_jobset({"metadata": {"name": "big"}, "spec": {"replicatedJobs": rjobs}})
    obj["spec"]["failurePolicy"] = {"rules": [{"name": "dup", "action": "FailJobSet"}] * 1000}
    errors = validate_create(obj, {})
    assert_clean(errors)
    assert [e.field for e in errors] == [
        "spec.replicatedJobs",  # our limit of replicated jobs, reported before the reference's rules
        "spec.replicatedJobs[1999].dependsOn[1].name",
        "spec.failurePolicy.rules[0].name",
    ]
    changed = copy.deepcopy(obj)
    changed["spec"]["replicatedJobs"][1000]["replicas"] = 2
    assert [e.field for e in validate_update(changed, obj, {})] == ["spec.replicatedJobs"]


@FUZZ
@given(
    depth=st.integers(90, 3000), where=st.sampled_from(["metadata", "spec", "rjob", "status"]), as_list=st.booleans()
)
def test_deeply_nested_input_is_answered(depth: int, where: str, as_list: bool) -> None:
    deep: Any = "leaf"
    for _ in range(depth):
        deep = [deep] if as_list else {"k": deep}
    obj: JSON = {"metadata": {"name": "deep"}, "spec": {"replicatedJobs": [{"name": "a", "template": {"spec": {}}}]}}
    if where == "metadata":
        obj["metadata"]["labels"] = deep
    elif where == "spec":
        obj["spec"]["extra"] = deep
    elif where == "rjob":
        obj["spec"]["replicatedJobs"][0]["template"]["metadata"] = {"annotations": deep}
    else:
        obj["status"] = deep
    for errors in (validate_create(obj, {}), validate_update(obj, obj, {}), validate_schema_rules(obj, obj)):
        assert_clean(errors)
    assert_clean(validate_create(default_jobset(obj), {}))
    shallow = default_jobset({"metadata": {"name": "deep"}, "spec": {}})
    assert_clean(validate_update(shallow, obj, {}))
    assert_clean(validate_schema_rules(shallow, obj))


def test_many_claims_times_many_rjobs_stays_linear() -> None:
    claims = [f"c{i}" for i in range(2000)]
    rjobs = [
        {"name": f"r{i}", "template": {"spec": {"template": {"spec": {"volumes": [{"name": "scratch"}]}}}}}
        for i in range(3000)
    ]
    rjobs[0]["template"]["spec"]["template"]["spec"]["containers"] = [
        {"name": "main", "volumeMounts": [{"name": c} for c in claims]}
    ]
    policies = [{"templates": [{"metadata": {"name": c}} for c in claims[i : i + 50]]} for i in range(0, 2000, 50)]
    obj = default_jobset(
        {"metadata": {"name": "big"}, "spec": {"replicatedJobs": rjobs, "volumeClaimPolicies": policies}}
    )
    # Only our limit of replicated jobs is refused: every claim rule ran, linearly, and found nothing.
    assert [e.field for e in validate_create(obj, {}, lambda _name: None)] == ["spec.replicatedJobs"]
