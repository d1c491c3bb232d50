"""The admission server through the real admission path of the simulated cluster (conformance 66-102 sampled).

The webhook configurations of ``deploy/webhook`` are registered unchanged (service references, no caBundle);
our certificate manager creates the CA and serving certificate, stores them in the Secret and patches the
caBundle in; the simulated API server then calls our HTTPS server like kube-apiserver does (a service
reference resolved to our 127.0.0.1 port, TLS verified against the caBundle for
``jobset-webhook-service.jobset-system.svc``). ``kubectl`` shows what a user sees.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import io
import shutil
import ssl
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from cryptography import x509

import kubesim
from api.records import Node, Pod
from cache.client import ApiClient, load_cluster_config, resource_path
from cache.errors import Invalid
from cache.store import Store
from controller.placement import POD_NAME_INDEX, pod_name_index
from controller.settings import Webhook, load_settings
from controller.webhooks import validate_create
from controller.webhooks.certs import (
    CA_VALIDITY,
    CERT_VALIDITY,
    LOOKAHEAD,
    CertManager,
    FileCertSource,
    plan_rotation,
    write_pem_files,
)
from controller.webhooks.server import (
    MUTATE_JOBSET_PATH,
    VALIDATE_JOBSET_PATH,
    AdmissionHandlers,
    CachePlacementLookup,
    WebhookServer,
    build_webhook_server,
    server_tls_context,
)
from tests.builders import JobSetBuilder

JSON = dict[str, Any]
DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "webhook"
SYSTEM_NS = "jobset-system"
SERVICE = "jobset-webhook-service"
SERVER_NAME = f"{SERVICE}.{SYSTEM_NS}.svc"
JOBSETS = resource_path("jobset.x-k8s.io", "v1alpha2", "jobsets")


@pytest.fixture
async def sim() -> AsyncIterator[kubesim.SimCluster]:
    async with kubesim.SimCluster(nodes=4, nodes_per_pool=2) as cluster:
        yield cluster


@pytest.fixture
def kubeconfig(sim: kubesim.SimCluster, tmp_path: Path) -> str:
    """Overrides the shared fixture: these tests reach into the simulated cluster's webhook endpoints."""
    return sim.write_kubeconfig(tmp_path / "kubeconfig")


async def install_webhook_manifests(api: ApiClient) -> None:
    with contextlib.suppress(Exception):
        await api.create(resource_path("", "v1", "namespaces"), {"metadata": {"name": SYSTEM_NS}})
    plural = {
        "MutatingWebhookConfiguration": ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", None),
        "ValidatingWebhookConfiguration": ("admissionregistration.k8s.io", "validatingwebhookconfigurations", None),
        "Secret": ("", "secrets", SYSTEM_NS),
        "Service": ("", "services", SYSTEM_NS),
    }
    for path in sorted(DEPLOY.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if doc.get("kind") not in plural:
            continue
        group, res, ns = plural[doc["kind"]]
        await api.create(resource_path(group, "v1", res, ns), doc)


@dataclass
class Env:
    sim: kubesim.SimCluster
    api: ApiClient
    server: WebhookServer
    cert_dir: Path

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.server.bound_port}"

    def client_ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert_dir / "ca.crt"))


@contextlib.asynccontextmanager
async def running_env(
    sim: kubesim.SimCluster,
    api: ApiClient,
    tmp_path: Path,
    clock: Callable[[], dt.datetime] | None = None,
    gates: dict[str, bool] | None = None,
) -> AsyncIterator[Env]:
    await install_webhook_manifests(api)
    settings = load_settings(overrides={"leader_election.leader_elect": False})
    settings = dataclasses.replace(
        settings,
        webhook=Webhook(cert_dir=str(tmp_path / "c")),
        feature_gates={**settings.feature_gates, **(gates or {})},
    )
    pods: Store[Pod] = Store(lambda p: p.key, {POD_NAME_INDEX: pod_name_index})
    nodes: Store[Node] = Store(lambda n: n.key)
    server = build_webhook_server(settings, api, pods, nodes, host="127.0.0.1", port=0)
    if clock is not None:
        assert isinstance(server.certs, CertManager)
        server.certs.clock = clock
    assert not server.ready()
    assert await server.start()
    assert server.ready()
    assert sim.admission is not None
    sim.admission.endpoints[(SYSTEM_NS, SERVICE)] = f"https://127.0.0.1:{server.bound_port}"
    try:
        yield Env(sim, api, server, tmp_path / "c")
    finally:
        await server.stop()


