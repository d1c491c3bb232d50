"""The real Kueue (v0.17.0, ``tests/e2e/ecosystem/kueue``) manages JobSets that the installed pyjobset runs.

Kueue is installed as its own manifests say (``kubectl apply --server-side`` of its ``config/default`` kustomization,
read from the Go module cache: CRDs, RBAC, webhooks with its internal certificate management, the visibility API,
the manager Deployment and its ConfigMap with the ``jobset.x-k8s.io/jobset`` integration on). The one change a user
makes here is the manager configuration's ``waitForPodsReady`` (a short timeout and backoff, so a JobSet whose pods
cannot start is requeued within the test). ``tests/e2e/run.sh`` runs the manager's pod with the e2e kubelet (the
binary built by ``tests/e2e/ecosystem/build.sh kueue`` standing in for the image); kube-apiserver calls Kueue's
webhooks through its Service like ours.

Scenarios (issue 16 item 1): ResourceFlavors mapped to our KWOK node pools, a ClusterQueue with a GPU quota and a
LocalQueue; labelled JobSets are created suspended by Kueue's webhook, admitted in quota order, resumed with the
flavor's node selector in their pod templates (their pods land on that pool) and run to completion, while one that
does not fit waits suspended with its Jobs suspended and no pods; a higher-priority JobSet preempts a running one,
which is suspended (pods gone, the same Jobs kept suspended, as the reference does) and later resumes and
completes; ``waitForPodsReady`` evicts and requeues a JobSet whose pods cannot be scheduled. Kueue's own view
(Workload conditions, ClusterQueue counts) is checked against what pyjobset did.

Requires the installed controller with admission (``tests/e2e/run.sh``); fails under ``PYJOBSET_E2E_REQUIRE=1`` when
the Kueue binary or its module source is missing, skips with the reason elsewhere.
"""

from __future__ import annotations

import os
import ssl
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.ecosystem import common
from tests.e2e.kube import ApiError, Client, condition, has_condition

pytestmark = pytest.mark.e2e

JSON = dict[str, Any]
KUEUE_NS = "kueue-system"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
POOL = "cloud.google.com/gke-nodepool"
GPU = "nvidia.com/gpu"
SIM = "sim.pyjobset.io/"
JOBSET_NAME = "jobset.sigs.k8s.io/jobset-name"
OURS = {"e2e.pyjobset.io/kueue": "true"}  # on every cluster-scoped object these tests create
KQ = "/apis/kueue.x-k8s.io/v1beta2"
JOBSETS = "/apis/jobset.x-k8s.io/v1alpha2/namespaces/{ns}/jobsets"
WAIT_FOR_PODS_READY = {
    # A JobSet whose pods are not all ready this long after admission is evicted and requeued after a backoff.
    "timeout": "45s",
    "requeuingStrategy": {"timestamp": "Eviction", "backoffBaseSeconds": 5, "backoffMaxSeconds": 30},
}
CRDS = ("clusterqueues", "localqueues", "resourceflavors", "workloads", "workloadpriorityclasses")


# ---------------------------------------------------------------------------------------------- install


def _render(source: Path, kubeconfig: str) -> list[JSON]:
    """Kueue's ``config/default`` as kustomize renders it, with ``waitForPodsReady`` set in the manager config."""
    docs = [d for d in yaml.safe_load_all(common.kubectl(kubeconfig, "kustomize", str(source / "config/default"))) if d]
    configs = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "kueue-manager-config"]
    if len(configs) != 1:
        pytest.fail(f"Kueue's config/default has no single kueue-manager-config ConfigMap: {len(configs)} found")
    config = yaml.safe_load(configs[0]["data"]["controller_manager_config.yaml"])
    if "jobset.x-k8s.io/jobset" not in config.get("integrations", {}).get("frameworks", []):
        pytest.fail(f"Kueue's default configuration does not enable the JobSet integration: {config}")
    config["waitForPodsReady"] = WAIT_FOR_PODS_READY
    configs[0]["data"]["controller_manager_config.yaml"] = yaml.safe_dump(config, sort_keys=False)
    return docs


