"""The ``deploy/`` manifests: every file parses, kustomizations are complete, and the key facts hold.

Facts checked: the reference's object names, webhook names/paths/rules/objectSelector (behaviour.md §0), the
RBAC of behaviour.md §7 plus decision D1 (``pods/status``), the Deployment shape and that its config file is
accepted by the controller's strict decoder, and that Services, probes and ports point at each other.
"""

from __future__ import annotations

import copy
import functools
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.settings import load_settings

JSON = dict[str, Any]

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
KUSTOMIZATIONS = ("", "rbac", "manager", "webhook", "monitoring", "pdb", "certmanager")
NAMESPACE = "jobset-system"
SA = "jobset-controller-manager"


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRD is ~300 KB; libyaml parses it 20x faster


@functools.cache
def _load_cached(path: Path) -> tuple[JSON, ...]:
    return tuple(d for d in yaml.load_all(path.read_text(encoding="utf-8"), Loader=_LOADER) if d is not None)


def load_all(path: Path) -> list[JSON]:
    """The documents of a YAML file (deep copies, so tests may not disturb each other)."""
    return copy.deepcopy(list(_load_cached(path.resolve())))


def kustomization(directory: Path) -> JSON:
    data: JSON = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    return data


def kustomize_resources(directory: Path) -> Iterator[Path]:
    """Files a kustomization pulls in, following directory entries (what ``kubectl kustomize`` reads)."""
    for entry in kustomization(directory).get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            yield from kustomize_resources(target)
        else:
            yield target


def patch_files(directory: Path) -> list[Path]:
    return [(directory / p["path"]).resolve() for p in kustomization(directory).get("patches", [])]


def manifest_files() -> list[Path]:
    """Every object file of ours: the resources of all our kustomizations (patches are not objects)."""
    files: set[Path] = set()
    for directory in KUSTOMIZATIONS:
        files.update(kustomize_resources(DEPLOY / directory))
    return sorted(files)


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], JSON]:
    """Every object of the default install (``deploy/kustomization.yaml``) plus the optional directories."""
    found: dict[tuple[str, str], JSON] = {}
    for path in manifest_files():
        for doc in load_all(path):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in found, f"duplicate {key}"
            found[key] = doc
    return found


def obj(objects: dict[tuple[str, str], JSON], kind: str, name: str) -> JSON:
    assert (kind, name) in objects, f"missing {kind}/{name}"
    return objects[(kind, name)]


# --------------------------------------------------------------------------------------------- files


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_manifest_parses_and_is_a_kubernetes_object(path: Path) -> None:
    docs = load_all(path)
    assert docs, path
    for doc in docs:
        assert isinstance(doc.get("apiVersion"), str)
        assert isinstance(doc.get("kind"), str)
        if doc["kind"] != "Kustomization":
            assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", doc["metadata"]["name"])


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_kustomizations_reference_existing_files_and_every_file_is_referenced(directory: str) -> None:
    root = DEPLOY / directory
    used = set(kustomize_resources(root)) | set(patch_files(root))
    for path in used:
        assert path.is_file(), path
    if directory:
        here = {p.resolve() for p in root.glob("*.yaml") if p.name != "kustomization.yaml"}
        assert here == {p for p in used if p.parent == root.resolve()}


def test_every_deploy_directory_of_ours_is_checked() -> None:
    others = {"grafana", "prometheus"}  # dashboards and alert rules belong to the observability work
    ours = {p.name for p in DEPLOY.iterdir() if p.is_dir()} - others
    assert ours == {"crd", "image", *(d for d in KUSTOMIZATIONS if d)}


