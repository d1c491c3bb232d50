"""The in-cluster behaviour of the simulated cluster: nodes, Job controller, scheduler and kubelets.

Hook for the simulated API server (``SimCluster`` calls it once the store exists)::

    runner = await kubesim.cluster.start(store, ClusterOptions(nodes=..., gpus_per_node=..., ...))
    ...
    await runner.stop()

``start`` creates the simulated nodes (``options.nodes``, named ``sim-node-00000`` ...), subscribes to the
store (``Store.subscribe``) and starts the batch/v1 Job controller, the scheduler and the kubelets as asyncio
tasks on the running loop. Everything reads and writes through the store's in-process API, so it behaves the
same whether clients come over HTTP or not. ``options.clock`` injects time (``FakeClock`` in tests); the store
should share it (``Store(clock=options.clock.now)``) so object timestamps and controller time agree.

Modules: ``jobsync``/``jobutil`` (the Job controller's pure decision), ``jobcontroller`` (its I/O),
``schedcore``/``scheduler``, ``kubeletsim``/``kubelet`` (pod and node annotation contract), ``nodes``,
``index`` (the shared view fed by the store), ``events``, ``workqueue``, ``ratelimit``, ``clock``/``timing``,
``testing`` (fake-time harness). Not simulated: scheduler scores other than LeastAllocated, preemption, pod
priority, PersistentVolumes (a scheduled pod's claims are just marked Bound), images, kubelet probes beyond
their initial delay, node leases and heartbeats, eviction grace periods (a failed node fails its pods at once).

Invariants: nothing here imports the controller or the HTTP server (:mod:`kubesim.apiserver`); every write goes
through ``Store`` methods (the apiserver's
semantics apply to our writes too); ``Runner.stop`` cancels every task and timer this package started and
leaves the store's objects in place.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubesim.cluster.clock import Clock, FakeClock, RealClock
from kubesim.cluster.index import ClusterIndex
from kubesim.cluster.jobcontroller import JobController
from kubesim.cluster.jobsync import BackoffSettings
from kubesim.cluster.kubelet import Kubelets
from kubesim.cluster.nodes import NodeShape, make_node
from kubesim.cluster.scheduler import Scheduler
from kubesim.storage.store import Store

JSON = dict[str, Any]

__all__ = ["ClusterOptions", "FakeClock", "RealClock", "Runner", "start"]


@dataclass(frozen=True)
class ClusterOptions:
    """What the simulated cluster contains and how fast it moves.

    ``nodes``: simulated nodes to create at start (0 = none); ``gpus_per_node``: ``nvidia.com/gpu`` capacity
    (0 = no GPU resource); ``nodes_per_pool``: nodes per ``cloud.google.com/gke-nodepool``;
    ``scheduler_pods_per_second``: binding throughput (0 = unthrottled); ``pod_failure_backoff_seconds``:
    the Job controller's base delay before replacing failed pods (Kubernetes: 10 s, doubling to 6 min);
    ``job_sync_batch_seconds``: delay that coalesces pod-triggered Job syncs (Kubernetes: 1 s; 0 = at once);
    ``job_controller_qps``/``job_controller_burst``: the Job controller's client rate limit (Kubernetes
    defaults: 20/30; 0 = unlimited); ``events``: record Events; ``clock``: time source (default: wall clock);
    ``pod_run_seconds``: run time of pods that carry no ``sim.pyjobset.io/`` annotation at all (None: such pods
    run until deleted, the annotation contract's default; ``pyjobset up --pod-run-seconds`` sets it).
    """

    nodes: int = 0
    gpus_per_node: int = 8
    nodes_per_pool: int = 8
    scheduler_pods_per_second: float = 0.0
    pod_failure_backoff_seconds: float = 10.0
    pod_failure_backoff_max_seconds: float = 360.0
    job_workers: int = 4
    job_sync_batch_seconds: float = 0.0
    job_controller_qps: float = 0.0
    job_controller_burst: int = 30
    events: bool = True
    node_shape: NodeShape | None = None
    clock: Clock = field(default_factory=RealClock)
    pod_run_seconds: float | None = None


class Runner:
    """The running in-cluster components; ``await stop()`` ends them."""

    def __init__(self, store: Store, options: ClusterOptions) -> None:
        self.store = store
        self.options = options
        self.clock = options.clock
        self.index = ClusterIndex(store)
        self.jobs = JobController(
            store,
            self.index,
            self.clock,
            workers=options.job_workers,
            backoff=BackoffSettings(options.pod_failure_backoff_seconds, options.pod_failure_backoff_max_seconds),
            events=options.events,
            batch_seconds=options.job_sync_batch_seconds,
            qps=options.job_controller_qps,
            burst=options.job_controller_burst,
        )
        self.scheduler = Scheduler(
            store, self.index, self.clock, pods_per_second=options.scheduler_pods_per_second, events=options.events
        )
        self.kubelets = Kubelets(
            store, self.index, self.clock, events=options.events, default_run_seconds=options.pod_run_seconds
        )
        self._stopped = False

    async def create_nodes(self, count: int, first: int = 0) -> None:
        shape = self.options.node_shape or NodeShape(gpus=self.options.gpus_per_node)
        now = self.clock.now()
        # Bulk path: the store's seed insert (defaults, uid, timestamps, one commit each; no admission or
        # per-object deep copies).
        seed = self.store.seed
        # Bulk creation makes no reference cycles; pausing the cyclic GC avoids repeated full collections
        # over a heap that grows by ~10 objects per node (it roughly halves the time at 65k nodes).
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            await self._create_nodes(count, first, shape, now, seed)
        finally:
            if was_enabled:
                gc.enable()
        if count >= 1000:
            gc.freeze()  # the node indexes live as long as the cluster: keep them out of every full collection

    async def _create_nodes(
        self, count: int, first: int, shape: NodeShape, now: float, seed: Callable[[str, JSON], None]
    ) -> None:
        existing = self.store.bucket(self.store.info("nodes")).objects
        for i in range(first, first + count):
            node = make_node(i, nodes_per_pool=self.options.nodes_per_pool, shape=shape, now=now)
            if ("", node["metadata"]["name"]) not in existing:
                self.index.hint = (("", node["metadata"]["name"]), node)
                try:
                    seed("nodes", node)
                finally:
                    self.index.hint = None
            else:
                await self.store.create("nodes", node)
            if i % 2000 == 1999:
                await asyncio.sleep(0)  # let HTTP clients in while 65k nodes are created

    def idle(self) -> bool:
        """True when no component has queued or in-flight work (timers may still be armed)."""
        return self.jobs.idle() and self.scheduler.idle() and self.kubelets.idle()

    async def settle(self, max_rounds: int = 10_000) -> None:
        """Yield to the loop until every component is idle (tests use this after a change)."""
        for _ in range(max_rounds):
            await asyncio.sleep(0)
            if self.idle():
                await asyncio.sleep(0)
                if self.idle():
                    return
        raise TimeoutError("simulated cluster did not settle")

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.index.stop()
        await self.jobs.stop()
        await self.scheduler.stop()
        await self.kubelets.stop()


async def start(store: Store, options: ClusterOptions | None = None) -> Runner:
    """Create the nodes and start the in-cluster components against ``store``."""
    options = options or ClusterOptions()
    runner = Runner(store, options)
    runner.index.start()
    runner.jobs.start()
    runner.scheduler.start()
    runner.kubelets.start()
    if options.nodes > 0:
        await runner.create_nodes(options.nodes)
    return runner
