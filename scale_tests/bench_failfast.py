"""Fail-fast benchmark (docs/design/extensions.md): recovery time of a JobSet whose pods need 60 s to terminate,
with and without ``pyjobset.io/fail-fast``.

Workload: one JobSet, one replicated job of N Jobs with 2 pods each (``backoffLimit: 0``, ``maxRestarts: 5``);
every pod carries ``sim.pyjobset.io/termination-seconds`` (and a matching ``terminationGracePeriodSeconds``), so
a deleted pod keeps running that long. The simulated cluster (API server, Job controller, scheduler, kubelets)
runs in its own process, the controller in this one, as in production.

Once every Job is ready, one pod of Job 0 exits with code 1. The Job controller marks that Job ``FailureTarget``
at once and deletes its other pod, which terminates for T seconds before the Job turns ``Failed``. Without
fail-fast the JobSet restarts only then; with it, at ``FailureTarget``. Either way the restart deletes every Job
(foreground: their pods terminate for T seconds) before the new attempt is created. Measured from the pod's
failure: ``restart_decided_s`` (status.restarts turns 1) and ``recovered_s`` (every Job of attempt 1 ready), plus
the controller's own ``recoveredSeconds`` from ``pyjobset.io/restart-history``. Expected: about 2T without
fail-fast, T with it.

Prints JSON and writes ``scale_tests/results/bench_failfast.json``. Run:
``.venv/bin/python -m scale_tests.bench_failfast [--jobs 500] [--termination 60]``. Never a pass/fail test.
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
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from api import constants as c
from api import extensions as x
from api.jobset_types import JobSet
from cache.client import ApiClient, load_cluster_config, resource_path
from controller.app import Controller
from controller.settings import load_settings

RESULTS = Path(__file__).parent / "results"

SIM_PROC = """
import asyncio, sys
import kubesim

async def main(path, nodes):
    async with kubesim.SimCluster(nodes=nodes) as sim:
        sim.write_kubeconfig(path)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


@contextlib.asynccontextmanager
async def sim_process(nodes: int) -> AsyncIterator[str]:
    with tempfile.TemporaryDirectory(prefix="bench-failfast-") as tmp:
        path = os.path.join(tmp, "kubeconfig")
        proc = subprocess.Popen(
            [sys.executable, "-c", SIM_PROC, path, str(nodes)],
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
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def jobset(n: int, termination: int, *, fail_fast: bool) -> dict[str, Any]:
    annotations = {x.FAIL_FAST: "true"} if fail_fast else {}
    pod = {
        "metadata": {"annotations": {"sim.pyjobset.io/termination-seconds": str(termination)}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": termination,
            "containers": [{"name": "main", "image": "trainer"}],
        },
    }
    job_spec = {"parallelism": 2, "completions": 2, "completionMode": "Indexed", "backoffLimit": 0, "template": pod}
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": "big", "namespace": "default", "annotations": annotations},
        "spec": {
            "network": {"enableDNSHostnames": True},
            "successPolicy": {"operator": "All"},
            "failurePolicy": {"maxRestarts": 5},
            "replicatedJobs": [{"name": "w", "replicas": n, "template": {"spec": job_spec}}],
        },
    }


def _ready(js: JobSet, n: int, restarts: int) -> bool:
    if js.status.restarts != restarts:
        return False
    return sum(s.ready for s in js.status.replicated_jobs_status) == n


async def run_one(n: int, termination: int, *, fail_fast: bool) -> dict[str, Any]:
    async with sim_process(nodes=max(4, n // 50)) as kubeconfig:
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
            async with ApiClient(config) as client:
                ctl = Controller(settings, client)
                stop = asyncio.Event()
                task = asyncio.create_task(ctl.run(stop))
                await ctl.ready.wait()
                waiters: list[tuple[Callable[[JobSet], bool], asyncio.Event]] = []

                def on_jobset(_old: Any, new: JobSet | None) -> None:
                    if new is None:
                        return
                    for predicate, event in waiters:
                        if predicate(new):
                            event.set()

                for inf in ctl.informers:
                    if inf.name == "jobsets":
                        inf.add_handler(on_jobset)

                async def until(predicate: Callable[[JobSet], bool], limit: float) -> None:
                    event = asyncio.Event()
                    waiters.append((predicate, event))
                    await asyncio.wait_for(event.wait(), limit)

                t_create = time.perf_counter()
                await admin.create(
                    resource_path(c.GROUP, c.VERSION, c.PLURAL, "default"), jobset(n, termination, fail_fast=fail_fast)
                )
                await until(lambda js: _ready(js, n, 0), 1800)
                startup = time.perf_counter() - t_create

                decided = asyncio.create_task(until(lambda js: js.status.restarts >= 1, 1800))
                recovered = asyncio.create_task(until(lambda js: _ready(js, n, 1), 3600))
                pods = await admin.get(
                    resource_path("", "v1", "pods", "default"),
                    {"labelSelector": "batch.kubernetes.io/job-name=big-w-0"},
                )
                victim = pods["items"][0]["metadata"]["name"]
                t0 = time.perf_counter()
                await admin.patch(
                    resource_path("", "v1", "pods", "default", victim),
                    {"metadata": {"annotations": {"sim.pyjobset.io/exit-now": "1"}}},
                )
                await decided
                t_decided = time.perf_counter() - t0
                await recovered
                t_recovered = time.perf_counter() - t0
                history: list[dict[str, Any]] = []
                for _ in range(100):  # the annotation patch follows the status write that ended the episode
                    js = await admin.get(resource_path(c.GROUP, c.VERSION, c.PLURAL, "default", "big"))
                    history = json.loads((js["metadata"].get("annotations") or {}).get(x.RESTART_HISTORY, "[]"))
                    if history and "recoveredSeconds" in history[-1]:
                        break
                    await asyncio.sleep(0.1)
                stop.set()
                await task
    return {
        "jobs": n,
        "pods": 2 * n,
        "termination_seconds": termination,
        "fail_fast": fail_fast,
        "startup_s": round(startup, 1),
        "restart_decided_s": round(t_decided, 1),
        "recovered_s": round(t_recovered, 1),
        "controller_recoveredSeconds": history[-1].get("recoveredSeconds") if history else None,
        "root_cause": {k: history[-1].get(k) for k in ("job", "pod", "exitCode", "reason")} if history else None,
    }


async def main_async(n: int, termination: int) -> dict[str, Any]:
    runs = [await run_one(n, termination, fail_fast=flag) for flag in (False, True)]
    without, with_ = runs
    return {
        "benchmark": "fail-fast recovery",
        "runs": runs,
        "gain_s": round(without["recovered_s"] - with_["recovered_s"], 1),
        "gain_pct": round(100 * (1 - with_["recovered_s"] / without["recovered_s"]), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--termination", type=int, default=60)
    args = parser.parse_args()
    result = asyncio.run(main_async(args.jobs, args.termination))
    text = json.dumps(result, indent=2)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_failfast.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
