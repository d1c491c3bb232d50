"""Conformance 8.B: the JobSet admission webhooks through the cluster's real admission path (scenarios 66-102).

Our admission server (``controller.webhooks.server``) runs in the test's process on 127.0.0.1 with a serving
certificate for that address; the test registers a Mutating and a Validating WebhookConfiguration that call it by
URL with the CA bundle, scoped by a namespaceSelector to this test's namespace only (so a shared real control
plane is not affected), and removes them afterwards. The API server under test — simulated or real — then
defaults and validates JobSets exactly as in a deployment. Rejections that come from the CRD's own schema and
CEL rules (76, 80, 81, 87, 89, 90, 94-96) hold with or without the webhook.

Webhook feature gates are the server's own (it runs here), so the ElasticJobSet cases run on every backend.
The scenario groups share one cluster per test to keep the tier fast; each assertion names its scenario.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from api.records import Node, Pod
from cache.client import ApiClient, resource_path
from cache.errors import ApiError, Invalid
from cache.store import Store
from controller.placement import POD_NAME_INDEX, pod_name_index
from controller.settings import KNOWN_GATES
from controller.webhooks.certs import FileCertSource
from controller.webhooks.server import (
    MUTATE_JOBSET_PATH,
    VALIDATE_JOBSET_PATH,
    AdmissionHandlers,
    CachePlacementLookup,
    WebhookServer,
    api_pvc_getter,
    server_tls_context,
)
from tests.builders import JobSetBuilder
from tests.conformance.kit import Cluster, jobset_webhooks
from tests.e2e.pki import Pki

JSON = dict[str, Any]
SCOPE_LABEL = "conformance.pyjobset.io/webhooks"
ADMISSION = "admissionregistration.k8s.io"


class Webhooks:
    """This test's namespace with our JobSet webhooks registered for it."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.api = cluster.api
        self.ns = cluster.ns

    def path(self, name: str | None = None) -> str:
        return self.cluster.jobsets_path + (f"/{name}" if name else "")

    async def create(self, obj: JSON) -> JSON:
        return await self.cluster.create(obj)

    async def rejected_create(self, obj: JSON, *fragments: str) -> str:
        with pytest.raises(Invalid) as info:
            await self.create(obj)
        text = str(info.value)
        for fragment in fragments:
            assert fragment in text, f"{fragment!r} not in {text!r}"
        return text

    async def update(self, name: str, mutate: Callable[[JSON], None]) -> JSON:
        return await self.cluster.update_jobset(name, mutate)

    async def accepted_update(self, name: str, mutate: Callable[[JSON], None]) -> None:
        """The update is admitted and stored as sent: no webhook refused it or rewrote any of its spec."""
        sent: JSON = {}

        def apply(js: JSON) -> None:
            mutate(js)
            sent["spec"] = copy.deepcopy(js["spec"])

        before = await self.cluster.jobset(name)
        await self.update(name, apply)
        stored = await self.cluster.jobset(name)
        assert stored["spec"] == sent["spec"], "the stored spec differs from the one sent"
        assert stored["spec"] != before["spec"], "the update changed nothing: it cannot show an acceptance"

    async def rejected_update(self, name: str, mutate: Callable[[JSON], None], *fragments: str) -> str:
        with pytest.raises(Invalid) as info:
            await self.update(name, mutate)
        text = str(info.value)
        for fragment in fragments:
            assert fragment in text, f"{fragment!r} not in {text!r}"
        return text


def _hook(name: str, url: str, ca: str, ns_label: str, operations: list[str]) -> JSON:
    return {
        "name": name,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Fail",
        "timeoutSeconds": 10,
        "clientConfig": {"url": url, "caBundle": ca},
        "namespaceSelector": {"matchLabels": {SCOPE_LABEL: ns_label}},
        "rules": [
            {
                "apiGroups": ["jobset.x-k8s.io"],
                "apiVersions": ["v1alpha2"],
                "operations": operations,
                "resources": ["jobsets"],
                "scope": "Namespaced",
            }
        ],
    }


