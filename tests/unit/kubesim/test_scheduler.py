"""Unit tests of the simulated scheduler's placement (``kubesim.cluster.schedcore``) and selectors."""

from __future__ import annotations

from typing import Any

import pytest

from kubesim.cluster.nodes import NodeShape, make_node
from kubesim.cluster.quantity import parse_milli
from kubesim.cluster.schedcore import SchedulerState, pod_requests
from kubesim.cluster.selectors import (
    match_equality_selector,
    parse_equality_selector,
    tolerates,
)
from kubesim.util.selectors import match_label_selector

JSON = dict[str, Any]
NOW = 1_800_000_000.0


def cluster(n: int = 8, per_pool: int = 2, gpus: int = 8) -> SchedulerState:
    state = SchedulerState()
    for i in range(n):
        state.upsert_node(make_node(i, nodes_per_pool=per_pool, shape=NodeShape(gpus=gpus), now=NOW))
    return state


def pod(name: str, ns: str = "default", labels: dict[str, str] | None = None, **spec: Any) -> JSON:
    return {
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "resources": spec.pop("resources", {})}], **spec},
    }


def bind(state: SchedulerState, p: JSON) -> str:
    node, reason = state.place(p)
    assert node is not None, reason
    placed = dict(p, spec=dict(p["spec"], nodeName=node))
    state.add_pod((p["metadata"]["namespace"], p["metadata"]["name"]), placed)
    return node


def pool(state: SchedulerState, node: str) -> str:
    return state.nodes[node].labels["cloud.google.com/gke-nodepool"]


def test_quantities() -> None:
    assert parse_milli("100m") == 100
    assert parse_milli("1Ki") == 1024_000
    with pytest.raises(ValueError, match="invalid"):
        parse_milli("lots")


def test_requests_sum_containers_and_take_init_max() -> None:
    p = {
        "spec": {
            "containers": [
                {"resources": {"requests": {"cpu": "500m"}}},
                {"resources": {"limits": {"cpu": "1", "nvidia.com/gpu": "2"}}},
            ],
            "initContainers": [{"resources": {"requests": {"cpu": "4"}}}],
        }
    }
    requests = pod_requests(p)
    assert {k: v for k, v in requests.items() if not k.startswith("score-")} == {
        "cpu": 4000,
        "nvidia.com/gpu": 2000,
        "pods": 1000,
    }
    assert requests["score-memory"] == 200 * 2**20 * 1000  # the scheduler's non-zero default for scoring


def test_pods_without_requests_spread_over_least_allocated_nodes() -> None:
    state = cluster(n=4, per_pool=2)
    pool_1 = {"cloud.google.com/gke-nodepool": "pool-1"}
    assert {bind(state, pod(f"p{i}", nodeSelector=pool_1)) for i in range(2)} == {"sim-node-00002", "sim-node-00003"}


def test_gpu_requests_fill_nodes() -> None:
    state = cluster(n=2, gpus=8)
    gpu = {"limits": {"nvidia.com/gpu": "8"}}
    first = bind(state, pod("a", resources=gpu))
    second = bind(state, pod("b", resources=gpu))
    assert first != second
    node, reason = state.place(pod("c", resources=gpu))
    assert node is None
    assert reason.startswith("0/2 nodes are available: 2 Insufficient nvidia.com/gpu.")
    state.remove_pod(("default", "a"))
    assert state.place(pod("c", resources=gpu))[0] == first


def test_node_selector_and_required_node_affinity() -> None:
    state = cluster()
    assert pool(state, bind(state, pod("a", nodeSelector={"cloud.google.com/gke-nodepool": "pool-2"}))) == "pool-2"
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "cloud.google.com/gke-nodepool", "operator": "In", "values": ["pool-3"]}
                        ]
                    }
                ]
            }
        }
    }
    assert pool(state, bind(state, pod("b", affinity=affinity))) == "pool-3"
    node, reason = state.place(pod("c", nodeSelector={"cloud.google.com/gke-nodepool": "nope"}))
    assert node is None
    assert "8 node(s) didn't match Pod's node affinity/selector" in reason


