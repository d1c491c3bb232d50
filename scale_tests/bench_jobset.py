"""Large-JobSet benchmarks P1, P2 (performance.md) on the simulated API server, beside the reference's arithmetic bound.

Workload: one JobSet with one replicated job of N single-pod Jobs. The simulated API server runs in its own
process (API server + garbage collector only: no Job controller, so no pods are created and the figures are the
controller's and the API server's alone); the controller runs in this process, as in production.

    P1  JobSet created → all N child Jobs exist: capped (500 QPS / 500 burst, the reference's defaults) and
        uncapped; printed beside the token-bucket bound max(0, N - burst) / qps.
    P2  full restart: one Job is marked Failed → restarts bumped, every Job deleted (Foreground) and re-created:
        wall time and the controller's API calls by verb, beside the bound 2N + 5 calls.

The reference controller does not run here, so there is no measured baseline: the comparisons are *bounds*
(arithmetic the reference obeys at best), labelled so in ``scale_tests/results/bench_jobset.json`` (the common
schema, ``scale_tests/record.py``). Prints JSON. Run:
``.venv/bin/python -m scale_tests.bench_jobset [--sizes 1000,5000,15000] [--quick]``. Never a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from api import constants as c
from cache.client import ApiClient, load_cluster_config, resource_path
from controller.app import Controller
from controller.settings import load_settings
from scale_tests import fixtures, record

RESULTS = Path(__file__).parent / "results"

SIM_PROC = """
import asyncio, sys
import kubesim

async def main(path):
    async with kubesim.SimCluster(nodes=0, with_cluster=False) as sim:
        sim.write_kubeconfig(path)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main(sys.argv[1]))