def _webhook_suspends(admin: Client) -> bool:
    """Kueue's mutating webhook answers: a dry-run JobSet with a queue name comes back suspended."""
    body = jobset("probe", queue="probe", gpus=1, replicas=1)
    try:
        created = admin.request("POST", JOBSETS.format(ns="default"), body, query={"dryRun": "All"})
    except ApiError:
        return False
    return bool(created["spec"].get("suspend"))


class Kueue:
    """The running Kueue as the tests see it: its metrics, read as Prometheus would (a ServiceAccount token bound
    to Kueue's own ``kueue-metrics-reader`` ClusterRole, HTTPS to the pod's metrics port)."""

    def __init__(self, admin: Client) -> None:
        self.admin = admin
        admin.ensure(f"/api/v1/namespaces/{KUEUE_NS}/serviceaccounts", {"metadata": {"name": "e2e-metrics"}})
        admin.ensure(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "metadata": {"name": "e2e-kueue-metrics", "labels": OURS},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "kueue-metrics-reader",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "e2e-metrics", "namespace": KUEUE_NS}],
            },
        )
        review = admin.create(
            f"/api/v1/namespaces/{KUEUE_NS}/serviceaccounts/e2e-metrics/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}},
        )
        self.token = review["status"]["token"]
        self._tls = ssl.create_default_context()
        self._tls.check_hostname = False
        self._tls.verify_mode = ssl.CERT_NONE  # Kueue serves its metrics with a self-signed certificate

    def metric(self, name: str, **labels: str) -> float:
        """The sum of Kueue's series ``name`` whose labels include ``labels`` (0 when there is none)."""
        pods = self.admin.get(f"/api/v1/namespaces/{KUEUE_NS}/pods").get("items") or []
        ip = next(p["status"]["podIP"] for p in pods if (p.get("status") or {}).get("phase") == "Running")
        req = urllib.request.Request(f"https://{ip}:8443/metrics", headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, context=self._tls, timeout=30) as resp:
            text = resp.read().decode()
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{"):
                continue
            series, _, value = line.rpartition(" ")
            if all(f'{key}="{val}"' in series for key, val in labels.items()):
                total += float(value)
        return total

    def wait_metric(self, name: str, expected: float, timeout: float = 60, **labels: str) -> None:
        """Poll the scrape (metrics have no watch) until ``name{labels}`` equals ``expected``."""
        deadline = time.monotonic() + timeout
        while (seen := self.metric(name, **labels)) != expected:
            if time.monotonic() > deadline:
                pytest.fail(f"Kueue's {name}{labels} is {seen}, expected {expected}")
            time.sleep(1)


@pytest.fixture(scope="module")
def kueue(admin: Client, kubeconfig: str, jobset_controller: None) -> Iterator[Kueue]:
    """Kueue installed from its module's manifests and running; everything it installed removed afterwards."""
    if os.environ.get("PYJOBSET_E2E_KUEUE") == "0":
        pytest.skip("PYJOBSET_E2E_KUEUE=0: this run does not build or run the real Kueue")
    pin = common.pinned("kueue")
    binary = common.binary(pin)
    if os.environ.get("PYJOBSET_E2E_KUEUE_BIN") != str(binary):
        common.unavailable(
            f"no e2e kubelet runs {KUEUE_NS}'s pods with {binary}: run tests/e2e/run.sh (it starts the kubelet with "
            f"--namespace {KUEUE_NS}=BINARY and exports PYJOBSET_E2E_KUEUE_BIN)"
        )
    docs = _render(common.module_dir(pin), kubeconfig)
    manifest = yaml.safe_dump_all(docs, sort_keys=False)
    common.kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", "-", input=manifest)
    try:
        common.kubectl(
            kubeconfig,
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            *(f"crd/{crd}.kueue.x-k8s.io" for crd in CRDS),
        )
        common.kubectl(
            kubeconfig,
            "-n",
            KUEUE_NS,
            "wait",
            "--for=condition=Available",
            "--timeout=240s",
            "deployment/kueue-controller-manager",
        )
        deadline = time.monotonic() + 120
        while not _webhook_suspends(admin):
            if time.monotonic() > deadline:
                pytest.fail("Kueue's webhook did not suspend a queued JobSet within 120 s of its pod being Ready")
            time.sleep(1)
        common.kubectl(
            kubeconfig,
            "wait",
            "--for=condition=Available",
            "--timeout=60s",
            "apiservice/v1beta2.visibility.kueue.x-k8s.io",
        )
        _cluster_objects(admin)
        yield Kueue(admin)
    finally:
        _uninstall(admin, kubeconfig, manifest)


def _cluster_objects(admin: Client) -> None:
    """The ResourceFlavors (one per KWOK node pool) and WorkloadPriorityClasses the scenarios share."""
    for pool in ("pool-0", "pool-1"):
        admin.ensure(
            f"{KQ}/resourceflavors",
            {
                "apiVersion": "kueue.x-k8s.io/v1beta2",
                "kind": "ResourceFlavor",
                "metadata": {"name": f"e2e-{pool}", "labels": OURS},
                "spec": {"nodeLabels": {POOL: pool}},
            },
        )
    for name, value in (("e2e-low", 100), ("e2e-high", 1000)):
        admin.ensure(
            f"{KQ}/workloadpriorityclasses",
            {
                "apiVersion": "kueue.x-k8s.io/v1beta2",
                "kind": "WorkloadPriorityClass",
                "metadata": {"name": name, "labels": OURS},
                "value": value,
            },
        )


def _uninstall(admin: Client, kubeconfig: str, manifest: str) -> None:
    # Kueue must still run while its Workloads go (its finalizers), so: test namespaces' Workloads first, then the
    # queues and flavors, then Kueue itself (webhooks and APIServices included, so later suites see none of it).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            left = admin.get(f"{KQ}/workloads").get("items") or []
        except ApiError:
            break
        if not left:
            break
        time.sleep(1)
    for collection in (
        f"{KQ}/clusterqueues",
        f"{KQ}/resourceflavors",
        f"{KQ}/workloadpriorityclasses",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    ):
        try:
            for item in admin.get(collection, labelSelector="e2e.pyjobset.io/kueue=true").get("items") or []:
                admin.delete(f"{collection}/{item['metadata']['name']}")
        except ApiError:
            pass
    common.kubectl(kubeconfig, "delete", "--ignore-not-found", "--wait=false", "-f", "-", input=manifest)


# ---------------------------------------------------------------------------------------------- objects


def jobset(
    name: str,
    *,
    queue: str,
    gpus: int,
    replicas: int = 2,
    run_seconds: int = 5,
    priority: str = "",
    node_selector: dict[str, str] | None = None,
) -> JSON:
    """A queued JobSet: one replicated job of ``replicas`` single-pod Jobs, each pod asking ``gpus`` GPUs."""
    labels = {QUEUE_LABEL: queue}
    if priority:
        labels[PRIORITY_LABEL] = priority
    pod_spec: JSON = {
        "restartPolicy": "Never",
        "containers": [
            {
                "name": "worker",
                "image": "busybox:1.36",
                "resources": {"requests": {GPU: str(gpus)}, "limits": {GPU: str(gpus)}},
            }
        ],
    }
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicatedJobs": [
                {
                    "name": "workers",
                    "replicas": replicas,
                    "template": {
                        "spec": {
                            "parallelism": 1,
                            "completions": 1,
                            "backoffLimit": 0,
                            "template": {
                                "metadata": {"annotations": {SIM + "run-seconds": str(run_seconds)}},
                                "spec": pod_spec,
                            },
                        }
                    },
                }
            ]
        },
    }