def test_taints_and_tolerations() -> None:
    state = cluster(n=1)
    tainted = make_node(0, nodes_per_pool=1, shape=NodeShape(), now=NOW)
    tainted["spec"]["taints"] = [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]
    state.upsert_node(tainted)
    node, reason = state.place(pod("a"))
    assert node is None
    assert "1 node(s) had untolerated taint {dedicated: x}" in reason
    tol = [{"key": "dedicated", "operator": "Equal", "value": "x", "effect": "NoSchedule"}]
    assert state.place(pod("b", tolerations=tol))[0] == "sim-node-00000"
    assert state.place(pod("c", tolerations=[{"operator": "Exists"}]))[0] == "sim-node-00000"


def test_unschedulable_node() -> None:
    state = cluster(n=1)
    cordoned = make_node(0, nodes_per_pool=1, shape=NodeShape(), now=NOW)
    cordoned["spec"]["unschedulable"] = True
    state.upsert_node(cordoned)
    node, reason = state.place(pod("a"))
    assert node is None
    assert "1 node(s) were unschedulable" in reason


def exclusive(job_key: str) -> JSON:
    """The affinity JobSet puts on pods for exclusive placement per node pool."""
    topology = "cloud.google.com/gke-nodepool"
    return {
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchExpressions": [{"key": "job-key", "operator": "In", "values": [job_key]}]},
                    "topologyKey": topology,
                }
            ]
        },
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {
                        "matchExpressions": [
                            {"key": "job-key", "operator": "Exists"},
                            {"key": "job-key", "operator": "NotIn", "values": [job_key]},
                        ]
                    },
                    "topologyKey": topology,
                }
            ]
        },
    }


def test_exclusive_placement_puts_each_job_in_its_own_pool() -> None:
    state = cluster(n=8, per_pool=2)
    pools: dict[str, set[str]] = {}
    for job in ("a", "b", "c"):
        for i in range(2):
            node = bind(state, pod(f"{job}-{i}", labels={"job-key": job}, affinity=exclusive(job)))
            pools.setdefault(job, set()).add(pool(state, node))
    assert all(len(p) == 1 for p in pools.values())
    assert len(set().union(*pools.values())) == 3
    # job "d" fills its 2-node pool with 8-GPU pods; a third pod must stay in that pool, so it cannot fit
    gpu = {"limits": {"nvidia.com/gpu": "8"}}
    for i in range(2):
        bind(state, pod(f"d-{i}", labels={"job-key": "d"}, affinity=exclusive("d"), resources=gpu))
    chosen, reason = state.place(pod("d-2", labels={"job-key": "d"}, affinity=exclusive("d"), resources=gpu))
    assert chosen is None
    assert "2 Insufficient nvidia.com/gpu, 6 node(s) didn't match pod affinity rules" in reason


def test_existing_pods_anti_affinity_is_symmetric() -> None:
    state = cluster(n=2, per_pool=1)
    anti = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}
            ]
        }
    }
    loner = bind(state, pod("loner", affinity=anti))
    web = bind(state, pod("web", labels={"app": "web"}))
    assert web != loner


def test_affinity_namespace_selector() -> None:
    state = cluster(n=2, per_pool=1)
    state.ns_labels = {"team-a": {"team": "a"}, "default": {}}
    bind(state, pod("db", ns="team-a", labels={"app": "db"}))
    db_node = state.placed[("team-a", "db")].node
    term = {
        "labelSelector": {"matchLabels": {"app": "db"}},
        "topologyKey": "kubernetes.io/hostname",
        "namespaceSelector": {"matchLabels": {"team": "a"}},
    }
    near = pod("near", affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}})
    assert state.place(near)[0] == db_node
    own_ns_only = dict(term)
    del own_ns_only["namespaceSelector"]
    far = pod(
        "far", labels={}, affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [own_ns_only]}}
    )
    node, reason = state.place(far)
    assert node is None
    assert "didn't match pod affinity rules" in reason


