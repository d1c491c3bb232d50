"""Synthetic cluster objects and a scripted JobSet life, fed straight into the metrics hooks.

Role: drive ``MetricsHub`` without an API server, for the unit tests, the Prometheus query check (until the
controller runs end to end on kubesim there) and benchmark P7 (performance.md). Builders return the slim records the
informers decode (``api.records``, ``api.jobset_types``); ``ScriptedLife`` plays the issue's acceptance
story on a fake clock: a JobSet starts, one pod fails, the controller restarts it once, it runs and completes.

Invariants: nothing here touches the network or the real clock; every builder returns a fresh record; the
script feeds events in the order informers and the acting layer would (status write before ``plan_applied``,
Jobs before their pods).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from api import constants as c
from api.jobset_types import Condition, JobSet, jobset_from_obj
from api.plan import Outcome, Plan
from api.records import Job, Node, Pod
from cache.store import Store
from metrics.hub import MetricsHub
from metrics.readers import parse_time
from metrics.seam import PlanObserver, WatchedInformers

T0 = 1_800_000_000.0
"""Epoch seconds of the scripted clock's start (2027-01-15T08:00:00Z)."""


def rfc3339(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeTime:
    """A settable epoch clock: pass ``clock`` wherever metrics take one."""

    now: float = T0

    def clock(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


# --------------------------------------------------------------------------------------------- builders


def jobset(
    name: str,
    namespace: str = "default",
    *,
    uid: str | None = None,
    rjobs: Sequence[tuple[str, int, int]] = (("workers", 2, 2),),
    created: float = T0,
    suspend: bool = False,
    restarts: int = 0,
    conditions: Sequence[tuple[str, str]] = (),
) -> JobSet:
    """A JobSet record; ``rjobs`` are ``(name, replicas, parallelism)``, ``conditions`` ``(type, reason)`` True."""
    return jobset_from_obj(
        {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": uid or f"uid-{namespace}-{name}",
                "creationTimestamp": rfc3339(created),
            },
            "spec": {
                "suspend": suspend,
                "replicatedJobs": [
                    {
                        "name": rj,
                        "replicas": replicas,
                        "template": {"spec": {"parallelism": par, "completions": par, "template": {}}},
                    }
                    for rj, replicas, par in rjobs
                ],
            },
            "status": {
                "restarts": restarts,
                "conditions": [
                    {"type": t, "status": "True", "reason": r, "message": "", "lastTransitionTime": rfc3339(created)}
                    for t, r in conditions
                ],
            },
        }
    )


def _child_meta(js: JobSet, rjob: str, attempt: int, *, name: str, uid: str, deleting: bool) -> dict[str, Any]:
    """Metadata of a Job or pod of ``js``: in its namespace, labelled as the controller labels its children."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": js.metadata.namespace,
        "uid": uid,
        "labels": {
            c.JOBSET_NAME_KEY: js.metadata.name,
            c.JOBSET_UID_KEY: js.metadata.uid,
            c.REPLICATED_JOB_NAME_KEY: rjob,
            c.RESTART_ATTEMPT_KEY: str(attempt),
        },
    }
    if deleting:
        meta["deletionTimestamp"] = rfc3339(T0)
    return meta


def job(js: JobSet, rjob: str, index: int, *, attempt: int = 0, deleting: bool = False) -> Job:
    name, uid = f"{js.metadata.name}-{rjob}-{index}", f"job-{js.metadata.uid}-{rjob}-{index}-{attempt}"
    meta = _child_meta(js, rjob, attempt, name=name, uid=uid, deleting=deleting)
    return msgspec.convert({"metadata": meta}, Job)


def pod(
    js: JobSet,
    rjob: str,
    index: int,
    replica: int,
    *,
    attempt: int = 0,
    node: str = "",
    phase: str = "Pending",
    ready: bool = False,
    gpus: int = 0,
    deleting: bool = False,
) -> Pod:
    name = f"{js.metadata.name}-{rjob}-{index}-{replica}-a{attempt}"
    uid = f"pod-{js.metadata.uid}-{rjob}-{index}-{replica}-{attempt}"
    meta = _child_meta(js, rjob, attempt, name=name, uid=uid, deleting=deleting)
    resources = {"requests": {"nvidia.com/gpu": str(gpus)}, "limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    return msgspec.convert(
        {
            "metadata": meta,
            "spec": {"nodeName": node, "containers": [{"resources": resources}]},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
        },
        Pod,
    )


def node(name: str, pool: str, *, gpus: int = 8, ready: bool = True, unschedulable: bool = False) -> Node:
    return msgspec.convert(
        {
            "metadata": {"name": name, "labels": {"cloud.google.com/gke-nodepool": pool}},
            "spec": {"unschedulable": unschedulable},
            "status": {
                "allocatable": {"nvidia.com/gpu": str(gpus), "cpu": "64"},
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            },
        },
        Node,
    )


def with_status(js: JobSet, *, restarts: int | None = None, conditions: Sequence[tuple[str, str]] = ()) -> JobSet:
    """A copy of ``js`` with a new ``status.restarts`` and/or extra True conditions (``(type, reason)``)."""
    status = js.status
    conds = status.conditions + tuple(
        Condition(type=t, status="True", reason=r, message="", last_transition_time=rfc3339(T0)) for t, r in conditions
    )
    new_status = msgspec.structs.replace(
        status, restarts=status.restarts if restarts is None else restarts, conditions=conds
    )
    return msgspec.structs.replace(js, status=new_status)


# --------------------------------------------------------------------------------------------- stores


def _ns_name(obj: Any) -> str:
    return f"{obj.metadata.namespace}/{obj.metadata.name}"


@dataclass
class FakeInformer:
    """Enough of ``cache.informer.Informer`` for ``attach`` and the collectors: a store, handlers, counters."""

    name: str
    store: Store[Any]
    watch_restarts: int = 0
    relists: int = 1
    watch_events: int = 0
    watch_bytes: int = 0
    synced: bool = True
    handlers: list[Any] = field(default_factory=list)
    decode_errors: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, str] = field(default_factory=dict)
    idle_seconds: float = 0.0
    stall_after: float = 300.0

    def has_synced(self) -> bool:
        return self.synced

    def seconds_since_progress(self) -> float:
        return self.idle_seconds

    def stalled(self) -> bool:
        return self.idle_seconds > self.stall_after

    def add_handler(self, handler: Any) -> None:
        self.handlers.append(handler)

    def upsert(self, obj: Any) -> None:
        old = self.store.upsert(obj)
        for h in self.handlers:
            h(old, obj)

    def delete(self, obj: Any) -> None:
        old = self.store.delete(self.store.key_of(obj))
        for h in self.handlers:
            h(old if old is not None else obj, None)


def fake_informers() -> dict[str, FakeInformer]:
    """``jobsets``, ``jobs``, ``pods`` and ``nodes`` informers over fresh stores."""
    return {
        "jobsets": FakeInformer("jobsets", Store(_ns_name)),
        "jobs": FakeInformer("jobs", Store(_ns_name)),
        "pods": FakeInformer("pods", Store(_ns_name)),
        "nodes": FakeInformer("nodes", Store(lambda n: n.metadata.name)),
    }


def watched(infs: dict[str, FakeInformer]) -> WatchedInformers:
    """The typed handles ``MetricsHub.watch`` takes, over ``fake_informers()``; all are exported, in dict order."""
    return WatchedInformers(
        jobsets=infs["jobsets"],
        jobs=infs["jobs"],
        pods=infs.get("pods"),
        nodes=infs.get("nodes"),
        exported=list(infs.values()),
    )


# --------------------------------------------------------------------------------------------- the script


@dataclass
class ScriptedLife:
    """The acceptance story for one JobSet, step by step (each step is a generator stage, see ``steps``).

    Layout: ``rjobs`` replicated Jobs on nodes of ``pool`` with ``gpus_per_pod`` GPUs each; every pod gets its
    own node ``<pool>-<n>``. Timeline (seconds after creation): Jobs created at +2, pods scheduled at +5,
    running at +9, ready at +10; pod 0 fails at +100; restart decided at +101 (rule ``nodeFailure``,
    action RestartJobSet); new attempt's Jobs at +103, scheduled +106, running +110, ready +111; completed at
    +500.
    """

    informers: dict[str, FakeInformer]
    plan_observer: PlanObserver
    time: FakeTime
    name: str = "train"
    namespace: str = "team-a"
    pool: str = "a3-pool"
    rjobs: tuple[tuple[str, int, int], ...] = (("workers", 2, 2),)
    gpus_per_pod: int = 8
    js: JobSet = field(init=False)

    def __post_init__(self) -> None:
        self.js = jobset(self.name, self.namespace, rjobs=self.rjobs, created=self.time.now)

    def _pods(self, attempt: int) -> Iterator[tuple[str, int, int, str]]:
        n = 0
        for rj, replicas, par in self.rjobs:
            for i in range(replicas):
                for r in range(par):
                    yield rj, i, r, f"{self.pool}-{n}"
                    n += 1

    def nodes(self) -> None:
        for _, _, _, node_name in self._pods(0):
            self.informers["nodes"].upsert(node(node_name, self.pool, gpus=self.gpus_per_pod))

    def _at(self, t: float) -> None:
        self.time.now = self.js_created + t

    @property
    def js_created(self) -> float:
        created = parse_time(self.js.metadata.creation_timestamp)
        assert created is not None
        return created

    def _start_attempt(self, attempt: int, t: float) -> None:
        jobs, pods = self.informers["jobs"], self.informers["pods"]
        self._at(t + 2)
        for rj, replicas, _ in self.rjobs:
            for i in range(replicas):
                jobs.upsert(job(self.js, rj, i, attempt=attempt))
        for phase, dt_, ready in (("Pending", 5, False), ("Running", 9, False), ("Running", 10, True)):
            self._at(t + dt_)
            for rj, i, r, node_name in self._pods(attempt):
                pods.upsert(
                    pod(
                        self.js, rj, i, r, attempt=attempt, node=node_name, phase=phase, ready=ready,
                        gpus=self.gpus_per_pod,
                    )
                )  # fmt: skip

    def steps(self) -> Iterator[str]:
        """Run the story; yields a label after each stage so callers can check or scrape in between."""
        self.nodes()
        self._at(0)
        self.informers["jobsets"].upsert(self.js)
        yield "created"
        self._start_attempt(0, 0)
        yield "running"
        jobs, pods = self.informers["jobs"], self.informers["pods"]
        self._at(100)
        rj, i, r, node_name = next(self._pods(0))
        pods.upsert(pod(self.js, rj, i, r, attempt=0, node=node_name, phase="Failed", gpus=self.gpus_per_pod))
        yield "failed"
        self._at(101)
        restarted = with_status(self.js, restarts=1)
        self.informers["jobsets"].store.upsert(restarted)  # write-through of our own status write
        self.plan_observer.plan_applied(
            self.js,
            Plan(
                outcome=Outcome("restarted", "FailurePolicy_nodeFailure", action="RestartJobSet", rule="nodeFailure"),
                status=restarted.status,
            ),
        )
        self.js = restarted
        self.informers["jobsets"].upsert(restarted)  # the watch event of the status write
        for rj2, replicas, _ in self.rjobs:
            for i2 in range(replicas):
                jobs.delete(job(self.js, rj2, i2, attempt=0))
        for rj2, i2, r2, _ in self._pods(0):
            pods.delete(pod(self.js, rj2, i2, r2, attempt=0))
        yield "restarting"
        self._start_attempt(1, 101)
        yield "recovered"
        self._at(500)
        done = with_status(self.js, conditions=((c.COND_COMPLETED, "AllJobsCompleted"),))
        self.informers["jobsets"].store.upsert(done)
        completed = Plan(outcome=Outcome("completed", "AllJobsCompleted"), status=done.status)
        self.plan_observer.plan_applied(self.js, completed)
        self.js = done
        self.informers["jobsets"].upsert(done)
        for rj2, i2, r2, node_name in self._pods(1):
            pods.upsert(pod(self.js, rj2, i2, r2, attempt=1, node=node_name, phase="Succeeded", gpus=self.gpus_per_pod))
        yield "completed"

    def run(self) -> None:
        for _ in self.steps():
            pass


# --------------------------------------------------------------------------------------------- a whole fleet


LEASE = "6d4f6a47.jobset.x-k8s.io"


async def populate(hub: MetricsHub, time: FakeTime) -> dict[str, FakeInformer]:
    """Give every exported family data: the scripted life (restart, completion), a JobSet that fails, one stuck
    starting on bound GPUs, reconciles, a real work queue's traffic, API requests, the lease and informers.

    ``hub`` is built with ``clock=time.clock``.
    """
    from cache.clock import FakeClock
    from cache.queue import WorkQueue

    infs = fake_informers()
    tracker = hub.tracker
    hub.watch(watched(infs))
    ScriptedLife(infs, tracker, time).run()
    infs["pods"].decode_errors["wrong_type"] = 1  # one pod version the informer could not decode and skipped
    failing = jobset("doomed", "team-b", rjobs=(("w", 1, 1),), created=time.now)
    infs["jobsets"].upsert(failing)
    failed = with_status(failing, conditions=((c.COND_FAILED, "ReachedMaxRestarts"),))
    tracker.plan_applied(failing, Plan(outcome=Outcome("failed", "ReachedMaxRestarts"), status=failed.status))
    infs["jobsets"].upsert(failed)
    stuck = jobset("waiting", "team-b", rjobs=(("w", 2, 1),), created=time.now)
    infs["jobsets"].upsert(stuck)
    for i in range(2):
        infs["nodes"].upsert(node(f"b-pool-{i}", "b-pool", gpus=4))
        infs["jobs"].upsert(job(stuck, "w", i))
    infs["pods"].upsert(pod(stuck, "w", 0, 0, node="b-pool-0", gpus=4))
    infs["pods"].upsert(pod(stuck, "w", 1, 0, gpus=4))
    time.advance(60)

    hub.reconcile.declare("jobset")
    for result, seconds in (("success", 0.004), ("success", 0.02), ("error", 0.3), ("requeue_after", 0.001)):
        hub.reconcile.reconcile_done("jobset", result, seconds)
    qclock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(name="jobset", clock=qclock, metrics=hub.queue_metrics("jobset"))
    for key in ("team-a/train", "team-b/doomed", "team-b/waiting", "team-a/train"):
        queue.add(key)
    qclock.advance(0.01)
    item = await queue.get()
    qclock.advance(0.05)
    queue.add_rate_limited(item)
    queue.done(item)
    await queue.get()
    qclock.advance(1.0)
    queue.report_unfinished()
    hook = hub.rest_client("127.0.0.1:6443")
    for method, code in (("GET", 200), ("POST", 201), ("POST", 409), ("PUT", 200), ("DELETE", 200)):
        hook(method, code)
    hub.leader(LEASE).started_leading()
    return infs
