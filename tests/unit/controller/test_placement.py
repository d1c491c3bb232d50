"""Exclusive-placement repair decisions and writes (behaviour.md §5.3, conformance 129), case by case."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from api import constants as c
from api.records import Node, Pod
from cache.errors import NotFound, ServerError
from cache.queue import WorkQueue
from cache.store import Store
from controller.placement import (
    POD_JOB_KEY_INDEX,
    POD_NAME_INDEX,
    PlacementError,
    PlacementRepair,
    decide_repair,
    pod_job_key_index,
    pod_name_index,
    wants_repair,
)

JSON = dict[str, Any]
TOPO = "cloud.google.com/gke-nodepool"
OWNER = "job-uid"


def pod(
    name: str,
    *,
    index: str = "1",
    node_selector: dict[str, str] | None = None,
    node_name: str = "",
    owner: str | None = OWNER,
    job_key: str | None = "key",
    exclusive: bool = True,
    deleting: bool = False,
    conditions: list[JSON] | None = None,
) -> Pod:
    ann: JSON = {c.JOB_COMPLETION_INDEX_ANNOTATION: index, c.JOBSET_NAME_KEY: "js"}
    if exclusive:
        ann[c.EXCLUSIVE_TOPOLOGY_KEY] = TOPO
    labels: JSON = {c.JOBSET_NAME_KEY: "js", c.REPLICATED_JOB_NAME_KEY: "rj", c.JOB_INDEX_KEY: "0"}
    if job_key is not None:
        labels[c.JOB_KEY] = job_key
    meta: JSON = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": labels, "annotations": ann}
    if owner is not None:
        meta["ownerReferences"] = [
            {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": owner, "controller": True}
        ]
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    spec: JSON = {"nodeName": node_name}
    if node_selector is not None:
        spec["nodeSelector"] = node_selector
    return msgspec.convert(
        {"metadata": meta, "spec": spec, "status": {"conditions": conditions or []}},
        Pod,
    )


def node(labels: dict[str, str]) -> Node:
    return msgspec.convert({"metadata": {"name": "n1", "labels": labels}}, Node)


LEADER = pod("js-rj-0-0-aaaaa", index="0", node_name="n1")
POOL_A = node({TOPO: "a"})


def names(pods: tuple[Pod, ...]) -> list[str]:
    return sorted(p.metadata.name for p in pods)


# --------------------------------------------------------------------------------------------- indexes


async def test_indexes_cover_only_exclusive_pods() -> None:
    p = pod("js-rj-0-1-bbbbb")
    assert pod_job_key_index(p) == ["ns/key"]
    assert pod_name_index(p) == ["ns/js-rj-0-1"]
    plain = pod("js-rj-0-1-bbbbb", exclusive=False)
    assert pod_job_key_index(plain) == []
    assert pod_name_index(plain) == []
    assert pod_name_index(pod("a-b-c-d")) == []
    assert pod_job_key_index(pod("js-rj-0-1-bbbbb", job_key=None)) == []


async def test_event_filter() -> None:
    assert wants_repair(LEADER)
    assert not wants_repair(pod("js-rj-0-0-a", index="0"))  # unscheduled
    assert not wants_repair(pod("js-rj-0-0-a", index="0", node_name="n1", deleting=True))
    assert not wants_repair(pod("js-rj-0-0-a", index="0", node_name="n1", exclusive=False))
    assert not wants_repair(pod("js-rj-0-1-a", node_name="n1"))  # follower


# --------------------------------------------------------------------------------------------- decisions


async def test_valid_placement_deletes_nothing() -> None:
    followers = [pod(f"js-rj-0-{i}-x", node_selector={TOPO: "a"}) for i in (1, 2)]
    assert decide_repair(LEADER, [LEADER, *followers], POOL_A).followers == ()


@pytest.mark.parametrize(
    "selector",
    [None, {}, {"other": "a"}, {TOPO: "b"}],
    ids=["nil", "empty", "missing-key", "mismatch"],
)
async def test_misplaced_follower_marks_every_follower(selector: dict[str, str] | None) -> None:
    good = pod("js-rj-0-1-good", node_selector={TOPO: "a"})
    bad = pod("js-rj-0-2-bad", node_selector=selector)
    decision = decide_repair(LEADER, [LEADER, good, bad], POOL_A)
    assert names(decision.followers) == ["js-rj-0-1-good", "js-rj-0-2-bad"]  # never the leader


async def test_node_without_topology_label_is_an_error() -> None:
    with pytest.raises(PlacementError, match=f"node does not have topology label: {TOPO}"):
        decide_repair(LEADER, [LEADER], node({"zone": "z"}))


async def test_missing_leader_node_errors_instead_of_deleting() -> None:
    bad = pod("js-rj-0-1-bad", node_selector={TOPO: "b"})
    with pytest.raises(PlacementError, match="not found"):
        decide_repair(LEADER, [LEADER, bad], None)
    assert decide_repair(LEADER, [LEADER], None).followers == ()  # nothing to judge: fine


async def test_leader_without_job_key_or_owner_is_an_error() -> None:
    with pytest.raises(PlacementError, match='job key label not found on leader pod: "js-rj-0-0-aaaaa"'):
        decide_repair(pod("js-rj-0-0-aaaaa", index="0", node_name="n1", job_key=None), [], POOL_A)
    with pytest.raises(PlacementError, match="has no owner reference"):
        decide_repair(pod("js-rj-0-0-aaaaa", index="0", node_name="n1", owner=None), [], POOL_A)


async def test_pods_of_another_owner_are_filtered_out() -> None:
    stranger = pod("js-rj-0-1-old", node_selector={TOPO: "b"}, owner="previous-job")
    decision = decide_repair(LEADER, [LEADER, stranger], POOL_A)
    assert decision.followers == ()
    assert decision.foreign == ("js-rj-0-1-old",)


# --------------------------------------------------------------------------------------------- writes


class FakeWriter:
    def __init__(self, fail_mark: set[str] | None = None, fail_delete: set[str] | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail_mark = fail_mark or set()
        self.fail_delete = fail_delete or set()

    async def mark_disrupted(self, p: Pod) -> None:
        self.calls.append(("mark", p.metadata.name))
        if p.metadata.name in self.fail_mark:
            raise ServerError("boom", status=500)

    async def delete(self, p: Pod) -> None:
        self.calls.append(("delete", p.metadata.name))
        if p.metadata.name in self.fail_delete:
            raise ServerError("nope", status=500)


def controller(pods: list[Pod], writer: FakeWriter) -> PlacementRepair:
    store: Store[Pod] = Store(lambda p: p.key, {POD_JOB_KEY_INDEX: pod_job_key_index, POD_NAME_INDEX: pod_name_index})
    for p in pods:
        store.upsert(p)
    nodes: Store[Node] = Store(lambda n: n.key)
    nodes.upsert(POOL_A)
    return PlacementRepair(store, nodes, writer=writer, queue=WorkQueue(name="test"))


async def test_reconcile_marks_then_deletes_followers() -> None:
    already = pod(
        "js-rj-0-2-done",
        node_selector={TOPO: "b"},
        conditions=[{"type": "DisruptionTarget", "status": "True"}],
    )
    writer = FakeWriter()
    ctl = controller([LEADER, pod("js-rj-0-1-bad", node_selector={TOPO: "b"}), already], writer)
    await ctl.reconcile(LEADER.key)
    assert sorted(writer.calls) == [
        ("delete", "js-rj-0-1-bad"),
        ("delete", "js-rj-0-2-done"),
        ("mark", "js-rj-0-1-bad"),
    ]
    assert writer.calls.index(("mark", "js-rj-0-1-bad")) < writer.calls.index(("delete", "js-rj-0-1-bad"))


async def test_status_failure_skips_delete_and_surfaces() -> None:
    writer = FakeWriter(fail_mark={"js-rj-0-1-bad"})
    ctl = controller([LEADER, pod("js-rj-0-1-bad", node_selector={TOPO: "b"})], writer)
    with pytest.raises(PlacementError, match="boom"):
        await ctl.reconcile(LEADER.key)
    assert writer.calls == [("mark", "js-rj-0-1-bad")]


async def test_delete_failure_surfaces_and_not_found_is_success() -> None:
    writer = FakeWriter(fail_delete={"js-rj-0-1-bad"})
    ctl = controller([LEADER, pod("js-rj-0-1-bad", node_selector={TOPO: "b"})], writer)
    with pytest.raises(PlacementError, match="nope"):
        await ctl.reconcile(LEADER.key)

    class GoneWriter(FakeWriter):
        async def delete(self, p: Pod) -> None:
            raise NotFound("gone")

    ok = controller([LEADER, pod("js-rj-0-1-bad", node_selector={TOPO: "b"})], GoneWriter())
    await ok.reconcile(LEADER.key)


async def test_follower_event_enqueues_its_leader_and_errors_requeue() -> None:
    writer = FakeWriter(fail_mark={"js-rj-0-1-bad"})
    bad = pod("js-rj-0-1-bad", node_selector={TOPO: "b"})
    ctl = controller([LEADER, bad], writer)
    ctl.on_pod(None, bad)
    assert len(ctl.queue) == 1
    assert await ctl.process_one()
    assert ctl.queue.num_requeues(LEADER.key) == 1  # rate-limited retry after the failed status write
    ctl.queue.shut_down()
    assert not await ctl.process_one()


async def test_non_exclusive_and_unscheduled_events_are_ignored() -> None:
    ctl = controller([], FakeWriter())
    ctl.on_pod(None, pod("js-rj-0-0-a", index="0"))
    ctl.on_pod(None, pod("js-rj-0-1-a", exclusive=False))
    ctl.on_pod(None, pod("js-rj-0-1-a"))  # follower whose leader is not cached
    assert len(ctl.queue) == 0


async def test_followers_already_deleting_are_not_judged_again() -> None:
    going = pod("js-rj-0-1-going", node_selector={TOPO: "b"}, deleting=True)
    assert decide_repair(LEADER, [LEADER, going], POOL_A).followers == ()
    bad = pod("js-rj-0-2-bad", node_selector={TOPO: "b"})
    assert names(decide_repair(LEADER, [LEADER, going, bad], POOL_A).followers) == ["js-rj-0-2-bad"]
