"""``pyjobset up`` as a newcomer runs it, and the CLI's help and usage errors.

* Ready means ready: the moment the kubeconfig exists, the real kubectl can apply a JobSet written as the
  reference's examples are (failure-policy rules without names) and it is admitted *and defaulted* by our
  webhook through the simulated API server's admission chain; metrics and probes answer on the printed
  loopback ports; SIGINT stops it with exit status 0.
* Bad input (port in use, bad flag, unwritable kubeconfig, bad values) is one line naming the fix, exit 2.
* Every subcommand's ``--help`` ends with an example.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.cli.test_cli_processes import KUBECTL, ROOT
from tests.cli.up_process import kubectl_run, port_of, up_process, wait_for

# Written the way the reference project's failure-policy examples are: rules carry no name, pods carry no
# simulated-pod annotation (they finish thanks to --pod-run-seconds).
REFERENCE_STYLE = """
apiVersion: jobset.x-k8s.io/v1alpha2
kind: JobSet
metadata:
  name: reference-style
spec:
  failurePolicy:
    maxRestarts: 3
    rules:
    - action: RestartJobSet
      targetReplicatedJobs:
      - leader
    - action: FailJobSet
      onJobFailureReasons:
      - PodFailurePolicy
  replicatedJobs:
  - name: leader
    replicas: 1
    template:
      spec:
        backoffLimit: 0
        completions: 2
        parallelism: 2
        template:
          spec:
            containers:
            - name: leader
              image: bash:latest
              command: ["bash", "-c", "sleep 10; exit 1"]
  - name: workers
    replicas: 1
    template:
      spec:
        backoffLimit: 0
        completions: 2
        parallelism: 2
        template:
          spec:
            containers:
            - name: worker
              image: bash:latest
              command: ["sleep", "1000"]
"""


def _pyjobset(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.kubectl
@pytest.mark.skipif(KUBECTL is None, reason="no kubectl binary (set PYJOBSET_KUBECTL)")
def test_up_is_ready_when_the_kubeconfig_appears_and_defaults_unnamed_rules(tmp_path: Path) -> None:
    with up_process(tmp_path, "--nodes", "4", "--pod-run-seconds", "2") as up:
        kc = up.kubeconfig
        # No wait and no retry: the webhooks already answer when the kubeconfig is written.
        applied = kubectl_run(kc, "apply", "-f", "-", stdin=REFERENCE_STYLE)
        assert applied.returncode == 0, applied.stderr
        js = json.loads(kubectl_run(kc, "get", "jobset", "reference-style", "-o", "json").stdout)
        rules = js["spec"]["failurePolicy"]["rules"]
        assert [r["name"] for r in rules] == ["failurePolicyRule0", "failurePolicyRule1"]
        assert js["spec"]["network"]["enableDNSHostnames"] is True  # the rest of the defaulting, too
        # Without annotations the pods still finish (the cluster-wide default run time), so it completes.
        wait_for(kc, "condition=Completed", "jobset/reference-style")
        # The validating webhook answers too: the CRD schema has no rule about target names, only the webhook.
        bad = REFERENCE_STYLE.replace("name: reference-style", "name: bad").replace("- leader", "- nosuchjob")
        rejected = kubectl_run(kc, "apply", "-f", "-", stdin=bad)
        assert rejected.returncode != 0
        assert "invalid replicatedJob name 'nosuchjob' in failure policy does not appear" in rejected.stderr

        # Metrics and probes answer on the loopback ports printed.
        metrics = port_of(up.output, "metrics")
        probes = port_of(up.output, "probes")
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10) as resp:
            assert b"controller_runtime_reconcile_total" in resp.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{probes}/readyz", timeout=10) as resp:
            assert resp.status == 200
        assert "kubectl apply -f examples/" in up.output
        assert up.stop(signal.SIGINT) == 0
    assert "Traceback" not in up.stderr_path.read_text()


@pytest.mark.kubectl
@pytest.mark.skipif(KUBECTL is None, reason="no kubectl binary (set PYJOBSET_KUBECTL)")
def test_reference_style_jobset_restarts_when_its_leader_fails(tmp_path: Path) -> None:
    """The newcomer's path with a reference-style example: apply, make the leader fail, see one restart."""
    with up_process(tmp_path, "--nodes", "4", "--pod-run-seconds", "30") as up:
        kc = up.kubeconfig
        assert kubectl_run(kc, "apply", "-f", "-", stdin=REFERENCE_STYLE).returncode == 0
        wait_for(kc, "jsonpath={.status.replicatedJobsStatus[0].ready}=1", "jobset/reference-style")
        pods = json.loads(
            kubectl_run(kc, "get", "pods", "-l", "jobset.sigs.k8s.io/replicatedjob-name=leader", "-o", "json").stdout
        )
        leader0 = next(
            p["metadata"]["name"]
            for p in pods["items"]
            if p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == "0"
        )
        # The simulated equivalent of the reference example's "exit 1" in the leader's first pod.
        assert kubectl_run(kc, "annotate", "pod", leader0, "sim.pyjobset.io/exit-now=1").returncode == 0
        wait_for(kc, "jsonpath={.status.restarts}=1", "jobset/reference-style")
        js = json.loads(kubectl_run(kc, "get", "jobset", "reference-style", "-o", "json").stdout)
        assert js["status"].get("terminalState") is None  # restarted, not failed: rule 0 is RestartJobSet


