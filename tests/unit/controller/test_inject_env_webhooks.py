"""``pyjobset.io/inject-env`` at admission: the pod webhook adds the variables, the JobSet webhook checks the values."""

from __future__ import annotations

import copy
from typing import Any

from api import constants as c
from api import extensions as x
from api.jobset_types import JobSet
from controller.webhooks.jobset_validation import rejection_status, validate_create, validate_update
from controller.webhooks.pod_webhooks import mutate_pod
from kubesim.storage.patch import json_patch
from tests.builders import JobSetBuilder
from tests.unit.controller.test_pod_webhooks import TOPO, FakeLookup, pod_obj

JSON = dict[str, Any]
NS = "default"


class JobSets:
    def __init__(self, *items: JobSet) -> None:
        self.items = {(j.metadata.namespace, j.metadata.name): j for j in items}

    def jobset(self, namespace: str, name: str) -> JobSet | None:
        return self.items.get((namespace, name))


def training(inject: str | None = "torch,generic") -> JobSetBuilder:
    b = JobSetBuilder("js").rjob("lead", 1).rjob("rj", 2, parallelism=3, completions=3)
    if inject is not None:
        b.annotate(x.INJECT_ENV_KEY, inject)
    return b


def rj_pod(job: int, index: int, *, attempt: str = "2", env: list[JSON] | None = None, **kw: Any) -> JSON:
    labels = {
        c.JOBSET_NAME_KEY: "js",
        c.JOBSET_UID_KEY: "uid-1",
        c.REPLICATED_JOB_NAME_KEY: "rj",
        c.JOB_INDEX_KEY: str(job),
        c.RESTART_ATTEMPT_KEY: attempt,
        c.JOB_KEY: "key",
    }
    pod = pod_obj(f"js-rj-{job}-{index}-abcde", index=str(index), labels=labels, **kw)
    pod["spec"]["initContainers"] = [{"name": "init", "image": "busybox"}]
    if env is not None:
        pod["spec"]["containers"][0]["env"] = env
    pod["spec"]["containers"].append({"name": "sidecar", "image": "busybox"})
    return pod


def mutated(pod: JSON, jobsets: JobSets, lookup: FakeLookup | None = None) -> JSON:
    result = mutate_pod(pod, NS, lookup or FakeLookup(), jobsets)
    assert result.denial is None, result.denial
    return json_patch(copy.deepcopy(pod), list(result.patch))  # type: ignore[no-any-return]


def env(ctr: JSON) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in ctr.get("env", [])}


def test_every_container_gets_the_variables_of_its_pod() -> None:
    out = mutated(rj_pod(1, 2, exclusive=None), JobSets(training().record()))
    for ctr in [*out["spec"]["initContainers"], *out["spec"]["containers"]]:
        got = env(ctr)
        assert got["RANK"] == got["JOBSET_RANK"] == "6"  # 1 (lead) + 1*3 + 2
        assert got["WORLD_SIZE"] == got["JOBSET_WORLD_SIZE"] == "7"
        assert got["MASTER_ADDR"] == "js-lead-0-0.js"
        assert got["MASTER_PORT"] == "29500"
        assert got["JOBSET_RESTART_ATTEMPT"] == "2"
        assert "JAX_PROCESS_ID" not in got


def test_a_value_the_user_set_is_kept() -> None:
    user = [{"name": "MASTER_PORT", "value": "1"}, {"name": "RANK", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]
    out = mutated(rj_pod(0, 0, exclusive=None, env=user), JobSets(training().record()))
    main = out["spec"]["containers"][0]["env"]
    assert main[:2] == user
    assert [e["name"] for e in main].count("RANK") == 1
    assert env(out["spec"]["containers"][0])["WORLD_SIZE"] == "7"
    assert env(out["spec"]["containers"][1])["MASTER_PORT"] == "29500"


def test_no_opt_in_unknown_jobset_or_other_uid_leaves_the_pod_alone() -> None:
    pod = rj_pod(0, 0, exclusive=None)
    assert mutate_pod(pod, NS, FakeLookup(), JobSets(training(None).record())).patch == ()
    assert mutate_pod(pod, NS, FakeLookup(), JobSets()).patch == ()
    assert mutate_pod(pod, NS, FakeLookup(), None).patch == ()
    other = training().record(uid="uid-2")
    assert mutate_pod(pod, NS, FakeLookup(), JobSets(other)).patch == ()


def test_env_is_added_with_the_node_selector_strategy_too() -> None:
    pod = rj_pod(0, 1, exclusive=None, node_selector_strategy=True)
    out = mutated(pod, JobSets(training("jax").record()))
    assert env(out["spec"]["containers"][0])["JAX_PROCESS_ID"] == "2"
    assert c.PRIORITY_KEY not in out["metadata"]["labels"]  # the placement part still skips these pods


def test_env_and_exclusive_placement_leader_affinity_together() -> None:
    pod = rj_pod(1, 0, exclusive=TOPO)
    out = mutated(pod, JobSets(training("generic").record()))
    assert env(out["spec"]["containers"][0])["JOBSET_RANK"] == "4"
    assert out["spec"]["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]


# --------------------------------------------------------------------------------------------- validation


def test_bad_inject_env_is_refused_naming_the_annotation_and_the_form() -> None:
    obj = training("pytorch").obj()
    errs = validate_create(obj, {})
    assert len(errs) == 1
    status = rejection_status(obj, errs)
    assert status["code"] == 422
    assert "metadata.annotations[pyjobset.io/inject-env]" in status["message"]
    assert '"torch", "jax" and "generic"' in status["message"]


def test_bad_master_port_is_refused() -> None:
    obj = training().annotate(x.MASTER_PORT_KEY, "70000").obj()
    message = rejection_status(obj, validate_create(obj, {}))["message"]
    assert "metadata.annotations[pyjobset.io/master-port]" in message
    assert "1 to 65535" in message


def test_good_values_are_accepted() -> None:
    assert validate_create(training("jax,torch,generic").annotate(x.MASTER_PORT_KEY, "8476").obj(), {}) == []


def test_update_checks_only_a_changed_annotation() -> None:
    old = training("bogus").obj()
    assert validate_update(copy.deepcopy(old), old, {}) == []
    new = copy.deepcopy(old)
    new["metadata"]["annotations"][x.INJECT_ENV_KEY] = "still-bogus"
    assert len(validate_update(new, old, {})) == 1
