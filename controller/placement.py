"""Exclusive-placement repair: delete follower pods whose node selector disagrees with their leader's topology.

Role (behaviour.md §5.3, decision D1): with ``alpha.jobset.sigs.k8s.io/exclusive-topology: T`` every pod of a Job must
run in the topology domain (value of node label T) of the Job's leader pod (completion index ``"0"``). The pod
webhooks make that true at admission; this controller repairs the races they cannot see (a leader rescheduled
after its followers were admitted, a stale cache). For a scheduled, non-deleting leader:

1. the leader needs the ``job-key`` label and a controller owner (else: error, retried with backoff);
2. its Job's pods come from the job-key index, keeping only pods with the leader's controller owner UID;
3. the leader's topology is ``Node(leader.nodeName).labels[T]`` — a missing Node gives ``""``, a Node without
   label T is an error;
4. a follower is misplaced when ``nodeSelector[T]`` is missing or differs; if the leader's topology is ``""``
   that is an error (retry later, delete nothing);
5. when any follower is misplaced, every follower (never the leader; followers already being deleted are
   neither judged nor touched again — our addition, it keeps follower events from repeating deletes) first
   gets the pod condition ``DisruptionTarget=True`` (reason ``ExclusivePlacementViolation``, message ``Pod
   violated JobSet exclusive placement policy``) through ``pods/status`` unless it already has it — so a
   podFailurePolicy can ignore the deletion — and is then deleted with background propagation, at most 50 at
   a time. A failed status write skips that pod's deletion. No event is emitted.

Triggers: the reference reconciles only leader events. We also map an exclusive-placement *follower* event to
its leader (through the pod-name index), so a misplaced follower created after its leader settled is repaired
at once instead of at the leader's next change.

Cache contract (wired by ``controller.app``): a pod store with the indexes :data:`POD_JOB_KEY_INDEX`
(:func:`pod_job_key_index`) and :data:`POD_NAME_INDEX` (:func:`pod_name_index`) — the latter is also what
the pod webhooks look leaders up by — and a node store keyed by node name. Decisions are pure
(:func:`decide_repair`); only :class:`ApiPodWriter` writes.

Invariants: the leader is never touched; NotFound on delete is success; one reconcile per leader key at a
time (the work queue guarantees it); errors requeue with the queue's rate limiter, success forgets.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import structlog

from api.records import Node, Pod, controller_uid
from api.timefmt import format_time
from cache.client import STRATEGIC_MERGE_PATCH, ApiClient, resource_path
from cache.errors import ApiError, NotFound
from cache.queue import QueueShutDown, WorkQueue
from cache.store import Indexer, Store
from controller.webhooks.pod_webhooks import strip_pod_suffix

log = structlog.get_logger("pyjobset.placement")

POD_JOB_KEY_INDEX: Final = "podJobKey"
POD_NAME_INDEX: Final = "podName"
MAX_PARALLELISM: Final = 50
DISRUPTION_TARGET: Final = "DisruptionTarget"
VIOLATION_REASON: Final = "ExclusivePlacementViolation"
VIOLATION_MESSAGE: Final = "Pod violated JobSet exclusive placement policy"


# --------------------------------------------------------------------------------------------- indexes


def pod_job_key_index(pod: Pod) -> list[str]:
    """``<namespace>/<job-key>`` of exclusive-placement pods (the reference's ``podJobKey``, namespaced)."""
    if pod.metadata.annotations.exclusive_topology is None:
        return []
    key = pod.metadata.labels.job_key
    return [f"{pod.metadata.namespace}/{key}"] if key is not None else []


def pod_name_index(pod: Pod) -> list[str]:
    """``<namespace>/<name minus random suffix>`` of exclusive-placement pods (the reference's ``podName``)."""
    if pod.metadata.annotations.exclusive_topology is None:
        return []
    base = strip_pod_suffix(pod.metadata.name)
    return [f"{pod.metadata.namespace}/{base}"] if base is not None else []


POD_INDEXERS: Final[dict[str, Indexer[Pod]]] = {POD_NAME_INDEX: pod_name_index, POD_JOB_KEY_INDEX: pod_job_key_index}
"""The pod-store indexes exclusive placement needs (webhook leader lookup and repair), for ``Store(key, ...)``."""


def is_leader(pod: Pod) -> bool:
    return pod.metadata.annotations.completion_index == "0"


def wants_repair(pod: Pod) -> bool:
    """The reference's event filter: a scheduled, non-deleting exclusive-placement leader."""
    return (
        is_leader(pod)
        and bool(pod.spec.node_name)
        and pod.metadata.annotations.exclusive_topology is not None
        and pod.metadata.deletion_timestamp is None
    )


# --------------------------------------------------------------------------------------------- decision


class PlacementError(Exception):
    """The placement cannot be judged now; the leader is reconciled again with backoff."""


@dataclass(frozen=True)
class RepairDecision:
    """``followers`` to mark and delete (empty = placement valid); ``foreign``: same job-key, other owner."""

    followers: tuple[Pod, ...] = ()
    foreign: tuple[str, ...] = ()


def decide_repair(leader: Pod, job_pods: Sequence[Pod], leader_node: Node | None) -> RepairDecision:
    """Steps 1-5 of the module docstring for one leader; raises :class:`PlacementError`."""
    name = leader.metadata.name
    if leader.metadata.labels.job_key is None:
        raise PlacementError(f'job key label not found on leader pod: "{name}"')
    owner = controller_uid(leader.metadata)
    if owner is None:
        raise PlacementError(f'leader pod "{name}" has no owner reference')
    topology_key = leader.metadata.annotations.exclusive_topology or ""
    mine = [p for p in job_pods if controller_uid(p.metadata) == owner]
    foreign = tuple(p.metadata.name for p in job_pods if controller_uid(p.metadata) != owner)
    leader_topology = ""
    if leader_node is not None:
        value = leader_node.metadata.labels.get(topology_key)
        if value is None:
            raise PlacementError(f"node does not have topology label: {topology_key}")
        leader_topology = value
    # Followers already being deleted are on their way out: judging them again would only repeat deletes.
    followers = [p for p in mine if not is_leader(p) and p.metadata.deletion_timestamp is None]
    for pod in followers:
        selected = (pod.spec.node_selector or {}).get(topology_key)
        if selected is not None and selected == leader_topology:
            continue
        if leader_topology == "":
            raise PlacementError(
                f"leader pod {name} node {leader.spec.node_name} not found; cannot judge follower {pod.metadata.name}"
            )
        return RepairDecision(tuple(followers), foreign)
    return RepairDecision((), foreign)


def has_disruption_target(pod: Pod) -> bool:
    return any(cond.type == DISRUPTION_TARGET and cond.status == "True" for cond in pod.status.conditions)


# --------------------------------------------------------------------------------------------- writes


class PodWriter(Protocol):
    async def mark_disrupted(self, pod: Pod) -> None: ...

    async def delete(self, pod: Pod) -> None: ...


@dataclass
class ApiPodWriter:
    """Writes through the API: a strategic-merge patch of ``pods/status`` (D1), then a background delete."""

    client: ApiClient
    now: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))

    async def mark_disrupted(self, pod: Pod) -> None:
        condition = {
            "type": DISRUPTION_TARGET,
            "status": "True",
            "reason": VIOLATION_REASON,
            "message": VIOLATION_MESSAGE,
            "lastTransitionTime": format_time(self.now()),
        }
        path = resource_path("", "v1", "pods", pod.metadata.namespace, pod.metadata.name, "status")
        # The UID precondition keeps a same-named replacement pod from being marked.
        body = {"metadata": {"uid": pod.metadata.uid}, "status": {"conditions": [condition]}}
        await self.client.patch(path, body, patch_type=STRATEGIC_MERGE_PATCH)

    async def delete(self, pod: Pod) -> None:
        path = resource_path("", "v1", "pods", pod.metadata.namespace, pod.metadata.name)
        with contextlib.suppress(NotFound):
            await self.client.delete(path, propagation="Background")


