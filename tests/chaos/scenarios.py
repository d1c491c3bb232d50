"""Chaos scenarios shared by the CI suites and the benchmark: the same code at two sizes.

Role: :func:`sim_env` is a simulated cluster (API server and garbage collector, no Job controller: the tests
write Job statuses as a Job controller would, so a 2,000-Job JobSet costs no pods) with the JobSet CRD and a
namespace. :func:`crash_run` drives one JobSet through creation, ``failures`` restarts and completion while
SIGKILLing the controller at seeded, progress-chosen points, checking the invariants after every kill.

Invariants: kill points are chosen from the seeded RNG and reached by observed progress (a trigger inside the
change that reaches it), never by time; after every kill the safety invariants hold; after every phase the
counters are exact; the run ends with the JobSet in its terminal state.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubesim
from api.crdgen import build_crd
from cache.client import ApiClient, load_cluster_config, resource_path
from tests.chaos.harness import (
    JOBSETS,
    UNCOUNTED_REASON,
    ControllerProcess,
    Tracker,
    big_jobset,
    check_safety,
    check_settled,
    complete_status,
    failed_status,
    follow_store,
    patch_job_status,
    pick_live_job,
)

JSON = dict[str, Any]

# Events per restart, from the spec's event rules (4.8: an Event only after a status write that changed a condition,
# one per change; identical repeats aggregate into a series). A restart changes RestartingJobSet to True (reason
# DefaultFailurePolicy or FailurePolicy_<rule>) and emits the action event (RestartJobSetFailurePolicyAction): 2;
# a third change per restart (a condition cleared once the new attempt runs) is allowed for, so 3. Creation and
# completion add JobsReady, AllJobsCompleted and JobSetCompleted: 3. A SIGKILL can only lose an event (status
# written, event not yet sent); it cannot add one: a restarted controller finds the condition already written and
# has no change to report. The bounds are twice those counts; anything above is a storm.
EVENTS_PER_RESTART_BOUND = 6
EVENTS_BASE_BOUND = 6


def event_bound(restarts: int) -> int:
    return EVENTS_BASE_BOUND + EVENTS_PER_RESTART_BOUND * restarts


@dataclass
class SimEnv:
    sim: kubesim.SimCluster
    kubeconfig: str
    admin: ApiClient
    namespace: str
    workdir: Path


@contextlib.asynccontextmanager
async def sim_env(workdir: Path, namespace: str = "chaos") -> AsyncIterator[SimEnv]:
    async with kubesim.SimCluster(nodes=0, with_cluster=False, watch_window=200_000) as sim:
        kubeconfig = sim.write_kubeconfig(workdir / "kubeconfig")
        async with ApiClient(await load_cluster_config(kubeconfig)) as admin:
            await admin.create(resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions"), build_crd())
            await admin.get(resource_path(*JOBSETS))  # served at once by kubesim (Established synchronously)
            await admin.create(resource_path("", "v1", "namespaces"), {"metadata": {"name": namespace}})
            yield SimEnv(sim, kubeconfig, admin, namespace, workdir)


@dataclass
class KillPoint:
    """One place to SIGKILL the controller: ``what`` reached ``k`` (see :func:`plan_phase`)."""

    phase: int  # the restart attempt being created (0: first creation)
    what: str  # "created" (Jobs of this attempt created), "decided" (restart counted), "removing" (old Jobs)
    k: int

    def reached(self, t: Tracker) -> bool:
        if self.what == "created":
            return t.created_count(self.phase) >= self.k
        if self.what == "decided":
            return t.restarts() >= self.phase
        return t.removing[str(self.phase - 1)] >= self.k

    def __str__(self) -> str:
        return f"attempt {self.phase}: {self.what}" + (f" {self.k}" if self.what != "decided" else "")


def plan_phase(phase: int, n: int, kills: int, rng: random.Random) -> list[KillPoint]:
    """``kills`` points in the order progress reaches them: the restart decided, old Jobs being removed, new
    Jobs created (creation only for phase 0). Thresholds are distinct, so each kill is a different place."""
    candidates: list[KillPoint] = []
    if phase > 0:
        candidates.append(KillPoint(phase, "decided", 1))
        candidates += [KillPoint(phase, "removing", k) for k in range(1, n + 1)]
    candidates += [KillPoint(phase, "created", k) for k in range(1, n)]
    chosen = sorted(rng.sample(range(len(candidates)), min(kills, len(candidates))))
    if phase > 0 and kills >= 3:
        # Always one of each kind in a restart with room for three: they are different code paths.
        kinds = {candidates[i].what for i in chosen}
        for kind in ("decided", "removing", "created"):
            if kind not in kinds:
                pool = [i for i, p in enumerate(candidates) if p.what == kind and i not in chosen]
                majority = max(("removing", "created"), key=lambda w: sum(candidates[i].what == w for i in chosen))
                drop = next(i for i in chosen if candidates[i].what == majority)
                chosen = sorted((set(chosen) - {drop}) | {rng.choice(pool)})
    return [candidates[i] for i in chosen]


@dataclass
class CrashFigures:
    n: int
    failures: int
    counted: int = 0  # failures counted toward maxRestarts (restartsCountTowardsMax)
    kills: int = 0
    kill_points: list[str] = field(default_factory=list)
    starts: int = 0
    events: int = 0
    event_reasons: dict[str, int] = field(default_factory=dict)
    event_bound: int = 0
    controller_cpu_s: float = 0.0
    wall_s: float = 0.0
    terminal: str = ""

    def as_dict(self) -> JSON:
        return dict(self.__dict__)


async def crash_run(
    tracker: Tracker,
    proc: ControllerProcess,
    create: Callable[[], Awaitable[None]],
    fail_job: Callable[[str, bool], Awaitable[None]],
    complete_all: Callable[[list[str]], Awaitable[None]],
    *,
    n: int,
    failures: int,
    kills_per_phase: int,
    rng: random.Random,
    phase_timeout: float,
    uncounted_every: int = 0,
) -> CrashFigures:
    """Create the JobSet, inject ``failures`` Job failures, then complete every Job; SIGKILL the controller at
    ``kills_per_phase`` progress points of each phase and restart it; check invariants after every kill.

    ``fail_job(job, counted)`` fails a Job so that the failure policy counts it toward ``maxRestarts`` or not;
    with ``uncounted_every`` k > 0 every k-th failure is not counted (else all are)."""
    figures = CrashFigures(n=n, failures=failures)
    t0 = time.monotonic()
    injected = counted = 0
    proc.start()
    await create()
    for phase in range(failures + 1):
        for point in plan_phase(phase, n, kills_per_phase, rng):
            killed = asyncio.Event()

            def fire(p: KillPoint = point, done: asyncio.Event = killed) -> None:
                proc.signal_kill()
                done.set()

            tracker.on(point.reached, fire)
            try:
                await asyncio.wait_for(killed.wait(), phase_timeout)
            except TimeoutError:
                raise AssertionError(f"kill point {point} never reached; {tracker.summary()}\n{proc.tail()}") from None
            await asyncio.to_thread(proc.reap)
            check_safety(tracker, injected, counted)
            figures.kill_points.append(str(point))
            proc.start()
        await tracker.until(
            lambda t, a=phase: t.settled(a, n) and t.restarts() == a,
            f"attempt {phase} settled",
            phase_timeout,
            proc.tail(),
        )
        check_settled(tracker, injected, n, counted)
        if phase < failures:
            counts = not (uncounted_every and injected % uncounted_every == uncounted_every - 1)
            await fail_job(pick_live_job(tracker, phase, rng), counts)
            injected += 1
            counted += counts
    await complete_all(sorted(tracker.jobs))
    await tracker.until(lambda t: t.terminal() == "Completed", "terminalState Completed", phase_timeout, proc.tail())
    check_settled(tracker, injected, n, counted)
    figures.counted = counted
    figures.wall_s = round(time.monotonic() - t0, 2)
    await asyncio.to_thread(proc.stop)
    figures.kills = proc.kills
    figures.starts = proc.starts
    figures.controller_cpu_s = round(proc.cpu_seconds, 2)
    figures.terminal = tracker.terminal()
    figures.events = tracker.event_emissions()
    figures.event_reasons = dict(tracker.event_reasons())
    figures.event_bound = event_bound(injected)
    assert figures.events <= figures.event_bound, f"event storm: {figures.event_reasons} > {figures.event_bound}"
    return figures


async def sim_crash_run(
    env: SimEnv, *, n: int, failures: int, kills_per_phase: int, seed: int, phase_timeout: float
) -> CrashFigures:
    """:func:`crash_run` on the simulated cluster: Job statuses are written as a Job controller would."""
    name = "big"
    tracker = Tracker(env.namespace, name)
    follow_store(env.sim.store, tracker)
    proc = ControllerProcess(env.kubeconfig, env.workdir)
    store, ns = env.sim.store, env.namespace
    sem = asyncio.Semaphore(64)

    async def create() -> None:
        body = big_jobset(name, n, max_restarts=failures, uncounted_rule=True)
        await env.admin.create(resource_path(*JOBSETS, ns), body)

    async def fail_job(job: str, counted: bool) -> None:
        await patch_job_status(store, ns, job, failed_status("BackoffLimitExceeded" if counted else UNCOUNTED_REASON))

    async def complete_all(jobs: list[str]) -> None:
        async def one(job: str) -> None:
            async with sem:
                await patch_job_status(store, ns, job, complete_status())

        await asyncio.gather(*(one(j) for j in jobs))

    try:
        return await crash_run(
            tracker,
            proc,
            create,
            fail_job,
            complete_all,
            n=n,
            failures=failures,
            kills_per_phase=kills_per_phase,
            rng=random.Random(seed),
            phase_timeout=phase_timeout,
            uncounted_every=2,
        )
    finally:
        await asyncio.to_thread(proc.stop)


# ------------------------------------------------------------------------------------------------ fault storm

STORM_ERROR_RATE = 0.06  # of all API calls: half 429 (Retry-After 1 s), half 500
STORM_HANG_RATE = 0.02  # of all API calls: held 30 s, then served
STORM_WATCH_RATE = 0.10  # of WATCH calls: ended at once, half with no event (dropped), half with a 410 ERROR


@dataclass
class StormFigures:
    duration_s: float
    qps: float
    burst: int
    jobsets: int = 0
    jobs_per_jobset: int = 0
    failures: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    streams_dropped: int = 0
    requests: float = 0.0
    requests_per_s: float = 0.0
    request_bound: float = 0.0
    requests_by_code: dict[str, float] = field(default_factory=dict)
    controller_cpu_s: float = 0.0
    controller_cpu_share: float = 0.0
    reconcile_errors: float = 0.0
    converge_after_storm_s: float = 0.0

    def as_dict(self) -> JSON:
        return dict(self.__dict__)


def request_codes(metrics: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if key.startswith("rest_client_requests_total{"):
            code = key.split('code="', 1)[1].split('"', 1)[0] if 'code="' in key else "?"
            out[code] = out.get(code, 0.0) + value
    return out


async def storm_run(
    env: SimEnv,
    *,
    duration: float,
    n: int,
    extra_jobsets: int,
    failures: int,
    seed: int,
    qps: float = 50.0,
    burst: int = 100,
    hang_seconds: float = 30.0,
    drop_every: float = 2.0,
    settle_timeout: float = 180.0,
) -> StormFigures:
    """A JobSet of ``n`` Jobs restarted ``failures`` times and ``extra_jobsets`` small JobSets created, all while
    ``duration`` seconds of faults hit the controller's API calls (rates above; established watch streams are
    also dropped every ``drop_every`` s). Then faults stop and everything must converge exactly: each JobSet
    Completed, restarts equal to the failures injected, one Job per (name, attempt), no orphan, the controller
    never restarted. Measures the controller's CPU and API request rate during the storm."""
    from tests.chaos.harness import total

    rng = random.Random(seed)
    store, ns = env.sim.store, env.namespace
    faults = env.sim.faults
    faults.rng.seed(seed)
    figures = StormFigures(duration_s=duration, qps=qps, burst=burst, jobs_per_jobset=n)
    proc = ControllerProcess(env.kubeconfig, env.workdir, qps=qps, burst=burst)
    trackers: dict[str, Tracker] = {}
    injected: dict[str, int] = {}

    def track(name: str) -> Tracker:
        t = trackers[name] = Tracker(ns, name)
        injected[name] = 0
        follow_store(store, t)
        return t

    async def create(name: str, size: int, max_restarts: int) -> None:
        body = big_jobset(name, size, max_restarts)
        body["metadata"]["namespace"] = ns
        await store.create("jobsets", body, namespace=ns)

    main = track("storm")
    proc.start()
    try:
        await create("storm", n, failures)
        await main.until(lambda t: t.settled(0, n), "the first attempt", settle_timeout, proc.tail())
        before = await asyncio.to_thread(proc.metrics)
        cpu0 = proc.live_cpu_seconds()
        faults.error_rate, faults.error_codes, faults.retry_after = STORM_ERROR_RATE, (429, 500), 1
        faults.hang_rate, faults.hang_seconds = STORM_HANG_RATE, hang_seconds
        faults.watch_fault_rate = STORM_WATCH_RATE
        t0 = time.monotonic()
        deadline = t0 + duration
        next_extra = 0

        async def dropper() -> None:
            while True:
                await asyncio.sleep(drop_every)  # the fault schedule itself, not a wait for a result
                for resource in ("jobs", "jobsets", "pods", "events"):
                    bucket = store.bucket(store.info(resource))
                    figures.streams_dropped += len(bucket.watchers)
                    store.drop_watches(resource)

        drops = asyncio.create_task(dropper())
        try:
            while time.monotonic() < deadline:
                due = t0 + duration * next_extra / max(extra_jobsets, 1)
                if next_extra < extra_jobsets and time.monotonic() >= due:
                    name = f"extra-{next_extra}"
                    track(name)
                    await create(name, 4, 1)
                    next_extra += 1
                a = injected["storm"]
                if a < failures and main.settled(a, n) and main.restarts() == a:
                    await patch_job_status(store, ns, pick_live_job(main, a, rng), failed_status())
                    injected["storm"] += 1
                # Progress is driven by the controller; this loop only schedules faults and failures.
                await main.wait(
                    lambda t, a=injected["storm"]: t.settled(a, n) and t.restarts() == a,
                    min(1.0, max(0.01, deadline - time.monotonic())),
                )
        finally:
            drops.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drops
        storm = time.monotonic() - t0
        assert proc.alive(), f"the controller died in the storm:\n{proc.tail()}"
        after = await asyncio.to_thread(proc.metrics)
        cpu1 = proc.live_cpu_seconds()
        figures.faults = dict(faults.counts)
        faults.error_rate = faults.hang_rate = faults.watch_fault_rate = 0.0
        while next_extra < extra_jobsets:  # a short storm still creates every JobSet it promised
            track(f"extra-{next_extra}")
            await create(f"extra-{next_extra}", 4, 1)
            next_extra += 1

        # After the storm: every JobSet converges exactly, then completes.
        t1 = time.monotonic()
        for name, t in trackers.items():
            size = n if name == "storm" else 4
            a = injected[name]
            await t.until(
                lambda t, a=a, size=size: t.settled(a, size) and t.restarts() == a,
                f"{name} settled after the storm",
                settle_timeout,
                proc.tail(),
            )
            check_settled(t, a, size)
        sem = asyncio.Semaphore(64)

        async def complete(job: str) -> None:
            async with sem:
                await patch_job_status(store, ns, job, complete_status())

        for t in trackers.values():
            await asyncio.gather(*(complete(j) for j in sorted(t.jobs)))
        for name, t in trackers.items():
            await t.until(lambda t: t.terminal() == "Completed", f"{name} Completed", settle_timeout, proc.tail())
            check_settled(t, injected[name], n if name == "storm" else 4)
        figures.converge_after_storm_s = round(time.monotonic() - t1, 2)
        assert proc.alive(), "the controller must survive the storm"
        assert proc.starts == 1, "the controller must survive the storm without a restart"
        final = await asyncio.to_thread(proc.metrics)
        figures.jobsets = len(trackers)
        figures.failures = sum(injected.values())
        figures.requests = total(after, "rest_client_requests_total") - total(before, "rest_client_requests_total")
        figures.requests_per_s = round(figures.requests / storm, 1)
        figures.request_bound = round(qps * storm + burst, 1)
        figures.requests_by_code = {
            k: v - request_codes(before).get(k, 0.0) for k, v in sorted(request_codes(after).items())
        }
        figures.controller_cpu_s = round(cpu1 - cpu0, 2)
        figures.controller_cpu_share = round((cpu1 - cpu0) / storm, 3)
        figures.reconcile_errors = total(final, "controller_runtime_reconcile_errors_total")
        figures.duration_s = round(storm, 1)
        return figures
    finally:
        faults.error_rate = faults.hang_rate = faults.watch_fault_rate = 0.0
        await asyncio.to_thread(proc.stop)
