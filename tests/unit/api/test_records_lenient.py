"""The slim records are as lenient as Kubernetes where the controller does not care (issue 13).

The API server accepts a node or pod condition with any status (``"Maybe"``), and other producers send
quantities as JSON numbers; neither may make an object undecodable, since one undecodable object used to
freeze a whole informer.
"""

from __future__ import annotations

import msgspec
import orjson
import pytest

from api.records import Node, Pod
from metrics.readers import parse_count, pod_gpus


def test_pod_quantities_decode_as_numbers_or_strings_and_read_as_strings() -> None:
    raw = {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {
            "containers": [
                {"resources": {"requests": {"nvidia.com/gpu": 4, "cpu": 0.5}}},
                {"resources": {"limits": {"nvidia.com/gpu": "2"}}},
            ]
        },
    }
    pod = msgspec.json.decode(orjson.dumps(raw), type=Pod)
    assert pod.spec.containers[0].resources.requests.get("nvidia.com/gpu") == "4"
    assert pod_gpus(pod, "nvidia.com/gpu") == 6


def test_unknown_condition_status_and_phase_decode() -> None:
    node_raw = {
        "metadata": {"name": "n"},
        "status": {
            "allocatable": {"nvidia.com/gpu": 8},
            "conditions": [{"type": "example.com/Probe", "status": "Maybe"}, {"type": "Ready", "status": "True"}],
        },
    }
    node = msgspec.json.decode(orjson.dumps(node_raw), type=Node)
    assert [c.status for c in node.status.conditions] == ["Maybe", "True"]
    assert parse_count(node.status.allocatable["nvidia.com/gpu"]) == 8
    pod_raw = {"status": {"phase": "Hibernating", "conditions": [{"type": "Ready", "status": "Maybe"}]}}
    pod = msgspec.json.decode(orjson.dumps(pod_raw), type=Pod)
    assert pod.status.phase == "Hibernating"
    assert pod.status.conditions[0].status == "Maybe"


def test_fields_the_controller_reads_stay_strict() -> None:
    bad = {"metadata": {"name": "p", "labels": {"jobset.sigs.k8s.io/jobset-name": 7}}}
    with pytest.raises(msgspec.ValidationError, match=r"\$\.metadata\.labels"):
        msgspec.json.decode(orjson.dumps(bad), type=Pod)