def test_default_install_contents() -> None:
    kinds_names = set()
    for path in kustomize_resources(DEPLOY):
        for doc in load_all(path):
            kinds_names.add((doc["kind"], doc["metadata"]["name"]))
    assert kinds_names >= {
        ("CustomResourceDefinition", "jobsets.jobset.x-k8s.io"),
        ("Namespace", NAMESPACE),
        ("ServiceAccount", SA),
        ("ClusterRole", "jobset-manager-role"),
        ("ClusterRoleBinding", "jobset-manager-rolebinding"),
        ("Role", "jobset-leader-election-role"),
        ("Role", "jobset-manager-secrets-role"),
        ("Deployment", "jobset-controller-manager"),
        ("ConfigMap", "jobset-manager-config"),
        ("Service", "jobset-webhook-service"),
        ("Service", "jobset-controller-manager-metrics-service"),
        ("Secret", "jobset-webhook-server-cert"),
        ("MutatingWebhookConfiguration", "jobset-mutating-webhook-configuration"),
        ("ValidatingWebhookConfiguration", "jobset-validating-webhook-configuration"),
    }
    # Optional pieces must not leak into the default install (no prometheus-operator, PDB or cert-manager).
    assert not {k for k, _ in kinds_names} & {"ServiceMonitor", "PodDisruptionBudget", "Certificate", "Issuer"}
    assert "components" not in kustomization(DEPLOY)


def test_namespaced_objects_live_in_jobset_system(objects: dict[tuple[str, str], JSON]) -> None:
    cluster_scoped = {
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    }
    for (kind, name), doc in objects.items():
        if kind in cluster_scoped:
            assert "namespace" not in doc["metadata"], (kind, name)
        else:
            assert doc["metadata"]["namespace"] == NAMESPACE, (kind, name)


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
@pytest.mark.parametrize("directory", ["", "monitoring", "pdb"])
def test_kubectl_kustomize_builds(directory: str) -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / directory)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    docs = [d for d in yaml.load_all(out, Loader=_LOADER) if d]
    assert docs
    if not directory:
        deployment = next(d for d in docs if d["kind"] == "Deployment")
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "pyjobset:latest"
        assert all(d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "jobset" for d in docs)


