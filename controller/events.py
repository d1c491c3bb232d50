"""Event recorder: ``events.k8s.io/v1`` Events about JobSets, with repeated events aggregated into a series.

Role: the only writer of Events. The first occurrence of an (object, type, reason, note) creates an Event; an
identical one later bumps ``series.count`` and ``series.lastObservedTime`` on that same Event (the integration
suite of the reference relies on this for ``JobCreationFailed``).

Invariants: recording never raises into the reconciler (an Event is best-effort, as in client-go); action is
``Reconciling`` and the reporting controller ``jobset``, as the reference writes them; the series cache is
bounded (oldest entries are dropped first).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
from collections import OrderedDict
from typing import Any

import structlog

from api.jobset_types import JobSet
from api.timefmt import format_micro_time
from cache.client import MERGE_PATCH, ApiClient, resource_path
from cache.errors import ApiError, NotFound

log = structlog.get_logger("pyjobset.events")

REPORTING_CONTROLLER = "jobset"
ACTION = "Reconciling"


def regarding(js: JobSet) -> dict[str, Any]:
    return {
        "apiVersion": js.api_version,
        "kind": js.kind,
        "name": js.metadata.name,
        "namespace": js.metadata.namespace,
        "uid": js.metadata.uid,
        "resourceVersion": js.metadata.resource_version,
    }


class EventRecorder:
    def __init__(self, client: ApiClient, *, instance: str | None = None, max_series: int = 4096) -> None:
        self.client = client
        self.instance = instance or f"{REPORTING_CONTROLLER}-{os.environ.get('POD_NAME') or socket.gethostname()}"
        self._series: OrderedDict[tuple[str, str, str, str], tuple[str, Any, int]] = OrderedDict()
        self._max_series = max_series
        self.recorded = 0

    async def record(self, js: JobSet, etype: str, reason: str, note: str) -> None:
        now = dt.datetime.now(dt.UTC)
        key = (js.metadata.uid, etype, reason, note)
        ns = js.metadata.namespace
        try:
            hit = self._series.get(key)
            if hit is not None:
                name, _first, count = hit
                count += 1
                try:
                    await self.client.patch(
                        resource_path("events.k8s.io", "v1", "events", ns, name),
                        {"series": {"count": count, "lastObservedTime": format_micro_time(now)}},
                        patch_type=MERGE_PATCH,
                    )
                    self._series[key] = (name, _first, count)
                    self._series.move_to_end(key)
                    self.recorded += 1
                    return
                except NotFound:
                    self._series.pop(key, None)
            name = f"{js.metadata.name}.{secrets.token_hex(8)}"
            event = {
                "apiVersion": "events.k8s.io/v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": ns},
                "eventTime": format_micro_time(now),
                "reportingController": REPORTING_CONTROLLER,
                "reportingInstance": self.instance[:128],
                "action": ACTION,
                "reason": reason,
                "regarding": regarding(js),
                "note": note[:1024],
                "type": etype,
            }
            await self.client.create(resource_path("events.k8s.io", "v1", "events", ns), event)
            self._series[key] = (name, event["eventTime"], 1)
            if len(self._series) > self._max_series:
                self._series.popitem(last=False)
            self.recorded += 1
        except ApiError as err:
            log.warning("event_record_failed", jobset=js.metadata.name, namespace=ns, reason=reason, error=str(err))
