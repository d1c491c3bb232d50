"""Kubernetes Events (core/v1) written by the simulated controllers, as the real components record them.

Role: ``EventRecorder.emit(obj, type, reason, message)`` stores one Event about ``obj`` with the component's
``source``/``reportingComponent``. Fire-and-forget: a failure to store an Event is swallowed (the real
broadcaster drops events too) and never fails the caller. Invariant: Event names are
``<object name>.<16 hex digits>`` and unique.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from kubesim.cluster.clock import Clock
from kubesim.storage.store import Store
from kubesim.util.errors import ApiError
from kubesim.util.timefmt import rfc3339

JSON = dict[str, Any]
# One process-wide sequence: Event names sort in recording order across components.
_SEQ = itertools.count(int(time.time() * 1e6) & 0xFFFFFFFFFFFF)


class EventRecorder:
    def __init__(self, store: Store, clock: Clock, component: str, *, enabled: bool = True) -> None:
        self._store = store
        self._clock = clock
        self._component = component
        self._enabled = enabled

    async def emit(self, obj: JSON, etype: str, reason: str, message: str) -> None:
        if not self._enabled:
            return
        md = obj.get("metadata") or {}
        ns = md.get("namespace") or "default"
        ts = rfc3339(self._clock.now())
        involved: JSON = {
            "apiVersion": obj.get("apiVersion", ""),
            "kind": obj.get("kind", ""),
            "namespace": md.get("namespace", ""),
            "name": md.get("name", ""),
            "uid": md.get("uid", ""),
            "resourceVersion": md.get("resourceVersion", ""),
        }
        if not md.get("namespace"):
            del involved["namespace"]
        event: JSON = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{md.get('name', '')}.{next(_SEQ):016x}", "namespace": ns},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": etype,
            "source": {"component": self._component},
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
            "reportingComponent": self._component,
            "reportingInstance": "",
        }
        try:
            await self._store.create("events", event)
        except ApiError:
            return
