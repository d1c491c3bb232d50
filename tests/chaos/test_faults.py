"""Fault suite (issue 13 item 6), simulated cluster: a fault storm under a running controller.

For 30 s, about 10 % of the controller's API calls fail or stall — 429 with ``Retry-After``, 500, 30-second hangs,
and watches ended at once (dropped, or with a 410 ``Expired`` forcing a re-list) — and every established watch
stream is dropped every 2 s, while a JobSet restarts and new JobSets arrive. Then the faults stop and every
JobSet must converge exactly (restarts equal to the failures injected, one Job per (name, attempt), no orphan),
complete, and the controller must never have died. Retries are bounded: the controller's own
``rest_client_requests_total`` during the storm stays within what its configured QPS allows (QPS * duration +
burst: a hot retry loop would blow through it). CPU and request rate are printed; the benchmark
(``scale_tests/bench_chaos.py``) runs the storm for minutes. The real plane's apiserver/etcd restarts are in
``tests/e2e/test_chaos.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.scenarios import sim_env, storm_run


@pytest.mark.timeout(240)
async def test_controller_converges_after_a_fault_storm(tmp_path: Path) -> None:
    async with sim_env(tmp_path) as env:
        figures = await storm_run(env, duration=30.0, n=40, extra_jobsets=4, failures=3, seed=6)
    assert figures.requests <= figures.request_bound, figures
    assert {"429", "500", "hang"} <= set(figures.faults), figures.faults
    assert figures.streams_dropped > 0
    print(f"\nfault storm (kubesim): {figures.as_dict()}")
