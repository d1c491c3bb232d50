"""Chaos on the real control plane (issue 13 items 5 and 6): the controller SIGKILLed mid-flight, and etcd and
kube-apiserver restarted in the middle of a JobSet restart.

Both tests run their own controller (``pyjobset run`` as a process, bound to exactly ``deploy/rbac/``), so they
skip while another controller runs; ``tests/e2e/run.sh`` runs them after the default suites, or alone with
``PYJOBSET_E2E_CONTROLLER=0 tests/e2e/run.sh tests/e2e/test_chaos.py``. Failures are real pod failures (KWOK's
``exit-now`` annotation contract) and completion is every pod exiting 0, so the real Job controller, garbage
collector and scheduler do everything a cluster does. Invariants are those of the simulated suites
(``tests/chaos/harness.py``): one Job per (name, restart attempt), no orphan, exact restart counters, terminal
state reached.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cache.client import ApiClient, load_cluster_config, resource_path
from tests.chaos.harness import (
    JOBSETS,
    ControllerProcess,
    Tracker,
    big_jobset,
    check_settled,
    follow_api,
    pick_live_job,
    total,
)
from tests.chaos.scenarios import crash_run, request_codes
from tests.conftest import wait_for
from tests.e2e.harness import REPO, ControlPlane, rbac_manifests

pytestmark = [pytest.mark.e2e]

JSON = dict[str, Any]
EXIT_NOW = "sim.pyjobset.io/exit-now"


@pytest.fixture
def own_controller(control_plane: ControlPlane, tmp_path: Path) -> ControllerProcess:
    if os.environ.get("PYJOBSET_EXTERNAL_CONTROLLER") == "1":
        pytest.skip(
            "another controller is running; run with PYJOBSET_E2E_CONTROLLER=0 tests/e2e/run.sh tests/e2e/test_chaos.py"
        )
    control_plane.install_jobset_crd()
    kubeconfig = control_plane.service_account_kubeconfig(
        "jobset-system", "pyjobset-e2e", rbac_manifests(REPO / "deploy" / "rbac"), tmp_path / "controller.kubeconfig"
    )
    return ControllerProcess(str(kubeconfig), tmp_path)


@pytest.fixture
async def api(control_plane: ControlPlane) -> AsyncIterator[ApiClient]:
    async with ApiClient(await load_cluster_config(str(control_plane.kubeconfig))) as client:
        yield client


async def exit_pod(api: ApiClient, namespace: str, job: str, code: str) -> None:
    """Make the running pod of ``job`` exit with ``code`` (KWOK's ``exit-now`` Stage): a real pod failure."""
    pods = resource_path("", "v1", "pods", namespace)

    def running(items: list[JSON]) -> str | None:
        for pod in items:
            bound = bool(pod.get("spec", {}).get("nodeName")) and not pod["metadata"].get("deletionTimestamp")
            if bound and pod.get("status", {}).get("phase") in ("Pending", "Running"):
                return str(pod["metadata"]["name"])
        return None

    selector = {"labelSelector": f"batch.kubernetes.io/job-name={job}"}
    name = await wait_for(api, pods, running, params=selector, limit=120)
    await api.patch(f"{pods}/{name}", {"metadata": {"annotations": {EXIT_NOW: code}}})


@pytest.mark.timeout(420)
async def test_sigkills_during_creation_and_a_restart(
    api: ApiClient, namespace: str, own_controller: ControllerProcess
) -> None:
    n, failures = 6, 1
    tracker = Tracker(namespace, "crash")
    proc = own_controller

    async def create() -> None:
        await api.create(resource_path(*JOBSETS, namespace), big_jobset("crash", n, max_restarts=failures))

    async def fail_job(job: str, counted: bool) -> None:  # a pod failure is always counted
        await exit_pod(api, namespace, job, "1")

    async def complete_all(jobs: list[str]) -> None:
        await asyncio.gather(*(exit_pod(api, namespace, j, "0") for j in jobs))

    async with follow_api(api, tracker):
        try:
            figures = await crash_run(
                tracker,
                proc,
                create,
                fail_job,
                complete_all,
                n=n,
                failures=failures,
                kills_per_phase=1,
                rng=random.Random(int(os.environ.get("PYJOBSET_CHAOS_SEED", "5"))),
                phase_timeout=180,
            )
        finally:
            proc.stop()
    assert figures.kills == 2, figures  # one in the creation, one in the restart
    assert figures.terminal == "Completed"
    print(f"\ncrash (real control plane): {figures.as_dict()}")


@pytest.mark.timeout(420)
async def test_etcd_and_apiserver_restart_in_the_middle_of_a_jobset_restart(
    control_plane: ControlPlane, api: ApiClient, namespace: str, own_controller: ControllerProcess
) -> None:
    n = 6
    tracker = Tracker(namespace, "outage")
    proc = own_controller
    rng = random.Random(3)
    async with follow_api(api, tracker):
        proc.start()
        try:
            await api.create(resource_path(*JOBSETS, namespace), big_jobset("outage", n, max_restarts=2))
            await tracker.until(lambda t: t.settled(0, n), "the first attempt", 120, proc.tail())
            await exit_pod(api, namespace, pick_live_job(tracker, 0, rng), "1")
            # The restart is decided (restarts written): now the old Jobs are being deleted and the new created.
            await tracker.until(lambda t: t.restarts() == 1, "the restart decided", 120, proc.tail())
            await asyncio.to_thread(control_plane.restart_component, "etcd")
            await asyncio.to_thread(control_plane.restart_component, "kube-apiserver")
            await tracker.until(
                lambda t: t.settled(1, n) and t.restarts() == 1, "attempt 1 after the outage", 180, proc.tail()
            )
            check_settled(tracker, 1, n)
            await asyncio.gather(*(exit_pod(api, namespace, j, "0") for j in sorted(tracker.jobs)))
            await tracker.until(lambda t: t.terminal() == "Completed", "Completed", 180, proc.tail())
            check_settled(tracker, 1, n)
            assert proc.alive(), proc.tail()
            assert proc.starts == 1
            metrics = await asyncio.to_thread(proc.metrics)
        finally:
            proc.stop()
    errors = total(metrics, "controller_runtime_reconcile_errors_total")
    codes = request_codes(metrics)
    print(
        f"\nreal plane outage: etcd and kube-apiserver restarted mid-restart; converged exactly; reconcile errors "
        f"{errors:g} (retried); requests by code {codes}; controller CPU {proc.cpu_seconds:.2f}s"
    )
