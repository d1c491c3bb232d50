"""Two replicas with leader election on the real control plane (issue 12, item 4), as the Deployment runs them:
two ``pyjobset run --leader-elect=true`` processes, one Lease, one ServiceAccount bound to exactly ``deploy/rbac/``.

* SIGKILL of the leader in the middle of a JobSet restart: the standby takes the Lease within the bound the
  configured timings allow, finishes the restart (every Job of the old attempt gone, each Job of the new attempt
  created exactly once, no extra restart) and the JobSet completes. Only the leader exports the per-JobSet and
  GPU families; both export their health, queue and client metrics and both answer admission requests.
* SIGSTOP of the leader until the standby leads, then SIGCONT: the woken process sends no write at all (its log
  records every write it sends, at debug level) and exits, while the standby keeps the Lease and keeps working.

Hand-over bounds, from the configured timings (lease L, renew deadline D, retry R; candidates retry every
R..(1+J)R, J = 1.2 as in client-go): the standby last saw the Lease change at most (1+J)R after the leader's last
renewal, waits L from that sighting, and tries again at most (1+J)R later, so it leads at most L + 2(1+J)R after
the leader's last renewal, which came before the kill; one more R is allowed for the API calls of those attempts on
a loaded machine. It can never lead earlier than L - D after the leader stopped (``cache.leader``'s safety bound).
"lease + retry" is what a candidate that polls exactly every R would need at most; with client-go's jitter it is
the typical, not the worst, case, so it is printed for comparison, not asserted.

These tests run controllers of their own, so they skip while another runs; ``tests/e2e/run.sh`` runs them after
the default suites, or alone: ``PYJOBSET_E2E_CONTROLLER=0 tests/e2e/run.sh tests/e2e/test_replicas.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import ssl
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from cache.leader import JITTER_FACTOR
from tests.e2e import pki
from tests.e2e.harness import INSTALLED_NAMESPACE, ControlPlane, Process, free_port, installed_identity
from tests.e2e.kube import Client, has_condition

pytestmark = [pytest.mark.e2e]

JSON = dict[str, Any]
SA_NAMESPACE = INSTALLED_NAMESPACE
LEASE_SECONDS, RENEW_SECONDS, RETRY_SECONDS = 4.0, 3.0, 1.0
SIM = "sim.pyjobset.io/"
ATTEMPT = "jobset.sigs.k8s.io/restart-attempt"
JOBSETS = "/apis/jobset.x-k8s.io/v1alpha2/namespaces/{ns}/jobsets"
JOBS = "/apis/batch/v1/namespaces/{ns}/jobs"
FLEET = ("jobset_status", "jobset_state_count", "jobset_pods", "jobset_cluster_gpu_allocatable", "jobset_gpus_held")
EVERY_REPLICA = ("workqueue_depth", "informer_synced", "leader_election_master_status", "rest_client_requests_total")


@dataclass
class Replica:
    name: str
    proc: Process
    metrics_port: int
    health_port: int
    webhook_port: int

    def events(self) -> list[JSON]:
        out = []
        for line in self.proc.log.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and "event" in event:
                out.append(event)
        return out

    def identity(self) -> str | None:
        started = [e for e in self.events() if e["event"] == "leader_started"]
        return str(started[0]["identity"]) if started else None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/readyz", timeout=5) as resp:
                return resp.status == 200
        except OSError:
            return False

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            m = re.match(r"^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$", line)
            if m:
                out[m.group(1)] = float(m.group(2))
        return out

    def families(self) -> set[str]:
        return {key.split("{")[0] for key in self.metrics()}


def when(event: JSON) -> float:
    return dt.datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def wait_until(check: Any, what: str, timeout: float = 90.0) -> Any:
    """Poll (processes and HTTP endpoints have no event to await) until ``check()`` is truthy."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)
    return value


