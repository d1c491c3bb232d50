"""Child Job construction details not covered by the naming tests: exclusive placement (conformance 122)."""

from __future__ import annotations

import pytest

from api import constants as c
from api.jobset_types import jobset_from_obj
from controller.decide import children
from tests.builders import JobSetBuilder

TOPO = "cloud.google.com/gke-nodepool"
RACK = "topology.kubernetes.io/rack"
TOLERATION = {"key": c.NO_SCHEDULE_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}


def _job(js_ann: dict[str, str], rjob_ann: dict[str, str]) -> dict[str, object]:
    obj = JobSetBuilder("js", "ns").rjob("w", 1).obj()
    obj["metadata"]["annotations"] = js_ann
    obj["metadata"]["uid"] = "u"
    if rjob_ann:
        obj["spec"]["replicatedJobs"][0]["template"]["metadata"] = {"annotations": rjob_ann}
    js = jobset_from_obj(obj)
    return children.build_job(js, js.spec.replicated_jobs[0], 0)


@pytest.mark.parametrize(
    ("js_ann", "rjob_ann", "topology", "strategy"),
    [
        pytest.param({c.EXCLUSIVE_TOPOLOGY_KEY: TOPO}, {}, TOPO, False, id="c122-jobset-level"),
        pytest.param({}, {c.EXCLUSIVE_TOPOLOGY_KEY: RACK}, RACK, False, id="c122-rjob-level"),
        pytest.param(
            {c.EXCLUSIVE_TOPOLOGY_KEY: TOPO}, {c.EXCLUSIVE_TOPOLOGY_KEY: RACK}, RACK, False, id="c122-rjob-level-wins"
        ),
        pytest.param(
            {c.EXCLUSIVE_TOPOLOGY_KEY: TOPO, c.NODE_SELECTOR_STRATEGY_KEY: "true"},
            {},
            TOPO,
            True,
            id="c122-jobset-level-node-selector-strategy",
        ),
        pytest.param(
            {},
            {c.EXCLUSIVE_TOPOLOGY_KEY: RACK, c.NODE_SELECTOR_STRATEGY_KEY: "true"},
            RACK,
            True,
            id="c122-rjob-level-node-selector-strategy",
        ),
        pytest.param({}, {}, None, False, id="c122-no-exclusive-placement"),
    ],
)
def test_c122_exclusive_placement(
    js_ann: dict[str, str], rjob_ann: dict[str, str], topology: str | None, strategy: bool
) -> None:
    job = _job(js_ann, rjob_ann)
    meta = job["metadata"]
    spec = job["spec"]
    assert isinstance(meta, dict)
    assert isinstance(spec, dict)
    pod = spec["template"]
    for ann in (meta["annotations"], pod["metadata"]["annotations"]):
        assert ann.get(c.EXCLUSIVE_TOPOLOGY_KEY) == topology
        assert (c.NODE_SELECTOR_STRATEGY_KEY in ann) is strategy
    assert c.EXCLUSIVE_TOPOLOGY_KEY not in meta["labels"]
    pod_spec = pod["spec"]
    if strategy:
        assert pod_spec["nodeSelector"] == {c.NAMESPACED_JOB_KEY: "ns_js-w-0"}
        assert pod_spec["tolerations"] == [TOLERATION]
    else:
        assert "nodeSelector" not in pod_spec
        assert "tolerations" not in pod_spec


def test_suspended_jobset_builds_suspended_jobs() -> None:
    js = JobSetBuilder("js").rjob("w", 1).set("spec.suspend", True).record()
    assert children.build_job(js, js.spec.replicated_jobs[0], 0)["spec"]["suspend"] is True
