"""``pyjobset demo`` as a what-if simulator, in process: a small fleet, a node failure, the summary's numbers.

The summary must say what the controller's metrics say, and those must agree with the JobSets' own status:
restarts per JobSet (``jobset_restarts`` and ``jobset_status_restarts`` against ``status.restarts``), states
(``jobset_status`` against ``status.terminalState``), one recovery observed per restart, and a timeline whose
marks match the failure injected and the restarts seen.
"""

from __future__ import annotations

import asyncio
import io

from controller.demo import DemoOptions, run_scenario


async def test_fleet_with_a_node_failure_reports_what_the_jobsets_say() -> None:
    options = DemoOptions(nodes=6, gpus_per_node=2, jobsets=2, jobset_size=3, fail_at=1.0, pod_run_seconds=4)
    out = io.StringIO()
    result = await run_scenario(asyncio.Event(), options, out=out, tty=True)
    text = out.getvalue()
    assert result.exit_code == 0, text

    statuses = {js["metadata"]["name"]: js["status"] for js in result.jobsets}
    assert sorted(statuses) == ["train-0", "train-1"]
    assert {s["terminalState"] for s in statuses.values()} == {"Completed"}
    reading = result.reading
    for name, status in statuses.items():
        key = ("default", name)
        assert reading.state[key] == status["terminalState"]
        assert reading.restarts_applied.get(key, 0) == status.get("restarts", 0)
        assert reading.status_restarts.get(key, 0) == status.get("restarts", 0)
    total = sum(s.get("restarts", 0) for s in statuses.values())
    assert total >= 1, "the node failure under a running pod restarts its JobSet"
    assert reading.recovery.count == total
    assert reading.startup.count >= len(statuses)

    timeline = result.timeline
    assert len(timeline.failures_at) == 1
    assert len(timeline.restarts_at) == total
    assert timeline.restarts_at[0] >= timeline.failures_at[0]
    mean, peak = timeline.occupancy()
    assert 0 < mean <= peak <= 1
    assert max(p.jobs for p in timeline.points) == 6

    # The terminal display redraws one status line in place; notes and the summary stay.
    assert "\r\x1b[2K" in text
    assert "failed under pod train-" in text
    assert f"restarts: {total} in total" in text
    assert "JobSets by state: Completed=2" in text
