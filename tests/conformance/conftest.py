"""Fixtures of the conformance tier: the cluster under test (through a kubeconfig only) and feature gates.

``cluster`` is a ``kit.Cluster`` on the test's own namespace with the JobSet controller running (in the test's
event loop on the simulated cluster, or as its own process when ``PYJOBSET_EXTERNAL_CONTROLLER=1``).

Feature gates: mark a test (or module, via ``pytestmark``) with ``@pytest.mark.gates(RestartJob=True)``. The
in-loop controller is then configured with exactly those gates switched; against an external controller the
test is skipped unless ``PYJOBSET_FEATURE_GATES`` (``RestartJob=true,ElasticJobSet``) agrees with the marker
(gates not listed there are taken as their defaults, i.e. off).

Admission: a test of what the *controller* does with a JobSet our webhooks would refuse (so only reachable with
the webhooks off) requests ``without_jobset_webhooks``; it runs where no webhook sees JobSets in its namespace
(kubesim) and is skipped, saying why, on a cluster where one does (the real plane of ``tests/e2e/run.sh``, which
installs ``deploy/``'s webhooks). What the webhooks answer is tested in ``test_webhook_scenarios.py``.
"""

from __future__ import annotations

import pytest

from cache.client import ApiClient
from controller.app import Controller
from controller.settings import KNOWN_GATES, Settings, load_settings
from tests.conformance.kit import Cluster, gates_from_env, jobset_webhooks


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gates(**gates): feature gates the JobSet controller must run with")


def _wanted_gates(request: pytest.FixtureRequest) -> dict[str, bool]:
    wanted: dict[str, bool] = {}
    for marker in reversed(list(request.node.iter_markers("gates"))):
        wanted.update(marker.kwargs)
    unknown = set(wanted) - set(KNOWN_GATES)
    if unknown:
        pytest.fail(f"unknown feature gates in @pytest.mark.gates: {sorted(unknown)}")
    return wanted


@pytest.fixture
def controller_settings(request: pytest.FixtureRequest) -> Settings:
    gates = {**KNOWN_GATES, **_wanted_gates(request)}
    return load_settings(overrides={"leader_election.leader_elect": False, "feature_gates": gates})


@pytest.fixture(autouse=True)
def _external_gates(request: pytest.FixtureRequest) -> None:
    external = gates_from_env()
    if external is None:
        return
    for gate, want in _wanted_gates(request).items():
        have = external.get(gate, KNOWN_GATES[gate])
        if have != want:
            pytest.skip(f"needs feature gate {gate}={want}; the external controller has {gate}={have}")


@pytest.fixture
async def cluster(api: ApiClient, namespace: str, controller: Controller | None) -> Cluster:
    return Cluster(api, namespace)


@pytest.fixture
async def without_jobset_webhooks(api: ApiClient, namespace: str) -> None:
    """The test needs the API server to store JobSets no admission webhook has seen (see the module docstring)."""
    hooks = await jobset_webhooks(api, namespace)
    if hooks:
        pytest.skip(f"needs JobSet admission webhooks off in the test namespace; these see JobSets there: {hooks}")
