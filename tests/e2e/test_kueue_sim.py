"""The real Kueue binary (v0.17.0) queues JobSets on the simulated cluster: ``pyjobset up`` (kubesim + our controller).

Issue 16 item 3. Kueue's ``config/default`` objects that the simulated cluster can hold are applied with kubectl as
on a real cluster (Namespace, CRDs, ConfigMap, Secret, Services, webhook configurations; RBAC objects are accepted
but kubesim authorizes nothing); its Deployment is not run (kubesim runs no containers), the manager runs here as a
process with the admin kubeconfig instead. What differs from a real install, each for a simulated-cluster reason
(``docs/integrations/kueue.md``, "On the simulated cluster"):

* the webhook Service's ``targetPort`` is a free loopback port and the manager listens there (kubesim has no
  service network: it calls a webhook Service at ``127.0.0.1:<targetPort>``);
* the certificate Kueue writes into its Secret is copied to the manager's certificate directory by this test (a
  kubelet's job: the manager waits until the mounted files match the Secret);
* ``VisibilityOnDemand`` is off and the metrics endpoint is off: both need delegated authentication (an in-cluster
  configuration and the TokenReview/SubjectAccessReview APIs) that kubesim does not serve;
* leader election is off (one manager).

Scenario: a ClusterQueue with 8 GPUs on the flavor of pool-1; two JobSets of 8 GPUs each: the first is suspended by
Kueue's webhook, admitted, resumed with pool-1's node selector (its pods run on pool-1's nodes) and completes; the
second waits suspended (its Jobs suspended, no pods) until the quota is free, then runs too.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli.up_process import up_process
from tests.e2e.ecosystem import common
from tests.e2e.kube import Client, condition, has_condition
from tests.e2e.test_kueue import JOBSETS, jobs_of, jobset, pods_of, resumed_on, wait_jobset, workload_of

pytestmark = pytest.mark.e2e

JSON = dict[str, Any]
KUEUE_NS = "kueue-system"
POOL = "cloud.google.com/gke-nodepool"
JOBSET_NAME = "jobset.sigs.k8s.io/jobset-name"
HOSTED = {
    "Namespace",
    "CustomResourceDefinition",
    "ConfigMap",
    "Secret",
    "Service",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ClusterRole",
    "ClusterRoleBinding",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _objects(source: Path, kubeconfig: Path, workdir: Path) -> tuple[list[JSON], JSON]:
    """Kueue's ``config/default`` objects kubesim can hold, adjusted as the module docstring says; and the
    manager configuration."""
    rendered = common.kubectl(kubeconfig, "kustomize", str(source / "config/default"))
    docs = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] in HOSTED]
    webhook_port, health_port = _free_port(), _free_port()
    config: JSON = {}
    for doc in docs:
        if doc["kind"] == "Service" and doc["metadata"]["name"] == "kueue-webhook-service":
            doc["spec"]["ports"][0]["targetPort"] = webhook_port
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "kueue-manager-config":
            config = yaml.safe_load(doc["data"]["controller_manager_config.yaml"])
    assert config, "Kueue's config/default has no kueue-manager-config ConfigMap"
    config["webhook"] = {"host": "127.0.0.1", "port": webhook_port, "certDir": str(workdir / "certs")}
    config["health"] = {"healthProbeBindAddress": f"127.0.0.1:{health_port}"}
    config["metrics"] = {"bindAddress": "0"}
    config["leaderElection"] = {"leaderElect": False}
    config["featureGates"] = {"VisibilityOnDemand": False}
    return docs, config


class SecretFiles(threading.Thread):
    """Keeps the manager's certificate directory equal to Kueue's webhook Secret (what a kubelet does)."""

    def __init__(self, admin: Client, target: Path) -> None:
        super().__init__(daemon=True, name="kueue-secret")
        self.admin, self.target = admin, target
        self.stopping = threading.Event()

    def run(self) -> None:
        path = f"/api/v1/namespaces/{KUEUE_NS}/secrets/kueue-webhook-server-cert"
        while not self.stopping.is_set():
            try:
                data = self.admin.get(path).get("data") or {}
            except Exception:  # the simulated cluster is going away at the end
                data = {}
            for name, value in data.items():
                content = base64.b64decode(value)
                file = self.target / name
                if not file.exists() or file.read_bytes() != content:
                    aside = file.with_name(f".{name}.tmp")
                    aside.write_bytes(content)
                    aside.replace(file)
            self.stopping.wait(0.5)


@pytest.fixture
def kueue_on_sim(tmp_path: Path) -> Iterator[Client]:
    if os.environ.get("PYJOBSET_E2E_KUEUE") == "0":
        pytest.skip("PYJOBSET_E2E_KUEUE=0: this run does not build or run the real Kueue")
    pin = common.pinned("kueue")
    binary = common.binary(pin)
    source = common.module_dir(pin)
    with up_process(tmp_path, "--nodes", "4", "--nodes-per-pool", "2") as up:
        admin = Client(up.kubeconfig)
        (tmp_path / "certs").mkdir()
        docs, config = _objects(source, up.kubeconfig, tmp_path)
        common.kubectl(up.kubeconfig, "apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(docs))
        (tmp_path / "kueue.yaml").write_text(yaml.safe_dump(config))
        secrets = SecretFiles(admin, tmp_path / "certs")
        secrets.start()
        log = (tmp_path / "kueue.log").open("w")
        manager = subprocess.Popen(
            [str(binary), f"--config={tmp_path / 'kueue.yaml'}", "--zap-log-level=2"],
            env={**os.environ, "KUBECONFIG": str(up.kubeconfig)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            health = config["health"]["healthProbeBindAddress"]
            common.wait_http_ok(f"http://{health}/readyz", manager, tmp_path / "kueue.log", timeout=180)
            yield admin
            if manager.poll() is not None:
                tail = "\n".join((tmp_path / "kueue.log").read_text(errors="replace").splitlines()[-20:])
                pytest.fail(f"Kueue's manager exited with {manager.returncode} during the test:\n{tail}")
        finally:
            manager.terminate()
            try:
                manager.wait(timeout=30)
            except subprocess.TimeoutExpired:
                manager.kill()
                manager.wait()
            secrets.stopping.set()
            log.close()


def _apply(admin: Client, kubeconfig: Path, docs: list[JSON]) -> None:
    common.kubectl(kubeconfig, "apply", "-f", "-", input=yaml.safe_dump_all(docs))


def test_kueue_queues_jobsets_on_the_simulated_cluster(kueue_on_sim: Client, tmp_path: Path) -> None:
    admin = kueue_on_sim
    kubeconfig = tmp_path / "kubeconfig"
    flavor = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ResourceFlavor",
        "metadata": {"name": "pool-1"},
        "spec": {"nodeLabels": {POOL: "pool-1"}},
    }
    cq = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ClusterQueue",
        "metadata": {"name": "team"},
        "spec": {
            "namespaceSelector": {},
            "queueingStrategy": "StrictFIFO",
            "resourceGroups": [
                {
                    "coveredResources": ["nvidia.com/gpu"],
                    "flavors": [{"name": "pool-1", "resources": [{"name": "nvidia.com/gpu", "nominalQuota": "8"}]}],
                }
            ],
        },
    }
    lq = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "LocalQueue",
        "metadata": {"name": "queue", "namespace": "default"},
        "spec": {"clusterQueue": "team"},
    }
    _apply(admin, kubeconfig, [flavor, cq, lq])
    admin.wait_for(
        "/apis/kueue.x-k8s.io/v1beta2/namespaces/default/localqueues",
        lambda q: has_condition(q, "Active"),
        what="LocalQueue default/queue Active",
    )

    first = admin.create(JOBSETS.format(ns="default"), jobset("first", queue="queue", gpus=4, run_seconds=6))
    assert first["spec"]["suspend"] is True, "Kueue's webhook (called by kubesim) suspends a queued JobSet"
    workload_of(admin, "default", "first", lambda wl: has_condition(wl, "Admitted"), "Admitted")
    wait_jobset(admin, "default", "first", resumed_on("pool-1"), "resumed on pool-1")

    second = admin.create(JOBSETS.format(ns="default"), jobset("second", queue="queue", gpus=4, run_seconds=1))
    assert second["spec"]["suspend"] is True
    workload_of(
        admin,
        "default",
        "second",
        lambda wl: (condition(wl, "QuotaReserved") or {}).get("status") == "False",
        "pending without quota",
    )
    assert not has_condition(admin.get(f"{JOBSETS.format(ns='default')}/first"), "Completed"), (
        "the first JobSet finished before the second was seen waiting: the checks below would be void"
    )
    assert all(job["spec"].get("suspend") is True for job in jobs_of(admin, "default", "second"))
    assert pods_of(admin, "default", "second") == []

    for name in ("first", "second"):
        wait_jobset(admin, "default", name, lambda js: has_condition(js, "Completed"), "Completed", timeout=120)
        workload_of(admin, "default", name, lambda wl: has_condition(wl, "Finished"), "Finished")
        for pod in pods_of(admin, "default", name):
            node = admin.get(f"/api/v1/nodes/{pod['spec']['nodeName']}")
            assert node["metadata"]["labels"][POOL] == "pool-1", json.dumps(pod["spec"].get("nodeSelector"))