async def _effective(cluster: Cluster) -> None:
    """Wait until both webhooks answer for this namespace (configuration changes reach an API server's
    admission chain asynchronously and there is no event to watch, so this probes, bounded, every 50 ms)."""
    probe = JobSetBuilder("probe", cluster.ns).rjob("a", 1).obj()
    del probe["spec"]["successPolicy"]
    del probe["metadata"]["name"]
    probe["metadata"]["generateName"] = "probe-"
    bad = JobSetBuilder("probe", cluster.ns).rjob("a", 1, depends_on=[{"name": "a", "status": "Ready"}]).obj()
    del bad["metadata"]["name"]
    bad["metadata"]["generateName"] = "probe-"
    async with asyncio.timeout(30):
        while True:
            created = await cluster.create(probe)
            await cluster.api.delete(f"{cluster.jobsets_path}/{created['metadata']['name']}")
            if created["spec"].get("successPolicy"):
                try:
                    created = await cluster.create(bad)
                except Invalid:
                    return
                await cluster.api.delete(f"{cluster.jobsets_path}/{created['metadata']['name']}")
            await asyncio.sleep(0.05)


@pytest.fixture
def webhook_gates() -> dict[str, bool]:
    return dict(KNOWN_GATES)


@pytest.fixture
async def webhooks(
    api: ApiClient, namespace: str, jobset_crd: None, tmp_path: Path, webhook_gates: dict[str, bool]
) -> AsyncIterator[Webhooks]:
    pki = Pki(tmp_path / "pki")
    pair = pki.serving("webhook", dns=("localhost",))
    cert_dir = tmp_path / "serving"
    cert_dir.mkdir()
    shutil.copy(pair.cert, cert_dir / "tls.crt")
    shutil.copy(pair.key, cert_dir / "tls.key")
    handlers = AdmissionHandlers(
        gates=webhook_gates,
        lookup=CachePlacementLookup(
            Store[Pod](lambda p: p.key, {POD_NAME_INDEX: pod_name_index}), Store[Node](lambda n: n.key)
        ),
        pvc_getter=api_pvc_getter(api),
    )
    server = WebhookServer(handlers, FileCertSource(str(cert_dir)), host="127.0.0.1", port=0, tls=server_tls_context())
    assert await server.start()
    label = uuid.uuid4().hex[:12]
    await api.patch(
        resource_path("", "v1", "namespaces", name=namespace), {"metadata": {"labels": {SCOPE_LABEL: label}}}
    )
    ca = base64.b64encode(pki.ca_pem).decode()
    base = f"https://127.0.0.1:{server.bound_port}"
    name = f"conformance-{namespace}"
    mutating = resource_path(ADMISSION, "v1", "mutatingwebhookconfigurations")
    validating = resource_path(ADMISSION, "v1", "validatingwebhookconfigurations")
    await api.create(
        mutating,
        {
            "metadata": {"name": name},
            "webhooks": [_hook("mjobset.kb.io", base + MUTATE_JOBSET_PATH, ca, label, ["CREATE"])],
        },
    )
    await api.create(
        validating,
        {
            "metadata": {"name": name},
            "webhooks": [_hook("vjobset.kb.io", base + VALIDATE_JOBSET_PATH, ca, label, ["CREATE", "UPDATE"])],
        },
    )
    cluster = Cluster(api, namespace)
    try:
        await _effective(cluster)
        yield Webhooks(cluster)
    finally:
        for path in (mutating, validating):
            with contextlib.suppress(ApiError):
                await api.delete(f"{path}/{name}")
        await server.stop()


# ------------------------------------------------------------------------------------------------ objects


