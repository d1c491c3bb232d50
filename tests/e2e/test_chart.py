"""The Helm chart ``charts/pyjobset`` against ``deploy/``: lint, same objects, and schema-valid objects.

Tools are the pinned builds (``tests/e2e/build_tools.sh`` for helm and kubeconform, ``tests/e2e/build.sh`` for
kubectl with its kustomize). Without them the tests are skipped, except in CI (``CI=true``), where a missing tool
is a failure: CI builds them (``tests/e2e/run.sh``), so missing means broken.

What "the same objects" means: ``helm template`` with default values and ``kubectl kustomize deploy/`` give the
same set of (kind, name) and, object by object, the same content, with exactly these deliberate differences,
each normalised away below for the reason given:

* the Namespace: Helm creates the release namespace itself (``--create-namespace``); a Namespace in the chart
  would collide with it, and Helm stores the release in that namespace before rendering anything;
* ``app.kubernetes.io/managed-by`` says ``Helm`` instead of ``kustomize``, and Helm adds ``helm.sh/chart``;
* the CRD: Helm installs ``crds/`` verbatim (never templated), so the CRD lacks the common labels kustomize
  adds to every object; its content is still compared (which is also the drift check of the chart's copy).

The optional pieces compare the same way: ``controller.podDisruptionBudget.enabled`` with ``deploy/pdb``,
``prometheus.enable`` with ``deploy/monitoring`` and ``certManager.enable`` with the ``deploy/certmanager``
component.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.demo import sample_jobset
from tests.e2e.harness import REPO, ControlPlane, bin_dir, versions
from tests.e2e.kube import Client
from tests.e2e.schemas import SCHEMA_LOCATION, wait_until_published, write_schemas

JSON = dict[str, Any]
Key = tuple[str, str]

CHART = REPO / "charts" / "pyjobset"
DEPLOY = REPO / "deploy"
RELEASE = "jobset"  # the release name that gives the reference's app.kubernetes.io/instance label
NAMESPACE = "jobset-system"
IN_CI = os.environ.get("CI", "").lower() == "true"

# Kinds whose CRDs belong to other projects (prometheus-operator, cert-manager) and are not installed in the
# e2e control plane, so no schema exists to validate them against; kubeconform skips them by name.
FOREIGN_KINDS = ("ServiceMonitor", "Certificate", "Issuer")

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _tool(name: str, directory: Path, build: str) -> Path:
    path = directory / name
    if os.access(path, os.X_OK):
        return path
    message = f"{name} missing in {directory}; run {build}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def _tools_dir() -> Path:
    out = subprocess.run(
        [str(REPO / "tests" / "e2e" / "build_tools.sh"), "--print-bin-dir"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return Path(out.stdout.strip())


@pytest.fixture(scope="module")
def helm() -> Path:
    return _tool("helm", _tools_dir(), "tests/e2e/build_tools.sh")


@pytest.fixture(scope="module")
def kubeconform() -> Path:
    return _tool("kubeconform", _tools_dir(), "tests/e2e/build_tools.sh")


@pytest.fixture(scope="module")
def kubectl() -> Path:
    explicit = os.environ.get("PYJOBSET_KUBECTL")
    if explicit:
        return Path(explicit)
    return _tool("kubectl", bin_dir(), "tests/e2e/build.sh")


def _run(*argv: str | Path, cwd: Path = REPO) -> str:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, cwd=cwd, check=False)
    assert proc.returncode == 0, f"{' '.join(map(str, argv))} failed ({proc.returncode}):\n{proc.stderr}"
    return proc.stdout


def _docs(text: str) -> list[JSON]:
    return [d for d in yaml.load_all(text, Loader=_LOADER) if d]


def _by_key(docs: list[JSON]) -> dict[Key, JSON]:
    found: dict[Key, JSON] = {}
    for doc in docs:
        key = (doc["kind"], doc["metadata"]["name"])
        assert key not in found, f"{key} rendered twice"
        found[key] = doc
    return found


def render_chart(helm: Path, *sets: str) -> list[JSON]:
    argv: list[str | Path] = [helm, "template", RELEASE, CHART, "--namespace", NAMESPACE, "--include-crds"]
    argv += ["--kube-version", versions()["K8S_VERSION"]]
    for value in sets:
        argv += ["--set", value]
    return _docs(_run(*argv))


def build_kustomize(kubectl: Path, tmp_path: Path, *extras: str, components: tuple[str, ...] = ()) -> list[JSON]:
    """``deploy/`` plus optional directories and components, built through an overlay (kustomize refuses
    absolute paths, so deploy/ is reached through a symlink)."""
    (tmp_path / "deploy").symlink_to(DEPLOY, target_is_directory=True)
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    kustomization: JSON = {"resources": ["../deploy", *(f"../deploy/{e}" for e in extras)]}
    if components:
        kustomization["components"] = [f"../deploy/{c}" for c in components]
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization), encoding="utf-8")
    return _docs(_run(kubectl, "kustomize", overlay))


def normalise_chart(docs: list[JSON]) -> dict[Key, JSON]:
    out = _by_key(copy.deepcopy(docs))
    for doc in out.values():
        labels = doc["metadata"].setdefault("labels", {})
        assert labels.pop("helm.sh/chart", "pyjobset-").startswith("pyjobset-")
        if doc["kind"] != "CustomResourceDefinition":
            assert labels.pop("app.kubernetes.io/managed-by") == "Helm"
    return out


def normalise_kustomize(docs: list[JSON]) -> dict[Key, JSON]:
    out = _by_key(copy.deepcopy(docs))
    assert out.pop(("Namespace", NAMESPACE))["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
    for (kind, _), doc in out.items():
        labels = doc["metadata"]["labels"]
        assert labels.pop("app.kubernetes.io/managed-by") == "kustomize"
        if kind == "CustomResourceDefinition":
            for common in ("app.kubernetes.io/instance", "app.kubernetes.io/part-of"):
                labels.pop(common)
    return out


def _diff(a: JSON, b: JSON) -> str:
    left = yaml.safe_dump(a, sort_keys=True).splitlines()
    right = yaml.safe_dump(b, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(left, right, "kustomize", "helm", lineterm=""))


def assert_same_objects(kustomize: list[JSON], chart: list[JSON]) -> None:
    ours, theirs = normalise_kustomize(kustomize), normalise_chart(chart)
    assert sorted(ours) == sorted(theirs)
    for key in sorted(ours):
        assert ours[key] == theirs[key], f"{key} differs:\n{_diff(ours[key], theirs[key])}"


VARIANTS = {
    "defaults": ((), (), ()),
    "pdb": (("controller.podDisruptionBudget.enabled=true",), ("pdb",), ()),
    "prometheus": (("prometheus.enable=true",), ("monitoring",), ()),
    "certmanager": (("certManager.enable=true",), (), ("certmanager",)),
}


@pytest.mark.kubectl
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_chart_renders_what_kustomize_builds(helm: Path, kubectl: Path, tmp_path: Path, variant: str) -> None:
    sets, extras, components = VARIANTS[variant]
    assert_same_objects(build_kustomize(kubectl, tmp_path, *extras, components=components), render_chart(helm, *sets))


def test_the_comparison_sees_a_changed_value(helm: Path, kubectl: Path, tmp_path: Path) -> None:
    """The equality above is not vacuous: one changed value makes it fail, naming the object."""
    with pytest.raises(AssertionError, match="Deployment"):
        assert_same_objects(build_kustomize(kubectl, tmp_path), render_chart(helm, "controller.logLevel=4"))


def test_helm_lint(helm: Path) -> None:
    out = _run(helm, "lint", "--strict", CHART, "--kube-version", versions()["K8S_VERSION"])
    assert "1 chart(s) linted, 0 chart(s) failed" in out


def test_values_reach_the_objects(helm: Path) -> None:
    docs = _by_key(
        render_chart(
            helm,
            "image.repository=registry.example/pyjobset",
            "image.tag=v9",
            "controller.replicas=2",
            "controller.featureGates.ElasticJobSet=true",
            "controller.nodeSelector.pool=system",
            "controller.leaderElection.enable=false",
            "commonLabels.team=batch",
        )
    )
    deployment = docs[("Deployment", "jobset-controller-manager")]
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert pod["containers"][0]["image"] == "registry.example/pyjobset:v9"
    assert pod["nodeSelector"] == {"pool": "system"}
    config = yaml.safe_load(docs[("ConfigMap", "jobset-manager-config")]["data"]["controller_manager_config.yaml"])
    assert config["featureGates"] == {"ElasticJobSet": True}
    assert config["leaderElection"]["leaderElect"] is False
    templated = [d for (kind, _), d in docs.items() if kind != "CustomResourceDefinition"]  # crds/ is verbatim
    assert all(d["metadata"]["labels"]["team"] == "batch" for d in templated)


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("controler.replicas=2", "'controler' not allowed"),  # a misspelt key is an error, never ignored
        ("controller.replicas=two", "/controller/replicas"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("controller.featureGates.ElasticJobSet=yes", "/controller/featureGates/ElasticJobSet"),
    ],
)
def test_bad_values_are_rejected_naming_the_field(helm: Path, value: str, named: str) -> None:
    argv = [str(helm), "template", RELEASE, str(CHART), "--kube-version", versions()["K8S_VERSION"], "--set", value]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0
    assert named in proc.stderr, proc.stderr


def test_chart_config_is_accepted_by_the_controllers_strict_decoder(helm: Path, tmp_path: Path) -> None:
    from controller.settings import load_settings

    for sets in ((), ("certManager.enable=true", "controller.featureGates.ElasticJobSet=true")):
        docs = _by_key(render_chart(helm, *sets))
        path = tmp_path / "controller_manager_config.yaml"
        path.write_text(docs[("ConfigMap", "jobset-manager-config")]["data"]["controller_manager_config.yaml"])
        load_settings(path)


# --------------------------------------------------------------------------------------------- schemas


@pytest.fixture(scope="module")
def schema_dir(admin: Client, helm: Path, kubectl: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Schemas of every built-in kind the chart or deploy/ renders, from the running pinned kube-apiserver."""
    kinds: set[tuple[str, str]] = set()
    for docs in _all_renderings(helm, kubectl, tmp_path_factory):
        kinds |= {(d["apiVersion"], d["kind"]) for d in docs if d["kind"] not in FOREIGN_KINDS}
    directory = tmp_path_factory.mktemp("schemas")
    write_schemas(admin, kinds, directory)
    return directory