@pytest.fixture
async def env(sim: kubesim.SimCluster, api: ApiClient, jobset_crd: None, tmp_path: Path) -> AsyncIterator[Env]:
    async with running_env(sim, api, tmp_path) as e:
        yield e


# --------------------------------------------------------------------------------------------- certificates


async def test_certificates_stored_and_injected(env: Env) -> None:
    secret = await env.api.get(resource_path("", "v1", "secrets", SYSTEM_NS, "jobset-webhook-server-cert"))
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert set(data) >= {"tls.crt", "tls.key", "ca.crt"}
    assert (env.cert_dir / "tls.crt").read_bytes() == data["tls.crt"]
    ca_b64 = base64.b64encode(data["ca.crt"]).decode()
    for plural, name in (
        ("validatingwebhookconfigurations", "jobset-validating-webhook-configuration"),
        ("mutatingwebhookconfigurations", "jobset-mutating-webhook-configuration"),
    ):
        conf = await env.api.get(resource_path("admissionregistration.k8s.io", "v1", plural, name=name))
        assert [h["clientConfig"]["caBundle"] for h in conf["webhooks"]] == [ca_b64, ca_b64]


# --------------------------------------------------------------------------------------------- JobSet webhooks


def base_jobset(name: str, namespace: str) -> JSON:
    js = JobSetBuilder(name, namespace).rjob("a", 1).rjob("b", 3).obj()
    # Let the webhook default what the builder fills in.
    del js["spec"]["network"]
    del js["spec"]["successPolicy"]
    for rj in js["spec"]["replicatedJobs"]:
        del rj["template"]["spec"]["completionMode"]
        del rj["template"]["spec"]["template"]["spec"]["restartPolicy"]
    return js


