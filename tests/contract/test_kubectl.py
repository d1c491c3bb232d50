"""The real kubectl against the cluster, with default flags: get/create/apply/patch/label/annotate/delete/wait/-w.

These tests need a kubectl binary (``PYJOBSET_KUBECTL`` or PATH) and run it as a subprocess, asynchronously, so
an in-process simulated cluster keeps serving while kubectl talks to it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.contract.client import Kube

pytestmark = pytest.mark.kubectl

JSON = dict[str, Any]


class Kubectl:
    def __init__(self, binary: str, kubeconfig: str, ns: str) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.ns = ns

    async def run(self, *args: str, stdin: str | None = None, check: bool = True) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            self.binary,
            "--kubeconfig",
            self.kubeconfig,
            "-n",
            self.ns,
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 60)
        code = proc.returncode or 0
        if check:
            assert code == 0, f"kubectl {' '.join(args)} failed ({code}): {err.decode()}"
        return code, out.decode(), err.decode()

    async def json(self, *args: str) -> JSON:
        _, out, _ = await self.run(*args, "-o", "json")
        result: JSON = json.loads(out)
        return result


@pytest.fixture
def kubectl(kubectl_bin: str, kubeconfig: str, ns: str) -> Kubectl:
    return Kubectl(kubectl_bin, kubeconfig, ns)


CM = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: app
  labels: {tier: web}
data:
  a: "1"
"""

JOB = """
apiVersion: batch/v1
kind: Job
metadata:
  name: kjob
spec:
  completions: 1
  template:
    metadata:
      annotations:
        sim.pyjobset.io/run-seconds: "0"
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: registry.k8s.io/pause:3.10
"""


async def test_create_get_json_yaml_and_wide(kubectl: Kubectl) -> None:
    _, out, _ = await kubectl.run("create", "-f", "-", stdin=CM)
    assert "configmap/app created" in out
    obj = await kubectl.json("get", "configmap", "app")
    assert obj["data"] == {"a": "1"}
    _, out, _ = await kubectl.run("get", "configmap", "app", "-o", "yaml")
    assert yaml.safe_load(out)["metadata"]["labels"] == {"tier": "web"}
    _, out, _ = await kubectl.run("get", "configmaps", "-o", "wide")
    assert "app" in out
    listed = await kubectl.json("get", "configmaps", "-l", "tier=web")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["app"]


async def test_get_pods_table_and_wide_columns(kubectl: Kubectl) -> None:
    await kubectl.run("run", "p1", "--image=registry.k8s.io/pause:3.10", "--restart=Never")
    _, out, _ = await kubectl.run("get", "pods")
    header = out.splitlines()[0].split()
    assert header[:3] == ["NAME", "READY", "STATUS"]
    _, out, _ = await kubectl.run("get", "pods", "-o", "wide")
    assert "NODE" in out.splitlines()[0]
    _, out, _ = await kubectl.run("get", "pods", "--show-labels")
    assert "LABELS" in out.splitlines()[0]


async def test_apply_client_side_twice_and_server_side(kubectl: Kubectl) -> None:
    _, out, _ = await kubectl.run("apply", "-f", "-", stdin=CM)
    assert "configmap/app created" in out
    _, out, _ = await kubectl.run("apply", "-f", "-", stdin=CM)
    assert "unchanged" in out
    changed = CM.replace('a: "1"', 'b: "2"')
    _, out, _ = await kubectl.run("apply", "-f", "-", stdin=changed)
    assert "configured" in out
    obj = await kubectl.json("get", "configmap", "app")
    assert obj["data"] == {"b": "2"}, "client-side apply removes fields dropped from the manifest"
    ssa = CM.replace("name: app", "name: app-ssa")
    _, out, _ = await kubectl.run("apply", "--server-side", "-f", "-", stdin=ssa)
    assert "serverside-applied" in out
    obj = await kubectl.json("get", "configmap", "app-ssa", "--show-managed-fields")
    assert any(m["manager"] == "kubectl" and m["operation"] == "Apply" for m in obj["metadata"]["managedFields"])


async def test_patch_label_annotate(kubectl: Kubectl) -> None:
    await kubectl.run("create", "-f", "-", stdin=CM)
    await kubectl.run("patch", "configmap", "app", "-p", '{"data":{"c":"3"}}')
    await kubectl.run(
        "patch", "configmap", "app", "--type=json", "-p", '[{"op":"replace","path":"/data/a","value":"9"}]'
    )
    await kubectl.run("patch", "configmap", "app", "--type=merge", "-p", '{"data":{"m":"1"}}')
    await kubectl.run("label", "configmap", "app", "extra=yes")
    await kubectl.run("annotate", "configmap", "app", "note=hello")
    obj = await kubectl.json("get", "configmap", "app")
    assert obj["data"] == {"a": "9", "c": "3", "m": "1"}
    assert obj["metadata"]["labels"]["extra"] == "yes"
    assert obj["metadata"]["annotations"]["note"] == "hello"
    await kubectl.run("label", "configmap", "app", "extra-")
    obj = await kubectl.json("get", "configmap", "app")
    assert "extra" not in obj["metadata"]["labels"]
    code, _, err = await kubectl.run("label", "configmap", "app", "tier=db", check=False)
    assert code != 0
    assert "--overwrite" in err