def _build_with_certmanager(tmp_path: Path) -> list[JSON]:
    # Kustomize refuses absolute paths and overlays inside the base, so reach deploy/ through a symlink.
    (tmp_path / "deploy").symlink_to(DEPLOY, target_is_directory=True)
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "resources: [../deploy]\ncomponents: [../deploy/certmanager]\n", encoding="utf-8"
    )
    out = subprocess.run(
        ["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return [d for d in yaml.load_all(out, Loader=_LOADER) if d]


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_certmanager_component_replaces_internal_certificates(tmp_path: Path) -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for d in _build_with_certmanager(tmp_path)}
    assert ("Secret", "jobset-webhook-server-cert") not in docs  # cert-manager owns it
    cert = docs[("Certificate", "jobset-serving-cert")]
    assert cert["spec"]["secretName"] == "jobset-webhook-server-cert"
    assert "jobset-webhook-service.jobset-system.svc" in cert["spec"]["dnsNames"]
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        config = next(d for (k, _), d in docs.items() if k == kind)
        annotations = config["metadata"]["annotations"]
        assert annotations["cert-manager.io/inject-ca-from"] == "jobset-system/jobset-serving-cert"
    config = yaml.safe_load(docs[("ConfigMap", "jobset-manager-config")]["data"]["controller_manager_config.yaml"])
    assert config["internalCertManagement"] == {"enable": False}
    pod = docs[("Deployment", "jobset-controller-manager")]["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    cert_volume = volumes[mounts[config["webhook"]["certDir"]]]
    assert cert_volume["secret"]["secretName"] == "jobset-webhook-server-cert"


# --------------------------------------------------------------------------------------------- RBAC


def _grants(rules: list[JSON], group: str, resource: str) -> set[str]:
    verbs: set[str] = set()
    for rule in rules:
        if group in rule.get("apiGroups", []) and resource in rule.get("resources", []):
            verbs |= set(rule["verbs"])
    return verbs


@pytest.mark.parametrize(
    ("group", "resource", "verbs"),
    [
        ("jobset.x-k8s.io", "jobsets", {"get", "list", "watch", "update", "patch"}),
        ("jobset.x-k8s.io", "jobsets/status", {"get", "update", "patch"}),
        ("jobset.x-k8s.io", "jobsets/finalizers", {"update"}),
        ("batch", "jobs", {"get", "list", "watch", "create", "update", "patch", "delete"}),
        ("batch", "jobs/status", {"get", "update", "patch"}),
        ("", "services", {"get", "list", "watch", "create", "update", "patch", "delete"}),
        ("", "pods", {"get", "list", "watch", "update", "patch", "delete"}),
        ("", "pods/status", {"patch", "update"}),  # D1: the placement-repair controller's status write
        ("", "nodes", {"get", "list", "watch"}),
        ("", "persistentvolumeclaims", {"get", "list", "watch", "create"}),
        ("", "events", {"create", "patch"}),
        ("events.k8s.io", "events", {"create", "patch"}),
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", {"get", "list", "watch", "update"}),
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations", {"get", "list", "watch", "update"}),
    ],
)
def test_manager_cluster_role_grants(
    objects: dict[tuple[str, str], JSON], group: str, resource: str, verbs: set[str]
) -> None:
    rules = obj(objects, "ClusterRole", "jobset-manager-role")["rules"]
    assert _grants(rules, group, resource) >= verbs


def test_manager_cannot_create_pods_or_touch_secrets_cluster_wide(objects: dict[tuple[str, str], JSON]) -> None:
    rules = obj(objects, "ClusterRole", "jobset-manager-role")["rules"]
    assert "create" not in _grants(rules, "", "pods")
    assert _grants(rules, "", "secrets") == set()
    assert all("*" not in r["verbs"] and "*" not in r["resources"] for r in rules)


def test_leader_election_and_secrets_are_namespaced(objects: dict[tuple[str, str], JSON]) -> None:
    le = obj(objects, "Role", "jobset-leader-election-role")
    assert le["metadata"]["namespace"] == NAMESPACE
    assert _grants(le["rules"], "coordination.k8s.io", "leases") >= {"get", "create", "update"}
    secrets = obj(objects, "Role", "jobset-manager-secrets-role")
    assert _grants(secrets["rules"], "", "secrets") >= {"get", "list", "watch", "update"}


def test_metrics_authn_authz_permissions(objects: dict[tuple[str, str], JSON]) -> None:
    rules = obj(objects, "ClusterRole", "jobset-metrics-auth-role")["rules"]
    assert _grants(rules, "authentication.k8s.io", "tokenreviews") == {"create"}
    assert _grants(rules, "authorization.k8s.io", "subjectaccessreviews") == {"create"}


@pytest.mark.parametrize(
    ("kind", "name", "role_kind", "role"),
    [
        ("ClusterRoleBinding", "jobset-manager-rolebinding", "ClusterRole", "jobset-manager-role"),
        ("ClusterRoleBinding", "jobset-metrics-auth-rolebinding", "ClusterRole", "jobset-metrics-auth-role"),
        ("RoleBinding", "jobset-leader-election-rolebinding", "Role", "jobset-leader-election-role"),
        ("RoleBinding", "jobset-manager-secrets-rolebinding", "Role", "jobset-manager-secrets-role"),
    ],
)
def test_bindings_tie_the_service_account_to_existing_roles(
    objects: dict[tuple[str, str], JSON], kind: str, name: str, role_kind: str, role: str
) -> None:
    binding = obj(objects, kind, name)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role}
    obj(objects, role_kind, role)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SA, "namespace": NAMESPACE}]
    obj(objects, "ServiceAccount", SA)


def test_rbac_directory_is_self_contained() -> None:
    """The e2e suite binds its own ServiceAccount to exactly ``deploy/rbac``; it must hold every role."""
    kinds = {doc["kind"] for path in kustomize_resources(DEPLOY / "rbac") for doc in load_all(path)}
    assert kinds == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


# --------------------------------------------------------------------------------------------- webhooks


POD_SELECTOR = {"matchExpressions": [{"key": "jobset.sigs.k8s.io/jobset-name", "operator": "Exists"}]}