async def test_defaulting_visible_on_create(env: Env, namespace: str) -> None:
    created = await env.api.create(
        resource_path("jobset.x-k8s.io", "v1alpha2", "jobsets", namespace), base_jobset("js", namespace)
    )
    spec = created["spec"]
    assert spec["successPolicy"] == {"operator": "All"}
    assert spec["startupPolicy"] == {"startupPolicyOrder": "AnyOrder"}
    assert spec["network"] == {"enableDNSHostnames": True, "publishNotReadyAddresses": True}
    for rj in spec["replicatedJobs"]:
        assert rj["template"]["spec"]["completionMode"] == "Indexed"
        assert rj["template"]["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"


async def test_invalid_create_rejected_with_field_causes(env: Env, namespace: str) -> None:
    js = base_jobset("js", namespace)
    js["spec"]["successPolicy"] = {"operator": "All", "targetReplicatedJobs": ["nope"]}
    with pytest.raises(Invalid) as caught:
        await env.api.create(resource_path("jobset.x-k8s.io", "v1alpha2", "jobsets", namespace), js)
    err = caught.value
    expected = validate_create(js, {})
    assert expected, "the case must be invalid for the pure validator too"
    assert err.status == 422
    assert err.message == (
        'admission webhook "vjobset.kb.io" denied the request: JobSet.jobset.x-k8s.io "js" is invalid: '
        + expected.aggregate()
    )
    assert [c["field"] for c in err.details["causes"]] == expected.fields()


async def test_update_immutability_and_suspended_exceptions(env: Env, namespace: str) -> None:
    path = resource_path("jobset.x-k8s.io", "v1alpha2", "jobsets", namespace)
    created = await env.api.create(path, base_jobset("js", namespace))
    changed = dict(created)
    pod_spec = changed["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    pod_spec["nodeSelector"] = {"pool": "x"}
    with pytest.raises(Invalid) as caught:
        await env.api.replace(f"{path}/js", changed)
    assert "spec.replicatedJobs: Invalid value:" in caught.value.message
    assert caught.value.message.endswith(": field is immutable")

    # While suspended, the scheduling directives of the pod template may change (Kueue).
    suspended = await env.api.patch(f"{path}/js", {"spec": {"suspend": True}})
    pod_spec = suspended["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    pod_spec["nodeSelector"] = {"pool": "x"}
    updated = await env.api.replace(f"{path}/js", suspended)
    assert updated["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "x"}

    with pytest.raises(Invalid, match=r"spec\.managedBy: Invalid value: \"other\.io/x\": field is immutable"):
        await env.api.patch(f"{path}/js", {"spec": {"managedBy": "other.io/x"}})


async def test_mutating_webhook_runs_on_create_only(env: Env, namespace: str) -> None:
    path = resource_path("jobset.x-k8s.io", "v1alpha2", "jobsets", namespace)
    created = await env.api.create(path, base_jobset("js", namespace))
    calls = env.sim.admission.calls if env.sim.admission else 0
    patched = await env.api.patch(f"{path}/js", {"metadata": {"labels": {"x": "y"}}})
    assert patched["metadata"]["generation"] == created["metadata"]["generation"]
    assert env.sim.admission is not None
    assert env.sim.admission.calls == calls + 1  # only vjobset.kb.io was called for the UPDATE


# --------------------------------------------------------------------------------------------- kubectl

INVALID_YAML = """
apiVersion: jobset.x-k8s.io/v1alpha2
kind: JobSet
metadata:
  name: bad
spec:
  replicatedJobs:
  - name: first
    dependsOn:
    - name: second
      status: Complete
    template:
      spec:
        template:
          spec:
            containers:
            - name: c
              image: busybox
  - name: second
    template:
      spec:
        template:
          spec:
            containers:
            - name: c
              image: busybox
"""


async def kubectl(kubeconfig: str, namespace: str, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("no kubectl binary on PATH")
    proc = await asyncio.create_subprocess_exec(
        binary,
        "--kubeconfig",
        kubeconfig,
        "-n",
        namespace,
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 60)
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.mark.kubectl
async def test_kubectl_apply_invalid_prints_exact_error(env: Env, kubeconfig: str, namespace: str) -> None:
    code, _, err = await kubectl(kubeconfig, namespace, "apply", "-f", "-", stdin=INVALID_YAML)
    assert code == 1
    assert err.strip() == (
        'The JobSet "bad" is invalid: \n'
        "* spec.replicatedJobs[0].dependsOn: Internal error: DependsOn can't be set for the first ReplicatedJob\n"
        "* spec.replicatedJobs[0].dependsOn[0].name: Internal error: "
        "replicatedJob: first cannot depend on replicatedJob: second"
    )
    one = INVALID_YAML.replace("name: second\n      status", "name: first\n      status")
    code, _, err = await kubectl(kubeconfig, namespace, "apply", "-f", "-", stdin=one.replace("bad", "bad2"))
    assert code == 1
    assert err.strip().startswith(
        'The JobSet "bad2" is invalid: \n* spec.replicatedJobs[0].dependsOn: Internal error: '
        "DependsOn can't be set for the first ReplicatedJob"
    )


@pytest.mark.kubectl
async def test_kubectl_server_side_apply_twice_keeps_generation(env: Env, kubeconfig: str, namespace: str) -> None:
    doc = yaml.safe_dump(base_jobset("ssa", namespace))
    for _ in range(2):
        code, _, err = await kubectl(kubeconfig, namespace, "apply", "--server-side", "-f", "-", stdin=doc)
        assert code == 0, err
    got = await env.api.get(f"{resource_path('jobset.x-k8s.io', 'v1alpha2', 'jobsets', namespace)}/ssa")
    assert got["metadata"]["generation"] == 1


# --------------------------------------------------------------------------------------------- HTTP edge cases


async def post(env: Env, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, JSON]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            env.base + path,
            data=io.BytesIO(body),
            headers={"Content-Type": content_type},
            ssl=env.client_ssl(),
            server_hostname=SERVER_NAME,
        ) as resp,
    ):
        raw = await resp.read()
        return resp.status, orjson.loads(raw) if raw.startswith(b"{") else {}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", "application/json"),
        (b"{not json", "application/json"),
        (b"[]", "application/json"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "application/json"),
        (b'{"apiVersion": "v1", "kind": "Pod", "request": {"uid": "1"}}', "application/json"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "1"}}', "text/plain"),
    ],
    ids=["empty", "not-json", "array", "no-request", "wrong-kind", "content-type"],
)
async def test_malformed_reviews_are_400(env: Env, body: bytes, content_type: str) -> None:
    status, review = await post(env, VALIDATE_JOBSET_PATH, body, content_type)
    assert status == 400
    assert review["response"]["allowed"] is False
    assert review["response"]["status"]["code"] == 400


