"""The real Kubeflow Trainer v2 runs TrainJobs on the installed pyjobset (issue 16, item 2).

Role: installs Trainer's own manifests from its Go module (``manifests/base``: CRDs, RBAC, the validating webhook,
the manager Deployment in ``kubeflow-system``; not ``manifests/third-party``, whose JobSet is ours), waits for the
manager that the e2e kubelet runs from the binary ``tests/e2e/ecosystem/build.sh trainer`` built, and drives it
through the API server: ClusterTrainingRuntimes built on a JobSet template (a dataset initializer, a model
initializer depending on it, a ``node`` trainer replicated job depending on that), TrainJobs that Trainer turns
into JobSets by server-side apply, pyjobset running them on KWOK pods (annotation contract), and Trainer reading
the JobSet's status back into the TrainJob.

Invariants: runs only against the installed controller with admission on (``tests/e2e/run.sh``, which also builds
the binary and hands it to the kubelet); elsewhere it skips with the reason, and fails instead when
``PYJOBSET_E2E_REQUIRE=1`` unless Trainer was left out on purpose (``PYJOBSET_E2E_TRAINER=0``). The runtimes are
cluster-scoped and named for this module; they are deleted at the end, the TrainJobs go with their namespace.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.ecosystem import common
from tests.e2e.harness import bin_dir
from tests.e2e.kube import ApiError, Client, condition, has_condition

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

JSON = dict[str, Any]
HERE = Path(__file__).resolve().parent
SYSTEM = "kubeflow-system"
MANAGER = "kubeflow-trainer-controller-manager"
WEBHOOK = "validator.trainer.kubeflow.org"
TRAINER_API = "/apis/trainer.kubeflow.org/v1alpha1"
JOBSET_API = "/apis/jobset.x-k8s.io/v1alpha2"
SIM = "sim.pyjobset.io/"
ANCESTOR = "trainer.kubeflow.org/trainjob-ancestor-step"
NODEPOOL = "cloud.google.com/gke-nodepool"
RUN = uuid.uuid4().hex[:6]


def _required() -> bool:
    return os.environ.get("PYJOBSET_E2E_REQUIRE") == "1" and os.environ.get("PYJOBSET_E2E_TRAINER", "1") == "1"


def _unavailable(reason: str) -> None:
    if _required():
        pytest.fail(reason)
    pytest.skip(reason)


def _missing_environment() -> str | None:
    if os.environ.get("PYJOBSET_E2E_TRAINER", "1") != "1":
        return "Kubeflow Trainer left out (PYJOBSET_E2E_TRAINER=0)"
    if os.environ.get("PYJOBSET_EXTERNAL_CONTROLLER") != "1" or os.environ.get("PYJOBSET_E2E_ADMISSION") != "1":
        return "needs the installed pyjobset with admission on: run tests/e2e/run.sh tests/e2e/test_trainer.py"
    binary = os.environ.get("PYJOBSET_E2E_TRAINER_BIN", "")
    if not binary or not os.access(binary, os.X_OK):
        return (
            f"no trainer-controller-manager handed to the e2e kubelet (PYJOBSET_E2E_TRAINER_BIN={binary!r}); "
            "tests/e2e/run.sh builds it with tests/e2e/ecosystem/build.sh trainer"
        )
    return None


# Skip before any fixture starts a control plane of its own; under PYJOBSET_E2E_REQUIRE=1 the fixture fails instead.
if (_MISSING := _missing_environment()) is not None and not _required():
    pytest.skip(_MISSING, allow_module_level=True)


def _overlay_without_jobset(module_dir: Path, target: Path) -> None:
    """Write into ``target`` the module's ``manifests/overlays/manager`` kustomization minus its third-party JobSet
    (the overlay's own comment: leave that line out when JobSet is installed), its paths pointing into the module."""
    overlay = module_dir / "manifests" / "overlays" / "manager"
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    resources = []
    for entry in kustomization.get("resources", []):
        if "third-party" in entry:
            continue
        source = (overlay / entry).resolve()
        if source.is_file():  # a file must sit under the kustomization root: read it from the module at test time
            (target / source.name).write_text(source.read_text())
            resources.append(source.name)
        else:
            resources.append(os.path.relpath(source, target))
    kustomization["resources"] = resources
    (target / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))