def queues(admin: Client, ns: str, *, flavors: list[tuple[str, int]], preemption: bool = False) -> str:
    """A ClusterQueue for namespace ``ns`` (GPU quota per flavor, in order) and its LocalQueue; the queue name."""
    spec: JSON = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
        "queueingStrategy": "StrictFIFO",
        "resourceGroups": [
            {
                "coveredResources": [GPU],
                "flavors": [
                    {"name": f"e2e-{pool}", "resources": [{"name": GPU, "nominalQuota": str(quota)}]}
                    for pool, quota in flavors
                ],
            }
        ],
    }
    if preemption:
        spec["preemption"] = {"withinClusterQueue": "LowerPriority"}
    admin.create(
        f"{KQ}/clusterqueues",
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": ns, "labels": OURS},
            "spec": spec,
        },
    )
    admin.create(
        f"{KQ}/namespaces/{ns}/localqueues",
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "LocalQueue",
            "metadata": {"name": "queue"},
            "spec": {"clusterQueue": ns},
        },
    )
    admin.wait_for(
        f"{KQ}/clusterqueues",
        lambda cq: has_condition(cq, "Active"),
        field_selector=f"metadata.name={ns}",
        what=f"ClusterQueue {ns} Active",
    )
    admin.wait_for(
        f"{KQ}/namespaces/{ns}/localqueues",
        lambda lq: has_condition(lq, "Active"),
        what=f"LocalQueue {ns}/queue Active",
    )
    return "queue"