async def post_with(env: Env, path: str, ctx: ssl.SSLContext) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(env.base + path, data=b"", ssl=ctx, server_hostname=SERVER_NAME) as resp,
    ):
        return resp.status, await resp.read()


async def test_request_observers_see_every_answer(env: Env, namespace: str) -> None:
    seen: list[tuple[str, int]] = []
    env.server.observers.append(lambda path, status, seconds: seen.append((path, status)) if seconds >= 0 else None)
    await post(env, VALIDATE_JOBSET_PATH, b"")
    await env.api.create(
        resource_path("jobset.x-k8s.io", "v1alpha2", "jobsets", namespace), base_jobset("o", namespace)
    )
    assert seen == [(VALIDATE_JOBSET_PATH, 400), (MUTATE_JOBSET_PATH, 200), (VALIDATE_JOBSET_PATH, 200)]


async def test_request_size_limit(env: Env) -> None:
    status, _ = await post(env, MUTATE_JOBSET_PATH, b"{" + b" " * (9 * 1024 * 1024) + b"}")
    assert status == 413


async def test_object_of_wrong_shape_is_denied_not_crashed(env: Env) -> None:
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u1", "operation": "CREATE", "object": "a string"},
    }
    for path in (MUTATE_JOBSET_PATH, VALIDATE_JOBSET_PATH, "/mutate--v1-pod", "/validate--v1-pod"):
        status, out = await post(env, path, orjson.dumps(review))
        assert status == 200, path
        assert out["response"]["uid"] == "u1"
        assert out["response"]["allowed"] is False, path
        assert 400 <= out["response"]["status"]["code"] < 500, path


async def test_tls_floor_is_1_2(env: Env) -> None:
    ctx = env.client_ssl()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # that is the point: an old protocol
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with contextlib.suppress(ssl.SSLError):
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            await session.post(env.base + VALIDATE_JOBSET_PATH, data=b"{}", ssl=ctx, server_hostname=SERVER_NAME)
    ok = env.client_ssl()
    ok.maximum_version = ssl.TLSVersion.TLSv1_2
    status, _ = await post_with(env, VALIDATE_JOBSET_PATH, ok)
    assert status == 400  # TLS 1.2 connects (the empty review is then a bad request)


async def test_untrusted_clients_cannot_verify_the_server(env: Env) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.post(
                env.base + VALIDATE_JOBSET_PATH,
                data=b"{}",
                ssl=ssl.create_default_context(),
                server_hostname=SERVER_NAME,
            )


