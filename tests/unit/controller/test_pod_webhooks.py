"""Pod webhooks for exclusive placement (behaviour.md §5.1/5.2, conformance 122 and 130), case by case."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest

from api import constants as c
from api.records import Node, Pod
from controller.webhooks.pod_webhooks import (
    Denial,
    json_diff,
    leader_name_for,
    mutate_pod,
    priority_label_value,
    strip_pod_suffix,
    validate_pod,
)
from kubesim.storage.patch import json_patch

JSON = dict[str, Any]
NS = "default"
TOPO = "cloud.google.com/gke-nodepool"
JOB_UID = "job-uid-1"


def pod_obj(
    name: str = "js-rj-0-1-abcde",
    *,
    index: str = "1",
    exclusive: str | None = TOPO,
    node_selector_strategy: bool = False,
    jobset_annotation: bool = True,
    labels: JSON | None = None,
    owner_uid: str | None = JOB_UID,
    node_name: str = "",
    priority: int | None = None,
    node_selector: Any = None,
    phase: str = "",
    deleting: bool = False,
    affinity: JSON | None = None,
) -> JSON:
    ann: JSON = {c.JOB_COMPLETION_INDEX_ANNOTATION: index}
    if jobset_annotation:
        ann[c.JOBSET_NAME_KEY] = "js"
    if exclusive is not None:
        ann[c.EXCLUSIVE_TOPOLOGY_KEY] = exclusive
    if node_selector_strategy:
        ann[c.NODE_SELECTOR_STRATEGY_KEY] = "true"
    lab = {
        c.JOBSET_NAME_KEY: "js",
        c.REPLICATED_JOB_NAME_KEY: "rj",
        c.JOB_INDEX_KEY: "0",
        c.JOB_KEY: "key-0",
    }
    if labels is not None:
        lab = labels
    meta: JSON = {"name": name, "namespace": NS, "labels": lab, "annotations": ann}
    if owner_uid is not None:
        meta["ownerReferences"] = [
            {"apiVersion": "batch/v1", "kind": "Job", "name": "js-rj-0", "uid": owner_uid, "controller": True}
        ]
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    spec: JSON = {"containers": [{"name": "c", "image": "busybox"}]}
    if node_name:
        spec["nodeName"] = node_name
    if priority is not None:
        spec["priority"] = priority
    if node_selector is not None:
        spec["nodeSelector"] = node_selector
    if affinity is not None:
        spec["affinity"] = affinity
    out: JSON = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
    if phase:
        out["status"] = {"phase": phase}
    return out


def record(obj: JSON) -> Pod:
    return msgspec.convert(obj, Pod)


def node(name: str, labels: dict[str, str]) -> Node:
    return msgspec.convert({"metadata": {"name": name, "labels": labels}}, Node)


class FakeLookup:
    def __init__(self, pods: Sequence[JSON] = (), nodes: Sequence[Node] = ()) -> None:
        self.pods = [record(p) for p in pods]
        self.nodes = {n.metadata.name: n for n in nodes}

    def pods_named(self, namespace: str, base_name: str) -> Sequence[Pod]:
        return [
            p for p in self.pods if p.metadata.namespace == namespace and strip_pod_suffix(p.metadata.name) == base_name
        ]

    def node(self, name: str) -> Node | None:
        return self.nodes.get(name)


def leader(**kw: Any) -> JSON:
    return pod_obj("js-rj-0-0-xyzzy", index="0", **kw)


def apply(pod: JSON, lookup: FakeLookup) -> JSON:
    result = mutate_pod(pod, NS, lookup)
    assert result.denial is None, result.denial
    return json_patch(copy.deepcopy(pod), list(result.patch))  # type: ignore[no-any-return]


POOL_NODE = node("n1", {TOPO: "pool-a"})


# --------------------------------------------------------------------------------------------- helpers


def test_pod_name_suffix_and_leader_name() -> None:
    assert strip_pod_suffix("js-rj-0-1-abcde") == "js-rj-0-1"
    assert strip_pod_suffix("my-js-rj-0-1-abcde") == "my-js-rj-0-1"
    assert strip_pod_suffix("a-b-c-d") is None
    assert leader_name_for({c.JOBSET_NAME_KEY: "js", c.REPLICATED_JOB_NAME_KEY: "rj", c.JOB_INDEX_KEY: "2"}) == (
        "js-rj-2-0"
    )


@pytest.mark.parametrize(("priority", "label"), [(0, "0"), (100, "100"), (-5, "n5")])
def test_priority_label_value(priority: int, label: str) -> None:
    assert priority_label_value(priority) == label


def test_json_diff_round_trip() -> None:
    old = {"a": {"b": 1, "x/y": 2}, "l": [1], "gone": True}
    new = {"a": {"b": 2, "x/y": 2, "c": {}}, "l": [1, 2]}
    assert json_patch(copy.deepcopy(old), json_diff(old, new)) == new


# --------------------------------------------------------------------------------------------- mutating webhook


def test_non_jobset_pod_untouched() -> None:
    pod = pod_obj(jobset_annotation=False, priority=5)
    assert mutate_pod(pod, NS, FakeLookup()).patch == ()


def test_node_selector_strategy_untouched() -> None:
    pod = leader(node_selector_strategy=True, priority=5)
    assert mutate_pod(pod, NS, FakeLookup()).patch == ()


def test_priority_label_added_without_exclusive_placement() -> None:
    out = apply(pod_obj(exclusive=None, priority=7), FakeLookup())
    assert out["metadata"]["labels"][c.PRIORITY_KEY] == "7"
    assert "affinity" not in out["spec"]


def test_no_priority_no_label() -> None:
    out = apply(pod_obj(exclusive=None), FakeLookup())
    assert c.PRIORITY_KEY not in out["metadata"]["labels"]


def test_priority_label_created_when_pod_has_no_labels() -> None:
    pod = pod_obj(exclusive=None, priority=3)
    del pod["metadata"]["labels"]
    out = apply(pod, FakeLookup())
    assert out["metadata"]["labels"] == {c.PRIORITY_KEY: "3"}


def test_leader_gets_affinity_and_anti_affinity() -> None:
    existing = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "zone"}]}}
    out = apply(leader(priority=10, affinity=existing), FakeLookup())
    aff = out["spec"]["affinity"]
    terms = aff["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms[0] == {"topologyKey": "zone"}  # existing terms kept, ours appended
    assert terms[1] == {
        "labelSelector": {"matchExpressions": [{"key": c.JOB_KEY, "operator": "In", "values": ["key-0"]}]},
        "topologyKey": TOPO,
        "namespaceSelector": {},
    }
    assert aff["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == [
        {
            "labelSelector": {
                "matchExpressions": [
                    {"key": c.JOB_KEY, "operator": "Exists"},
                    {"key": c.JOB_KEY, "operator": "NotIn", "values": ["key-0"]},
                    {"key": c.PRIORITY_KEY, "operator": "In", "values": ["10"]},
                ]
            },
            "topologyKey": TOPO,
            "namespaceSelector": {},
        }
    ]
    assert out["metadata"]["labels"][c.PRIORITY_KEY] == "10"


def test_follower_with_unscheduled_leader_untouched() -> None:
    lookup = FakeLookup([leader()], [POOL_NODE])
    assert mutate_pod(pod_obj(), NS, lookup).patch == ()


def test_follower_without_leader_untouched() -> None:
    assert mutate_pod(pod_obj(), NS, FakeLookup()).patch == ()


def test_follower_copies_leader_node_topology() -> None:
    lookup = FakeLookup([leader(node_name="n1")], [POOL_NODE])
    out = apply(pod_obj(node_selector={"other": "x"}), lookup)
    assert out["spec"]["nodeSelector"] == {"other": "x", TOPO: "pool-a"}


def test_follower_leader_node_missing_is_not_found() -> None:
    lookup = FakeLookup([leader(node_name="gone")])
    result = mutate_pod(pod_obj(), NS, lookup)
    assert result.denial == Denial(
        'nodes "gone" not found', code=404, reason="NotFound", details={"name": "gone", "kind": "nodes"}
    )


def test_follower_leader_node_without_label_rejected() -> None:
    lookup = FakeLookup([leader(node_name="n1")], [node("n1", {"zone": "z"})])
    result = mutate_pod(pod_obj(), NS, lookup)
    assert result.denial == Denial(f"node does not have topology label: {TOPO}")


@pytest.mark.parametrize(
    "dead",
    [{"deleting": True}, {"phase": "Failed"}, {"phase": "Succeeded"}],
    ids=["terminating", "failed", "succeeded"],
)
def test_leader_lookup_ignores_dead_duplicates(dead: JSON) -> None:
    old = pod_obj("js-rj-0-0-olddd", index="0", node_name="n2", **dead)
    lookup = FakeLookup([old, leader(node_name="n1")], [POOL_NODE, node("n2", {TOPO: "pool-b"})])
    out = apply(pod_obj(), lookup)
    assert out["spec"]["nodeSelector"] == {TOPO: "pool-a"}


def test_mutation_of_malformed_pod_is_a_bad_request() -> None:
    pod = leader()
    pod["spec"]["affinity"] = "nope"
    result = mutate_pod(pod, NS, FakeLookup())
    assert result.denial is not None
    assert result.denial.code == 400
    assert mutate_pod([], NS, FakeLookup()).denial is not None


def test_mutation_does_not_modify_input() -> None:
    pod = leader(priority=1)
    before = copy.deepcopy(pod)
    mutate_pod(pod, NS, FakeLookup())
    assert pod == before


# --------------------------------------------------------------------------------------------- validating webhook


@pytest.mark.parametrize(
    "pod",
    [
        pod_obj(jobset_annotation=False),
        pod_obj(node_selector_strategy=True),
        pod_obj(exclusive=None),
        leader(),
    ],
    ids=["non-jobset", "node-selector-strategy", "not-exclusive", "leader"],
)
def test_validation_skips(pod: JSON) -> None:
    assert validate_pod(pod, NS, FakeLookup()) is None


def _msg(pod: JSON, lookup: FakeLookup) -> str | None:
    denial = validate_pod(pod, NS, lookup)
    if denial is None:
        return None
    assert (denial.code, denial.reason) == (403, "Forbidden")
    return denial.message


def test_follower_without_node_selector_rejected() -> None:
    assert _msg(pod_obj(), FakeLookup()) == "follower pod node selector not set"


def test_follower_with_empty_node_selector_misses_topology() -> None:
    assert _msg(pod_obj(node_selector={}), FakeLookup()) == (
        f"follower pod node selector for topology domain not found. missing selector: {TOPO}"
    )


@pytest.mark.parametrize(
    ("missing", "label"),
    [("js", c.JOBSET_NAME_KEY), ("rj", c.REPLICATED_JOB_NAME_KEY), ("idx", c.JOB_INDEX_KEY)],
)
def test_follower_missing_label(missing: str, label: str) -> None:
    labels = {c.JOBSET_NAME_KEY: "js", c.REPLICATED_JOB_NAME_KEY: "rj", c.JOB_INDEX_KEY: "0"}
    del labels[label]
    pod = pod_obj(labels=labels, node_selector={TOPO: "pool-a"})
    assert _msg(pod, FakeLookup()) == f"pod missing label: {label}"


def test_follower_zero_or_two_leaders() -> None:
    pod = pod_obj(node_selector={TOPO: "pool-a"})
    expected = "expected 1 leader pod (js-rj-0-0), but got {}. this is an expected, transient error"
    assert _msg(pod, FakeLookup()) == expected.format(0)
    two = FakeLookup([leader(node_name="n1"), pod_obj("js-rj-0-0-other", index="0", node_name="n1")])
    assert _msg(pod, two) == expected.format(2)


def test_follower_owner_mismatch() -> None:
    pod = pod_obj(node_selector={TOPO: "pool-a"})
    lookup = FakeLookup([leader(node_name="n1", owner_uid="other")])
    assert _msg(pod, lookup) == f"follower pod owner UID ({JOB_UID}) != leader pod owner UID (other)"
    assert _msg(pod_obj(node_selector={TOPO: "a"}, owner_uid=None), lookup) == "follower pod has no owner reference"
    no_owner = FakeLookup([leader(node_name="n1", owner_uid=None)])
    assert _msg(pod, no_owner) == 'leader pod "js-rj-0-0-xyzzy" has no owner reference'


def test_follower_with_unscheduled_leader_rejected() -> None:
    pod = pod_obj(node_selector={TOPO: "pool-a"})
    assert _msg(pod, FakeLookup([leader()])) == (
        "leader pod not yet scheduled, not creating follower pod. this is an expected, transient error"
    )


def test_follower_with_scheduled_leader_allowed() -> None:
    pod = pod_obj(node_selector={TOPO: "pool-a"})
    assert _msg(pod, FakeLookup([leader(node_name="n1")], [POOL_NODE])) is None


def test_mutate_then_validate_admits_follower() -> None:
    lookup = FakeLookup([leader(node_name="n1")], [POOL_NODE])
    assert validate_pod(apply(pod_obj(), lookup), NS, lookup) is None