def submit(admin: Client, ns: str, body: JSON) -> JSON:
    created = admin.create(JOBSETS.format(ns=ns), body)
    assert created["spec"].get("suspend") is True, f"Kueue's webhook did not suspend {body['metadata']['name']}"
    return created


# ---------------------------------------------------------------------------------------------- waits


def workload_of(admin: Client, ns: str, name: str, predicate: Any, what: str, timeout: float = 120) -> JSON:
    """The Workload Kueue made for JobSet ``name`` once ``predicate`` holds."""
    return admin.wait_for(
        f"{KQ}/namespaces/{ns}/workloads",
        lambda wl: (
            any(
                o.get("kind") == "JobSet" and o.get("name") == name for o in wl["metadata"].get("ownerReferences") or []
            )
            and predicate(wl)
        ),
        timeout=timeout,
        what=f"Workload of JobSet {ns}/{name}: {what}",
    )


def admitted(wl: JSON) -> bool:
    return has_condition(wl, "Admitted")


def flavor_of(wl: JSON) -> str:
    assignments = wl["status"]["admission"]["podSetAssignments"]
    assert len(assignments) == 1, assignments
    return str(assignments[0]["flavors"][GPU])


def wait_jobset(admin: Client, ns: str, name: str, predicate: Any, what: str, timeout: float = 120) -> JSON:
    return admin.wait_for(
        JOBSETS.format(ns=ns),
        predicate,
        field_selector=f"metadata.name={name}",
        timeout=timeout,
        what=f"JobSet {ns}/{name} {what}",
    )


def pod_template(js: JSON) -> JSON:
    """The pod spec of the JobSet's (only) replicated job."""
    spec: JSON = js["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    return spec


def resumed_on(pool: str) -> Any:
    def check(js: JSON) -> bool:
        return js["spec"].get("suspend") is False and (pod_template(js).get("nodeSelector") or {}).get(POOL) == pool

    return check


def completed(js: JSON) -> bool:
    return has_condition(js, "Completed")


def pods_of(admin: Client, ns: str, name: str) -> list[JSON]:
    return admin.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=f"{JOBSET_NAME}={name}").get("items") or []


def jobs_of(admin: Client, ns: str, name: str) -> list[JSON]:
    return admin.get(f"/apis/batch/v1/namespaces/{ns}/jobs", labelSelector=f"{JOBSET_NAME}={name}").get("items") or []