@pytest.mark.parametrize(
    ("kind", "config", "name", "path", "group", "resource", "operations"),
    [
        (
            "MutatingWebhookConfiguration",
            "jobset-mutating-webhook-configuration",
            "mjobset.kb.io",
            "/mutate-jobset-x-k8s-io-v1alpha2-jobset",
            "jobset.x-k8s.io",
            "jobsets",
            ["CREATE"],
        ),
        (
            "MutatingWebhookConfiguration",
            "jobset-mutating-webhook-configuration",
            "mpod.kb.io",
            "/mutate--v1-pod",
            "",
            "pods",
            ["CREATE"],
        ),
        (
            "ValidatingWebhookConfiguration",
            "jobset-validating-webhook-configuration",
            "vjobset.kb.io",
            "/validate-jobset-x-k8s-io-v1alpha2-jobset",
            "jobset.x-k8s.io",
            "jobsets",
            ["CREATE", "UPDATE"],
        ),
        (
            "ValidatingWebhookConfiguration",
            "jobset-validating-webhook-configuration",
            "vpod.kb.io",
            "/validate--v1-pod",
            "",
            "pods",
            ["CREATE"],
        ),
    ],
)
def test_webhooks(
    objects: dict[tuple[str, str], JSON],
    kind: str,
    config: str,
    name: str,
    path: str,
    group: str,
    resource: str,
    operations: list[str],
) -> None:
    hooks = {h["name"]: h for h in obj(objects, kind, config)["webhooks"]}
    hook = hooks[name]
    assert hook["clientConfig"]["service"] == {"name": "jobset-webhook-service", "namespace": NAMESPACE, "path": path}
    assert hook["failurePolicy"] == "Fail"
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    (rule,) = hook["rules"]
    assert rule["apiGroups"] == [group]
    assert rule["apiVersions"] == (["v1alpha2"] if group else ["v1"])
    assert rule["resources"] == [resource]  # the main resource only: status writes are never sent
    assert rule["operations"] == operations
    if resource == "pods":
        assert hook["objectSelector"] == POD_SELECTOR
    else:
        assert "objectSelector" not in hook
    assert "caBundle" not in hook["clientConfig"]  # patched in by internal certificate management


def test_each_configuration_has_exactly_two_webhooks(objects: dict[tuple[str, str], JSON]) -> None:
    mutating = obj(objects, "MutatingWebhookConfiguration", "jobset-mutating-webhook-configuration")
    validating = obj(objects, "ValidatingWebhookConfiguration", "jobset-validating-webhook-configuration")
    assert [h["name"] for h in mutating["webhooks"]] == ["mjobset.kb.io", "mpod.kb.io"]
    assert [h["name"] for h in validating["webhooks"]] == ["vjobset.kb.io", "vpod.kb.io"]


# --------------------------------------------------------------------------------------------- deployment


@pytest.fixture(scope="module")
def deployment(objects: dict[tuple[str, str], JSON]) -> JSON:
    return obj(objects, "Deployment", "jobset-controller-manager")


@pytest.fixture(scope="module")
def container(deployment: JSON) -> JSON:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    c_: JSON = c
    return c_


def test_deployment_shape(deployment: JSON, container: JSON) -> None:
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == SA
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert container["command"] == ["pyjobset", "run"]
    assert container["args"] == ["--config=/controller_manager_config.yaml", "--zap-log-level=2"]
    assert sorted(p["containerPort"] for p in container["ports"]) == [8081, 8443, 9443]


def test_probes_and_resources(container: JSON) -> None:
    live, ready = container["livenessProbe"], container["readinessProbe"]
    assert live["httpGet"] == {"path": "/healthz", "port": 8081}
    assert (live["initialDelaySeconds"], live["periodSeconds"]) == (30, 20)
    assert ready["httpGet"] == {"path": "/readyz", "port": 8081}
    assert (ready["initialDelaySeconds"], ready["periodSeconds"]) == (5, 10)
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "128Mi"}, "limits": {"memory": "4Gi"}}


def test_security_context_is_restricted(deployment: JSON, container: JSON) -> None:
    pod_sc = deployment["spec"]["template"]["spec"]["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod_sc["runAsUser"] != 0
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}


def test_config_is_mounted_where_the_args_point(deployment: JSON, container: JSON) -> None:
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    config_mount = mounts["/controller_manager_config.yaml"]
    assert config_mount["subPath"] == "controller_manager_config.yaml"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes[config_mount["name"]]["configMap"]["name"] == "jobset-manager-config"
    # Read-only root filesystem: certificates are written below a scratch volume.
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]


@pytest.fixture(scope="module")
def config_text(objects: dict[tuple[str, str], JSON]) -> str:
    text: str = obj(objects, "ConfigMap", "jobset-manager-config")["data"]["controller_manager_config.yaml"]
    return text