class Fleet:
    """Starts replicas sharing one Lease, each with its own loopback ports, log and webhook certificate."""

    def __init__(self, plane: ControlPlane, kubeconfig: Path, workdir: Path) -> None:
        self.plane = plane
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.lease = f"e2e-replicas-{uuid.uuid4().hex[:6]}"
        self.ca = pki.Pki(workdir / "pki")
        self.replicas: list[Replica] = []

    def start(self, name: str) -> Replica:
        certs = self.workdir / f"{name}-certs"
        certs.mkdir()
        pair = self.ca.serving(f"webhook-{name}", dns=("localhost",), ips=("127.0.0.1",))
        (certs / "tls.crt").write_bytes(pair.cert.read_bytes())
        (certs / "tls.key").write_bytes(pair.key.read_bytes())
        metrics_port, health_port, webhook_port = free_port(), free_port(), free_port()
        config = self.workdir / f"{name}.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "config.jobset.x-k8s.io/v1alpha1",
                    "kind": "Configuration",
                    "leaderElection": {
                        "leaderElect": True,
                        "resourceName": self.lease,
                        "resourceNamespace": SA_NAMESPACE,
                        "leaseDuration": f"{LEASE_SECONDS:g}s",
                        "renewDeadline": f"{RENEW_SECONDS:g}s",
                        "retryPeriod": f"{RETRY_SECONDS:g}s",
                    },
                    "webhook": {"host": "127.0.0.1", "port": webhook_port, "certDir": str(certs)},
                    "internalCertManagement": {"enable": False},
                    "metrics": {"secure": False},
                }
            )
        )
        proc = self.plane.start_controller(
            self.kubeconfig,
            f"--config={config}",
            f"--metrics-bind-address=127.0.0.1:{metrics_port}",
            f"--health-probe-bind-address=127.0.0.1:{health_port}",
            "--webhooks=true",
            "--leader-elect=true",
            # Slow writes on purpose, so a restart of many Jobs takes seconds and the kill lands inside it.
            "--kube-api-qps=5",
            "--kube-api-burst=5",
            "--zap-log-level=debug",
            name=f"pyjobset-{self.lease}-{name}",  # logs are appended to: one file per replica of this fleet
        )
        replica = Replica(name, proc, metrics_port, health_port, webhook_port)
        self.replicas.append(replica)
        wait_until(lambda: replica.ready() or not proc.alive(), f"replica {name} ready")
        assert proc.alive(), proc.tail()
        return replica

    def holder(self) -> JSON:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{SA_NAMESPACE}/leases/{self.lease}"
        lease: JSON = self.plane.admin.get(path)
        return lease

    def admission_allowed(self, replica: Replica, namespace: str) -> bool:
        """Send one JobSet validation request straight to the replica's admission server."""
        review = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": str(uuid.uuid4()),
                "kind": {"group": "jobset.x-k8s.io", "version": "v1alpha2", "kind": "JobSet"},
                "resource": {"group": "jobset.x-k8s.io", "version": "v1alpha2", "resource": "jobsets"},
                "name": "probe",
                "namespace": namespace,
                "operation": "CREATE",
                "userInfo": {"username": "e2e"},
                "object": {**jobset("probe", replicas=1, annotations={}), "metadata": {"name": "probe"}},
            },
        }
        context = ssl.create_default_context(cafile=str(self.ca.ca.cert))
        request = urllib.request.Request(
            f"https://127.0.0.1:{replica.webhook_port}/validate-jobset-x-k8s-io-v1alpha2-jobset",
            data=json.dumps(review).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=context, timeout=10) as resp:
            body = json.loads(resp.read())
        return bool(body["response"]["allowed"]) and body["response"]["uid"] == review["request"]["uid"]


