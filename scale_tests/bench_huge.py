"""A huge JobSet in flight (P13 of performance.md): loop stalls, a small JobSet's wait, RSS, creates after a delete.

Workload: the simulated API server in its own process (API server + garbage collector, no Job controller, so no
pods), the controller in this process as in production (one worker, 500 QPS / 500 burst, the reference's
defaults). A loop-lag probe wakes every 5 ms and records how late it woke. Then:

1. a JobSet of N replicas (default 20,000) is created;
2. 5 s later a JobSet of 2 Jobs is created: the time until both its Jobs are in the controller's cache;
3. the huge JobSet's creation runs to the end (or ``--limit`` seconds);
4. a second huge JobSet is created and deleted once 1,000 of its Jobs exist: the Job creates the controller
   starts and finishes after its cache saw the deletion.

``--baseline`` runs the same with the per-pass bound and the decide thread off (one Plan of N creates, decided
on the loop), which is what the controller did before bounded passes. Prints JSON and writes
``scale_tests/results/bench_huge.json``. Run: ``.venv/bin/python -m scale_tests.bench_huge [--replicas N]
[--baseline]``. Figures are recorded, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import structlog

from api import constants as c
from cache.client import ApiClient, load_cluster_config, resource_path
from controller.app import Controller
from controller.settings import load_settings
from scale_tests.bench_jobset import jobset, sim_process

RESULTS = Path(__file__).parent / "results"
PROBE_PERIOD = 0.005


gc_pauses: list[float] = []
_gc_started: list[float] = [0.0]


def _gc_timer(phase: str, info: dict[str, Any]) -> None:
    """Times full (generation 2) collections: they stop the loop for as long as they scan."""
    if info.get("generation") != 2:
        return
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        gc_pauses.append(time.perf_counter() - _gc_started[0])


def rss_mib() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MiB, from /proc."""
    fields: dict[str, float] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