def test_terminal_pod_frees_its_resources() -> None:
    state = cluster(n=1, gpus=8)
    gpu = {"limits": {"nvidia.com/gpu": "8"}}
    bind(state, pod("a", resources=gpu))
    assert state.place(pod("b", resources=gpu))[0] is None
    state.remove_pod(("default", "a"))
    assert state.place(pod("b", resources=gpu))[0] == "sim-node-00000"


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        (None, {"a": "1"}, False),
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": "1"}, False),
    ],
)
def test_label_selector(selector: JSON | None, labels: dict[str, str], expected: bool) -> None:
    assert match_label_selector(selector, labels) is expected


def test_equality_selector() -> None:
    reqs = parse_equality_selector("a=1, b==2,c!=3")
    assert match_equality_selector(reqs, {"a": "1", "b": "2", "c": "4"})
    assert not match_equality_selector(reqs, {"a": "1", "b": "2", "c": "3"})
    with pytest.raises(ValueError, match="not an equality"):
        parse_equality_selector("a in (1)")


def test_tolerations_match() -> None:
    taint = {"key": "k", "value": "v", "effect": "NoExecute"}
    assert tolerates([{"key": "k", "operator": "Exists"}], taint)
    assert not tolerates([{"key": "k", "value": "w"}], taint)
    assert not tolerates([{"key": "k", "operator": "Exists", "effect": "NoSchedule"}], taint)


def test_topology_spread_do_not_schedule_balances_zones() -> None:
    state = cluster(n=6, per_pool=1)  # pools 0..5 over zones a, b, c (two nodes each)
    constraint = {
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "spread"}},
    }
    zones = []
    for i in range(6):
        node = bind(state, pod(f"s{i}", labels={"app": "spread"}, topologySpreadConstraints=[constraint]))
        zones.append(state.nodes[node].labels["topology.kubernetes.io/zone"])
    assert sorted(zones) == ["sim-zone-a", "sim-zone-a", "sim-zone-b", "sim-zone-b", "sim-zone-c", "sim-zone-c"]
    pinned = dict(constraint)
    chosen, _ = state.place(
        pod(
            "s6",
            labels={"app": "spread"},
            topologySpreadConstraints=[pinned],
            nodeSelector={"topology.kubernetes.io/zone": "sim-zone-a"},
        )
    )
    assert chosen is not None  # only zone a is eligible, so the skew is measured within it


def test_topology_spread_rejects_a_skewed_domain() -> None:
    state = cluster(n=6, per_pool=1, gpus=8)
    zone_b = [n for n, info in state.nodes.items() if info.labels["topology.kubernetes.io/zone"] == "sim-zone-b"]
    zone_a = [n for n, info in state.nodes.items() if info.labels["topology.kubernetes.io/zone"] == "sim-zone-a"]
    in_ab = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {
                                "key": "topology.kubernetes.io/zone",
                                "operator": "In",
                                "values": ["sim-zone-a", "sim-zone-b"],
                            }
                        ]
                    }
                ]
            }
        }
    }
    bind(state, pod("first", labels={"app": "s"}, nodeSelector={"kubernetes.io/hostname": zone_a[0]}))
    for i, node in enumerate(zone_b):
        bind(
            state,
            pod(
                f"hog{i}", nodeSelector={"kubernetes.io/hostname": node}, resources={"limits": {"nvidia.com/gpu": "8"}}
            ),
        )
    constraint = {
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "labelSelector": {"matchLabels": {"app": "s"}},
    }
    refused, reason = state.place(
        pod("second", labels={"app": "s"}, affinity=in_ab, topologySpreadConstraints=[constraint],
            resources={"limits": {"nvidia.com/gpu": "1"}})
    )  # fmt: skip
    assert refused is None
    assert "2 node(s) didn't match pod topology spread constraints" in reason
    assert "2 Insufficient nvidia.com/gpu" in reason