def jobset(name: str, *, replicas: int, annotations: dict[str, str]) -> JSON:
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": {"maxRestarts": 3},
            "replicatedJobs": [
                {
                    "name": "w",
                    "replicas": replicas,
                    "template": {
                        "spec": {
                            "backoffLimit": 0,
                            "template": {
                                "metadata": {"annotations": annotations},
                                "spec": {
                                    "restartPolicy": "Never",
                                    "containers": [
                                        {
                                            "name": "main",
                                            "image": "busybox",
                                            "resources": {"limits": {"nvidia.com/gpu": "1"}},
                                        }
                                    ],
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture
def fleet(control_plane: ControlPlane, tmp_path: Path) -> Iterator[Fleet]:
    if os.environ.get("PYJOBSET_EXTERNAL_CONTROLLER") == "1":
        pytest.skip(
            "another controller is running; run with PYJOBSET_E2E_CONTROLLER=0 tests/e2e/run.sh "
            "tests/e2e/test_replicas.py"
        )
    control_plane.install_jobset_crd()
    # The installed identity: deploy/rbac applied with kubectl, a TokenRequest token of the Deployment's account.
    kubeconfig = installed_identity(control_plane, tmp_path / "installed")
    f = Fleet(control_plane, kubeconfig, tmp_path)
    try:
        yield f
    finally:
        for replica in f.replicas:
            if replica.proc.popen.poll() is None:
                os.killpg(replica.proc.popen.pid, signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            replica.proc.stop()


def jobs_now(admin: Client, namespace: str) -> list[JSON]:
    return [j for j in admin.get(JOBS.format(ns=namespace))["items"] if not j["metadata"].get("deletionTimestamp")]


def test_standby_finishes_the_restart_of_a_killed_leader(fleet: Fleet, admin: Client, namespace: str) -> None:
    n = 12
    a = fleet.start("a")
    wait_until(a.identity, "replica a to lead")
    b = fleet.start("b")
    assert b.identity() is None

    # Attempt 0's pods fail after 2 s (the failure policy restarts the JobSet); attempt 1's succeed after 2 s.
    pods = {SIM + "run-seconds": "2", SIM + "fail-when": f"{ATTEMPT}=0"}
    admin.create(JOBSETS.format(ns=namespace), jobset("train", replicas=n, annotations=pods))
    wait_until(lambda: len(jobs_now(admin, namespace)) == n, "the leader to create attempt 0's Jobs")
    first_uids = {j["metadata"]["name"]: j["metadata"]["uid"] for j in jobs_now(admin, namespace)}

    # Metrics while a leads: only a exports the per-JobSet and GPU families; both export their own health.
    wait_until(lambda: set(FLEET) <= a.families(), "the leader's per-JobSet and GPU series")
    standby = b.families()
    assert standby.isdisjoint(FLEET), f"the standby exports {sorted(standby & set(FLEET))}"
    assert set(EVERY_REPLICA) <= standby
    assert set(EVERY_REPLICA) <= a.families()
    lease_label = f'leader_election_master_status{{name="{fleet.lease}"}}'
    assert a.metrics()[lease_label] == 1
    assert b.metrics()[lease_label] == 0
    assert fleet.admission_allowed(a, namespace)
    assert fleet.admission_allowed(b, namespace)

    # Kill a the moment its restart is recorded (status.restarts = 1), before it can delete and re-create n Jobs.
    admin.wait_for(
        JOBSETS.format(ns=namespace),
        lambda js: (js.get("status") or {}).get("restarts", 0) >= 1,
        field_selector="metadata.name=train",
        timeout=120,
        what="the leader to restart the JobSet",
    )
    killed_at = time.time()
    os.killpg(a.proc.popen.pid, signal.SIGKILL)
    a.proc.popen.wait(10)
    at_kill = jobs_now(admin, namespace)
    old_left = sum(1 for j in at_kill if j["metadata"]["labels"][ATTEMPT] == "0")
    new_made = sum(1 for j in at_kill if j["metadata"]["labels"][ATTEMPT] == "1")
    made_by_a = {m["name"]: m["uid"] for m in (j["metadata"] for j in at_kill) if m["labels"][ATTEMPT] == "1"}
    assert old_left > 0 or new_made < n, "the kill came after the restart was complete: nothing left to finish"

    # The standby takes the Lease: measured from the kill to its acquireTime (and to its first write).
    spec = wait_until(
        lambda: (s := fleet.holder()["spec"]).get("holderIdentity") not in ("", a.identity()) and s, "b to lead"
    )
    assert spec["holderIdentity"] == b.identity()
    acquired = dt.datetime.fromisoformat(spec["acquireTime"].replace("Z", "+00:00")).timestamp()
    handover = acquired - killed_at
    upper = LEASE_SECONDS + 2 * (1 + JITTER_FACTOR) * RETRY_SECONDS + RETRY_SECONDS
    lower = LEASE_SECONDS - RENEW_SECONDS

    wait_until(
        lambda: has_condition(admin.get(f"{JOBSETS.format(ns=namespace)}/train"), "Completed"),
        "the standby to finish the restart and the JobSet to complete",
        timeout=180,
    )
    b_writes = [e for e in b.events() if e["event"] == "api_write" and "/leases/" not in e["path"]]
    first_write = min(when(e) for e in b_writes) - killed_at
    print(
        f"\nhand-over (real plane, lease {LEASE_SECONDS:g}s / renew {RENEW_SECONDS:g}s / retry {RETRY_SECONDS:g}s): "
        f"kill -> standby holds the Lease {handover:.2f} s, -> its first reconcile write {first_write:.2f} s "
        f"(allowed {lower:g}..{upper:g} s; lease + retry = {LEASE_SECONDS + RETRY_SECONDS:g} s); "
        f"at the kill {old_left} Jobs of attempt 0 were left and {new_made}/{n} of attempt 1 made"
    )
    assert lower <= handover <= upper, f"hand-over took {handover:.2f} s, outside {lower:g}..{upper:g} s"

    final = admin.get(f"{JOBSETS.format(ns=namespace)}/train")
    assert final["status"]["restarts"] == 1, "the standby must finish the restart, not begin another"
    jobs = jobs_now(admin, namespace)
    assert {j["metadata"]["labels"][ATTEMPT] for j in jobs} == {"1"}, "Jobs of attempt 0 were left behind"
    assert sorted(j["metadata"]["name"] for j in jobs) == sorted(first_uids)
    assert not {j["metadata"]["uid"] for j in jobs} & set(first_uids.values())
    # No duplicate: the Jobs of attempt 1 the killed leader had made are kept as they are (same UIDs).
    final_uids = {j["metadata"]["name"]: j["metadata"]["uid"] for j in jobs}
    assert {name: final_uids.get(name) for name in made_by_a} == made_by_a
    assert all(j["metadata"]["ownerReferences"][0]["uid"] == final["metadata"]["uid"] for j in jobs)
    now_leading = b.families()  # the new leader exports them now (GPUs held are gone with the finished pods)
    assert {"jobset_status", "jobset_state_count", "jobset_cluster_gpu_allocatable"} <= now_leading


def test_a_frozen_leader_wakes_writes_nothing_and_exits(fleet: Fleet, admin: Client, namespace: str) -> None:
    a = fleet.start("a")
    wait_until(a.identity, "replica a to lead")
    b = fleet.start("b")
    pods = {SIM + "run-seconds": "600"}
    admin.create(JOBSETS.format(ns=namespace), jobset("before", replicas=2, annotations=pods))
    wait_until(lambda: len(jobs_now(admin, namespace)) == 2, "the leader to create before's Jobs")

    os.killpg(a.proc.popen.pid, signal.SIGSTOP)
    stopped_at = time.time()
    wait_until(lambda: b.identity() is not None, "b to lead")
    assert fleet.holder()["spec"]["holderIdentity"] == b.identity()
    transitions = fleet.holder()["spec"]["leaseTransitions"]
    # Work the frozen process will see in its watches when it wakes (it must leave it to b).
    admin.create(JOBSETS.format(ns=namespace), jobset("during", replicas=3, annotations=pods))
    wait_until(lambda: len(jobs_now(admin, namespace)) == 5, "the new leader to create during's Jobs")
    # And a Job of "before" deleted: b re-creates it; the woken process sees the deletion and must leave it to b.
    before_uid = next(j["metadata"]["uid"] for j in jobs_now(admin, namespace) if j["metadata"]["name"] == "before-w-0")
    admin.delete(f"{JOBS.format(ns=namespace)}/before-w-0", {"propagationPolicy": "Background"})
    wait_until(
        lambda: any(
            j["metadata"]["name"] == "before-w-0" and j["metadata"]["uid"] != before_uid
            for j in jobs_now(admin, namespace)
        ),
        "the new leader to re-create before-w-0",
    )

    woke_at = time.time()
    os.killpg(a.proc.popen.pid, signal.SIGCONT)
    code = a.proc.popen.wait(60)
    assert code != 0, "a process that lost its Lease must exit non-zero (so it is restarted and campaigns anew)"
    events = a.events()
    # Lease writes are judged on the Lease itself below (a renewal sent just before SIGSTOP is logged on waking).
    late_writes = [
        e for e in events if e["event"] == "api_write" and when(e) >= stopped_at and "/leases/" not in e["path"]
    ]
    assert late_writes == [], f"the woken leader wrote: {late_writes}"
    assert any(e["event"] == "leader_stopped" and when(e) >= woke_at for e in events), a.proc.tail()
    refused = sum(1 for e in events if "no longer holds the leader lease" in json.dumps(e))

    spec = fleet.holder()["spec"]
    assert spec["holderIdentity"] == b.identity()
    assert spec["leaseTransitions"] == transitions
    assert b.proc.alive()
    admin.create(JOBSETS.format(ns=namespace), jobset("after", replicas=1, annotations=pods))
    wait_until(
        lambda: any(j["metadata"]["name"] == "after-w-0" for j in jobs_now(admin, namespace)),
        "the new leader to keep working",
    )
    frozen = woke_at - stopped_at
    print(f"\nfrozen leader: woke {frozen:.1f} s after SIGSTOP, exited {code}, wrote nothing, {refused} writes refused")