@pytest.fixture(scope="module")
def trainer(admin: Client, jobset_controller: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Trainer installed from its module's manifests, its manager Available and its webhook answering."""
    missing = _missing_environment()
    if missing is not None:
        _unavailable(missing)
    module_dir = common.module_dir(common.pinned("trainer"))
    if not (module_dir / "manifests").is_dir():
        _unavailable(f"Trainer's module source {module_dir} has no manifests/")
    kubectl = os.environ.get("PYJOBSET_KUBECTL") or str(bin_dir() / "kubectl")
    kubeconfig = os.environ["PYJOBSET_E2E_KUBECONFIG"]
    overlay = tmp_path_factory.mktemp("trainer-overlay")
    _overlay_without_jobset(module_dir, overlay)
    applied = subprocess.run(
        [kubectl, "--kubeconfig", kubeconfig, "apply", "--server-side", "-k", str(overlay)],
        check=False,
        capture_output=True,
        text=True,
    )
    if applied.returncode != 0:
        pytest.fail(f"kubectl apply -k of Trainer's manifests ({overlay}) failed:\n{applied.stderr}")
    for crd in ("trainjobs", "clustertrainingruntimes", "trainingruntimes"):
        admin.wait_for(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            lambda c: has_condition(c, "Established"),
            field_selector=f"metadata.name={crd}.trainer.kubeflow.org",
            timeout=60,
            what=f"CRD {crd} Established",
        )
    # Ready once its certificates are in the Secret and its webhook server listens (its readyz says so).
    admin.wait_for(
        f"/apis/apps/v1/namespaces/{SYSTEM}/deployments",
        lambda d: has_condition(d, "Available"),
        field_selector=f"metadata.name={MANAGER}",
        timeout=300,
        what=f"Deployment {SYSTEM}/{MANAGER} Available (kubelet log: <workdir>/logs/{SYSTEM}.log)",
    )
    _wait_webhook(admin)
    yield
    for name in list(_created_runtimes):
        try:
            admin.delete(f"{TRAINER_API}/clustertrainingruntimes/{name}")
        except ApiError as err:
            if err.status != 404:
                raise


def _wait_webhook(admin: Client, timeout: float = 120.0) -> None:
    """Trainer's validating webhook (failurePolicy Fail) answers: a dry-run runtime is admitted through it."""
    admin.wait_for(
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
        lambda w: all(h.get("clientConfig", {}).get("caBundle") for h in w.get("webhooks", [])),
        field_selector=f"metadata.name={WEBHOOK}",
        timeout=timeout,
        what=f"{WEBHOOK} carrying the manager's CA",
    )
    probe = _runtime(f"e2e-probe-{RUN}", node_annotations={})
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.request("POST", f"{TRAINER_API}/clustertrainingruntimes", probe, query={"dryRun": "All"})
            return
        except ApiError as err:
            if time.monotonic() > deadline:
                raise AssertionError(f"Trainer's webhook never admitted a dry-run runtime: {err}") from None
        time.sleep(1.0)  # the API server's path to the webhook settles asynchronously; no event to watch for it


def wait_pods(admin: Client, ns: str, selector: str, done: Any, what: str, timeout: float = 120) -> list[JSON]:
    """The pods matching ``selector`` once ``done(pods)`` holds, re-checked on every pod event."""
    path = f"/api/v1/namespaces/{ns}/pods"
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        listing = admin.get(path, labelSelector=selector)
        if done(listing["items"]):
            items: list[JSON] = listing["items"]
            return items
        query = {
            "labelSelector": selector,
            "watch": "1",
            "resourceVersion": listing["metadata"]["resourceVersion"],
            "timeoutSeconds": str(max(1, int(remaining))),
        }
        try:
            for _event in admin._watch(path, query, timeout=remaining + 5):
                break  # something changed: list again
        except TimeoutError:
            break
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def running(count: int) -> Any:
    return lambda items: len([p for p in items if p["status"].get("phase") == "Running"]) == count


_created_runtimes: set[str] = set()


def _job(name: str, ancestor: str, annotations: dict[str, str], depends_on: str | None) -> JSON:
    job: JSON = {
        "name": name,
        "template": {
            "metadata": {"labels": {ANCESTOR: ancestor}},
            "spec": {
                "template": {
                    "metadata": {"annotations": annotations},
                    "spec": {"containers": [{"name": name, "image": "busybox", "command": ["true"]}]},
                }
            },
        },
    }
    if depends_on:
        job["dependsOn"] = [{"name": depends_on, "status": "Complete"}]
    return job


def _runtime(name: str, *, node_annotations: dict[str, str], max_restarts: int | None = None) -> JSON:
    """A ClusterTrainingRuntime on a JobSet template: dataset → model initializers → two torch ``node`` pods."""
    quick = {f"{SIM}run-seconds": "1"}
    spec: JSON = {
        "replicatedJobs": [
            _job("dataset-initializer", "dataset-initializer", quick, None),
            _job("model-initializer", "model-initializer", quick, "dataset-initializer"),
            _job("node", "trainer", node_annotations, "model-initializer"),
        ]
    }
    if max_restarts is not None:
        spec["failurePolicy"] = {"maxRestarts": max_restarts}
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "ClusterTrainingRuntime",
        "metadata": {"name": name},
        "spec": {"mlPolicy": {"numNodes": 1, "torch": {"numProcPerNode": 1}}, "template": {"spec": spec}},
    }


