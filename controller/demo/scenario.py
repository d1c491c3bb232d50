"""What the demo runs: the classic sample JobSet, or a what-if fleet of JobSets competing for a GPU cluster.

Role: the demo's options (:class:`DemoOptions`, checked by :meth:`DemoOptions.problems` with one message per bad
flag naming the fix) and the JobSets it creates. With no scenario flag the demo is the classic five-second tour:
one JobSet (a driver and three worker Jobs) whose worker 1 fails in the first attempt. ``--jobsets``,
``--jobset-size`` or ``--fail-at`` turn it into a fleet: ``K`` JobSets ``train-<i>``, each of ``size`` one-pod
Jobs asking for a whole node's GPUs, so together they fill the cluster and queue behind each other; at
``--fail-at`` seconds a node under a running pod fails, and the failure policy restarts the JobSet it hit.

Invariants: pure builders (no I/O); every JobSet is valid for the JobSet webhook and the CRD schema; simulated
pods say what they do through ``sim.pyjobset.io/`` annotations only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from api import constants as c

SAMPLE_NAME = "demo"
FLEET_PREFIX = "train-"
FAIL_FIRST_ATTEMPT = {
    # Worker job 1 fails during the first attempt only: the JobSet restarts once, from scratch, then completes.
    "sim.pyjobset.io/fail-when": f"{c.RESTART_ATTEMPT_KEY}=0,{c.JOB_INDEX_KEY}=1",
}


@dataclass(frozen=True)
class DemoOptions:
    """The demo's flags (``pyjobset demo --help``); ``None`` means "not given"."""

    nodes: int = 8
    gpus_per_node: int = 8
    jobsets: int | None = None
    jobset_size: int | None = None
    pod_run_seconds: float | None = None
    fail_at: float | None = None
    plot: str | None = None
    timeout: float = 120.0

    @property
    def fleet(self) -> bool:
        """A what-if fleet rather than the classic sample (any scenario flag given)."""
        return self.jobsets is not None or self.jobset_size is not None or self.fail_at is not None

    @property
    def fleet_jobsets(self) -> int:
        return self.jobsets if self.jobsets is not None else 3

    @property
    def fleet_size(self) -> int:
        """Pods (one-pod Jobs, a whole node each) per JobSet: by default an even share of the nodes."""
        if self.jobset_size is not None:
            return self.jobset_size
        return max(1, math.ceil(self.nodes / self.fleet_jobsets))

    @property
    def run_seconds(self) -> float:
        if self.pod_run_seconds is not None:
            return self.pod_run_seconds
        return 2.0 if not self.fleet else max(5.0, (self.fail_at or 0.0) + 4.0)

    def problems(self) -> list[str]:
        """One line per bad flag, saying what is wrong and what to pass instead."""
        out: list[str] = []
        if self.nodes < 1:
            out.append(f"--nodes {self.nodes}: need at least 1 node")
        if self.gpus_per_node < 1:
            out.append(f"--gpus-per-node {self.gpus_per_node}: need at least 1 GPU per node")
        if self.jobsets is not None and not 1 <= self.jobsets <= 1000:
            out.append(f"--jobsets {self.jobsets}: pass a number of JobSets from 1 to 1000")
        if self.jobset_size is not None and not 1 <= self.jobset_size <= 10_000:
            out.append(f"--jobset-size {self.jobset_size}: pass a number of pods per JobSet from 1 to 10000")
        if self.pod_run_seconds is not None and not 0 <= self.pod_run_seconds <= 3600:
            out.append(f"--pod-run-seconds {self.pod_run_seconds:g}: pass seconds from 0 to 3600")
        if self.fail_at is not None and self.fail_at < 0:
            out.append(f"--fail-at {self.fail_at:g}: pass seconds after the start, 0 or more")
        if self.timeout <= 0:
            out.append(f"--timeout {self.timeout:g}: pass a positive number of seconds")
        if self.plot is not None and not self.plot.lower().endswith(".png"):
            out.append(f"--plot {self.plot}: the timeline is a PNG; pass a path ending in .png")
        return out


def _pod_template(run_seconds: float, requests: dict[str, str], extra: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "annotations": {
                "sim.pyjobset.io/start-seconds": "0.5",
                "sim.pyjobset.io/run-seconds": f"{run_seconds:g}",
                **(extra or {}),
            }
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "main", "image": "registry.example/trainer:latest", "resources": {"requests": requests}}
            ],
        },
    }


def _job_template(parallelism: int, pod: dict[str, Any]) -> dict[str, Any]:
    spec = {"parallelism": parallelism, "completions": parallelism, "completionMode": "Indexed", "backoffLimit": 0}
    return {"spec": {**spec, "template": pod}}


def sample_jobset(namespace: str = "default", run_seconds: float = 2.0) -> dict[str, Any]:
    """A driver (1 Job, 1 pod) and workers (3 Jobs of 2 pods) whose simulated pods run ~2 s then succeed;
    worker Job 1 fails in the first attempt, so the failure policy restarts the whole JobSet once."""
    gpu = {"cpu": "1", "nvidia.com/gpu": "1"}
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
                {"name": "driver", "replicas": 1, "template": _job_template(1, _pod_template(run_seconds, gpu))},
                {
                    "name": "workers",
                    "replicas": 3,
                    "template": _job_template(2, _pod_template(run_seconds, gpu, FAIL_FIRST_ATTEMPT)),
                },
            ],
        },
    }


def fleet_jobset(index: int, options: DemoOptions, namespace: str = "default") -> dict[str, Any]:
    """JobSet ``train-<index>``: ``fleet_size`` one-pod Jobs, each pod asking for a whole node's GPUs."""
    requests = {"cpu": "1", "nvidia.com/gpu": str(options.gpus_per_node)}
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": f"{FLEET_PREFIX}{index}", "namespace": namespace},
        "spec": {
            "successPolicy": {"operator": "All"},
            "failurePolicy": {"maxRestarts": 3},
            "replicatedJobs": [
                {
                    "name": "workers",
                    "replicas": options.fleet_size,
                    "template": _job_template(1, _pod_template(options.run_seconds, requests)),
                }
            ],
        },
    }


def jobsets_for(options: DemoOptions, namespace: str = "default") -> list[dict[str, Any]]:
    """The JobSets the demo creates for these options."""
    if not options.fleet:
        return [sample_jobset(namespace, options.run_seconds)]
    return [fleet_jobset(i, options, namespace) for i in range(options.fleet_jobsets)]


def describe(options: DemoOptions) -> str:
    """One line saying what was created and what to expect."""
    if not options.fleet:
        return (
            f"created JobSet {SAMPLE_NAME}: driver x1 (1 pod) + workers x3 (2 pods each); "
            "workers-1 fails in attempt 0, so expect one restart"
        )
    k, size = options.fleet_jobsets, options.fleet_size
    want, have = k * size, options.nodes
    line = (
        f"created {k} JobSet(s) {FLEET_PREFIX}0..{FLEET_PREFIX}{k - 1}: {size} pods each x "
        f"{options.gpus_per_node} GPUs ({want} pods for {have} nodes), pods run {options.run_seconds:g}s"
    )
    if options.fail_at is not None:
        line += f"; a node fails at {options.fail_at:g}s"
    return line