def test_config_map_holds_the_reference_configuration(config_text: str) -> None:
    config = yaml.safe_load(config_text)
    assert config["apiVersion"] == "config.jobset.x-k8s.io/v1alpha1"
    assert config["kind"] == "Configuration"
    assert config["leaderElection"]["leaderElect"] is True
    assert config["leaderElection"]["resourceName"] == "6d4f6a47.jobset.x-k8s.io"
    assert config["internalCertManagement"] == {
        "enable": True,
        "webhookServiceName": "jobset-webhook-service",
        "webhookSecretName": "jobset-webhook-server-cert",
    }
    assert config["webhook"]["port"] == 9443
    assert config["metrics"]["bindAddress"] == ":8443"
    assert config["health"]["healthProbeBindAddress"] == ":8081"


def test_config_map_is_accepted_by_the_controllers_strict_decoder(config_text: str, tmp_path: Path) -> None:
    path = tmp_path / "controller_manager_config.yaml"
    path.write_text(config_text, encoding="utf-8")
    settings = load_settings(path)
    assert settings.leader_election.leader_elect is True
    assert settings.internal_cert_management.enable is True
    assert settings.webhook.port == 9443
    assert settings.client_connection.qps == 500


def test_services_reach_the_container(objects: dict[tuple[str, str], JSON], deployment: JSON, container: JSON) -> None:
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    ports = {p["containerPort"] for p in container["ports"]}
    webhook = obj(objects, "Service", "jobset-webhook-service")
    assert webhook["spec"]["selector"].items() <= pod_labels.items()
    assert [(p["port"], p["targetPort"]) for p in webhook["spec"]["ports"]] == [(443, 9443)]
    metrics = obj(objects, "Service", "jobset-controller-manager-metrics-service")
    assert metrics["spec"]["selector"].items() <= pod_labels.items()
    assert [(p["name"], p["port"], p["targetPort"]) for p in metrics["spec"]["ports"]] == [("https", 8443, 8443)]
    assert {9443, 8443} <= ports


def test_service_monitor_selects_the_metrics_service(objects: dict[tuple[str, str], JSON]) -> None:
    monitor = obj(objects, "ServiceMonitor", "jobset-controller-manager-metrics-monitor")
    metrics = obj(objects, "Service", "jobset-controller-manager-metrics-service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= metrics["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["scheme"], endpoint["path"]) == ("https", "https", "/metrics")


# The reference install's identity (kubernetes-sigs/jobset, kustomize `config/default`): what `kubectl apply -k
# deploy/` must agree with to take over an existing reference install in place. A Deployment's selector is
# immutable, so it must be exactly the reference's; Services select on the JobSet-specific name + instance labels
# (the reference moved off `control-plane`, which every kubebuilder controller in a namespace shares).
REFERENCE_DEPLOYMENT_SELECTOR = {"control-plane": "controller-manager"}
IDENTITY_LABELS = {"app.kubernetes.io/name": "jobset", "app.kubernetes.io/instance": "jobset"}


def test_deployment_selector_is_the_reference_installs(deployment: JSON) -> None:
    assert deployment["metadata"]["name"] == "jobset-controller-manager"
    assert deployment["metadata"]["namespace"] == NAMESPACE
    assert deployment["spec"]["selector"] == {"matchLabels": REFERENCE_DEPLOYMENT_SELECTOR}
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert (REFERENCE_DEPLOYMENT_SELECTOR | IDENTITY_LABELS).items() <= pod_labels.items()


@pytest.mark.parametrize("service", ["jobset-webhook-service", "jobset-controller-manager-metrics-service"])
def test_services_select_the_jobset_pod_only(objects: dict[tuple[str, str], JSON], service: str) -> None:
    assert obj(objects, "Service", service)["spec"]["selector"] == IDENTITY_LABELS


def test_no_selector_relies_on_the_shared_control_plane_label_but_the_deployments(
    objects: dict[tuple[str, str], JSON],
) -> None:
    for (kind, name), doc in objects.items():
        if kind in ("Deployment", "Namespace"):
            continue
        selector = doc.get("spec", {}).get("selector") if isinstance(doc.get("spec"), dict) else None
        if isinstance(selector, dict):
            flat = selector.get("matchLabels", selector)
            assert "control-plane" not in flat, (kind, name)


