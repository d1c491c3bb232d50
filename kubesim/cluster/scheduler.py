"""The simulated kube-scheduler: binds pending pods to nodes at a configurable rate.

A pod is pending for us when it has no ``spec.nodeName``, no ``schedulingGates``, ``schedulerName`` unset or
``default-scheduler``, and is neither terminal nor being deleted. Pods are taken FIFO; each placement is
``SchedulerState.place``; success binds through ``Store.bind`` (which sets PodScheduled=True) and records a
``Scheduled`` Event; failure sets PodScheduled=False reason ``Unschedulable`` with the real scheduler's
"0/N nodes are available: ..." message, records ``FailedScheduling``, and parks the pod until the cluster
changes (a pod leaves a node, a node changes), retrying at most once a second per change.

Claims: a scheduled pod's PersistentVolumeClaims are marked Bound (simplified volume binding).

Throughput: ``pods_per_second`` > 0 spaces bindings by ``1/pods_per_second`` on the injected clock; 0 means
unthrottled. Invariant: occupancy in ``SchedulerState`` follows committed pod states only (the index handler),
never our intentions, so a failed bind leaves no trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from kubesim.cluster.clock import Clock, Timer
from kubesim.cluster.events import EventRecorder
from kubesim.cluster.index import ClusterIndex, Key
from kubesim.cluster.schedcore import SchedulerState
from kubesim.cluster.timing import wait_until
from kubesim.storage.store import Store
from kubesim.util.errors import ApiError
from kubesim.util.timefmt import rfc3339

JSON = dict[str, Any]
log = logging.getLogger("kubesim.cluster.scheduler")
RETRY_DELAY = 1.0


def wants_scheduling(pod: JSON) -> bool:
    spec = pod.get("spec") or {}
    if spec.get("nodeName") or spec.get("schedulingGates"):
        return False
    if spec.get("schedulerName") not in (None, "", "default-scheduler"):
        return False
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def occupies_node(pod: JSON) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName")) and (pod.get("status") or {}).get("phase") not in (
        "Succeeded",
        "Failed",
    )


class Scheduler:
    def __init__(
        self, store: Store, index: ClusterIndex, clock: Clock, *, pods_per_second: float = 0.0, events: bool = True
    ) -> None:
        self.store = store
        self.clock = clock
        self.state = SchedulerState()
        self.rate = pods_per_second
        self.recorder = EventRecorder(store, clock, "default-scheduler", enabled=events)
        self._queue: deque[Key] = deque()
        self._queued: set[Key] = set()
        self._parked: set[Key] = set()
        self._wakeup = asyncio.Event()
        self._retry_timer: Timer | None = None
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self._sleeping = False
        self.bound = 0
        index.handlers.append(self._on_change)

    # ------------------------------------------------------------------ event handlers

    def _on_change(self, kind: str, key: Key, obj: JSON, deleted: bool) -> None:
        if kind == "pods":
            if deleted or not occupies_node(obj):
                if key in self.state.placed:
                    self.state.remove_pod(key)
                    self._retry_soon()
            else:
                self.state.add_pod(key, obj)
            if deleted or not wants_scheduling(obj):
                self._parked.discard(key)
            elif key not in self._parked:
                self._enqueue(key)
        elif kind == "nodes":
            if deleted:
                self.state.remove_node(key[1])
            else:
                self.state.upsert_node(obj)
                self._retry_soon()
        elif kind == "namespaces":
            if deleted:
                self.state.ns_labels.pop(key[1], None)
            else:
                self.state.ns_labels[key[1]] = dict((obj.get("metadata") or {}).get("labels") or {})

    def _enqueue(self, key: Key) -> None:
        if key not in self._queued:
            self._queued.add(key)
            self._queue.append(key)
            self._wakeup.set()

    def _retry_soon(self) -> None:
        if self._parked and self._retry_timer is None:
            self._retry_timer = self.clock.call_at(self.clock.now() + RETRY_DELAY, self._flush_parked)

    def _flush_parked(self) -> None:
        self._retry_timer = None
        parked, self._parked = self._parked, set()
        for key in sorted(parked):
            self._enqueue(key)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._retry_timer is not None:
            self._retry_timer.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def idle(self) -> bool:
        """No work possible without time passing (an empty queue, or waiting for the next binding slot)."""
        return (not self._queue or self._sleeping) and not self._busy

    async def _loop(self) -> None:
        next_at = self.clock.now()
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            if self.rate > 0 and self.clock.now() < next_at:
                self._sleeping = True
                try:
                    await wait_until(self.clock, next_at)
                finally:
                    self._sleeping = False
            key = self._queue.popleft()
            self._queued.discard(key)
            self._busy = True
            try:
                bound = await self._schedule(key)
            except Exception:  # a bug with one pod must not stop the scheduler
                log.exception("scheduling failed", extra={"key": key})
                self._parked.add(key)
                bound = False
            finally:
                self._busy = False
            if bound and self.rate > 0:
                next_at = max(next_at + 1.0 / self.rate, self.clock.now() - 1.0)

    async def _schedule(self, key: Key) -> bool:
        pod = self.store.get_nowait("pods", key[1], key[0])
        if pod is None or not wants_scheduling(pod):
            return False
        # The "0/N nodes are available" text costs a scan of every node: compute it only when the pod does not
        # already say why it is unschedulable (retries of a parked pod rarely change the answer).
        explain = not any(
            c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable"
            for c in (pod.get("status") or {}).get("conditions") or []
        )
        node, message = self.state.place(pod, explain=explain)
        if node is None:
            self._parked.add(key)
            if explain:
                await self._mark_unschedulable(pod, message)
            return False
        try:
            bound = await self.store.bind(key[1], key[0], node)
            if not any(
                c.get("type") == "PodScheduled" and c.get("status") == "True"
                for c in (bound.get("status") or {}).get("conditions") or []
            ):
                # The binding subresource should set PodScheduled=True itself; make sure it is there.
                await self._set_scheduled(bound)
        except ApiError:
            return False
        self.bound += 1
        await self.recorder.emit(pod, "Normal", "Scheduled", f"Successfully assigned {key[0]}/{key[1]} to {node}")
        await self._bind_claims(pod)
        return True

    async def _bind_claims(self, pod: JSON) -> None:
        """Volume binding, simplified: the pod's PersistentVolumeClaims turn Bound when it is scheduled.

        (There are no PersistentVolumes; the claim reports what it asked for, as a dynamically provisioned
        claim would.)
        """
        ns = pod["metadata"].get("namespace", "default")
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            name = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            claim = self.store.get_nowait("persistentvolumeclaims", name, ns) if name else None
            if claim is None or (claim.get("status") or {}).get("phase") == "Bound":
                continue
            spec = claim.get("spec") or {}
            status = {
                "phase": "Bound",
                "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
                "capacity": dict((spec.get("resources") or {}).get("requests") or {}),
            }
            try:
                await self.store.update_status(
                    "persistentvolumeclaims", dict(claim, status=status), ns, field_manager="kube-controller-manager"
                )
            except ApiError:
                continue

    async def _set_scheduled(self, pod: JSON) -> None:
        new = dict(pod, status=dict(pod.get("status") or {}))
        st = new.setdefault("status", {})
        kept = [c for c in st.get("conditions") or [] if c.get("type") != "PodScheduled"]
        kept.append(
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": rfc3339(self.clock.now()),
            }
        )
        st["conditions"] = kept
        await self.store.update_status("pods", new, pod["metadata"].get("namespace"), field_manager="kube-scheduler")

    async def _mark_unschedulable(self, pod: JSON, message: str) -> None:
        conds = (pod.get("status") or {}).get("conditions") or []
        for cond in conds:
            if (
                cond.get("type") == "PodScheduled"
                and cond.get("status") == "False"
                and cond.get("reason") == "Unschedulable"
                and cond.get("message") == message
            ):
                return
        new = dict(pod, status=dict(pod.get("status") or {}))
        st = new.setdefault("status", {})
        st["phase"] = st.get("phase") or "Pending"
        kept = [c for c in st.get("conditions") or [] if c.get("type") != "PodScheduled"]
        kept.append(
            {
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": rfc3339(self.clock.now()),
                "reason": "Unschedulable",
                "message": message,
            }
        )
        st["conditions"] = kept
        try:
            await self.store.update_status(
                "pods", new, pod["metadata"].get("namespace"), field_manager="kube-scheduler"
            )
        except ApiError:
            return
        await self.recorder.emit(pod, "Warning", "FailedScheduling", message)
