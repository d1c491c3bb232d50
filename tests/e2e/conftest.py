"""Fixtures of the e2e tier: one real control plane per test session, and a fresh namespace per test.

The plane is started by the session fixture (binaries from ``tests/e2e/build.sh``), or attached to when
``PYJOBSET_E2E_KUBECONFIG`` names the admin kubeconfig of a plane started elsewhere (``tests/e2e/run.sh`` does
that so the contract and conformance suites share it). Without binaries the e2e tests are skipped, unless
``PYJOBSET_E2E_REQUIRE=1`` (CI), where that is an error.

Invariants: the session fixture always stops what it started (finalizer, plus the harness's atexit and
parent-death signal); each ``namespace`` is deleted after its test, and its ``default`` ServiceAccount exists
before the test runs (pods are rejected without it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import ControlPlane, NodeShape, bin_dir, installed_identity, missing_binaries
from tests.e2e.kube import ApiError, Client


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    external = os.environ.get("PYJOBSET_E2E_KUBECONFIG")
    if external:
        yield ControlPlane.attach(Path(external))
        return
    missing = missing_binaries()
    if missing:
        message = f"control-plane binaries missing in {bin_dir()} ({', '.join(missing)}); run tests/e2e/build.sh"
        if os.environ.get("PYJOBSET_E2E_REQUIRE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    plane = ControlPlane(nodes=NodeShape(count=4, gpus_per_node=8, nodes_per_pool=2))
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane) -> str:
    """Admin kubeconfig of the real control plane. Overrides the root ``kubeconfig`` fixture (same type), so the
    project's ``api`` fixture and everything built on it talk to the real control plane inside this tier."""
    return str(control_plane.kubeconfig)


@pytest.fixture(scope="session")
def admin(control_plane: ControlPlane) -> Client:
    return control_plane.admin


@pytest.fixture(scope="session")
def jobset_controller(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The JobSet CRD installed and the controller running as its own process with the installed identity
    (``deploy/rbac``'s ServiceAccount ``jobset-controller-manager``, its token read from a file), admission off;
    or, under ``tests/e2e/run.sh``, the installed Deployment's controller that script runs (admission on)."""
    if os.environ.get("PYJOBSET_EXTERNAL_CONTROLLER") == "1":
        yield
        return
    control_plane.install_jobset_crd()
    kubeconfig = installed_identity(control_plane, tmp_path_factory.mktemp("controller"))
    proc = control_plane.start_controller(kubeconfig)
    try:
        yield
    finally:
        proc.stop()
        if proc.popen.returncode not in (0, -15):
            pytest.fail(f"controller exited with {proc.popen.returncode}:\n{proc.tail()}")


@pytest.fixture
def namespace(admin: Client) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    admin.create("/api/v1/namespaces", {"metadata": {"name": name}})
    admin.wait_for(
        f"/api/v1/namespaces/{name}/serviceaccounts",
        lambda sa: sa["metadata"]["name"] == "default",
        timeout=30,
        what=f"ServiceAccount {name}/default",
    )
    try:
        yield name
    finally:
        try:
            admin.delete(f"/api/v1/namespaces/{name}")
        except ApiError as err:
            if err.status != 404:
                raise
