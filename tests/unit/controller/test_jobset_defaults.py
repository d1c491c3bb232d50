"""JobSet defaulting webhook (behaviour.md §5.4; conformance 66-70, 74, 82, 93): what is filled, what is left alone."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from controller.webhooks import default_jobset, validate_create
from controller.webhooks.jobset_defaults import defaulting_patch
from tests.builders import JobSetBuilder

JSON = dict[str, Any]


def bare() -> JSON:
    """A JobSet as a user writes it: no network, policies, completionMode or restartPolicy."""
    obj = JobSetBuilder("test-js").rjob("a", 1, completion_mode=None).rjob("b", 3, completion_mode=None).obj()
    del obj["spec"]["network"]
    del obj["spec"]["successPolicy"]
    for rj in obj["spec"]["replicatedJobs"]:
        del rj["template"]["spec"]["template"]["spec"]["restartPolicy"]
    return obj


def rjob_spec(obj: JSON, i: int = 0) -> JSON:
    spec: JSON = obj["spec"]["replicatedJobs"][i]["template"]["spec"]
    return spec


def test_completion_mode_unset_is_defaulted_to_indexed() -> None:  # conformance 66
    out = default_jobset(bare())
    assert [rjob_spec(out, i)["completionMode"] for i in (0, 1)] == ["Indexed", "Indexed"]


def test_completion_mode_non_indexed_is_kept() -> None:  # conformance 67
    obj = bare()
    rjob_spec(obj)["completionMode"] = "NonIndexed"
    assert rjob_spec(default_jobset(obj))["completionMode"] == "NonIndexed"


def test_network_unset_gets_dns_hostnames_and_publish_not_ready() -> None:  # conformance 68, 69
    assert default_jobset(bare())["spec"]["network"] == {
        "enableDNSHostnames": True,
        "publishNotReadyAddresses": True,
    }


@pytest.mark.parametrize(
    ("network", "expected"),
    [
        pytest.param(
            {"subdomain": "net"},
            {"subdomain": "net", "enableDNSHostnames": True, "publishNotReadyAddresses": True},
            id="subdomain-kept-flags-filled",
        ),
        pytest.param(
            {"enableDNSHostnames": False},
            {"enableDNSHostnames": False, "publishNotReadyAddresses": True},
            id="explicit-false-kept",
        ),
        pytest.param(
            {"enableDNSHostnames": None, "publishNotReadyAddresses": False},
            {"enableDNSHostnames": True, "publishNotReadyAddresses": False},
            id="null-is-unset",
        ),
    ],
)
def test_network_fields_are_defaulted_one_by_one(network: JSON, expected: JSON) -> None:
    obj = bare()
    obj["spec"]["network"] = network
    assert default_jobset(obj)["spec"]["network"] == expected


def test_pod_restart_policy_unset_or_empty_becomes_on_failure() -> None:  # conformance 70
    obj = bare()
    obj["spec"]["replicatedJobs"][1]["template"]["spec"]["template"]["spec"]["restartPolicy"] = ""
    out = default_jobset(obj)
    assert [rjob_spec(out, i)["template"]["spec"]["restartPolicy"] for i in (0, 1)] == ["OnFailure"] * 2


def test_pod_restart_policy_set_is_kept() -> None:
    obj = bare()
    rjob_spec(obj)["template"]["spec"]["restartPolicy"] = "Never"
    assert rjob_spec(default_jobset(obj))["template"]["spec"]["restartPolicy"] == "Never"


def test_success_policy_defaults_to_all_without_targets() -> None:  # conformance 74
    assert default_jobset(bare())["spec"]["successPolicy"] == {"operator": "All"}


def test_present_success_policy_is_left_alone_even_if_empty() -> None:
    # Go sees a non-nil pointer; the CRD's "operator is required" then rejects it, not the defaulter.
    obj = bare()
    obj["spec"]["successPolicy"] = {}
    assert default_jobset(obj)["spec"]["successPolicy"] == {}


def test_startup_policy_defaults_to_any_order() -> None:
    assert default_jobset(bare())["spec"]["startupPolicy"] == {"startupPolicyOrder": "AnyOrder"}


def test_failure_policy_rule_names_default_to_their_index() -> None:
    obj = bare()
    obj["spec"]["failurePolicy"] = {
        "rules": [
            {"action": "FailJobSet"},
            {"name": "mine", "action": "FailJobSet"},
            {"name": "", "action": "FailJobSet"},
        ]
    }
    names = [r["name"] for r in default_jobset(obj)["spec"]["failurePolicy"]["rules"]]
    assert names == ["failurePolicyRule0", "mine", "failurePolicyRule2"]


def test_empty_failure_policy_is_untouched_and_valid() -> None:  # conformance 82 (restartStrategy is the CRD's)
    obj = bare()
    obj["spec"]["failurePolicy"] = {}
    out = default_jobset(obj)
    assert out["spec"]["failurePolicy"] == {}
    assert validate_create(out, {}) == []


def test_volume_claim_policy_without_retention_gets_delete() -> None:  # conformance 93
    obj = bare()
    obj["spec"]["volumeClaimPolicies"] = [
        {"templates": [{"metadata": {"name": "cache"}}]},
        {"templates": [{"metadata": {"name": "out"}}], "retentionPolicy": {"whenDeleted": "Retain"}},
    ]
    policies = default_jobset(obj)["spec"]["volumeClaimPolicies"]
    assert [p["retentionPolicy"] for p in policies] == [{"whenDeleted": "Delete"}, {"whenDeleted": "Retain"}]


def test_managed_by_and_crd_defaulted_fields_are_not_touched() -> None:
    obj = bare()
    obj["spec"]["managedBy"] = "kueue.x-k8s.io/multikueue"
    del obj["spec"]["replicatedJobs"][0]["replicas"]
    out = default_jobset(obj)
    assert out["spec"]["managedBy"] == "kueue.x-k8s.io/multikueue"
    assert "replicas" not in out["spec"]["replicatedJobs"][0]
    assert "groupName" not in out["spec"]["replicatedJobs"][0]


def test_input_is_not_modified() -> None:
    obj = bare()
    before = copy.deepcopy(obj)
    default_jobset(obj)
    assert obj == before


def test_already_defaulted_object_is_a_fixed_point() -> None:
    once = default_jobset(bare())
    assert default_jobset(once) == once


def test_rjob_without_template_gets_the_template_paths_created() -> None:
    # Go fills the zero-valued template structs; validation then judges the result.
    obj = bare()
    obj["spec"]["replicatedJobs"][0] = {"name": "a"}
    out = default_jobset(obj)
    assert out["spec"]["replicatedJobs"][0]["template"] == {
        "spec": {"completionMode": "Indexed", "template": {"spec": {"restartPolicy": "OnFailure"}}}
    }


@pytest.mark.parametrize(
    ("spec", "keys"),
    [
        pytest.param("not-an-object", (), id="spec-string"),
        pytest.param({"replicatedJobs": {"a": 1}}, ("replicatedJobs",), id="rjobs-map"),
        pytest.param({"replicatedJobs": [1, "x", {"template": []}]}, ("replicatedJobs",), id="rjob-items-wrong"),
        pytest.param(
            {"replicatedJobs": [{"template": {"spec": {"template": {"spec": 5}}}}]},
            ("replicatedJobs", 0, "template", "spec", "template"),
            id="pod-spec-int",
        ),
        pytest.param({"network": []}, ("network",), id="network-list"),
        pytest.param({"failurePolicy": {"rules": "r"}}, ("failurePolicy",), id="rules-string"),
        pytest.param({"failurePolicy": {"rules": [1, None]}}, ("failurePolicy",), id="rule-items-wrong"),
        pytest.param({"volumeClaimPolicies": [1, []]}, ("volumeClaimPolicies",), id="policy-items-wrong"),
    ],
)
def test_wrong_types_are_left_for_validation_to_reject(spec: Any, keys: tuple[str | int, ...]) -> None:
    obj = {"metadata": {"name": "x"}, "spec": copy.deepcopy(spec)}
    out = default_jobset(obj)
    before: Any = spec
    after: Any = out["spec"]
    for key in keys:
        before, after = before[key], after[key]
    assert after == before
    assert validate_create(out, {})  # validation rejects it with a field path instead of crashing


def test_missing_spec_is_filled_like_the_zero_value() -> None:
    out = default_jobset({"metadata": {"name": "x"}})
    assert out["spec"]["successPolicy"] == {"operator": "All"}
    assert out["spec"]["network"] == {"enableDNSHostnames": True, "publishNotReadyAddresses": True}


# ----------------------------------------------------------------------------------------------- JSON patch


def apply_add_patch(obj: Any, ops: list[JSON]) -> Any:
    """A minimal RFC 6902 applier for the ``add`` operations the defaulter emits."""
    out = copy.deepcopy(obj)
    for op in ops:
        assert op["op"] == "add"
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in op["path"].split("/")[1:]]
        node = out
        for token in tokens[:-1]:
            node = node[int(token)] if isinstance(node, list) else node[token]
        assert isinstance(node, dict)
        node[tokens[-1]] = copy.deepcopy(op["value"])
    return out


def test_patch_lists_exactly_the_additions() -> None:
    obj = {
        "metadata": {"name": "x"},
        "spec": {
            "replicatedJobs": [{"name": "a", "template": {"spec": {"template": {"spec": {"restartPolicy": ""}}}}}],
            "network": {"subdomain": "s", "enableDNSHostnames": False},
            "successPolicy": {"operator": "Any"},
            "startupPolicy": None,
        },
    }
    _, ops = defaulting_patch(obj)
    assert ops == [
        {"op": "add", "path": "/spec/startupPolicy", "value": {"startupPolicyOrder": "AnyOrder"}},
        {"op": "add", "path": "/spec/replicatedJobs/0/template/spec/completionMode", "value": "Indexed"},
        {"op": "add", "path": "/spec/replicatedJobs/0/template/spec/template/spec/restartPolicy", "value": "OnFailure"},
        {"op": "add", "path": "/spec/network/publishNotReadyAddresses", "value": True},
    ]


def test_patch_creates_missing_parents_before_their_children() -> None:
    obj = {"metadata": {"name": "x"}}
    defaulted, ops = defaulting_patch(obj)
    assert ops[0] == {"op": "add", "path": "/spec", "value": {}}
    assert apply_add_patch(obj, ops) == defaulted


def test_already_defaulted_object_needs_no_patch() -> None:
    assert defaulting_patch(default_jobset(bare()))[1] == []


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(bare(), id="bare"),
        pytest.param({"spec": {"replicatedJobs": [{"name": "a"}], "failurePolicy": {"rules": [{}, {}]}}}, id="rules"),
        pytest.param({"spec": {"volumeClaimPolicies": [{}, {"retentionPolicy": None}]}}, id="claims"),
        pytest.param({"spec": {"network": None, "replicatedJobs": [{"template": None}]}}, id="nulls"),
    ],
)
def test_patch_applied_to_input_gives_the_defaulted_object(obj: JSON) -> None:
    defaulted, ops = defaulting_patch(obj)
    assert apply_add_patch(obj, ops) == defaulted
    assert defaulted == default_jobset(obj)