def wait_pods_running(admin: Client, ns: str, name: str, count: int, timeout: float = 120) -> list[JSON]:
    running: dict[str, JSON] = {}

    def check(pod: JSON) -> bool:
        if pod["metadata"]["labels"].get(JOBSET_NAME) == name and pod.get("status", {}).get("phase") == "Running":
            running[pod["metadata"]["name"]] = pod
        return len(running) >= count

    admin.wait_for(
        f"/api/v1/namespaces/{ns}/pods",
        check,
        label_selector=f"{JOBSET_NAME}={name}",
        timeout=timeout,
        what=f"{count} running pods of JobSet {name}",
    )
    return list(running.values())


def node_pool(admin: Client, node: str) -> str:
    return str(admin.get(f"/api/v1/nodes/{node}")["metadata"]["labels"].get(POOL))


def cluster_queue(admin: Client, name: str, predicate: Any, what: str, timeout: float = 60) -> JSON:
    return admin.wait_for(
        f"{KQ}/clusterqueues",
        predicate,
        field_selector=f"metadata.name={name}",
        timeout=timeout,
        what=f"ClusterQueue {name} {what}",
    )


def counts(cq: JSON) -> tuple[int, int, int]:
    status = cq.get("status") or {}
    return (
        int(status.get("pendingWorkloads", 0)),
        int(status.get("reservingWorkloads", 0)),
        int(status.get("admittedWorkloads", 0)),
    )


# ---------------------------------------------------------------------------------------------- scenarios


def test_queued_jobsets_are_admitted_in_quota_order_onto_their_flavors_pool(
    kueue: Kueue, admin: Client, namespace: str
) -> None:
    queue = queues(admin, namespace, flavors=[("pool-0", 8), ("pool-1", 8)])

    submit(admin, namespace, jobset("first", queue=queue, gpus=4, run_seconds=20))
    first = workload_of(admin, namespace, "first", admitted, "Admitted")
    assert flavor_of(first) == "e2e-pool-0"
    submit(admin, namespace, jobset("second", queue=queue, gpus=4, run_seconds=20))
    second = workload_of(admin, namespace, "second", admitted, "Admitted")
    assert flavor_of(second) == "e2e-pool-1", "the first flavor's quota is used up: the next one is assigned"

    # Resumed by Kueue with the flavor's node labels injected into the pod template; pyjobset carries them to the
    # Jobs it unsuspends, so the pods land on that pool's nodes.
    for name, pool in (("first", "pool-0"), ("second", "pool-1")):
        wait_jobset(admin, namespace, name, resumed_on(pool), f"resumed on {pool}")
        for pod in wait_pods_running(admin, namespace, name, 2):
            assert pod["spec"]["nodeSelector"][POOL] == pool
            assert node_pool(admin, pod["spec"]["nodeName"]) == pool, pod["spec"]["nodeName"]

    # The third does not fit while both run: its Workload is pending, the JobSet stays suspended, and the Jobs
    # pyjobset created for it stay suspended without pods.
    submit(admin, namespace, jobset("third", queue=queue, gpus=4, run_seconds=2))
    pending = workload_of(
        admin,
        namespace,
        "third",
        lambda wl: (condition(wl, "QuotaReserved") or {}).get("status") == "False",
        "pending without quota",
    )
    assert not admitted(pending)
    cq = cluster_queue(admin, namespace, lambda cq: counts(cq) == (1, 2, 2), "1 pending, 2 reserving, 2 admitted")
    assert counts(cq) == (1, 2, 2)
    if has_condition(admin.get(f"{JOBSETS.format(ns=namespace)}/first"), "Completed"):
        pytest.fail("the first JobSet finished before the third was seen waiting: the check below would be void")
    third = admin.get(f"{JOBSETS.format(ns=namespace)}/third")
    assert third["spec"]["suspend"] is True
    assert has_condition(third, "Suspended")
    jobs = jobs_of(admin, namespace, "third")
    assert len(jobs) == 2
    assert all(job["spec"].get("suspend") is True for job in jobs), [j["spec"].get("suspend") for j in jobs]
    assert pods_of(admin, namespace, "third") == []

    # Each runs to completion; Kueue sees every Workload finish, and the waiting one is admitted on the freed quota.
    for name in ("first", "second"):
        wait_jobset(admin, namespace, name, completed, "Completed")
        finished = workload_of(admin, namespace, name, lambda wl: has_condition(wl, "Finished"), "Finished")
        assert condition(finished, "Finished")["reason"] == "Succeeded"
    third_wl = workload_of(admin, namespace, "third", admitted, "Admitted")
    freed = flavor_of(third_wl).removeprefix("e2e-")
    wait_jobset(admin, namespace, "third", resumed_on(freed), f"resumed on {freed}")
    wait_jobset(admin, namespace, "third", completed, "Completed")
    workload_of(admin, namespace, "third", lambda wl: has_condition(wl, "Finished"), "Finished")
    assert all(node_pool(admin, p["spec"]["nodeName"]) == freed for p in pods_of(admin, namespace, "third"))
    cq = cluster_queue(admin, namespace, lambda cq: counts(cq) == (0, 0, 0), "empty")
    assert counts(cq) == (0, 0, 0)
    # Kueue's own counts: three admissions, three finished Workloads, no eviction.
    kueue.wait_metric("kueue_admitted_workloads_total", 3, cluster_queue=namespace)
    kueue.wait_metric("kueue_finished_workloads", 3, cluster_queue=namespace)
    assert kueue.metric("kueue_evicted_workloads_total", cluster_queue=namespace) == 0


