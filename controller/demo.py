"""``pyjobset demo``: the simulated cluster, the controller and a sample two-template JobSet in one process.

Role: show a newcomer what pyjobset does with nothing installed: the JobSet's child Jobs and headless Service
appear, pods run on simulated nodes, the JobSet completes, and a summary table is printed. Invariants: the
simulated cluster listens on 127.0.0.1 only and is stopped before returning; the demo ends by itself (Completed,
Failed, or its timeout) and never leaves a task running.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from api import constants as c
from cache.client import ApiClient, load_cluster_config, resource_path
from cache.errors import ApiError
from controller.settings import load_settings

SAMPLE_NAME = "demo"
FAIL_FIRST_ATTEMPT = {
    # Worker job 1 fails during the first attempt only: the JobSet restarts once, from scratch, then completes.
    "sim.pyjobset.io/fail-when": f"{c.RESTART_ATTEMPT_KEY}=0,{c.JOB_INDEX_KEY}=1",
}


def sample_jobset(namespace: str = "default") -> dict[str, Any]:
    """A driver (1 Job, 1 pod) and workers (3 Jobs of 2 pods) whose simulated pods run ~2 s then succeed;
    worker Job 1 fails in the first attempt, so the failure policy restarts the whole JobSet once."""

    def template(parallelism: int, run_seconds: str, extra: dict[str, str] | None = None) -> dict[str, Any]:
        return {
            "spec": {
                "parallelism": parallelism,
                "completions": parallelism,
                "completionMode": "Indexed",
                "backoffLimit": 0,
                "template": {
                    "metadata": {
                        "annotations": {
                            "sim.pyjobset.io/start-seconds": "0.5",
                            "sim.pyjobset.io/run-seconds": run_seconds,
                            **(extra or {}),
                        }
                    },
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "main",
                                "image": "registry.example/trainer:latest",
                                "resources": {"requests": {"cpu": "1", "nvidia.com/gpu": "1"}},
                            }
                        ],
                    },
                },
            }
        }

    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": SAMPLE_NAME, "namespace": namespace},
        "spec": {
            "network": {"enableDNSHostnames": True, "publishNotReadyAddresses": True},
            "successPolicy": {"operator": "All"},
            "failurePolicy": {"maxRestarts": 2},
            "coordinator": {"replicatedJob": "driver", "jobIndex": 0, "podIndex": 0},
            "replicatedJobs": [
                {"name": "driver", "replicas": 1, "template": template(1, "2")},
                {"name": "workers", "replicas": 3, "template": template(2, "2", FAIL_FIRST_ATTEMPT)},
            ],
        },
    }


async def install_crd(client: ApiClient) -> None:
    """Create the JobSet CRD (generated from the records) and wait until the API serves ``jobsets``."""
    from api.crdgen import build_crd

    crd_path = resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    with contextlib.suppress(ApiError):
        await client.create(crd_path, build_crd())
    for _ in range(200):
        try:
            await client.get(resource_path(c.GROUP, c.VERSION, c.PLURAL))
            return
        except ApiError:
            await asyncio.sleep(0.05)
    raise RuntimeError("the simulated cluster did not start serving jobsets")


def _print(msg: str) -> None:
    print(msg, flush=True)


async def _state(client: ApiClient, ns: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    js = await client.get(resource_path(c.GROUP, c.VERSION, c.PLURAL, ns, SAMPLE_NAME))
    sel = {"labelSelector": f"{c.JOBSET_NAME_KEY}={SAMPLE_NAME}"}
    jobs = (await client.get(resource_path("batch", "v1", "jobs", ns), sel))["items"]
    pods = (await client.get(resource_path("", "v1", "pods", ns), sel))["items"]
    return js, jobs, pods


def _summary(js: dict[str, Any], jobs: list[dict[str, Any]], svc: dict[str, Any] | None, elapsed: float) -> str:
    status = js.get("status", {})
    lines = [
        "",
        f"JobSet {js['metadata']['name']}: terminalState={status.get('terminalState') or '-'} "
        f"restarts={status.get('restarts', 0)} in {elapsed:.1f}s",
        f"{'JOB':<22} {'GLOBAL-INDEX':>12} {'COMPLETIONS':>11}  COORDINATOR",
    ]
    for job in sorted(jobs, key=lambda j: j["metadata"]["name"]):
        labels = job["metadata"].get("labels", {})
        done = job.get("status", {}).get("succeeded", 0)
        want = job["spec"].get("completions", 1)
        lines.append(
            f"{job['metadata']['name']:<22} {labels.get(c.JOB_GLOBAL_INDEX_KEY, ''):>12} "
            f"{f'{done}/{want}':>11}  {labels.get(c.COORDINATOR_KEY, '')}"
        )
    if svc is not None:
        lines.append(f"headless Service: {svc['metadata']['name']} (clusterIP {svc['spec'].get('clusterIP')})")
    for cond in status.get("conditions", []):
        lines.append(f"condition {cond['type']}={cond['status']} reason={cond.get('reason', '')}")
    return "\n".join(lines)


async def run_demo(stop: asyncio.Event, *, nodes: int = 8, limit_seconds: float = 120.0) -> int:
    import kubesim
    from controller.app import run_controller

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pyjobset-demo-") as tmp:
        kubeconfig = str(Path(tmp) / "kubeconfig")
        async with kubesim.SimCluster(nodes=nodes) as sim:
            sim.write_kubeconfig(kubeconfig)
            _print(f"simulated cluster serving at {sim.url} with {nodes} nodes")
            config = await load_cluster_config(kubeconfig)
            settings = load_settings(
                overrides={
                    "leader_election.leader_elect": False,
                    "metrics.bind_address": "0",
                    "health.health_probe_bind_address": "0",
                }
            )
            async with ApiClient(config) as client:
                await install_crd(client)
                _print("installed CRD jobsets.jobset.x-k8s.io")
                ctl_stop = asyncio.Event()
                ctl = asyncio.create_task(run_controller(settings, config, ctl_stop, webhooks=False))
                try:
                    return await _drive(client, stop, started, limit_seconds)
                finally:
                    ctl_stop.set()
                    await ctl


async def _drive(client: ApiClient, stop: asyncio.Event, started: float, limit_seconds: float) -> int:
    ns = "default"
    await client.create(resource_path(c.GROUP, c.VERSION, c.PLURAL, ns), sample_jobset(ns))
    _print(
        f"created JobSet {SAMPLE_NAME}: driver x1 (1 pod) + workers x3 (2 pods each); "
        "workers-1 fails in attempt 0, so expect one restart"
    )
    last = ""
    while not stop.is_set():
        js, jobs, pods = await _state(client, ns)
        phases: dict[str, int] = {}
        for pod in pods:
            phase = pod.get("status", {}).get("phase", "Pending")
            phases[phase] = phases.get(phase, 0) + 1
        terminal = js.get("status", {}).get("terminalState", "")
        restarts = js.get("status", {}).get("restarts", 0)
        line = (
            f"jobs={len(jobs)}/4 pods={dict(sorted(phases.items()))} restarts={restarts} "
            f"terminalState={terminal or '-'}"
        )
        if line != last:
            _print(f"[{time.monotonic() - started:5.1f}s] {line}")
            last = line
        if terminal or time.monotonic() - started > limit_seconds:
            svc = None
            with contextlib.suppress(ApiError):
                svc = await client.get(resource_path("", "v1", "services", ns, SAMPLE_NAME))
            _print(_summary(js, jobs, svc, time.monotonic() - started))
            if terminal == "Completed":
                return 0
            print(f"demo: JobSet ended as {terminal or 'still running at the timeout'}", file=sys.stderr)
            return 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)
    return 130