# --------------------------------------------------------------------------------------------- controller


@dataclass
class PlacementRepair:
    """The pod placement-repair controller (see the module docstring)."""

    pods: Store[Pod]
    nodes: Store[Node]
    client: ApiClient | None = None
    writer: PodWriter | None = None
    queue: WorkQueue[str] = field(default_factory=lambda: WorkQueue(name="pod"))
    repairs: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.writer is None:
            if self.client is None:
                raise ValueError("PlacementRepair needs a client or a writer")
            self.writer = ApiPodWriter(self.client)

    # ------------------------------------------------------------------------------------ handlers

    def on_pod(self, old: Pod | None, new: Pod | None) -> None:
        """Informer handler: enqueue the leader of any exclusive-placement pod that changed."""
        pod = new if new is not None else old
        if pod is None or pod.metadata.annotations.exclusive_topology is None:
            return
        if is_leader(pod):
            if new is not None and wants_repair(new):
                self.queue.add(new.key)
            return
        labels = pod.metadata.labels
        if labels.jobset_name is None or labels.replicated_job_name is None or labels.job_index is None:
            return
        base = f"{labels.jobset_name}-{labels.replicated_job_name}-{labels.job_index}-0"
        for leader in self.pods.by_index(POD_NAME_INDEX, f"{pod.metadata.namespace}/{base}"):
            if wants_repair(leader):
                self.queue.add(leader.key)

    # ------------------------------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> None:
        leader = self.pods.get(key)
        if leader is None or not wants_repair(leader):
            return
        job_key = leader.metadata.labels.job_key or ""
        job_pods = self.pods.by_index(POD_JOB_KEY_INDEX, f"{leader.metadata.namespace}/{job_key}")
        decision = decide_repair(leader, job_pods, self.nodes.get(leader.spec.node_name))
        if decision.foreign:
            log.info("placement_foreign_pods_ignored", leader=key, pods=list(decision.foreign))
        if decision.followers:
            log.info("placement_violation", leader=key, followers=len(decision.followers))
            await self.repair(decision.followers)
            self.repairs += 1

    async def repair(self, followers: Sequence[Pod]) -> None:
        """Mark then delete each follower, at most ``MAX_PARALLELISM`` at a time; raises the joined errors."""
        writer = self.writer
        assert writer is not None
        limit = asyncio.Semaphore(MAX_PARALLELISM)
        errors: list[str] = []

        async def one(pod: Pod) -> None:
            async with limit:
                try:
                    if not has_disruption_target(pod):
                        await writer.mark_disrupted(pod)
                    await writer.delete(pod)
                except NotFound:
                    pass
                except ApiError as err:
                    errors.append(f"pod {pod.metadata.name}: {err}")

        await asyncio.gather(*(one(p) for p in followers))
        if errors:
            raise PlacementError("; ".join(errors))

    # ------------------------------------------------------------------------------------ worker

    async def process_one(self) -> bool:
        try:
            key = await self.queue.get()
        except QueueShutDown:
            return False
        try:
            await self.reconcile(key)
        except (PlacementError, ApiError) as err:
            log.info("placement_reconcile_failed", pod=key, error=str(err))
            self.queue.add_rate_limited(key)
        except Exception:
            log.exception("placement_reconcile_crashed", pod=key)
            self.queue.add_rate_limited(key)
        else:
            self.queue.forget(key)
        finally:
            self.queue.done(key)
        return True

    async def run(self) -> None:
        """Work until the queue is shut down (``queue.shut_down()``)."""
        while await self.process_one():
            pass