# --------------------------------------------------------------------------------------------- wiring


async def test_run_webhooks_sets_ready_and_stops(sim: kubesim.SimCluster, kubeconfig: str, tmp_path: Path) -> None:
    from controller.webhooks.server import run_webhooks

    async with ApiClient(await load_cluster_config(kubeconfig)) as api:
        await install_webhook_manifests(api)
        settings = load_settings(overrides={"leader_election.leader_elect": False})
        pods: Store[Pod] = Store(lambda p: p.key, {POD_NAME_INDEX: pod_name_index})
        nodes: Store[Node] = Store(lambda n: n.key)
        server = build_webhook_server(settings, api, pods, nodes, host="127.0.0.1", port=0)
        assert isinstance(server.certs.cert_dir, str)
        server.certs.cert_dir = str(tmp_path / "certs")
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(run_webhooks(settings, api, pods, nodes, stop, ready, server=server))
        await asyncio.wait_for(ready.wait(), 30)
        assert server.ready()
        stop.set()
        await task
        assert not server.ready()


# --------------------------------------------------------------------------------------------- rotation


async def served_serial(env: Env, ctx: ssl.SSLContext | None = None) -> int:
    _, writer = await asyncio.open_connection(
        "127.0.0.1", env.server.bound_port, ssl=ctx or env.client_ssl(), server_hostname=SERVER_NAME
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    return x509.load_der_x509_certificate(der).serial_number


async def ca_bundles(api: ApiClient) -> set[str]:
    conf = await api.get(
        resource_path(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
            name="jobset-validating-webhook-configuration",
        )
    )
    return {h["clientConfig"]["caBundle"] for h in conf["webhooks"]}


async def test_serving_cert_rotates_before_expiry_without_disruption(
    sim: kubesim.SimCluster, api: ApiClient, jobset_crd: None, namespace: str, tmp_path: Path
) -> None:
    real_now = dt.datetime.now(dt.UTC)
    # Issued 276 days ago: still valid for 89 days, so inside the 90-day rotation window once time moves on.
    now = [real_now - (CERT_VALIDITY - LOOKAHEAD) - dt.timedelta(days=1)]
    async with running_env(sim, api, tmp_path, clock=lambda: now[0]) as env:
        certs = env.server.certs
        assert isinstance(certs, CertManager)
        first, bundle = await served_serial(env), await ca_bundles(api)
        await certs.reconcile_once()  # nothing to do yet at the same time
        assert certs.rotations == 1
        now[0] = real_now
        await certs.reconcile_once()
        assert certs.rotations == 2
        assert await served_serial(env) != first  # new connections get the new certificate
        assert await ca_bundles(api) == bundle  # same CA: the API server's trust is unchanged
        path = resource_path("jobset.x-k8s.io", "v1alpha2", "jobsets", namespace)
        await api.create(path, base_jobset("after-rotation", namespace))  # admission still works


async def test_ca_rotation_keeps_old_ca_trusted(
    sim: kubesim.SimCluster, api: ApiClient, jobset_crd: None, namespace: str, tmp_path: Path
) -> None:
    real_now = dt.datetime.now(dt.UTC)
    now = [real_now - (CA_VALIDITY - LOOKAHEAD) - dt.timedelta(days=1)]
    async with running_env(sim, api, tmp_path, clock=lambda: now[0]) as env:
        certs = env.server.certs
        assert isinstance(certs, CertManager)
        old = certs.current
        assert old is not None
        now[0] = real_now
        new = await certs.reconcile_once()
        assert new.ca_cert != old.ca_cert
        assert await ca_bundles(api) == {base64.b64encode(new.ca_cert + old.ca_cert).decode()}
        secret = await api.get(resource_path("", "v1", "secrets", SYSTEM_NS, "jobset-webhook-server-cert"))
        assert base64.b64decode(secret["data"]["ca.crt"]) == new.ca_cert
        await served_serial(env, ssl.create_default_context(cadata=new.ca_cert.decode()))
        path = resource_path("jobset.x-k8s.io", "v1alpha2", "jobsets", namespace)
        await api.create(path, base_jobset("after-ca-rotation", namespace))


async def test_two_replicas_share_one_certificate(
    sim: kubesim.SimCluster, api: ApiClient, jobset_crd: None, tmp_path: Path
) -> None:
    async with running_env(sim, api, tmp_path) as env:
        other = CertManager(api, namespace=SYSTEM_NS, cert_dir=str(tmp_path / "other"))
        assert isinstance(env.server.certs, CertManager)
        theirs = await other.reconcile_once()
        assert theirs == env.server.certs.current
        assert other.rotations == 0


# --------------------------------------------------------------------------------------------- external certs


async def test_external_certificates_from_cert_dir(tmp_path: Path) -> None:
    cert_dir = tmp_path / "serving-certs"
    source = FileCertSource(str(cert_dir), poll_interval=0.01)
    handlers = AdmissionHandlers(gates={}, lookup=CachePlacementLookup(Store(lambda p: p.key), Store(lambda n: n.key)))
    server = WebhookServer(handlers, source, host="127.0.0.1", port=0)
    stop, ready = asyncio.Event(), asyncio.Event()
    from controller.webhooks.server import run_webhooks

    task = asyncio.create_task(
        run_webhooks(load_settings(), None, Store(lambda p: p.key), Store(lambda n: n.key), stop, ready, server=server)  # type: ignore[arg-type]
    )
    await asyncio.sleep(0)
    assert not server.ready()
    art, _ = plan_rotation(None, [SERVER_NAME], dt.datetime.now(dt.UTC))
    write_pem_files(str(cert_dir), art)
    await asyncio.wait_for(ready.wait(), 30)
    env = Env(None, None, server, cert_dir)  # type: ignore[arg-type]
    status, _ = await post(env, VALIDATE_JOBSET_PATH, b"")
    assert status == 400
    stop.set()
    await task


@pytest.mark.parametrize(
    ("min_version", "suites", "client_max", "works"),
    [
        ("VersionTLS13", (), ssl.TLSVersion.TLSv1_2, False),
        ("VersionTLS13", (), ssl.TLSVersion.TLSv1_3, True),
        ("", ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",), ssl.TLSVersion.TLSv1_2, True),
        ("", ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",), ssl.TLSVersion.TLSv1_2, False),
    ],
    ids=["tls13-refuses-1.2", "tls13", "ecdsa-suite", "rsa-only-suite-cannot-serve-ecdsa"],
)
async def test_tls_options(
    tmp_path: Path, min_version: str, suites: tuple[str, ...], client_max: ssl.TLSVersion, works: bool
) -> None:
    cert_dir = tmp_path / "certs"
    art, _ = plan_rotation(None, [SERVER_NAME], dt.datetime.now(dt.UTC))
    write_pem_files(str(cert_dir), art)
    handlers = AdmissionHandlers(gates={}, lookup=CachePlacementLookup(Store(lambda p: p.key), Store(lambda n: n.key)))
    tls = server_tls_context(min_version, suites)
    server = WebhookServer(handlers, FileCertSource(str(cert_dir)), host="127.0.0.1", port=0, tls=tls)
    assert await server.start()
    try:
        env = Env(None, None, server, cert_dir)  # type: ignore[arg-type]
        ctx = env.client_ssl()
        ctx.maximum_version = client_max
        if works:
            _, writer = await asyncio.open_connection(
                "127.0.0.1", server.bound_port, ssl=ctx, server_hostname=SERVER_NAME
            )
            ssl_obj = writer.get_extra_info("ssl_object")
            if suites:
                assert ssl_obj.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"
            writer.close()
            await writer.wait_closed()
        else:
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await asyncio.open_connection("127.0.0.1", server.bound_port, ssl=ctx, server_hostname=SERVER_NAME)
    finally:
        await server.stop()


async def test_unknown_cipher_suite_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown or unsupported cipher suite"):
        server_tls_context("", ("TLS_NOT_A_SUITE",))


async def test_url_client_config_with_ip_san(
    sim: kubesim.SimCluster, api: ApiClient, jobset_crd: None, namespace: str, tmp_path: Path
) -> None:
    """A controller outside the cluster is reached by ``url``; its certificate then needs the IP address SAN."""
    await install_webhook_manifests(api)
    settings = dataclasses.replace(
        load_settings(overrides={"leader_election.leader_elect": False}), webhook=Webhook(cert_dir=str(tmp_path / "c"))
    )
    pods: Store[Pod] = Store(lambda p: p.key, {POD_NAME_INDEX: pod_name_index})
    nodes: Store[Node] = Store(lambda n: n.key)
    server = build_webhook_server(settings, api, pods, nodes, host="127.0.0.1", port=0, cert_hosts=("127.0.0.1",))
    assert await server.start()
    try:
        for plural, name in (
            ("validatingwebhookconfigurations", "jobset-validating-webhook-configuration"),
            ("mutatingwebhookconfigurations", "jobset-mutating-webhook-configuration"),
        ):
            conf_path = resource_path("admissionregistration.k8s.io", "v1", plural, name=name)
            conf = await api.get(conf_path)
            for hook in conf["webhooks"]:
                svc = hook["clientConfig"].pop("service")
                hook["clientConfig"]["url"] = f"https://127.0.0.1:{server.bound_port}{svc['path']}"
            await api.replace(conf_path, conf)
        js = base_jobset("js", namespace)
        js["spec"]["replicatedJobs"][0]["dependsOn"] = [{"name": "b", "status": "Ready"}]
        with pytest.raises(Invalid, match="DependsOn can't be set for the first ReplicatedJob"):
            await api.create(JOBSETS.replace("/jobsets", f"/namespaces/{namespace}/jobsets"), js)
        created = await api.create(
            JOBSETS.replace("/jobsets", f"/namespaces/{namespace}/jobsets"), base_jobset("ok", namespace)
        )
        assert created["spec"]["successPolicy"] == {"operator": "All"}  # defaulted through the url too
    finally:
        await server.stop()


# aiohttp warns that a body over 1 MB sent as bytes may hold the loop for a moment: expected for this one request.
@pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning")
async def test_size_limits_refused_through_the_admission_path(env: Env, namespace: str) -> None:
    """Our limits (behaviour.md §5.5 "Size limits"): the user sees the field, the limit and the fix."""
    path = resource_path("jobset.x-k8s.io", "v1alpha2", "jobsets", namespace)
    huge = base_jobset("huge", namespace)
    huge["spec"]["replicatedJobs"][1]["replicas"] = 100_000
    many = base_jobset("many", namespace)
    many["spec"]["replicatedJobs"] = [
        {**copy_rjob, "name": f"r{i}"} for i, copy_rjob in enumerate([many["spec"]["replicatedJobs"][0]] * 150)
    ]
    fat = base_jobset("fat", namespace)
    fat["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]["containers"][0]["args"] = [
        "x" * (1536 * 1024)
    ]
    cases = (
        (huge, "spec.replicatedJobs[1].replicas: Invalid value: 100000: the JobSet would own 100001 Jobs"),
        (many, "spec.replicatedJobs: Too many: 150: must have at most 100 items (a pyjobset limit)"),
        (fat, "spec.replicatedJobs[0].template: Too long: the JobSet is "),
    )
    for obj, needle in cases:
        with pytest.raises(Invalid) as caught:
            await env.api.create(path, obj)
        assert caught.value.status == 422
        assert needle in caught.value.message
        assert "split" in caught.value.message
    assert (await env.api.get(path))["items"] == []