def test_higher_priority_jobset_preempts_a_running_one_which_resumes_and_completes_later(
    kueue: Kueue, admin: Client, namespace: str
) -> None:
    queue = queues(admin, namespace, flavors=[("pool-0", 8)], preemption=True)

    submit(admin, namespace, jobset("low", queue=queue, gpus=4, run_seconds=20, priority="e2e-low"))
    workload_of(admin, namespace, "low", admitted, "Admitted")
    wait_jobset(admin, namespace, "low", resumed_on("pool-0"), "resumed on pool-0")
    first_pods = wait_pods_running(admin, namespace, "low", 2)
    job_uids = sorted(job["metadata"]["uid"] for job in jobs_of(admin, namespace, "low"))
    assert len(job_uids) == 2

    submit(admin, namespace, jobset("high", queue=queue, gpus=4, run_seconds=3, priority="e2e-high"))
    evicted = workload_of(
        admin, namespace, "low", lambda wl: has_condition(wl, "Evicted"), "Evicted (preempted)", timeout=60
    )
    assert condition(evicted, "Evicted")["reason"] == "Preempted", condition(evicted, "Evicted")

    # Kueue suspends the JobSet (and takes its flavor's node selector back out); pyjobset suspends its Jobs, whose
    # pods go, and keeps the same Jobs (behaviour.md §4.7) rather than recreating them.
    wait_jobset(
        admin,
        namespace,
        "low",
        lambda js: js["spec"].get("suspend") is True and POOL not in (pod_template(js).get("nodeSelector") or {}),
        "suspended by Kueue, the flavor's node selector taken back out",
    )
    admin.wait_for(
        f"/apis/batch/v1/namespaces/{namespace}/jobs",
        lambda _: all(job["spec"].get("suspend") is True for job in jobs_of(admin, namespace, "low")),
        label_selector=f"{JOBSET_NAME}=low",
        what="the preempted JobSet's Jobs suspended",
    )
    for pod in first_pods:
        admin.wait_gone(f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}", timeout=90)
    assert sorted(job["metadata"]["uid"] for job in jobs_of(admin, namespace, "low")) == job_uids

    workload_of(admin, namespace, "high", admitted, "Admitted")
    wait_jobset(admin, namespace, "high", completed, "Completed", timeout=180)
    workload_of(admin, namespace, "high", lambda wl: has_condition(wl, "Finished"), "Finished")

    # The preempted one is admitted again, resumed on the same Jobs, and completes.
    workload_of(admin, namespace, "low", admitted, "Admitted again", timeout=180)
    wait_jobset(admin, namespace, "low", resumed_on("pool-0"), "resumed again on pool-0")
    done = wait_jobset(admin, namespace, "low", completed, "Completed", timeout=180)
    assert sorted(job["metadata"]["uid"] for job in jobs_of(admin, namespace, "low")) == job_uids
    assert int(done["status"].get("restarts", 0)) == 0, "a suspension is not a restart"
    wl = workload_of(admin, namespace, "low", lambda wl: has_condition(wl, "Finished"), "Finished")
    assert condition(wl, "Finished")["reason"] == "Succeeded"
    cq = cluster_queue(admin, namespace, lambda cq: counts(cq) == (0, 0, 0), "empty")
    assert counts(cq) == (0, 0, 0)
    # Kueue's own counts: low admitted twice, high once; one preemption; both finished.
    kueue.wait_metric("kueue_admitted_workloads_total", 3, cluster_queue=namespace)
    kueue.wait_metric("kueue_finished_workloads", 2, cluster_queue=namespace)
    kueue.wait_metric("kueue_evicted_workloads_total", 1, cluster_queue=namespace, reason="Preempted")


