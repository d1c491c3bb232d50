"""The real-control-plane scale scenario: one JobSet of N single-pod Jobs through create → all pods Running → one
Job fails → restart → all new pods Running → Completed, and the plane's own **floor** for each phase, measured in
the same run with no JobSet controller.

Role: drive and observe. Everything is observed through WATCHes of the namespace (Jobs, pods, JobSets) opened by
this process, so the JobSet run and its floor are timed by the same clock and the same watch latency. Pods live on
KWOK nodes and follow the annotation contract (``tests/e2e/kwok_stages.py``): with no annotation a pod runs until
``sim.pyjobset.io/exit-now`` is patched onto it (``"1"`` fails it, ``"0"`` makes it succeed), so every phase
boundary is a real pod transition played by the real Job controller, garbage collector and scheduler.

The floor (``run_floor``), in a namespace of its own, by a trivial client with the controller's identity (API
Priority and Fairness queues by identity), QPS and burst, and at most 50 requests in flight (the controller's
writer pool): create N Jobs, wait for their pods Running,
foreground-delete the N Jobs and wait until every Job and pod is gone, create N Jobs again and wait for their pods
Running, make every pod exit 0 and wait until every Job finished. A JobSet restart is a foreground delete of every
Job followed by N creates (the new Jobs have the old names), so the restart's floor is delete + create. The floor's
objects are the JobSet's own (``floor_children``: the headless Service and the Jobs pyjobset's builders make, pod
template, labels, hostname and subdomain included), so the plane does the same work for both (the EndpointSlice
controller tracking every pod behind the headless Service among it).

Used by ``scale_tests/bench_realplane.py`` (full sizes, figures, plot) and by the e2e smoke test
``tests/e2e/test_scale_smoke.py`` (a few hundred Jobs, correctness only).

Invariants:
* nothing here decides for the controller: the scenario only creates the JobSet and plays pod exits;
* a phase waits for an observed event (never a sleep) and fails with a message naming the phase and the counts
  it saw when its deadline passes;
* every timestamp is ``time.monotonic()`` taken when the event arrived here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import orjson

from api import constants as c
from api.jobset_types import jobset_from_obj
from cache.client import ApiClient, resource_path
from cache.errors import NotFound, TooManyRequests
from controller.decide.children import build_headless_service, build_job

JSON = dict[str, Any]
EXIT_NOW = "sim.pyjobset.io/exit-now"
ATTEMPT = c.RESTART_ATTEMPT_KEY
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
JOBSETS = (c.GROUP, c.VERSION, c.PLURAL)
IN_FLIGHT = 50  # the controller's writer pool (controller/act.py max_parallel)


class PhaseTimeout(RuntimeError):
    """A phase did not reach its end before its deadline; the message names the phase and what was seen."""


def jobset_manifest(name: str, n: int, *, max_restarts: int = 1) -> JSON:
    """One replicated job of ``n`` single-pod Jobs, ``backoffLimit: 0``: the first pod failure fails its Job and
    restarts the JobSet (at most ``max_restarts`` times)."""
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": {"maxRestarts": max_restarts},
            "replicatedJobs": [{"name": "w", "replicas": n, "template": {"spec": _job_spec()}}],
        },
    }


def _job_spec() -> JSON:
    return {
        "parallelism": 1,
        "completions": 1,
        "backoffLimit": 0,
        "template": {
            "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]},
        },
    }


async def floor_children(client: ApiClient, namespace: str, n: int) -> tuple[JSON, list[JSON], list[JSON]]:
    """The very objects pyjobset creates for ``jobset_manifest("floor", n)``: its headless Service and its N Jobs
    of attempt 0 and of attempt 1, built by the controller's own pure builders from the JobSet as the API server
    stored it (defaults applied). The JobSet is created for that (no controller runs during the floor), so the
    children's owner references name a live object and the garbage collector treats them as it treats pyjobset's.
    """
    stored = await client.create(resource_path(*JOBSETS, namespace), jobset_manifest("floor", n))
    js = jobset_from_obj(stored)
    rjob = js.spec.replicated_jobs[0]
    restarted = msgspec.structs.replace(js, status=msgspec.structs.replace(js.status, restarts=1))
    return (
        build_headless_service(js),
        [build_job(js, rjob, i) for i in range(n)],
        [build_job(restarted, rjob, i) for i in range(n)],
    )


# ---- observation ---------------------------------------------------------------------------------------------


@dataclass
class Timeline:
    """What the watches saw, with arrival times (monotonic seconds)."""

    jobs_added: list[tuple[float, int]] = field(default_factory=list)  # (t, attempt)
    jobs_finished: list[tuple[float, int, str]] = field(default_factory=list)  # (t, attempt, Complete | Failed)
    jobs_deleted: list[float] = field(default_factory=list)
    pods_running: list[tuple[float, int]] = field(default_factory=list)  # (t, attempt) first time Running
    pods_left_running: list[float] = field(default_factory=list)  # a Running pod ended or was deleted
    pods_deleted: list[float] = field(default_factory=list)
    jobset_conditions: list[tuple[float, str]] = field(default_factory=list)  # (t, type) turned True

    def count(self, series: Iterable[tuple[Any, ...]], attempt: int) -> int:
        return sum(1 for e in series if e[1] == attempt)

    def last(self, series: Iterable[tuple[Any, ...]], attempt: int) -> float:
        return max(e[0] for e in series if e[1] == attempt)


class Observer:
    """WATCHes Jobs, pods and JobSets of one namespace into a ``Timeline`` and wakes waiters on every event."""

    def __init__(self, client: ApiClient, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self.timeline = Timeline()
        self.jobs: dict[str, tuple[int, bool]] = {}  # uid -> (attempt, finished)
        self.pods: dict[str, tuple[int, str, bool]] = {}  # uid -> (attempt, phase, running seen)
        self.live_pod: dict[tuple[str, int], str] = {}  # (job name, attempt) -> pod name, not terminal
        self.jobset: JSON = {}
        self._true: set[str] = set()
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._opened = 0
        self._all_open = asyncio.Event()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Observer]:
        specs = [(("batch", "v1", "jobs"), self._job), (("", "v1", "pods"), self._pod), (JOBSETS, self._jobset)]
        self._tasks = [asyncio.create_task(self._follow(resource_path(*r, self.namespace), f)) for r, f in specs]
        opened = asyncio.create_task(self._all_open.wait())
        try:
            done, _ = await asyncio.wait([opened, *self._tasks], timeout=60, return_when=asyncio.FIRST_COMPLETED)
            for task in self._tasks:
                if task in done:
                    task.result()  # a WATCH that failed to open raises here, naming its path
                    raise PhaseTimeout(f"a WATCH of namespace {self.namespace} ended before the others opened")
            if opened not in done:
                raise PhaseTimeout(f"WATCHes of namespace {self.namespace}: not all open after 60s")
            yield self
        finally:
            for task in [opened, *self._tasks]:
                task.cancel()
            await asyncio.gather(opened, *self._tasks, return_exceptions=True)

    def _opened_one(self) -> None:
        self._opened += 1
        if self._opened == 3:
            self._all_open.set()

    async def _follow(self, path: str, handle: Callable[[str, JSON, float], None]) -> None:
        rv = ""
        first = True
        retries = 0
        while True:
            params = {"allowWatchBookmarks": "true"}
            if rv:
                params["resourceVersion"] = rv
            try:
                async for line in self.client.watch(path, params, on_open=self._opened_one if first else None):
                    first = False
                    now = time.monotonic()
                    event = orjson.loads(line)
                    obj = event.get("object") or {}
                    rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        handle(event["type"], obj, now)
                        self._changed.set()
            except TooManyRequests:  # a CRD's storage still initialising: the server asks to come back
                retries += 1
                if retries > 50:
                    raise
                await asyncio.sleep(0.2)

    def _job(self, kind: str, job: JSON, now: float) -> None:
        meta = job["metadata"]
        uid = meta["uid"]
        attempt = int((meta.get("labels") or {}).get(ATTEMPT, "0"))
        if kind == "DELETED":
            self.timeline.jobs_deleted.append(now)
            self.jobs.pop(uid, None)
            return
        if uid not in self.jobs:
            self.jobs[uid] = (attempt, False)
            self.timeline.jobs_added.append((now, attempt))
        if not self.jobs[uid][1]:
            for cond in (job.get("status") or {}).get("conditions") or ():
                if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
                    self.jobs[uid] = (attempt, True)
                    self.timeline.jobs_finished.append((now, attempt, cond["type"]))
                    break

    def _pod(self, kind: str, pod: JSON, now: float) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        labels = meta.get("labels") or {}
        attempt = int(labels.get(ATTEMPT, "0"))
        key = (labels.get(JOB_NAME_LABEL, ""), attempt)
        phase = (pod.get("status") or {}).get("phase", "Pending")
        _, before, seen = self.pods.get(uid, (attempt, "", False))
        if kind == "DELETED":
            self.timeline.pods_deleted.append(now)
            self.pods.pop(uid, None)
            if before == "Running":
                self.timeline.pods_left_running.append(now)
            if self.live_pod.get(key) == meta["name"]:
                del self.live_pod[key]
            return
        if phase == "Running" and not seen:
            seen = True
            self.timeline.pods_running.append((now, attempt))
        if before == "Running" and phase != "Running":
            self.timeline.pods_left_running.append(now)
        self.pods[uid] = (attempt, phase, seen)
        if phase in ("Succeeded", "Failed") or meta.get("deletionTimestamp"):
            if self.live_pod.get(key) == meta["name"]:
                del self.live_pod[key]
        elif (pod.get("spec") or {}).get("nodeName"):
            self.live_pod[key] = meta["name"]

    def _jobset(self, kind: str, js: JSON, now: float) -> None:
        if kind == "DELETED":
            return
        self.jobset = js
        for cond in (js.get("status") or {}).get("conditions") or ():
            if cond.get("status") == "True" and cond["type"] not in self._true:
                self._true.add(cond["type"])
                self.timeline.jobset_conditions.append((now, cond["type"]))
            elif cond.get("status") != "True":
                self._true.discard(cond["type"])

    def condition_true(self, kind: str) -> bool:
        return kind in self._true

    async def until(self, what: str, done: Callable[[], bool], timeout: float, seen: Callable[[], str]) -> float:
        """Wait for ``done()`` (re-checked on every event); return the arrival time of the event that made it
        true. Raises ``PhaseTimeout`` naming ``what`` and ``seen()`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not done():
            self._changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PhaseTimeout(f"{what}: not reached after {timeout:.0f}s ({seen()})")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return time.monotonic()


# ---- acting (the bench's own writes) --------------------------------------------------------------------------


async def bounded(items: Iterable[Any], fn: Callable[[Any], Awaitable[None]], workers: int = IN_FLIGHT) -> None:
    """Run ``fn`` over ``items`` with at most ``workers`` in flight (the client's QPS limiter paces them)."""
    pending = iter(items)

    async def worker() -> None:
        for item in pending:
            await fn(item)

    await asyncio.gather(*(worker() for _ in range(workers)))


async def exit_pods(client: ApiClient, obs: Observer, jobs: Iterable[str], attempt: int, code: str) -> None:
    pods = resource_path("", "v1", "pods", obs.namespace)

    async def patch(job: str) -> None:
        name = obs.live_pod[(job, attempt)]
        with contextlib.suppress(NotFound):
            await client.patch(f"{pods}/{name}", {"metadata": {"annotations": {EXIT_NOW: code}}})

    await bounded(list(jobs), patch)


def _cpu(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Marks:
    """Phase boundaries (monotonic seconds) and the controller's CPU seconds at each one."""

    t: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    pid: int | None = None

    def mark(self, name: str, at: float | None = None) -> float:
        self.t[name] = time.monotonic() if at is None else at
        cpu = _cpu(self.pid)
        if cpu is not None:
            self.cpu[name] = cpu
        return self.t[name]


def _progress(obs: Observer, attempt: int) -> Callable[[], str]:
    def seen() -> str:
        tl = obs.timeline
        return (
            f"attempt {attempt}: {tl.count(tl.jobs_added, attempt)} Jobs created, "
            f"{tl.count(tl.pods_running, attempt)} pods Running, {tl.count(tl.jobs_finished, attempt)} Jobs finished; "
            f"{len(obs.jobs)} Jobs and {len(obs.pods)} pods present; JobSet conditions {sorted(obs._true)}"
        )

    return seen


# ---- the JobSet run --------------------------------------------------------------------------------------------


async def run_jobset(
    client: ApiClient,
    writer: ApiClient,
    namespace: str,
    n: int,
    *,
    name: str = "scale",
    controller_pid: int | None = None,
    timeout: float = 1800.0,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[Marks, Timeline, JSON]:
    """The JobSet scenario in ``namespace`` (which must exist and be empty); returns the phase marks, the timeline
    and the final JobSet. ``client`` watches, ``writer`` plays the pod exits (give it the controller's QPS)."""
    marks = Marks(pid=controller_pid)
    obs = Observer(client, namespace)
    jobs = [f"{name}-w-{i}" for i in range(n)]
    async with obs.running():
        marks.mark("start")
        await writer.create(resource_path(*JOBSETS, namespace), jobset_manifest(name, n))
        tl = obs.timeline
        seen0, seen1 = _progress(obs, 0), _progress(obs, 1)
        await obs.until("JobSet: all Jobs created", lambda: tl.count(tl.jobs_added, 0) >= n, timeout, seen0)
        marks.mark("created", tl.last(tl.jobs_added, 0))
        log(f"jobset: {n} Jobs created in {marks.t['created'] - marks.t['start']:.1f}s")
        await obs.until("JobSet: all pods Running", lambda: tl.count(tl.pods_running, 0) >= n, timeout, seen0)
        marks.mark("running", tl.last(tl.pods_running, 0))
        log(f"jobset: {n} pods Running at {marks.t['running'] - marks.t['start']:.1f}s")

        marks.mark("fail")
        await exit_pods(writer, obs, jobs[:1], 0, "1")
        await obs.until("JobSet: Job 0 Failed", lambda: tl.count(tl.jobs_finished, 0) >= 1, timeout, seen0)
        marks.mark("job_failed", tl.last(tl.jobs_finished, 0))
        await obs.until("JobSet: attempt 1 created", lambda: tl.count(tl.jobs_added, 1) >= n, timeout, seen1)
        marks.mark("recreated", tl.last(tl.jobs_added, 1))
        log(f"jobset: restart recreated {n} Jobs in {marks.t['recreated'] - marks.t['job_failed']:.1f}s")
        await obs.until("JobSet: attempt 1 Running", lambda: tl.count(tl.pods_running, 1) >= n, timeout, seen1)
        marks.mark("running2", tl.last(tl.pods_running, 1))

        await obs.until("JobSet: every attempt 1 pod bound", lambda: len(obs.live_pod) >= n, timeout, seen1)
        marks.mark("complete")
        await exit_pods(writer, obs, jobs, 1, "0")
        await obs.until("JobSet: every Job finished", lambda: tl.count(tl.jobs_finished, 1) >= n, timeout, seen1)
        marks.mark("jobs_done", tl.last(tl.jobs_finished, 1))
        await obs.until("JobSet: Completed", lambda: obs.condition_true("Completed"), 120, seen1)
        marks.mark("completed", next(t for t, k in tl.jobset_conditions if k == "Completed"))
        log(f"jobset: Completed {marks.t['completed'] - marks.t['jobs_done']:.2f}s after the last Job finished")
        return marks, obs.timeline, obs.jobset


# ---- the floor -------------------------------------------------------------------------------------------------


async def run_floor(
    client: ApiClient,
    writer: ApiClient,
    namespace: str,
    n: int,
    *,
    player: ApiClient | None = None,
    timeout: float = 1800.0,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[Marks, Timeline]:
    """The plane's floor in ``namespace`` (must exist and be empty), no JobSet controller involved.

    ``writer`` creates and deletes the Jobs: give it the controller's identity as well as its QPS and burst, since
    API Priority and Fairness queues requests by identity (an admin client is exempt, a ServiceAccount is not).
    ``player`` plays the pod exits (default ``writer``): give it the client ``run_jobset`` plays them with."""
    player = player or writer
    marks = Marks()
    obs = Observer(client, namespace)
    service, attempt0, attempt1 = await floor_children(client, namespace, n)
    names = [job["metadata"]["name"] for job in attempt0]
    jobs_path = resource_path("batch", "v1", "jobs", namespace)
    async with obs.running():
        tl = obs.timeline
        seen0, seen1 = _progress(obs, 0), _progress(obs, 1)

        async def create_all(manifests: list[JSON]) -> None:
            async def create(job: JSON) -> None:
                await writer.create(jobs_path, job)

            await bounded(manifests, create)

        marks.mark("start")
        await writer.create(resource_path("", "v1", "services", namespace), service)
        await create_all(attempt0)
        await obs.until("floor: all Jobs created", lambda: tl.count(tl.jobs_added, 0) >= n, timeout, seen0)
        marks.mark("created", tl.last(tl.jobs_added, 0))
        log(f"floor: {n} Jobs created in {marks.t['created'] - marks.t['start']:.1f}s")
        await obs.until("floor: all pods Running", lambda: tl.count(tl.pods_running, 0) >= n, timeout, seen0)
        marks.mark("running", tl.last(tl.pods_running, 0))

        marks.mark("delete")

        async def delete(job: str) -> None:
            with contextlib.suppress(NotFound):
                await writer.delete(f"{jobs_path}/{job}", propagation="Foreground")

        await bounded(names, delete)
        await obs.until(
            "floor: every Job and pod deleted",
            lambda: len(tl.jobs_deleted) >= n and len(tl.pods_deleted) >= n,
            timeout,
            seen0,
        )
        marks.mark("deleted", max(tl.jobs_deleted[-1], tl.pods_deleted[-1]))
        log(f"floor: {n} Jobs deleted with their pods in {marks.t['deleted'] - marks.t['delete']:.1f}s")

        marks.mark("create2")
        await create_all(attempt1)
        await obs.until("floor: attempt 1 created", lambda: tl.count(tl.jobs_added, 1) >= n, timeout, seen1)
        marks.mark("recreated", tl.last(tl.jobs_added, 1))
        await obs.until("floor: attempt 1 Running", lambda: tl.count(tl.pods_running, 1) >= n, timeout, seen1)
        marks.mark("running2", tl.last(tl.pods_running, 1))
        await obs.until("floor: every attempt 1 pod bound", lambda: len(obs.live_pod) >= n, timeout, seen1)

        marks.mark("complete")
        await exit_pods(player, obs, names, 1, "0")
        await obs.until("floor: every Job finished", lambda: tl.count(tl.jobs_finished, 1) >= n, timeout, seen1)
        marks.mark("jobs_done", tl.last(tl.jobs_finished, 1))
        log(f"floor: {n} Jobs ran to completion in {marks.t['jobs_done'] - marks.t['complete']:.1f}s")
        return marks, obs.timeline


async def _until_event(
    client: ApiClient,
    collection: str,
    name: str,
    want: Callable[[str], bool],
    what: str,
    timeout: float,
    *,
    since: str = "",
) -> None:
    """Wait until a WATCH of ``collection`` narrowed to ``name`` delivers an event whose type satisfies ``want``.
    Without ``since`` the watch starts with an ``ADDED`` for an object that exists; from ``since`` (a
    resourceVersion) it delivers every change after it, a deletion that raced the watch's opening included."""

    async def watch() -> None:
        params = {"fieldSelector": f"metadata.name={name}", "allowWatchBookmarks": "true"}
        if since:
            params["resourceVersion"] = since
        while True:  # a stream the server ends is opened again from the last resourceVersion seen
            async for line in client.watch(collection, params):
                event = orjson.loads(line)
                rv = ((event.get("object") or {}).get("metadata") or {}).get("resourceVersion")
                if rv:
                    params["resourceVersion"] = rv
                if want(event.get("type", "")):
                    return

    try:
        await asyncio.wait_for(watch(), timeout)
    except TimeoutError:
        raise PhaseTimeout(f"{what}: not reached after {timeout:.0f}s") from None


async def delete_namespace(client: ApiClient, namespace: str, timeout: float = 900.0) -> None:
    """Delete ``namespace`` and wait until it is gone (its Jobs and pods with it)."""
    collection = resource_path("", "v1", "namespaces")
    try:
        deleting = await client.delete(f"{collection}/{namespace}")
    except NotFound:
        return
    since = str((deleting.get("metadata") or {}).get("resourceVersion", ""))
    await _until_event(
        client,
        collection,
        namespace,
        lambda kind: kind == "DELETED",
        f"namespace {namespace} deleted",
        timeout,
        since=since,
    )


async def create_namespace(client: ApiClient, namespace: str, timeout: float = 60.0) -> None:
    """Create ``namespace`` and wait for its ``default`` ServiceAccount (pods are refused before it exists)."""
    await client.create(resource_path("", "v1", "namespaces"), {"metadata": {"name": namespace}})
    await _until_event(
        client,
        resource_path("", "v1", "serviceaccounts", namespace),
        "default",
        lambda kind: kind in ("ADDED", "MODIFIED"),
        f"namespace {namespace}: its default ServiceAccount",
        timeout,
    )
