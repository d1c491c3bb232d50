"""The real-control-plane scale scenario at a CI size (issue 18): correctness only, never a timing.

One JobSet of 200 single-pod Jobs on KWOK nodes goes through every phase of ``scale_tests/bench_realplane.py``
(``scale_tests/realplane.py`` ``run_jobset``): all Jobs created, all pods Running, Job 0's pod exits 1, the JobSet
restarts once, all new pods Running, every pod exits 0, the JobSet is Completed. The test runs its own controller
(``pyjobset run`` with ``deploy/rbac``'s permissions), so it skips while another one runs; ``tests/e2e/run.sh`` runs
it in its second phase, or alone with ``PYJOBSET_E2E_CONTROLLER=0 tests/e2e/run.sh tests/e2e/test_scale_smoke.py``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cache.client import ApiClient, load_cluster_config
from scale_tests.realplane import run_jobset
from tests.chaos.harness import ControllerProcess
from tests.e2e.harness import REPO, ControlPlane, rbac_manifests

pytestmark = [pytest.mark.e2e]

N = int(os.environ.get("PYJOBSET_E2E_SCALE_JOBS", "200"))


@pytest.fixture
async def api(control_plane: ControlPlane) -> AsyncIterator[ApiClient]:
    async with ApiClient(await load_cluster_config(str(control_plane.kubeconfig))) as client:
        yield client


@pytest.fixture
def own_controller(control_plane: ControlPlane, tmp_path: Path) -> ControllerProcess:
    if os.environ.get("PYJOBSET_EXTERNAL_CONTROLLER") == "1":
        pytest.skip(
            "another controller is running; run with "
            "PYJOBSET_E2E_CONTROLLER=0 tests/e2e/run.sh tests/e2e/test_scale_smoke.py"
        )
    control_plane.install_jobset_crd()
    kubeconfig = control_plane.service_account_kubeconfig(
        "jobset-system", "pyjobset-e2e", rbac_manifests(REPO / "deploy" / "rbac"), tmp_path / "controller.kubeconfig"
    )
    return ControllerProcess(str(kubeconfig), tmp_path)


@pytest.mark.timeout(900)
async def test_a_jobset_of_200_jobs_restarts_once_and_completes(
    api: ApiClient, namespace: str, own_controller: ControllerProcess
) -> None:
    own_controller.start()
    try:
        marks, timeline, final = await run_jobset(api, api, namespace, N, controller_pid=own_controller.pid)
    finally:
        own_controller.stop()
    assert own_controller.popen is not None
    assert own_controller.popen.returncode in (0, -15), own_controller.tail()

    # Every phase was reached, in order.
    order = ["start", "created", "running", "fail", "job_failed", "recreated", "running2", "complete", "jobs_done"]
    assert [m for m in order if m in marks.t] == order
    assert all(marks.t[a] <= marks.t[b] for a, b in itertools.pairwise(order))
    # Job 0 failed first (the restart's deletes may fail other attempt-0 Jobs on their way out); attempt 1 is N
    # new Jobs that all completed; nothing beyond attempt 1.
    assert [kind for _, a, kind in timeline.jobs_finished if a == 0][:1] == ["Failed"]
    assert sorted({a for _, a in timeline.jobs_added}) == [0, 1]
    assert timeline.count(timeline.jobs_added, 1) == N
    assert [kind for _, a, kind in timeline.jobs_finished if a == 1] == ["Complete"] * N
    # The JobSet counted one restart and is Completed, not Failed.
    status = final["status"]
    assert status["restarts"] == 1
    true = {c["type"] for c in status.get("conditions", []) if c["status"] == "True"}
    assert "Completed" in true
    assert "Failed" not in true
