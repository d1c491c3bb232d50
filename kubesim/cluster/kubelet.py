"""The simulated kubelets of every node, plus the node lifecycle part that reacts to the fail annotation.

For each bound pod, ``kubeletsim.decide`` gives the next status and the next wake-up; this module writes the
status (``update_status`` with the read resourceVersion; a 409 just retries) and arms one timer per pod on the
injected clock. A pod that is terminal and being deleted gets the kubelet's final ``DELETE`` with grace 0.
Pods bound to a node that does not exist (deleted, or never there) are failed with DisruptionTarget and
deleted, as PodGC does.

Nodes: when ``sim.pyjobset.io/fail`` appears or disappears, the node's Ready condition and not-ready taints
are rewritten (``nodes.desired_node``) and every pod on the node is re-evaluated (pods on a failed node fail
with DisruptionTarget).

Events as the kubelet records them: Pulled, Created, Started when containers start; Killing when a deleted
pod's containers are stopped; and as the node lifecycle controller does: NodeNotReady / NodeReady on the
node, TaintManagerEviction on pods failed by a failed node.

A cluster-wide ``default_run_seconds`` (``ClusterOptions.pod_run_seconds``) is given to pods that carry no
``sim.pyjobset.io/`` annotation at all, as if they had ``run-seconds`` set: it is applied to the copy handed
to ``decide`` only, so the stored pod is never changed.

Invariant: at most one armed timer per pod; timers only enqueue keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from kubesim.cluster.clock import Clock, Timer
from kubesim.cluster.events import EventRecorder
from kubesim.cluster.index import ClusterIndex, Key
from kubesim.cluster.kubeletsim import RUN_SECONDS, decide
from kubesim.cluster.nodes import desired_node, node_failed, node_ready
from kubesim.cluster.workqueue import WorkQueue, run_worker
from kubesim.storage.store import Store
from kubesim.util.errors import ApiError

JSON = dict[str, Any]
log = logging.getLogger("kubesim.cluster.kubelet")
NODE_MANAGER = "kube-controller-manager"
SIM_PREFIX = "sim.pyjobset.io/"


def with_default_run(pod: JSON, seconds: float | None) -> JSON:
    """``pod`` itself, or (no ``sim.pyjobset.io/`` annotation and a default set) a shallow copy that runs for
    ``seconds``."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if seconds is None or any(k.startswith(SIM_PREFIX) for k in annotations):
        return pod
    meta = dict(pod.get("metadata") or {}, annotations={**annotations, RUN_SECONDS: f"{seconds:g}"})
    return dict(pod, metadata=meta)