async def test_delete_and_cascade_foreground(kubectl: Kubectl, kube: Kube) -> None:
    await kubectl.run("create", "-f", "-", stdin=CM)
    _, out, _ = await kubectl.run("delete", "configmap", "app")
    assert 'configmap "app" deleted' in out
    await kubectl.run("apply", "-f", "-", stdin=JOB)
    _, out, _ = await kubectl.run("delete", "job", "kjob", "--cascade=foreground")
    assert 'job.batch "kjob" deleted' in out
    code, _, err = await kubectl.run("get", "job", "kjob", check=False)
    assert code != 0
    assert "NotFound" in err or "not found" in err


async def test_wait_for_condition_and_missing_resource_errors(kubectl: Kubectl) -> None:
    await kubectl.run("apply", "-f", "-", stdin=JOB)
    await kubectl.run("wait", "--for=condition=complete", "job/kjob", "--timeout=60s")
    obj = await kubectl.json("get", "job", "kjob")
    assert obj["status"]["succeeded"] == 1
    code, _, err = await kubectl.run("get", "configmap", "nope", check=False)
    assert code == 1
    assert 'configmaps "nope" not found' in err


async def test_get_watch_streams_changes(kubectl: Kubectl) -> None:
    await kubectl.run("create", "-f", "-", stdin=CM)
    proc = await asyncio.create_subprocess_exec(
        kubectl.binary,
        "--kubeconfig",
        kubectl.kubeconfig,
        "-n",
        kubectl.ns,
        "get",
        "configmaps",
        "-w",
        "-o",
        "name",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert first.decode().strip() in ("configmap/app", "configmap/kube-root-ca.crt")
        await kubectl.run("create", "-f", "-", stdin=CM.replace("name: app", "name: later"))
        seen = set()
        for _ in range(10):
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
            seen.add(line)
            if line == "configmap/later":
                break
        assert "configmap/later" in seen
    finally:
        proc.kill()
        await proc.wait()


async def test_apply_crd_then_custom_resource(kubectl: Kubectl, tmp_path: Path) -> None:
    group = f"k{kubectl.ns.replace('-', '')[-8:]}.kubectl.pyjobset.io"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gizmos.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": {"type": "object", "properties": {"count": {"type": "integer"}}}},
                        }
                    },
                }
            ],
        },
    }
    path = tmp_path / "crd.yaml"
    path.write_text(yaml.safe_dump(crd))
    await kubectl.run("apply", "-f", str(path))
    await kubectl.run("wait", "--for=condition=established", f"crd/gizmos.{group}", "--timeout=30s")
    gizmo = f"apiVersion: {group}/v1\nkind: Gizmo\nmetadata: {{name: g1}}\nspec: {{count: 3}}\n"
    for _ in range(50):  # kubectl's discovery cache may need a moment to see the new group
        code, _, _ = await kubectl.run("apply", "-f", "-", stdin=gizmo, check=False)
        if code == 0:
            break
        await asyncio.sleep(0.2)
    obj = await kubectl.json("get", "gizmo", "g1")
    assert obj["spec"] == {"count": 3}
    code, _, err = await kubectl.run(
        "apply", "-f", "-", stdin=gizmo.replace("count: 3", "count: 3, bogus: 1"), check=False
    )
    assert code != 0
    assert 'unknown field "spec.bogus"' in err
    await kubectl.run("delete", "-f", str(path))


async def test_kubectl_rejects_unknown_fields_in_builtin_kinds(kubectl: Kubectl) -> None:
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: typo}
spec:
  containers:
  - name: c
    image: registry.k8s.io/pause:3.10
    imagee: oops
"""
    code, _, err = await kubectl.run("apply", "-f", "-", stdin=manifest, check=False)
    assert code != 0
    assert 'unknown field "spec.containers[0].imagee"' in err


async def test_kubectl_create_generators(kubectl: Kubectl) -> None:
    """``kubectl create <kind>`` generators send protobuf bodies through client-go's typed clients."""
    await kubectl.run("create", "configmap", "gen", "--from-literal=a=b")
    await kubectl.run("create", "secret", "generic", "gens", "--from-literal=p=q")
    await kubectl.run("create", "serviceaccount", "gensa")
    cm = await kubectl.json("get", "configmap", "gen")
    assert cm["data"] == {"a": "b"}
    assert "generateName" not in cm["metadata"]
    secret = await kubectl.json("get", "secret", "gens")
    assert secret["data"] == {"p": "cQ=="}
    assert secret["type"] == "Opaque"
    assert (await kubectl.json("get", "serviceaccount", "gensa"))["metadata"]["name"] == "gensa"