def create_runtime(admin: Client, kind: str, **kwargs: Any) -> str:
    name = f"e2e-{kind}-{RUN}"
    if name not in _created_runtimes:
        admin.ensure(f"{TRAINER_API}/clustertrainingruntimes", _runtime(name, **kwargs))
        _created_runtimes.add(name)
        # Trainer's TrainJob webhook looks runtimes up in its informer cache, which learns of a new one a moment
        # after the API server answered; a TrainJob created before that is refused ("must be created before the
        # TrainJob"). Wait until a dry-run TrainJob naming it is admitted.
        deadline = time.monotonic() + 30
        while True:
            try:
                admin.request(
                    "POST",
                    f"{TRAINER_API}/namespaces/default/trainjobs",
                    _trainjob("probe", name),
                    query={"dryRun": "All"},
                )
                break
            except ApiError as err:
                if "must be created before" not in str(err) or time.monotonic() > deadline:
                    raise
            time.sleep(0.2)  # the webhook's cache has no event we could watch from here
    return name


def create_trainjob(admin: Client, ns: str, name: str, runtime: str) -> JSON:
    return admin.create(f"{TRAINER_API}/namespaces/{ns}/trainjobs", _trainjob(name, runtime))


def _trainjob(name: str, runtime: str) -> JSON:
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": name},
        "spec": {
            "runtimeRef": {"name": runtime},
            "initializer": {
                "dataset": {"storageUri": "hf://example/dataset"},
                "model": {"storageUri": "hf://example/model"},
            },
            "trainer": {"numNodes": 2},
            "labels": {"e2e.pyjobset.io/from": "trainjob"},
        },
    }


def wait_trainjob(admin: Client, ns: str, name: str, cond: str, status: str = "True", timeout: float = 180) -> JSON:
    return admin.wait_for(
        f"{TRAINER_API}/namespaces/{ns}/trainjobs",
        lambda t: has_condition(t, cond, status),
        field_selector=f"metadata.name={name}",
        timeout=timeout,
        what=f"TrainJob {ns}/{name} {cond}={status}",
    )


def wait_jobset(admin: Client, ns: str, name: str, predicate: Any, what: str, timeout: float = 180) -> JSON:
    return admin.wait_for(
        f"{JOBSET_API}/namespaces/{ns}/jobsets",
        predicate,
        field_selector=f"metadata.name={name}",
        timeout=timeout,
        what=f"JobSet {ns}/{name} {what}",
    )


def pods(admin: Client, ns: str, selector: str) -> list[JSON]:
    items: list[JSON] = admin.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=selector)["items"]
    return items


def assert_trainer_owns_spec(jobset: JSON) -> None:
    """What Trainer applies stays Trainer's: the ``trainer`` apply is the only manager of the JobSet's spec, labels
    and owner references (our defaulting webhook's fields are attributed to that request); pyjobset writes the
    status subresource and, on the main resource, only its own ``pyjobset.io/`` root-cause annotations, which
    Trainer never applies. A second owner of a field Trainer applies would make its next forced apply a silent
    revert of that owner's write."""
    entries = jobset["metadata"].get("managedFields") or []
    main = [e for e in entries if e.get("subresource", "") == ""]
    applied = [e for e in main if (e["manager"], e["operation"]) == ("trainer", "Apply")]
    assert len(applied) == 1, entries
    assert "f:spec" in applied[0]["fieldsV1"], applied[0]
    for entry in main:
        if entry is applied[0]:
            continue
        fields = entry["fieldsV1"]
        assert set(fields) == {"f:metadata"}, entry
        assert set(fields["f:metadata"]) == {"f:annotations"}, entry
        keys = set(fields["f:metadata"]["f:annotations"]) - {"."}
        assert all(k.startswith("f:pyjobset.io/") for k in keys), entry
    status_writers = [e for e in entries if e.get("subresource", "") == "status"]
    assert status_writers, "pyjobset never wrote the JobSet's status"
    for entry in status_writers:
        assert set(entry["fieldsV1"]) <= {"f:status"}, entry


