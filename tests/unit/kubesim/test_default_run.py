"""The simulated kubelet's cluster-wide default run time (``ClusterOptions.pod_run_seconds``, ``pyjobset up
--pod-run-seconds``): only pods without any ``sim.pyjobset.io/`` annotation get it, and the pod is not changed."""

from __future__ import annotations

import copy
from typing import Any

import msgspec

from api.records import Pod
from kubesim.cluster.kubelet import with_default_run
from kubesim.cluster.kubeletsim import decide

T0 = 1_800_000_000.0


def pod(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", "annotations": annotations or {}},
        "spec": {"nodeName": "n", "restartPolicy": "Never", "containers": [{"name": "main", "image": "img"}]},
        "status": {"phase": "Pending"},
    }


def run(p: dict[str, Any], default: float | None, until: float) -> dict[str, Any]:
    """Follow the kubelet's decisions (as ``Kubelets.sync_pod`` does) until it stops asking to wake up."""
    now = T0
    while True:
        d = decide(with_default_run(p, default), node_failed=False, now=now)
        if d.status is not None:
            p = dict(p, status=d.status)
        if d.wake_at is None or d.wake_at > until:
            return p
        now = d.wake_at


def test_unannotated_pod_runs_for_the_default_then_succeeds() -> None:
    p = run(pod(), 3.0, T0 + 100)
    assert p["status"]["phase"] == "Succeeded"
    term = p["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 0
    assert p["metadata"]["annotations"] == {}  # the stored pod never shows the default


def test_without_a_default_an_unannotated_pod_runs_forever() -> None:
    assert run(pod(), None, T0 + 100)["status"]["phase"] == "Running"


def test_any_sim_annotation_opts_out_of_the_default() -> None:
    # start-seconds alone means "a server": it keeps running, as the annotation contract says.
    assert run(pod({"sim.pyjobset.io/start-seconds": "1"}), 3.0, T0 + 100)["status"]["phase"] == "Running"
    explicit = run(pod({"sim.pyjobset.io/run-seconds": "50", "sim.pyjobset.io/exit-code": "2"}), 3.0, T0 + 40)
    assert explicit["status"]["phase"] == "Running"  # its own 50 s, not the default 3 s


def test_default_does_not_mutate_the_input() -> None:
    p = pod({"team": "a"})
    before = copy.deepcopy(p)
    view = with_default_run(p, 2.5)
    assert view["metadata"]["annotations"]["sim.pyjobset.io/run-seconds"] == "2.5"
    assert p == before


def test_integer_accelerator_quantities_decode() -> None:
    # kubesim stores ``nvidia.com/gpu: 8`` as written; the pod informer must still decode such pods.
    raw = b"""{"metadata": {"name": "a", "namespace": "d"}, "spec": {"containers": [{"name": "c",
        "resources": {"limits": {"nvidia.com/gpu": 8, "cpu": 1}, "requests": {"google.com/tpu": "4"}}}]}}"""
    res = msgspec.json.decode(raw, type=Pod).spec.containers[0].resources
    assert res.limits.get("nvidia.com/gpu") == "8"
    assert res.limits["nvidia.com/gpu"] == "8"
    assert res.requests.get("google.com/tpu") == "4"
    assert res.requests.get("nvidia.com/gpu") is None