class LoopProbe:
    """Wakes every ``PROBE_PERIOD`` and records how late the loop let it run (a stall of the loop)."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + PROBE_PERIOD
            await asyncio.sleep(PROBE_PERIOD)
            self.lags.append(max(0.0, loop.time() - due))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> dict[str, float]:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        lags = sorted(self.lags)
        if not lags:
            return {}
        return {
            "samples": len(lags),
            "p50_ms": round(lags[len(lags) // 2] * 1000, 1),
            "p99_ms": round(lags[int(len(lags) * 0.99)] * 1000, 1),
            "max_ms": round(lags[-1] * 1000, 1),
        }


def small_jobset(name: str) -> dict[str, Any]:
    obj = jobset(name, 2)
    obj["spec"].pop("failurePolicy")
    return obj


async def run(replicas: int, *, baseline: bool, limit: float) -> dict[str, Any]:
    async with sim_process() as kubeconfig:
        config = await load_cluster_config(kubeconfig)
        from api.crdgen import build_crd

        async with ApiClient(config) as admin:
            await admin.create(resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions"), build_crd())
            for _ in range(200):
                try:
                    await admin.get(resource_path(c.GROUP, c.VERSION, c.PLURAL))
                    break
                except Exception:
                    await asyncio.sleep(0.05)
            settings = load_settings(overrides={"leader_election.leader_elect": False})
            cc = settings.client_connection
            async with ApiClient(config, qps=cc.qps, burst=cc.burst) as client:
                ctl = Controller(settings, client)
                if baseline:
                    ctl.reconciler.max_writes = 10**9
                    ctl.reconciler.offload_children = 10**9
                creates = {"started": 0, "finished": 0}
                inner_create = client.create

                async def counting(path: str, body: Any, *args: Any, **kwargs: Any) -> Any:
                    is_job = path.endswith("/jobs")
                    creates["started"] += is_job
                    try:
                        return await inner_create(path, body, *args, **kwargs)
                    finally:
                        creates["finished"] += is_job

                client.create = counting  # type: ignore[method-assign]
                seen_jobs: dict[str, set[str]] = {}
                counts: dict[str, int] = {}
                waiters: dict[tuple[str, int], asyncio.Event] = {}
                deleted: dict[str, dict[str, int]] = {}

                def on_job(old: Any, new: Any) -> None:
                    # Write-through puts a created Job in the cache before its watch event: count names, not adds.
                    if new is not None:
                        name = new.metadata.labels.get(c.JOBSET_NAME_KEY, "")
                        names = seen_jobs.setdefault(name, set())
                        if new.metadata.name not in names:
                            names.add(new.metadata.name)
                            counts[name] = len(names)
                            event = waiters.get((name, counts[name]))
                            if event is not None:
                                event.set()

                def on_jobset(old: Any, new: Any) -> None:
                    if new is None and old is not None:
                        deleted[old.metadata.name] = dict(creates)
                        event = waiters.get((f"deleted:{old.metadata.name}", 0))
                        if event is not None:
                            event.set()

                def waiter(name: str, n: int) -> asyncio.Event:
                    return waiters.setdefault((name, n), asyncio.Event())

                for inf in ctl.informers:
                    if inf.name == "jobs":
                        inf.add_handler(on_job)
                    if inf.name == "jobsets":
                        inf.add_handler(on_jobset)
                stop = asyncio.Event()
                task = asyncio.create_task(ctl.run(stop))
                await ctl.ready.wait()
                idle_probe = LoopProbe()  # the machine's own noise (shared cores), nothing in flight
                idle_probe.start()
                await asyncio.sleep(3)
                idle = await idle_probe.stop()
                rss0, _ = rss_mib()
                probe = LoopProbe()
                probe.start()
                jobsets = resource_path(c.GROUP, c.VERSION, c.PLURAL, "default")

                t0 = time.perf_counter()
                cpu0 = time.process_time()
                big_done = waiter("huge", replicas)
                await admin.create(jobsets, jobset("huge", replicas))
                await asyncio.sleep(5)
                small_done = waiter("small", 2)
                t_small = time.perf_counter()
                await admin.create(jobsets, small_jobset("small"))
                small_wait = None
                try:
                    await asyncio.wait_for(small_done.wait(), max(1.0, limit - 5))
                    small_wait = time.perf_counter() - t_small
                except TimeoutError:
                    pass
                big_at_small = counts.get("huge", 0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(big_done.wait(), max(1.0, limit - (time.perf_counter() - t0)))
                big_time = time.perf_counter() - t0
                big_cpu = time.process_time() - cpu0
                stalls = await probe.stop()
                rss1, peak = rss_mib()

                # Deleting a huge JobSet mid-creation.
                second = waiter("huge2", 1000)
                gone = waiter("deleted:huge2", 0)
                await admin.create(jobsets, jobset("huge2", replicas))
                await asyncio.wait_for(second.wait(), limit)
                await admin.delete(f"{jobsets}/huge2")
                await asyncio.wait_for(gone.wait(), 60)
                await ctl.queue.wait_idle()
                await asyncio.sleep(1)
                at_delete = deleted["huge2"]
                stop.set()
                await task

                return {
                    "mode": "baseline (one Plan, decided on the loop)" if baseline else "bounded passes",
                    "replicas": replicas,
                    "max_writes_per_pass": ctl.reconciler.max_writes,
                    "huge_jobs_created": counts.get("huge", 0),
                    "gc_full_collections_max_ms": round(max(gc_pauses, default=0.0) * 1000, 1),
                    "huge_create_s": round(big_time, 1),
                    "huge_controller_cpu_s": round(big_cpu, 1),
                    "loop_lag_idle": idle,
                    "loop_lag_while_in_flight": stalls,
                    "small_jobset_wait_s": round(small_wait, 2) if small_wait is not None else "not within limit",
                    "huge_jobs_when_small_done": big_at_small,
                    "rss_mib_before": round(rss0),
                    "rss_mib_after": round(rss1),
                    "rss_mib_peak": round(peak),
                    "delete_mid_creation": {
                        "jobs_of_huge2_when_delete_seen": counts.get("huge2", 0),
                        "creates_started_after_delete_seen": creates["started"] - at_delete["started"],
                        "creates_finished_after_delete_seen": creates["finished"] - at_delete["finished"],
                    },
                }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=20_000)
    parser.add_argument("--baseline", action="store_true")
    parser.add_argument("--limit", type=float, default=300.0, help="seconds to wait for the huge JobSet")
    args = parser.parse_args()
    gc.callbacks.append(_gc_timer)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    result = asyncio.run(run(args.replicas, baseline=args.baseline, limit=args.limit))
    result["python"] = platform.python_version()
    text = json.dumps(result, indent=2)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    suffix = "_baseline" if args.baseline else ""
    (RESULTS / f"bench_huge{suffix}.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