def test_pdb_selects_the_controller(objects: dict[tuple[str, str], JSON], deployment: JSON) -> None:
    pdb = obj(objects, "PodDisruptionBudget", "jobset-controller-manager")
    assert pdb["spec"]["minAvailable"] == 1
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_webhook_secret_name_matches_config(objects: dict[tuple[str, str], JSON], config_text: str) -> None:
    config = yaml.safe_load(config_text)
    secret = obj(objects, "Secret", config["internalCertManagement"]["webhookSecretName"])
    assert "data" not in secret  # filled by the controller, never by a re-apply
    obj(objects, "Service", config["internalCertManagement"]["webhookServiceName"])


# --------------------------------------------------------------------------------------------- image


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (DEPLOY / "image" / "Dockerfile").read_text(encoding="utf-8")


def test_image_runs_the_console_script_as_non_root(dockerfile: str) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["scripts"]["pyjobset"] == "controller.cli:main"
    assert 'ENTRYPOINT ["pyjobset"]' in dockerfile
    user = re.findall(r"^USER (\S+)$", dockerfile, flags=re.MULTILINE)
    assert user
    assert user[-1].split(":")[0] not in ("0", "root")


def test_image_copies_every_package(dockerfile: str) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    ignore = (DEPLOY / "image" / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    for package in packages:
        assert f"COPY {package}/ {package}/" in dockerfile
        assert f"!{package}/" in ignore


def test_certmanager_config_is_accepted_by_the_strict_decoder(tmp_path: Path) -> None:
    (patch,) = load_all(DEPLOY / "certmanager" / "manager_config_patch.yaml")
    path = tmp_path / "controller_manager_config.yaml"
    path.write_text(patch["data"]["controller_manager_config.yaml"], encoding="utf-8")
    settings = load_settings(path)
    assert settings.internal_cert_management.enable is False
    assert settings.webhook.cert_dir == "/tmp/k8s-webhook-server/serving-certs"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    return _canonical(re.split(r"[\s<>=!~;\[]", spec.strip(), maxsplit=1)[0])


@pytest.fixture(scope="module")
def lock() -> dict[str, list[str]]:
    """deploy/image/requirements.lock as {name: [hashes]}, checking that every entry is an exact pin."""
    text = (DEPLOY / "image" / "requirements.lock").read_text(encoding="utf-8")
    pins: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        head = block.split("\\", 1)[0].strip()
        if not head or head.startswith("#"):
            continue
        assert re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+", head), f"not an exact pin: {head!r}"
        pins[_requirement_name(head)] = re.findall(r"--hash=sha256:([0-9a-f]{64})", block)
    return pins


def test_lock_pins_every_dependency_with_hashes(lock: dict[str, list[str]]) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    wanted = {_requirement_name(d) for d in project["project"]["dependencies"]}
    build = (DEPLOY / "image" / "build-requirements.in").read_text(encoding="utf-8").splitlines()
    build_reqs = [line for line in build if line.strip() and not line.startswith("#")]
    assert sorted(build_reqs) == sorted(project["build-system"]["requires"])
    wanted |= {_requirement_name(r) for r in build_reqs}
    missing = wanted - set(lock)
    assert not missing, f"{sorted(missing)} not in the lock: regenerate it (command in its first lines)"
    assert all(lock.values()), [name for name, hashes in lock.items() if not hashes]


def test_image_installs_only_hashed_artifacts(dockerfile: str) -> None:
    assert "--require-hashes --no-deps -r requirements.lock" in dockerfile
    assert "COPY deploy/image/requirements.lock ./" in dockerfile
    assert "--no-deps --no-build-isolation ." in dockerfile  # the project: no resolution, no unhashed backend
    ignore = (DEPLOY / "image" / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    assert "!deploy/image/requirements.lock" in ignore.splitlines()


def test_base_image_is_pinned_by_tag_and_takes_a_release_digest(dockerfile: str) -> None:
    froms = re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE)
    assert froms == ["${PYTHON_IMAGE}${PYTHON_IMAGE_DIGEST:+@}${PYTHON_IMAGE_DIGEST}"] * 2
    (tag,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, flags=re.MULTILINE)
    assert re.fullmatch(r"python:3\.11-slim-\w+", tag)
    assert "RELEASE PROCESS MUST FILL: --build-arg PYTHON_IMAGE_DIGEST=sha256:" in dockerfile