def test_wait_for_pods_ready_requeues_a_jobset_whose_pods_cannot_start(
    kueue: Kueue, admin: Client, namespace: str
) -> None:
    queue = queues(admin, namespace, flavors=[("pool-0", 8)])
    # No node has this label: once admitted, the pods stay Pending (unschedulable) past waitForPodsReady's timeout.
    body = jobset("stuck", queue=queue, gpus=4, replicas=1, node_selector={"e2e.pyjobset.io/absent": "true"})
    submit(admin, namespace, body)
    workload_of(admin, namespace, "stuck", admitted, "Admitted")
    wait_jobset(admin, namespace, "stuck", resumed_on("pool-0"), "resumed on pool-0")
    unschedulable = admin.wait_for(
        f"/api/v1/namespaces/{namespace}/pods",
        lambda pod: has_condition(pod, "PodScheduled", "False"),
        label_selector=f"{JOBSET_NAME}=stuck",
        what="an unschedulable pod of JobSet stuck",
    )

    evicted = workload_of(
        admin, namespace, "stuck", lambda wl: has_condition(wl, "Evicted"), "Evicted by waitForPodsReady", timeout=180
    )
    assert condition(evicted, "Evicted")["reason"] == "PodsReadyTimeout", condition(evicted, "Evicted")
    wait_jobset(admin, namespace, "stuck", lambda js: js["spec"].get("suspend") is True, "suspended by Kueue")
    admin.wait_for(
        f"/apis/batch/v1/namespaces/{namespace}/jobs",
        lambda job: job["spec"].get("suspend") is True,
        label_selector=f"{JOBSET_NAME}=stuck",
        what="the evicted JobSet's Job suspended",
    )
    admin.wait_gone(f"/api/v1/namespaces/{namespace}/pods/{unschedulable['metadata']['name']}", timeout=90)

    # Requeued after the backoff and admitted again: pyjobset resumes the same JobSet once more.
    again = workload_of(
        admin,
        namespace,
        "stuck",
        lambda wl: admitted(wl) and int((wl["status"].get("requeueState") or {}).get("count", 0)) >= 1,
        "requeued and admitted again",
        timeout=120,
    )
    assert not has_condition(again, "Finished")
    wait_jobset(admin, namespace, "stuck", resumed_on("pool-0"), "resumed again after the requeue")
    assert kueue.metric("kueue_evicted_workloads_total", cluster_queue=namespace, reason="PodsReadyTimeout") >= 1
    assert kueue.metric("kueue_finished_workloads", cluster_queue=namespace) == 0