class Kubelets:
    def __init__(
        self,
        store: Store,
        index: ClusterIndex,
        clock: Clock,
        *,
        workers: int = 2,
        events: bool = True,
        default_run_seconds: float | None = None,
    ) -> None:
        self.store = store
        self.default_run_seconds = default_run_seconds
        self.recorder = EventRecorder(store, clock, "kubelet", enabled=events)
        self.node_recorder = EventRecorder(store, clock, "node-controller", enabled=events)
        self.index = index
        self.clock = clock
        self.pods: WorkQueue[Key] = WorkQueue(clock)
        self.nodes: WorkQueue[str] = WorkQueue(clock)
        self._timers: dict[Key, tuple[float, Timer]] = {}
        self._failed_nodes: set[str] = set()
        self._node_ips: dict[str, str] = {}
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        index.handlers.append(self._on_change)

    def _on_change(self, kind: str, key: Key, obj: JSON, deleted: bool) -> None:
        if kind == "pods":
            if deleted:
                timer = self._timers.pop(key, None)
                if timer is not None:
                    timer[1].cancel()
            elif (obj.get("spec") or {}).get("nodeName"):
                self.pods.add(key)
        elif kind == "nodes":
            name = key[1]
            if deleted:
                self._failed_nodes.discard(name)
                self._node_ips.pop(name, None)
                for pkey in self.index.pods_by_node.get(name, ()):
                    self.pods.add(pkey)  # PodGC: pods of a vanished node fail and go
                return
            self._node_ips.setdefault(name, "")
            for addr in (obj.get("status") or {}).get("addresses") or []:
                if addr.get("type") == "InternalIP":
                    self._node_ips[name] = addr.get("address", "")
            failed = node_failed(obj)
            was = name in self._failed_nodes
            if failed:
                self._failed_nodes.add(name)
            else:
                self._failed_nodes.discard(name)
            if failed != was or desired_node(obj, self.clock.now()) is not None:
                self.nodes.add(name)
                for pkey in self.index.pods_by_node.get(name, ()):
                    self.pods.add(pkey)

    def start(self) -> None:
        for _ in range(self._workers):
            self._tasks.append(asyncio.create_task(self._run_pods()))
        self._tasks.append(asyncio.create_task(self._run_nodes()))

    async def stop(self) -> None:
        self.pods.shutdown()
        self.nodes.shutdown()
        for _, timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def idle(self) -> bool:
        return self.pods.idle() and self.nodes.idle()

    async def _run_pods(self) -> None:
        await run_worker(self.pods, self.sync_pod, "pod", log)

    async def _run_nodes(self) -> None:
        await run_worker(self.nodes, self.sync_node, "node", log, forget=False)

    async def sync_node(self, name: str) -> None:
        node = self.store.get_nowait("nodes", name)
        if node is None:
            return
        want = desired_node(node, self.clock.now())
        if want is None:
            return
        if (want.get("spec") or {}) != (node.get("spec") or {}):
            node = await self.store.update("nodes", dict(node, spec=want.get("spec", {})), field_manager=NODE_MANAGER)
        written = await self.store.update_status("nodes", dict(node, status=want["status"]), field_manager=NODE_MANAGER)
        state = "NodeReady" if node_ready(written) else "NodeNotReady"
        await self.node_recorder.emit(written, "Normal", state, f"Node {name} status is now: {state}")

    async def sync_pod(self, key: Key) -> None:
        pod = self.store.get_nowait("pods", key[1], key[0])
        if pod is None:
            return
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            return
        meta = pod["metadata"]
        phase = (pod.get("status") or {}).get("phase")
        if meta.get("deletionTimestamp") and phase in ("Succeeded", "Failed"):
            with contextlib.suppress(ApiError):
                await self.store.delete("pods", key[1], key[0], grace_period_seconds=0)
            return
        node_gone = node not in self._node_ips
        decision = decide(
            with_default_run(pod, self.default_run_seconds),
            node_failed=node in self._failed_nodes,
            now=self.clock.now(),
            host_ip=self._node_ips.get(node, ""),
            node_gone=node_gone,
        )
        if decision.status is not None:
            before = pod.get("status") or {}
            new = dict(pod, status=decision.status)  # ``pod`` is our own fresh copy from get_nowait
            written = await self.store.update_status("pods", new, key[0], field_manager="kubelet")
            await self._record(written, before, decision.status)
            if node in self._failed_nodes and before.get("phase") not in ("Succeeded", "Failed"):
                await self.node_recorder.emit(
                    written, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {key[0]}/{key[1]}"
                )
            if (node_gone or written["metadata"].get("deletionTimestamp")) and decision.status.get("phase") in (
                "Succeeded",
                "Failed",
            ):
                with contextlib.suppress(ApiError):
                    await self.store.delete("pods", key[1], key[0], grace_period_seconds=0)
        self._arm(key, decision.wake_at)

    async def _record(self, pod: JSON, before: JSON, after: JSON) -> None:
        """The kubelet's container Events for a status transition (image present, created, started, killed)."""
        old = {c.get("name"): c for c in before.get("containerStatuses") or []}
        deleting = bool(pod["metadata"].get("deletionTimestamp"))
        for cs in after.get("containerStatuses") or []:
            name = cs.get("name", "")
            was = (old.get(name) or {}).get("state") or {}
            now = cs.get("state") or {}
            if "running" in now and "running" not in was:
                image = next(
                    (c.get("image", "") for c in pod["spec"].get("containers") or [] if c.get("name") == name), ""
                )
                await self.recorder.emit(
                    pod, "Normal", "Pulled", f'Container image "{image}" already present on machine'
                )
                await self.recorder.emit(pod, "Normal", "Created", f"Created container: {name}")
                await self.recorder.emit(pod, "Normal", "Started", f"Started container {name}")
            elif "terminated" in now and "running" in was and deleting:
                await self.recorder.emit(pod, "Normal", "Killing", f"Stopping container {name}")

    def _arm(self, key: Key, when: float | None) -> None:
        current = self._timers.get(key)
        if current is not None:
            if when is not None and current[0] == when:
                return
            current[1].cancel()
            del self._timers[key]
        if when is None:
            return

        def fire() -> None:
            self._timers.pop(key, None)
            self.pods.add(key)

        self._timers[key] = (when, self.clock.call_at(when, fire))
