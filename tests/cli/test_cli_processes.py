"""The CLI as users run it: ``pyjobset sim`` and ``pyjobset run`` as separate processes, driven by real kubectl.

This is the walking skeleton's "done when": kubectl applies ``deploy/crd/`` and a two-template JobSet, and
``kubectl get jobs,services -o json`` shows the expected names, labels, annotations and owner references.
Also: bad flags and bad configuration end with a one-line error and exit status 2, never a stack trace.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = os.environ.get("PYJOBSET_KUBECTL") or shutil.which("kubectl")

JOBSET_YAML = """
apiVersion: jobset.x-k8s.io/v1alpha2
kind: JobSet
metadata:
  name: two-templates
spec:
  network:
    enableDNSHostnames: true
  successPolicy:
    operator: All
  replicatedJobs:
  - name: driver
    replicas: 1
    template:
      spec:
        completionMode: Indexed
        template:
          spec:
            restartPolicy: Never
            containers: [{name: main, image: busybox}]
  - name: workers
    replicas: 2
    template:
      spec:
        parallelism: 2
        completions: 2
        completionMode: Indexed
        template:
          spec:
            restartPolicy: Never
            containers: [{name: main, image: busybox}]
"""


def _pyjobset(*args: str) -> list[str]:
    return [sys.executable, "-m", "controller.cli", *args]


def _wait_file(path: Path, proc: subprocess.Popen[bytes], limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"process exited early with {proc.returncode}")
        if time.monotonic() > deadline:
            pytest.fail(f"{path} not written in {limit}s")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("process did not stop on SIGTERM")


@pytest.fixture
def sim_process(tmp_path: Path) -> Iterator[Path]:
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen(_pyjobset("sim", "--kubeconfig", str(kubeconfig), "--nodes", "4"), cwd=ROOT)
    try:
        _wait_file(kubeconfig, proc)
        yield kubeconfig
    finally:
        assert _stop(proc) == 0


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    assert KUBECTL is not None
    out = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, f"kubectl {' '.join(args)} failed: {out.stderr}"
    return out.stdout


@pytest.mark.kubectl
@pytest.mark.skipif(KUBECTL is None, reason="no kubectl binary (set PYJOBSET_KUBECTL)")
def test_kubectl_applies_crd_and_jobset_and_sees_children(sim_process: Path, tmp_path: Path) -> None:
    kubeconfig = sim_process
    kubectl(kubeconfig, "apply", "-f", str(ROOT / "deploy" / "crd"))
    kubectl(kubeconfig, "wait", "--for=condition=Established", "crd/jobsets.jobset.x-k8s.io", "--timeout=30s")
    run = subprocess.Popen(
        _pyjobset(
            "run",
            "--kubeconfig",
            str(kubeconfig),
            "--leader-elect=false",
            "--metrics-bind-address=0",
            "--health-probe-bind-address=0",
            "--webhooks=false",
        ),
        cwd=ROOT,
    )
    try:
        kubectl(kubeconfig, "apply", "-f", "-", stdin=JOBSET_YAML)
        deadline = time.monotonic() + 60
        while True:
            got = json.loads(kubectl(kubeconfig, "get", "jobs,services", "-o", "json"))
            kinds = sorted((i["kind"], i["metadata"]["name"]) for i in got["items"])
            if len([k for k in kinds if k[0] == "Job"]) == 3 and ("Service", "two-templates") in kinds:
                break
            assert time.monotonic() < deadline, f"children never appeared: {kinds}"
            time.sleep(0.2)
        jobs = {i["metadata"]["name"]: i for i in got["items"] if i["kind"] == "Job"}
        assert sorted(jobs) == ["two-templates-driver-0", "two-templates-workers-0", "two-templates-workers-1"]
        js = json.loads(kubectl(kubeconfig, "get", "jobset", "two-templates", "-o", "json"))
        w1 = jobs["two-templates-workers-1"]
        labels = w1["metadata"]["labels"]
        assert labels["jobset.sigs.k8s.io/jobset-name"] == "two-templates"
        assert labels["jobset.sigs.k8s.io/replicatedjob-name"] == "workers"
        assert labels["jobset.sigs.k8s.io/job-index"] == "1"
        assert labels["jobset.sigs.k8s.io/job-global-index"] == "2"
        assert labels["jobset.sigs.k8s.io/global-replicas"] == "3"
        assert w1["metadata"]["annotations"]["jobset.sigs.k8s.io/job-key"] == labels["jobset.sigs.k8s.io/job-key"]
        assert w1["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "jobset.x-k8s.io/v1alpha2",
                "kind": "JobSet",
                "name": "two-templates",
                "uid": js["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert w1["spec"]["template"]["spec"]["subdomain"] == "two-templates"
        table = kubectl(kubeconfig, "get", "jobsets")
        assert "TERMINALSTATE" in table
        assert "RESTARTS" in table
    finally:
        assert _stop(run) == 0


def test_unreachable_server_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        f"clusters: [{{name: x, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: x, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: x, user: x}}]\n"
    )
    out = subprocess.run(
        _pyjobset("run", "--kubeconfig", str(kubeconfig)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 1
    assert "cannot reach the API server" in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_crd_is_a_one_line_error(sim_process: Path) -> None:
    out = subprocess.run(
        _pyjobset("run", "--kubeconfig", str(sim_process)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 1
    assert "install the JobSet CRD first" in out.stderr
    assert "Traceback" not in out.stderr


def test_sim_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run(
            _pyjobset("sim", "--kubeconfig", str(tmp_path / "kc"), "--port", str(port), "--nodes", "0"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        pytest.param(["run", "--config", "/nonexistent.yaml"], "cannot read the file", id="missing-config"),
        pytest.param(["run", "--kube-api-qps", "fast"], "invalid float value", id="bad-flag"),
        pytest.param(
            ["run", "--kubeconfig", "/nonexistent"],
            "kubeconfig /nonexistent (from --kubeconfig) does not exist",
            id="bad-kubeconfig",
        ),
        pytest.param(["sim", "--kubeconfig", "/tmp/x", "--nodes", "-1"], "--nodes must be >= 0", id="negative-nodes"),
    ],
)
def test_bad_input_is_a_one_line_error(args: list[str], needle: str) -> None:
    out = subprocess.run(_pyjobset(*args), cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 2
    assert needle in out.stderr
    assert "Traceback" not in out.stderr


def test_version_prints_the_package_version() -> None:
    out = subprocess.run(_pyjobset("--version"), cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0
    name, version = out.stdout.strip().split(" ")
    assert name == "pyjobset"
    assert version == importlib.metadata.version("pyjobset")


GOOD_CLUSTER = "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
EXEC_USER = (
    "users: [{{name: u, user: {{exec: {{apiVersion: client.authentication.k8s.io/v1, interactiveMode: Never, "
    "command: {command}, args: {args}}}}}}}]\n"
)
CONTEXT = "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"


@pytest.mark.parametrize(
    ("content", "env", "needle"),
    [
        pytest.param(
            None,
            {"KUBECONFIG": "{tmp}/missing"},
            "KUBECONFIG names {tmp}/missing, which does not exist",
            id="env-missing",
        ),
        pytest.param("clusters: [\n", {}, "kubeconfig {tmp}/kubeconfig is not valid YAML at line", id="malformed"),
        pytest.param(GOOD_CLUSTER, {}, "kubeconfig {tmp}/kubeconfig sets no current-context", id="no-current-context"),
        pytest.param(
            GOOD_CLUSTER + "current-context: nope\n", {}, "context 'nope' (current-context in", id="missing-context"
        ),
        pytest.param(
            GOOD_CLUSTER + EXEC_USER.format(command="{tmp}/no-such-plugin", args="[]") + CONTEXT,
            {},
            "exec plugin {tmp}/no-such-plugin not found (users[u].user.exec in {tmp}/kubeconfig)",
            id="exec-not-found",
        ),
        pytest.param(
            GOOD_CLUSTER + EXEC_USER.format(command=sys.executable, args="['{tmp}/failing-plugin.py']") + CONTEXT,
            {},
            "exited with status 1: token expired: run gcloud auth login",
            id="exec-failing",
        ),
        pytest.param(
            None,
            {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"},
            "in-cluster configuration: cannot read token file /var/run/secrets/kubernetes.io/serviceaccount/token",
            id="in-cluster-no-token",
        ),
        pytest.param(None, {}, "no cluster configuration: --kubeconfig not given, KUBECONFIG unset", id="nothing"),
    ],
)
def test_unusable_cluster_configuration_is_a_one_line_error(
    tmp_path: Path, content: str | None, env: dict[str, str], needle: str
) -> None:
    (tmp_path / "failing-plugin.py").write_text("import sys\nsys.exit('token expired: run gcloud auth login')\n")
    args = ["run"]
    if content is not None:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(content.replace("{tmp}", str(tmp_path)))
        args += ["--kubeconfig", str(kubeconfig)]
    clean = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    clean["HOME"] = str(tmp_path / "home")  # no ~/.kube/config to fall back to
    clean.update({k: v.replace("{tmp}", str(tmp_path)) for k, v in env.items()})
    out = subprocess.run(_pyjobset(*args), cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("pyjobset run: ")
    assert needle.replace("{tmp}", str(tmp_path)) in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
