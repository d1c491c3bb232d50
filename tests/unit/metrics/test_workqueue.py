"""``workqueue_*`` metrics fed by the real ``cache.queue.WorkQueue`` on a fake clock (client-go semantics).

Kept apart from the synchronous hook tests: this module holds only coroutine tests.
"""

from __future__ import annotations

import pytest

from cache.clock import FakeClock
from cache.queue import WorkQueue
from metrics.hub import MetricsHub


def v(hub: MetricsHub, metric: str, /, **labels: str) -> float | None:
    return hub.registry.get_sample_value(metric, labels)


async def test_work_queue_hooks_follow_client_go_semantics() -> None:
    hub = MetricsHub()
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(name="jobset", clock=clock, metrics=hub.queue_metrics("jobset"))
    q.add("a")
    q.add("a")  # deduplicated: not an add
    q.add("b")
    assert v(hub, "workqueue_adds_total", name="jobset") == 2
    assert v(hub, "workqueue_depth", name="jobset") == 2
    clock.advance(0.5)
    item = await q.get()
    assert item == "a"
    assert v(hub, "workqueue_depth", name="jobset") == 1
    assert v(hub, "workqueue_queue_duration_seconds_sum", name="jobset") == pytest.approx(0.5)
    clock.advance(2.0)
    q.report_unfinished()
    assert v(hub, "workqueue_unfinished_work_seconds", name="jobset") == pytest.approx(2.0)
    assert v(hub, "workqueue_longest_running_processor_seconds", name="jobset") == pytest.approx(2.0)
    q.add_rate_limited("a")
    q.done("a")
    assert v(hub, "workqueue_retries_total", name="jobset") == 1
    assert v(hub, "workqueue_work_duration_seconds_count", name="jobset") == 1
    assert v(hub, "workqueue_work_duration_seconds_sum", name="jobset") == pytest.approx(2.0)
    q.report_unfinished()
    assert v(hub, "workqueue_unfinished_work_seconds", name="jobset") == 0
    q.shut_down()