def _all_renderings(helm: Path, kubectl: Path, factory: pytest.TempPathFactory) -> Iterator[list[JSON]]:
    for sets, extras, components in VARIANTS.values():
        yield render_chart(helm, *sets)
        yield build_kustomize(kubectl, factory.mktemp("kustomize"), *extras, components=components)


def _kubeconform(kubeconform: Path, schema_dir: Path, manifest: Path) -> JSON:
    proc = subprocess.run(
        [
            str(kubeconform),
            "-strict",
            "-summary",
            "-output",
            "json",
            "-skip",
            ",".join(FOREIGN_KINDS),
            "-schema-location",
            f"{schema_dir}/{SCHEMA_LOCATION}",
            str(manifest),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report: JSON = json.loads(proc.stdout)
    assert proc.returncode == 0, json.dumps(report, indent=1)
    return report


@pytest.mark.e2e
def test_every_rendered_object_is_schema_valid(
    helm: Path, kubectl: Path, kubeconform: Path, schema_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    validated = 0
    for i, docs in enumerate(_all_renderings(helm, kubectl, tmp_path_factory)):
        manifest = tmp_path_factory.mktemp("manifests") / f"rendering-{i}.yaml"
        manifest.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
        report = _kubeconform(kubeconform, schema_dir, manifest)
        summary = report["summary"]
        assert summary["invalid"] == summary["errors"] == 0
        assert summary["valid"] == sum(d["kind"] not in FOREIGN_KINDS for d in docs)
        validated += summary["valid"]
    assert validated > 0


@pytest.mark.e2e
def test_schema_validation_catches_a_misspelt_field(
    helm: Path, kubeconform: Path, schema_dir: Path, tmp_path: Path
) -> None:
    docs = render_chart(helm)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    with pytest.raises(AssertionError, match="imagePullPolicyy"):
        _kubeconform(kubeconform, schema_dir, manifest)


@pytest.mark.e2e
def test_jobsets_validate_against_our_crd(control_plane: ControlPlane, kubeconform: Path, tmp_path: Path) -> None:
    """JobSet objects are checked against the schema the API server publishes for our CRD once installed."""
    control_plane.install_jobset_crd()
    wait_until_published(control_plane.admin, "jobset.x-k8s.io/v1alpha2")
    schemas = tmp_path / "schemas"
    write_schemas(control_plane.admin, [("jobset.x-k8s.io/v1alpha2", "JobSet")], schemas)
    good = sample_jobset("default")
    bad = copy.deepcopy(good)
    bad["spec"]["replicatedJobs"][0]["replicass"] = 2
    manifest = tmp_path / "jobsets.yaml"
    manifest.write_text(yaml.safe_dump(good), encoding="utf-8")
    assert _kubeconform(kubeconform, schemas, manifest)["summary"]["valid"] == 1
    manifest.write_text(yaml.safe_dump(bad), encoding="utf-8")
    with pytest.raises(AssertionError, match="replicass"):
        _kubeconform(kubeconform, schemas, manifest)


def test_tools_are_on_the_pinned_versions(helm: Path, kubeconform: Path) -> None:
    gomod = (REPO / "tests" / "e2e" / "tools" / "go.mod").read_text(encoding="utf-8")
    helm_pin = next(line.split()[1] for line in gomod.splitlines() if line.strip().startswith("helm.sh/helm/v3 "))
    assert helm_pin in _run(helm, "version", "--short")
    conform_pin = next(
        line.split()[1] for line in gomod.splitlines() if line.strip().startswith("github.com/yannh/kubeconform ")
    )
    assert _run(kubeconform, "-v").strip() == conform_pin