"""


@contextlib.asynccontextmanager
async def sim_process() -> AsyncIterator[str]:
    with tempfile.TemporaryDirectory(prefix="bench-jobset-") as tmp:
        path = os.path.join(tmp, "kubeconfig")
        proc = subprocess.Popen(
            [sys.executable, "-c", SIM_PROC, path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parent.parent,
        )
        try:
            assert proc.stdout is not None
            line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)
            if line.strip() != "ready":
                raise RuntimeError("simulated cluster did not start")
            yield path
        finally:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def jobset(name: str, replicas: int) -> dict[str, Any]:
    return fixtures.indexed_jobset(name, replicas)


def bound_seconds(n: int, qps: float, burst: int) -> float:
    return max(0.0, (n - burst) / qps)


async def run_one(n: int, qps: float, burst: int, restart: bool) -> dict[str, Any]:
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
            settings = load_settings(
                overrides={
                    "leader_election.leader_elect": False,
                    "client_connection.qps": qps,
                    "client_connection.burst": burst,
                }
            )
            async with ApiClient(config, qps=qps, burst=burst) as client:
                calls: Counter[str] = Counter()
                client.on_request.append(lambda method, code: calls.update([method]))
                ctl = Controller(settings, client)
                stop = asyncio.Event()
                task = asyncio.create_task(ctl.run(stop))
                await ctl.ready.wait()
                reached = asyncio.Event()
                target = {"n": n, "attempt": "0"}

                live: set[str] = set()

                def on_job(old: Any, new: Any) -> None:
                    # Incremental: the names of live Jobs of the awaited attempt (O(1) per event).
                    if old is not None:
                        live.discard(old.metadata.name)
                    if (
                        new is not None
                        and new.metadata.deletion_timestamp is None
                        and new.metadata.labels.get(c.RESTART_ATTEMPT_KEY) == target["attempt"]
                    ):
                        live.add(new.metadata.name)
                    if len(live) >= target["n"]:
                        reached.set()

                for inf in ctl.informers:
                    if inf.name == "jobs":
                        inf.add_handler(on_job)
                calls.clear()
                t0 = time.perf_counter()
                cpu0 = time.process_time()
                await admin.create(resource_path(c.GROUP, c.VERSION, c.PLURAL, "default"), jobset("big", n))
                await asyncio.wait_for(reached.wait(), 600)
                p1 = time.perf_counter() - t0
                p1_cpu = time.process_time() - cpu0
                out: dict[str, Any] = {
                    "n": n,
                    "qps": qps or "uncapped",
                    "p1_create_all_s": round(p1, 2),
                    "p1_controller_cpu_s": round(p1_cpu, 2),
                    "p1_reference_bound_s": round(bound_seconds(n, qps, burst), 2) if qps else None,
                    "p1_create_calls": calls["POST"],
                }
                if restart:
                    await asyncio.sleep(0.5)  # let the status writes of the creation settle
                    calls.clear()
                    target["attempt"] = "1"
                    live.clear()
                    reached.clear()
                    t0 = time.perf_counter()
                    cpu0 = time.process_time()
                    job0 = resource_path("batch", "v1", "jobs", "default", "big-w-0", "status")
                    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                    await admin.patch(
                        job0,
                        {
                            "status": {
                                "startTime": now,
                                "conditions": [
                                    {
                                        "type": "FailureTarget",
                                        "status": "True",
                                        "reason": "BackoffLimitExceeded",
                                        "message": "bench",
                                        "lastTransitionTime": now,
                                    },
                                    {
                                        "type": "Failed",
                                        "status": "True",
                                        "reason": "BackoffLimitExceeded",
                                        "message": "bench",
                                        "lastTransitionTime": now,
                                    },
                                ],
                            }
                        },
                    )
                    await asyncio.wait_for(reached.wait(), 900)
                    out |= {
                        "p2_restart_s": round(time.perf_counter() - t0, 2),
                        "p2_controller_cpu_s": round(time.process_time() - cpu0, 2),
                        "p2_api_calls": dict(calls),
                        "p2_api_calls_total": sum(calls.values()),
                        "p2_bound_calls": 2 * n + 5,
                    }
                if restart:
                    # Complete: every Job of the new attempt reports Complete (as a Job controller would), and
                    # the JobSet must reach terminalState Completed.
                    t0 = time.perf_counter()
                    done_evt = asyncio.Event()

                    def on_jobset(old: Any, new: Any) -> None:
                        if new is not None and new.status.terminal_state == "Completed":
                            done_evt.set()

                    for inf in ctl.informers:
                        if inf.name == "jobsets":
                            inf.add_handler(on_jobset)
                    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                    sem = asyncio.Semaphore(50)

                    async def complete(i: int) -> None:
                        async with sem:
                            await admin.patch(
                                resource_path("batch", "v1", "jobs", "default", f"big-w-{i}", "status"),
                                {
                                    "status": {
                                        "startTime": now,
                                        "completionTime": now,
                                        "succeeded": 1,
                                        "conditions": [
                                            {
                                                "type": "SuccessCriteriaMet",
                                                "status": "True",
                                                "reason": "CompletionsReached",
                                                "lastTransitionTime": now,
                                            },
                                            {
                                                "type": "Complete",
                                                "status": "True",
                                                "reason": "CompletionsReached",
                                                "lastTransitionTime": now,
                                            },
                                        ],
                                    }
                                },
                            )

                    await asyncio.gather(*(complete(i) for i in range(n)))
                    patched = time.perf_counter() - t0
                    await asyncio.wait_for(done_evt.wait(), 600)
                    out |= {
                        "complete_patch_all_jobs_s": round(patched, 2),
                        "complete_jobset_completed_after_s": round(time.perf_counter() - t0, 2),
                    }
                stop.set()
                await task
                return out


async def main_async(sizes: list[int], restart: bool) -> dict[str, Any]:
    results: dict[str, Any] = {"capped_500qps": [], "uncapped": []}
    for n in sizes:
        results["capped_500qps"].append(await run_one(n, 500.0, 500, restart=False))
        results["uncapped"].append(await run_one(n, 0.0, 500, restart=restart))
        print(
            json.dumps({"n": n, "capped": results["capped_500qps"][-1], "uncapped": results["uncapped"][-1]}),
            file=sys.stderr,
        )
    return results


NO_BASELINE = "the reference (Go) controller is not run here; the bound is what it could do at best"


def figures(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for run in results["capped_500qps"]:
        n, bound = run["n"], run["p1_reference_bound_s"]
        out.append(
            record.figure(
                "P1",
                f"JobSet created → all {n:,} Jobs exist, 500 QPS / 500 burst (simulated API server, own process)",
                run["p1_create_all_s"],
                "s",
                target=("<=", round(bound * 1.05, 2)),
                target_text="within 5% of the token-bucket bound",
                baseline_reason=NO_BASELINE,
                bound=(bound, "token bucket: max(0, N - burst) / qps"),
                size=f"N = {n:,}",
            )
        )
    goal_uncapped = {1000: 0.4, 5000: 1.5, 15000: 4.0}
    for run in results["uncapped"]:
        n = run["n"]
        limit = goal_uncapped.get(n)
        out.append(
            record.figure(
                "P1",
                f"JobSet created → all {n:,} Jobs exist, client rate limiter off",
                run["p1_create_all_s"],
                "s",
                target=("<=", limit) if limit is not None else None,
                target_text=f"≤ {limit:g} s at N = {n:,}" if limit is not None else "",
                baseline_reason=NO_BASELINE,
                size=f"N = {n:,}",
                note=f"controller CPU {run['p1_controller_cpu_s']:g} s",
            )
        )
        if "p2_api_calls_total" in run:
            calls = run["p2_api_calls"]
            out.append(
                record.figure(
                    "P2",
                    f"API calls of a full restart of {n:,} Jobs ("
                    + ", ".join(f"{v:,} {k}" for k, v in sorted(calls.items()))
                    + ")",
                    run["p2_api_calls_total"],
                    "calls",
                    target=("<=", run["p2_bound_calls"]),
                    target_text="≤ 2N + 5 calls",
                    baseline_reason=NO_BASELINE,
                    bound=(run["p2_bound_calls"], "2N + 5: one DELETE and one POST per Job, a few status writes"),
                    size=f"N = {n:,}",
                )
            )
            out.append(
                record.figure(
                    "P2",
                    f"full restart of {n:,} Jobs, uncapped: one Job failed → every Job of the new attempt exists",
                    run["p2_restart_s"],
                    "s",
                    target=("<=", 8.0) if n == 15000 else None,
                    target_text="≤ 8 s at N = 15k" if n == 15000 else "",
                    baseline_reason=NO_BASELINE,
                    size=f"N = {n:,}",
                    note=f"controller CPU {run['p2_controller_cpu_s']:g} s; then all Jobs patched Complete in "
                    f"{run['complete_patch_all_jobs_s']:g} s, the JobSet Completed "
                    f"{run['complete_jobset_completed_after_s'] - run['complete_patch_all_jobs_s']:.2f} s after the "
                    "last patch",
                )
            )
    return out


def main() -> None:
    from controller.cli import configure_logging

    configure_logging("warning")
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,5000,15000")
    parser.add_argument("--quick", action="store_true", help="only N=1000")
    parser.add_argument("--no-restart", action="store_true")
    args = parser.parse_args()
    sizes = [1000] if args.quick else [int(s) for s in args.sizes.split(",")]
    load_before = record.load_average()
    results = asyncio.run(main_async(sizes, restart=not args.no_restart))
    doc = record.document(
        "bench_jobset", figures(results), load_before=load_before, workload={"sizes": sizes}, details=results
    )
    record.write(doc, command="python -m scale_tests.bench_jobset --sizes " + ",".join(map(str, sizes)))
    print(json.dumps(doc, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