def test_trainjob_runs_to_completion_on_pyjobset(admin: Client, namespace: str, trainer: None) -> None:
    runtime = create_runtime(admin, "ok", node_annotations={f"{SIM}run-seconds": "2"})
    trainjob = create_trainjob(admin, namespace, "tj", runtime)

    # Trainer's JobSet: applied server-side, owned by the TrainJob, shaped from the runtime and the TrainJob.
    jobset = wait_jobset(admin, namespace, "tj", lambda _j: True, "created by Trainer")
    owner = jobset["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "TrainJob",
        "tj",
        trainjob["metadata"]["uid"],
        True,
    )
    assert jobset["metadata"]["labels"]["e2e.pyjobset.io/from"] == "trainjob"
    node = next(r for r in jobset["spec"]["replicatedJobs"] if r["name"] == "node")
    assert (node["template"]["spec"]["parallelism"], node["template"]["spec"]["completions"]) == (2, 2)

    done = wait_trainjob(admin, namespace, "tj", "Complete")
    jobset = admin.get(f"{JOBSET_API}/namespaces/{namespace}/jobsets/tj")
    completed = condition(jobset, "Completed")
    assert completed is not None, jobset["status"]
    assert completed["status"] == "True", jobset["status"]
    # Trainer copies the JobSet's terminal condition (reason and message) into the TrainJob.
    tj_complete = condition(done, "Complete")
    assert tj_complete is not None
    assert (tj_complete["reason"], tj_complete["message"]) == (completed["reason"], completed["message"])
    assert_trainer_owns_spec(jobset)

    # pyjobset ran what Trainer built: two node pods with Trainer's torch environment, after both initializers.
    jobs = {
        j["metadata"]["labels"]["jobset.sigs.k8s.io/replicatedjob-name"]: j
        for j in admin.get(f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"]
    }
    assert set(jobs) == {"dataset-initializer", "model-initializer", "node"}
    assert (
        jobs["model-initializer"]["metadata"]["creationTimestamp"]
        >= jobs["dataset-initializer"]["status"]["completionTime"]
    )
    assert jobs["node"]["metadata"]["creationTimestamp"] >= jobs["model-initializer"]["status"]["completionTime"]
    node_pods = pods(admin, namespace, "jobset.sigs.k8s.io/replicatedjob-name=node")
    assert len(node_pods) == 2
    assert all(p["status"]["phase"] == "Succeeded" for p in node_pods)
    env = {e["name"]: e.get("value") for e in node_pods[0]["spec"]["containers"][0].get("env", [])}
    assert env.get("PET_NNODES") == "2", env
    dataset_pod = pods(admin, namespace, "jobset.sigs.k8s.io/replicatedjob-name=dataset-initializer")[0]
    dataset_env = {e["name"]: e.get("value") for e in dataset_pod["spec"]["containers"][0].get("env", [])}
    assert dataset_env.get("STORAGE_URI") == "hf://example/dataset", dataset_env


def test_failing_node_restarts_the_jobset_and_the_trainjob_completes(
    admin: Client, namespace: str, trainer: None
) -> None:
    # Node pods fail on the first attempt only: the JobSet restarts once per its failurePolicy, then completes.
    runtime = create_runtime(
        admin,
        "flaky",
        node_annotations={f"{SIM}run-seconds": "1", f"{SIM}fail-when": "jobset.sigs.k8s.io/restart-attempt=0"},
        max_restarts=2,
    )
    create_trainjob(admin, namespace, "flaky", runtime)
    restarted = wait_jobset(
        admin, namespace, "flaky", lambda j: j.get("status", {}).get("restarts", 0) >= 1, "restarted once"
    )
    assert not has_condition(restarted, "Failed")
    done = wait_trainjob(admin, namespace, "flaky", "Complete")
    assert not has_condition(done, "Failed")
    jobset = admin.get(f"{JOBSET_API}/namespaces/{namespace}/jobsets/flaky")
    assert jobset["status"]["restarts"] == 1, jobset["status"]
    assert_trainer_owns_spec(jobset)


def test_node_failing_past_max_restarts_fails_the_trainjob(admin: Client, namespace: str, trainer: None) -> None:
    runtime = create_runtime(
        admin, "broken", node_annotations={f"{SIM}run-seconds": "1", f"{SIM}exit-code": "1"}, max_restarts=1
    )
    create_trainjob(admin, namespace, "broken", runtime)
    failed = wait_trainjob(admin, namespace, "broken", "Failed")
    jobset = admin.get(f"{JOBSET_API}/namespaces/{namespace}/jobsets/broken")
    assert jobset["status"]["restarts"] == 1, jobset["status"]
    js_failed = condition(jobset, "Failed")
    assert js_failed is not None, jobset["status"]
    assert js_failed["status"] == "True", jobset["status"]
    tj_failed = condition(failed, "Failed")
    assert tj_failed is not None
    assert (tj_failed["reason"], tj_failed["message"]) == (js_failed["reason"], js_failed["message"])
    assert not has_condition(failed, "Complete")


def test_suspending_the_trainjob_suspends_the_jobset_and_resuming_resumes_it(
    admin: Client, namespace: str, trainer: None
) -> None:
    # Node pods run until told: the test suspends while they run, resumes, then lets them finish.
    runtime = create_runtime(admin, "held", node_annotations={})
    create_trainjob(admin, namespace, "held", runtime)
    node = "jobset.sigs.k8s.io/jobset-name=held,jobset.sigs.k8s.io/replicatedjob-name=node"
    wait_pods(admin, namespace, node, running(2), "both node pods Running")

    admin.patch(f"{TRAINER_API}/namespaces/{namespace}/trainjobs/held", {"spec": {"suspend": True}})
    suspended = wait_jobset(
        admin,
        namespace,
        "held",
        lambda j: j["spec"].get("suspend") is True and has_condition(j, "Suspended"),
        "suspended by Trainer, Suspended condition from pyjobset",
    )
    assert_trainer_owns_spec(suspended)
    wait_trainjob(admin, namespace, "held", "Suspended")
    # The running node pods go (their Job is suspended); the initializers' finished pods stay, as with the reference.
    wait_pods(admin, namespace, node, lambda items: not items, "the node pods gone")

    # While suspended, a TrainJob's podSpecOverrides may change once the JobSet reports no active pods (Trainer's
    # webhook reads replicatedJobsStatus); Trainer applies them into the suspended JobSet's pod template on resume.
    wait_jobset(
        admin,
        namespace,
        "held",
        lambda j: all(r.get("active", 0) == 0 for r in j.get("status", {}).get("replicatedJobsStatus", [])),
        "reporting no active Jobs",
    )
    overrides = [{"targetJobs": [{"name": "node"}], "nodeSelector": {NODEPOOL: "pool-1"}}]
    admin.patch(f"{TRAINER_API}/namespaces/{namespace}/trainjobs/held", {"spec": {"podSpecOverrides": overrides}})

    admin.patch(f"{TRAINER_API}/namespaces/{namespace}/trainjobs/held", {"spec": {"suspend": False}})
    resumed = wait_jobset(
        admin,
        namespace,
        "held",
        lambda j: j["spec"].get("suspend") is False and has_condition(j, "Suspended", "False"),
        "resumed by Trainer",
    )
    assert_trainer_owns_spec(resumed)
    wait_trainjob(admin, namespace, "held", "Suspended", "False")
    again = wait_pods(admin, namespace, node, running(2), "both node pods Running again after the resume")
    node_pool = {
        n["metadata"]["name"]: n["metadata"]["labels"].get(NODEPOOL) for n in admin.get("/api/v1/nodes")["items"]
    }
    for pod in again:
        assert pod["spec"].get("nodeSelector", {}).get(NODEPOOL) == "pool-1", pod["spec"]
        assert node_pool[pod["spec"]["nodeName"]] == "pool-1", pod["spec"]["nodeName"]
    for pod in again:
        admin.patch(
            f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}",
            {"metadata": {"annotations": {f"{SIM}exit-now": "0"}}},
        )
    wait_trainjob(admin, namespace, "held", "Complete")