def test_up_bad_flag_is_one_line_with_the_fix() -> None:
    out = _pyjobset("up", "--kubeconfig", "/tmp/x", "--nodes", "many")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "pyjobset up: argument --nodes: invalid int value: 'many' (see 'pyjobset up --help')"
    ]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        pytest.param(["up"], "the following arguments are required: --kubeconfig", id="no-kubeconfig"),
        pytest.param(["up", "--kubeconfig", "/nonexistent-dir/kc"], "create it or choose another path", id="no-dir"),
        pytest.param(["up", "--kubeconfig", "/"], "is a directory: give a file path", id="directory"),
        pytest.param(["up", "--kubeconfig", "/proc/kc"], "choose a writable path", id="unwritable"),
        pytest.param(["up", "--kubeconfig", "/tmp/kc", "--nodes", "-1"], "--nodes must be >= 0", id="negative"),
        pytest.param(["up", "--kubeconfig", "/tmp/kc", "--nodes-per-pool", "0"], ">= 1", id="zero-pool"),
        pytest.param(["up", "--kubeconfig", "/tmp/kc", "--port", "70000"], "0 picks any free port", id="port-range"),
        pytest.param(
            ["up", "--kubeconfig", "/tmp/kc", "--pod-run-seconds", "0"], "leave it out to run forever", id="run-0"
        ),
        pytest.param(["upp"], "invalid choice: 'upp'", id="bad-subcommand"),
    ],
)
def test_up_bad_input_is_one_line_exit_2(args: list[str], needle: str) -> None:
    out = _pyjobset(*args)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert needle in lines[0]
    assert out.stdout == ""


def test_up_port_in_use_is_one_line_exit_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = _pyjobset("up", "--kubeconfig", str(tmp_path / "kc"), "--port", str(port))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"pyjobset up: --port {port}: 127.0.0.1:{port} is already in use; pick another port, or 0 for any free port"
    ]
    assert not (tmp_path / "kc").exists()


@pytest.mark.parametrize("command", ["sim", "run", "up", "demo"])
def test_every_subcommand_help_ends_with_an_example(command: str) -> None:
    out = _pyjobset(command, "--help")
    assert out.returncode == 0
    text = out.stdout.rstrip()
    head, sep, example = text.rpartition("\nexample")
    assert sep, f"no example section in:\n{text}"
    assert "options:" in head  # the example comes after the flags, at the very end
    body = example.split("\n", 1)[1]
    assert f"pyjobset {command}" in body
    assert all(line.startswith("  ") for line in body.splitlines())  # layout kept (RawDescriptionHelpFormatter)


def test_top_level_help_ends_with_an_example() -> None:
    out = _pyjobset("--help")
    assert out.returncode == 0
    assert out.stdout.rstrip().rsplit("\n", 2)[-2:] == [
        "example:",
        "  pyjobset up --kubeconfig /tmp/pyjobset.kubeconfig   # try your own JobSets",
    ]