class UserJobSet(JobSetBuilder):
    """A JobSet as a user writes it: ``network`` and ``successPolicy`` (which the webhook defaults) unset."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        del self._obj["spec"]["network"]
        del self._obj["spec"]["successPolicy"]


def jobset(name: str = "js", *, replicas: int = 1) -> JobSetBuilder:
    return UserJobSet(name).rjob("leader", 1).rjob("workers", replicas)


def pod_spec(js: JSON, index: int = 1) -> JSON:
    spec: JSON = js["spec"]["replicatedJobs"][index]["template"]["spec"]["template"]["spec"]
    return spec


def pod_meta(js: JSON, index: int = 1) -> JSON:
    meta: JSON = js["spec"]["replicatedJobs"][index]["template"]["spec"]["template"].setdefault("metadata", {})
    return meta


def vcp(template: str, retention: str | None) -> JSON:
    policy: JSON = {
        "templates": [
            {
                "metadata": {"name": template},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }
        ]
    }
    if retention is not None:
        policy["retentionPolicy"] = {"whenDeleted": retention}
    return policy


def mount(js: JSON, *claims: str) -> JSON:
    out = copy.deepcopy(js)
    pod_spec(out)["containers"][0]["volumeMounts"] = [{"name": c, "mountPath": f"/{c}"} for c in claims]
    return out


# ------------------------------------------------------------------------------------------------ scenarios


async def test_c66_c67_c68_c69_c70_c74_c82_c93_defaulting_on_create(webhooks: Webhooks) -> None:
    obj = jobset().obj()
    del obj["spec"]["replicatedJobs"][0]["template"]["spec"]["completionMode"]  # 66
    obj["spec"]["replicatedJobs"][1]["template"]["spec"]["completionMode"] = "NonIndexed"  # 67
    for rj in obj["spec"]["replicatedJobs"]:
        del rj["template"]["spec"]["template"]["spec"]["restartPolicy"]  # 70
    obj["spec"]["failurePolicy"] = {"rules": [{"action": "FailJobSet"}]}  # 82 + rule name
    obj["spec"]["volumeClaimPolicies"] = [vcp("data", None)]  # 93
    created = await webhooks.create(mount(obj, "data"))
    spec = created["spec"]
    leader, workers = spec["replicatedJobs"]
    assert leader["template"]["spec"]["completionMode"] == "Indexed"  # 66
    assert workers["template"]["spec"]["completionMode"] == "NonIndexed"  # 67
    assert spec["network"]["enableDNSHostnames"] is True  # 68
    assert spec["network"]["publishNotReadyAddresses"] is True  # 69
    for rj in (leader, workers):
        assert rj["template"]["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"  # 70
    assert spec["successPolicy"] == {"operator": "All"} or spec["successPolicy"] == {
        "operator": "All",
        "targetReplicatedJobs": [],
    }  # 74
    assert spec["failurePolicy"]["restartStrategy"] == "Recreate"  # 82
    assert spec["failurePolicy"]["rules"][0]["name"] == "failurePolicyRule0"
    assert spec["startupPolicy"] == {"startupPolicyOrder": "AnyOrder"}
    assert spec["volumeClaimPolicies"][0]["retentionPolicy"] == {"whenDeleted": "Delete"}  # 93
    assert "managedBy" not in spec


async def test_c82_empty_failure_policy_defaults_recreate(webhooks: Webhooks) -> None:
    created = await webhooks.create(jobset().set("spec.failurePolicy", {}).obj())
    assert created["spec"]["failurePolicy"]["restartStrategy"] == "Recreate"


async def test_c75_c76_c87_c88_c89_c95_c96_invalid_creates_rejected(webhooks: Webhooks) -> None:
    # 75: success-policy target naming no replicated job.
    await webhooks.rejected_create(
        jobset().set("spec.successPolicy", {"operator": "All", "targetReplicatedJobs": ["nope"]}).obj(),
        "invalid replicatedJob name 'nope' does not appear in .spec.ReplicatedJobs",
    )
    # 76: negative replicas (CRD minimum).
    obj = jobset().obj()
    obj["spec"]["replicatedJobs"][1]["replicas"] = -1
    await webhooks.rejected_create(obj, "replicas")
    # 87: dependsOn together with InOrder startup (CRD CEL rule).
    obj = jobset().set("spec.startupPolicy", {"startupPolicyOrder": "InOrder"}).obj()
    obj["spec"]["replicatedJobs"][1]["dependsOn"] = [{"name": "leader", "status": "Ready"}]
    await webhooks.rejected_create(obj, "StartupPolicy and DependsOn APIs are mutually exclusive")
    # 88: dependsOn on the first replicated job.
    obj = jobset().obj()
    obj["spec"]["replicatedJobs"][0]["dependsOn"] = [{"name": "workers", "status": "Ready"}]
    await webhooks.rejected_create(obj, "DependsOn can't be set for the first ReplicatedJob")
    # 89: dependsOn status outside the enum.
    obj = jobset().obj()
    obj["spec"]["replicatedJobs"][1]["dependsOn"] = [{"name": "leader", "status": "Failed"}]
    await webhooks.rejected_create(obj, "Failed")
    # 95: a volume-claim template with a namespace.
    obj = jobset().obj()
    policy = vcp("data", "Delete")
    policy["templates"][0]["metadata"]["namespace"] = webhooks.ns
    obj["spec"]["volumeClaimPolicies"] = [policy]
    await webhooks.rejected_create(mount(obj, "data"), "namespace")
    # 96: more than 50 volume-claim policies.
    obj = jobset().obj()
    obj["spec"]["volumeClaimPolicies"] = [vcp(f"v{i}", "Delete") for i in range(51)]
    await webhooks.rejected_create(mount(obj, *(f"v{i}" for i in range(51))), "volumeClaimPolicies")
    assert (await webhooks.api.get(webhooks.path()))["items"] == []


async def test_c77_c86_c91_valid_creates_accepted(webhooks: Webhooks) -> None:
    created = await webhooks.create(jobset("zero", replicas=0).obj())  # 77
    assert created["spec"]["replicatedJobs"][1]["replicas"] == 0
    obj = jobset("any-order").set("spec.startupPolicy", {"startupPolicyOrder": "AnyOrder"}).obj()  # 86
    obj["spec"]["replicatedJobs"][1]["dependsOn"] = [{"name": "leader", "status": "Ready"}]
    created = await webhooks.create(obj)
    assert created["spec"]["replicatedJobs"][1]["dependsOn"] == [{"name": "leader", "status": "Ready"}]
    empty = JobSetBuilder("empty").obj()  # 91
    created = await webhooks.create(empty)
    assert created["spec"]["replicatedJobs"] == []


async def test_c71_c78_c79_suspended_edits_and_suspend_toggles_accepted(webhooks: Webhooks) -> None:
    await webhooks.create(jobset().set("spec.suspend", True).obj())

    def new_node_selector(js: JSON) -> None:
        pod_spec(js)["nodeSelector"] = {"kubernetes.io/os": "linux"}
        pod_meta(js).setdefault("labels", {})["kueue.x-k8s.io/flavor"] = "default"

    await webhooks.accepted_update("js", new_node_selector)  # 71
    await webhooks.accepted_update("js", lambda js: js["spec"].__setitem__("suspend", False))  # 79
    await webhooks.accepted_update("js", lambda js: js["spec"].__setitem__("suspend", True))  # 78


async def test_c72_c73_c85_running_template_edits_rejected(webhooks: Webhooks) -> None:
    await webhooks.create(jobset().obj())
    await webhooks.rejected_update(  # 72
        "js", lambda js: pod_spec(js).__setitem__("nodeSelector", {"kubernetes.io/os": "linux"}), "field is immutable"
    )
    await webhooks.rejected_update(
        "js", lambda js: pod_spec(js).__setitem__("hostname", "h"), "field is immutable"
    )  # 73
    await webhooks.rejected_update("js", lambda js: pod_spec(js).__setitem__("subdomain", "s"), "field is immutable")
    await webhooks.rejected_update(  # 85
        "js", lambda js: pod_meta(js).setdefault("annotations", {}).__setitem__("new", "value"), "field is immutable"
    )
    await webhooks.rejected_update(  # replicas are never mutable
        "js", lambda js: js["spec"]["replicatedJobs"][1].__setitem__("replicas", 2), "field is immutable"
    )


async def test_c80_c81_c83_c90_c94_immutable_fields_rejected(webhooks: Webhooks) -> None:
    obj = jobset().set("spec.suspend", True).obj()
    obj["spec"]["successPolicy"] = {"operator": "All", "targetReplicatedJobs": ["workers"]}
    obj["spec"]["failurePolicy"] = {"maxRestarts": 3}
    obj["spec"]["managedBy"] = "example.com/other-controller"
    obj["spec"]["replicatedJobs"][1]["dependsOn"] = [{"name": "leader", "status": "Ready"}]
    obj["spec"]["volumeClaimPolicies"] = [vcp("data", "Delete")]
    await webhooks.create(mount(obj, "data"))

    def set_targets(js: JSON) -> None:
        js["spec"]["successPolicy"]["targetReplicatedJobs"] = ["leader"]

    def set_max_restarts(js: JSON) -> None:
        js["spec"]["failurePolicy"]["maxRestarts"] = 21

    def set_managed_by(js: JSON) -> None:
        js["spec"]["managedBy"] = "example.com/another-controller"

    def set_depends_on(js: JSON) -> None:
        js["spec"]["replicatedJobs"][1]["dependsOn"][0]["status"] = "Complete"

    def set_retention(js: JSON) -> None:
        js["spec"]["volumeClaimPolicies"][0]["retentionPolicy"]["whenDeleted"] = "Retain"

    await webhooks.rejected_update("js", set_targets, "successPolicy")  # 80
    await webhooks.rejected_update("js", set_max_restarts, "failurePolicy")  # 81
    await webhooks.rejected_update("js", set_managed_by, "managedBy")  # 83 (even while suspended)
    await webhooks.rejected_update("js", set_depends_on, "dependsOn")  # 90
    await webhooks.rejected_update("js", set_retention, "volumeClaimPolicies")  # 94
    stored = await webhooks.cluster.jobset("js")
    assert stored["spec"]["failurePolicy"]["maxRestarts"] == 3


def elastic(parallelism: int, completions: int) -> Callable[[JSON], None]:
    def mutate(js: JSON) -> None:
        spec = js["spec"]["replicatedJobs"][1]["template"]["spec"]
        spec["parallelism"] = parallelism
        spec["completions"] = completions

    return mutate


def elastic_jobset() -> JSON:
    return JobSetBuilder("js").rjob("leader", 1).rjob("workers", 1, parallelism=2, completions=2).obj()


@pytest.mark.parametrize("webhook_gates", [{**KNOWN_GATES, "ElasticJobSet": True}], ids=["ElasticJobSet"])
async def test_c98_c99_c101_elastic_resize_with_gate(webhooks: Webhooks) -> None:
    # Our gated server is one validator among those that see the namespace: a webhook installed in the cluster
    # without the gate (tests/e2e/run.sh installs deploy/) refuses the resize whatever ours answers.
    others = [
        h for h in await jobset_webhooks(webhooks.api, webhooks.ns) if not h.startswith(f"conformance-{webhooks.ns}/")
    ]
    if others:
        pytest.skip(f"needs no other JobSet webhook (ElasticJobSet off) in the namespace; these see it: {others}")
    await webhooks.create(elastic_jobset())
    await webhooks.accepted_update("js", elastic(4, 4))  # 98
    await webhooks.rejected_update(  # 99
        "js", elastic(4, 5), "completions must be equal to parallelism for Elastic Indexed Jobs"
    )
    await webhooks.rejected_update("js", elastic(0, 0), "parallelism must be >= 1")  # 101


async def test_c102_elastic_resize_without_gate_rejected(webhooks: Webhooks) -> None:
    await webhooks.create(elastic_jobset())
    await webhooks.rejected_update("js", elastic(4, 4), "field is immutable")


async def test_webhooks_do_not_block_the_controller(webhooks: Webhooks, controller: Any) -> None:
    # With both webhooks in the path, a defaulted JobSet runs: its status writes (status subresource) and Job
    # creations are not blocked, and it completes once its Jobs do.
    obj = jobset().obj()
    for rj in obj["spec"]["replicatedJobs"]:
        rj["template"]["spec"]["template"]["metadata"]["annotations"]["sim.pyjobset.io/run-seconds"] = "0.2"
    await webhooks.create(obj)
    await webhooks.cluster.wait_terminal("js", "Completed")


async def test_jobset_webhooks_lists_the_webhooks_that_see_a_namespace(webhooks: Webhooks, api: ApiClient) -> None:
    # The tier's ``without_jobset_webhooks`` fixture relies on this answer to skip where admission is on.
    ns = webhooks.ns
    names = [f"conformance-{ns}/mjobset.kb.io", f"conformance-{ns}/vjobset.kb.io"]
    other = f"t-{uuid.uuid4().hex[:10]}"
    await api.create(resource_path("", "v1", "namespaces"), {"metadata": {"name": other}})
    try:
        # Webhooks installed for the whole cluster (tests/e2e/run.sh installs deploy/'s) see both namespaces;
        # the test's configurations select this test's namespace only.
        cluster_wide = await jobset_webhooks(api, other)
        assert not [h for h in cluster_wide if h.startswith(f"conformance-{ns}/")]
        assert sorted(await jobset_webhooks(api, ns)) == sorted(names + cluster_wide)
    finally:
        await api.delete(resource_path("", "v1", "namespaces", name=other))
