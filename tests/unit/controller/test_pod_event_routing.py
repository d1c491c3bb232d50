"""The JobSet reconciler's pod handler (gate InPlaceRestart): a pod change ``decide`` reads is queued at once,
any other is coalesced per JobSet (``pyjobset.podEventCoalescing``). FakeClock; no API server."""

from __future__ import annotations

from typing import Any

import msgspec

from api import constants as c
from api.records import Pod
from cache.clock import FakeClock
from cache.queue import WorkQueue
from cache.store import Store
from controller.reconciler import JobSetReconciler


def _pod(*, ip_rv: str = "1", restarts: int = 0) -> Pod:
    return msgspec.convert(
        {
            "metadata": {
                "name": "js-w-0-0-abcde",
                "namespace": "ns",
                "uid": "u1",
                "resourceVersion": ip_rv,
                "labels": {c.JOBSET_NAME_KEY: "js"},
            },
            "status": {"phase": "Running", "containerStatuses": [{"restartCount": restarts}]},
        },
        Pod,
    )


def _reconciler(queue: WorkQueue[str]) -> JobSetReconciler:
    stores: Any = Store(lambda o: o.key)
    return JobSetReconciler(jobsets=stores, jobs=stores, services=stores, actor=None, queue=queue)  # type: ignore[arg-type]


async def _hand_out(queue: WorkQueue[str]) -> None:
    queue.done(await queue.get())


async def test_an_irrelevant_pod_change_waits_for_the_window_a_relevant_one_does_not() -> None:
    clock = FakeClock(start=0.0)
    queue: WorkQueue[str] = WorkQueue(clock=clock, coalesce_window=5.0)
    rec = _reconciler(queue)
    first = _pod()
    rec.on_pod(None, first)  # an add: at once
    assert len(queue) == 1
    await _hand_out(queue)

    churn = _pod(ip_rv="2")  # only the resourceVersion (e.g. an IP) changed: nothing decide reads
    rec.on_pod(first, churn)
    assert len(queue) == 0
    assert queue.delayed() == 1

    crash = _pod(ip_rv="3", restarts=1)  # a restart count decide reads: at once, despite the window
    rec.on_pod(churn, crash)
    assert len(queue) == 1
    await _hand_out(queue)
    assert queue.delayed() == 0, "the reconcile that ran read the churn too"

    rec.on_pod(crash, _pod(ip_rv="4", restarts=1))
    clock.advance(4.9)
    assert len(queue) == 0
    clock.advance(0.1)
    assert len(queue) == 1
