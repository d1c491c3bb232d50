"""``pyjobset up``: a simulated cluster with the JobSet API, its admission webhooks and the controller, in one process.

Role: the newcomer's path from "I have a JobSet YAML" to "it runs": start kubesim on 127.0.0.1, install the CRD
(the one ``api/crdgen.py`` generates, as ``pyjobset demo`` does), register the objects of ``deploy/webhook/``
(namespace ``jobset-system``, the webhook Service, the empty certificate Secret, the mutating and validating
webhook configurations), run the controller with its admission server (``controller.app.run_controller``, the
same wiring as ``pyjobset run``), and only when everything answers write the user's kubeconfig and print what to
do next. Runs until ``stop`` is set (SIGINT/SIGTERM in the CLI).

How admission reaches the controller: the webhook configurations keep their ``clientConfig.service``
(``jobset-webhook-service.jobset-system``) exactly as deployed; kubesim has no service network and routes a
service reference to ``https://127.0.0.1:<targetPort>`` of that Service (``kubesim/admission.py``), so the
Service is created with ``targetPort`` = the port the admission server bound on 127.0.0.1. The serving
certificate and the ``caBundle`` come from internal certificate management (``controller/webhooks/certs.py``),
whose certificate names ``jobset-webhook-service.jobset-system.svc``, the server name kubesim verifies.

Readiness, before the kubeconfig is written: the CRD is ``Established`` and served; a server-side dry-run
create of a JobSet whose failure-policy rule has no name comes back with the name filled and passes validation
(so both JobSet webhooks answer, with the patched caBundle); a dry-run create of a JobSet pod passes the pod
webhooks; the controller's caches have synced.

Invariants: every listener is on 127.0.0.1 (API server, admission, metrics over plain HTTP, probes); the
kubeconfig is written only once ready, atomically; bad input is an :class:`UpError` (one line naming the fix,
exit status 2) raised before anything starts listening where it can be checked up front; on ``stop`` the
controller stops before the simulated cluster, and the process leaves no task behind.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from api import constants as c
from cache.client import ApiClient, load_cluster_config, resource_path
from cache.errors import ApiError
from controller.settings import Settings, load_settings

if TYPE_CHECKING:
    from controller.app import Running
    from kubesim import SimCluster

SYSTEM_NAMESPACE = "jobset-system"
WEBHOOK_DIR = Path(__file__).resolve().parents[1] / "deploy" / "webhook"
READY_TIMEOUT = 60.0
PROBE_NAME = "pyjobset-up-admission-probe"


class UpError(Exception):
    """Bad input for ``pyjobset up``; the message is one line that names the fix (exit status 2)."""


@dataclass(frozen=True)
class UpOptions:
    kubeconfig: str
    port: int = 0
    nodes: int = 16
    gpus_per_node: int = 8
    nodes_per_pool: int = 4
    pod_run_seconds: float | None = None


def check_options(opts: UpOptions) -> None:
    """Everything that can be checked before listening; raises :class:`UpError`."""
    for flag, value in (("nodes", opts.nodes), ("gpus-per-node", opts.gpus_per_node)):
        if value < 0:
            raise UpError(f"--{flag} must be >= 0 (got {value})")
    if opts.nodes_per_pool < 1:
        raise UpError(f"--nodes-per-pool must be >= 1 (got {opts.nodes_per_pool})")
    if not 0 <= opts.port <= 65535:
        raise UpError(f"--port must be between 0 and 65535 (got {opts.port}); 0 picks any free port")
    if opts.pod_run_seconds is not None and not opts.pod_run_seconds > 0:
        raise UpError(f"--pod-run-seconds must be > 0 (got {opts.pod_run_seconds:g}); leave it out to run forever")
    check_kubeconfig_path(opts.kubeconfig)
    if opts.port:
        check_port_free(opts.port)


def check_kubeconfig_path(path: str) -> None:
    """The kubeconfig can be written at ``path`` (its directory exists and is writable; it is not a directory)."""
    target = Path(path)
    if target.is_dir():
        raise UpError(f"--kubeconfig {path} is a directory: give a file path such as {target / 'kubeconfig'}")
    parent = target.parent
    if not parent.is_dir():
        raise UpError(f"--kubeconfig {path}: directory {parent} does not exist; create it or choose another path")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".pyjobset-up-"):
            pass
    except OSError as err:
        raise UpError(
            f"--kubeconfig {path}: cannot write in {parent} ({err.strerror}); choose a writable path such as "
            "$HOME/pyjobset.kubeconfig"
        ) from None


def check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as err:
            raise UpError(_port_message(port, err)) from None


def _port_message(port: int, err: OSError) -> str:
    if err.errno == errno.EADDRINUSE:
        return f"--port {port}: 127.0.0.1:{port} is already in use; pick another port, or 0 for any free port"
    return f"--port {port}: cannot listen on 127.0.0.1:{port} ({err.strerror}); pick another port, or 0"


def controller_settings(cert_dir: str) -> Settings:
    """The controller as ``up`` runs it: one replica, loopback listeners on free ports, metrics over HTTP."""
    return load_settings(
        overrides={
            "leader_election.leader_elect": False,
            "namespace": SYSTEM_NAMESPACE,
            "metrics.bind_address": "127.0.0.1:0",
            "metrics.secure": False,
            "health.health_probe_bind_address": "127.0.0.1:0",
            "webhook.host": "127.0.0.1",
            "webhook.port": 0,
            "webhook.cert_dir": cert_dir,
        }
    )


def webhook_objects() -> list[dict[str, Any]]:
    """The objects of ``deploy/webhook/`` (Service, Secret, webhook configurations), as deployed."""
    out: list[dict[str, Any]] = []
    for name in ("service.yaml", "secret.yaml", "mutating_webhook_configuration.yaml",
                 "validating_webhook_configuration.yaml"):  # fmt: skip
        try:
            out.append(yaml.safe_load((WEBHOOK_DIR / name).read_text()))
        except OSError as err:
            raise UpError(
                f"cannot read {WEBHOOK_DIR / name} ({err.strerror}); run pyjobset from a source checkout"
            ) from None
    return out


def _probe_jobset() -> dict[str, Any]:
    """A JobSet written the way the reference's examples are: a failure-policy rule without a name."""
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": PROBE_NAME, "namespace": "default"},
        "spec": {
            "failurePolicy": {"maxRestarts": 1, "rules": [{"action": "FailJobSet"}]},
            "replicatedJobs": [
                {
                    "name": "main",
                    "template": {
                        "spec": {
                            "template": {
                                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
                            }
                        }
                    },
                }
            ],
        },
    }


def _probe_pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": PROBE_NAME, "namespace": "default", "labels": {c.JOBSET_NAME_KEY: PROBE_NAME}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


async def _until(what: str, check: Callable[[], Any], deadline: float, failed: Callable[[], str | None]) -> None:
    """Retry ``check`` (an async callable returning truthy when done) until it holds or the deadline passes."""
    last = ""
    while True:
        why = failed()
        if why is not None:
            raise RuntimeError(why)
        try:
            if await check():
                return
        except (ApiError, OSError, RuntimeError) as err:
            last = f": {err}"
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready within {READY_TIMEOUT:g}s{last}")
        await asyncio.sleep(0.05)


async def run_up(opts: UpOptions, stop: asyncio.Event, say: Callable[[str], None]) -> int:
    """Run everything until ``stop``; 0 after a clean stop. Raises :class:`UpError` for bad input."""
    import kubesim
    from controller.app import Running, run_controller
    from controller.demo import install_crd

    check_options(opts)
    cluster_options = {} if opts.pod_run_seconds is None else {"pod_run_seconds": opts.pod_run_seconds}
    sim = kubesim.SimCluster(
        port=opts.port,
        nodes=opts.nodes,
        gpus_per_node=opts.gpus_per_node,
        nodes_per_pool=opts.nodes_per_pool,
        cluster_options=cluster_options,
    )
    try:
        await sim.start()
    except OSError as err:
        await sim.stop()
        raise UpError(_port_message(opts.port, err)) from None
    try:
        with tempfile.TemporaryDirectory(prefix="pyjobset-up-") as tmp:
            own_kubeconfig = sim.write_kubeconfig(Path(tmp) / "kubeconfig")
            config = await load_cluster_config(own_kubeconfig)
            async with ApiClient(config) as client:
                await install_crd(client)
                for obj in webhook_objects()[1:]:  # the Service comes once the admission port is known
                    if obj["kind"] == "Secret":
                        await _ensure(client, resource_path("", "v1", "namespaces"), _namespace())
                    await _ensure(client, _collection(obj), obj)
                running = Running()
                ctl_stop = asyncio.Event()
                settings = controller_settings(str(Path(tmp) / "certs"))
                ctl = asyncio.create_task(run_controller(settings, config, ctl_stop, running=running), name="ctl")
                try:
                    await _become_ready(sim, client, running, ctl, stop)
                    if not stop.is_set():
                        sim.write_kubeconfig(opts.kubeconfig)
                        _announce(opts, sim, running, say)
                        await _first_of(stop, ctl)
                finally:
                    ctl_stop.set()
                    (outcome,) = await asyncio.gather(ctl, return_exceptions=True)
                error = outcome if isinstance(outcome, Exception) else None
                if error is not None:
                    raise RuntimeError(f"the controller stopped with an error: {error}")
                if not stop.is_set():
                    raise RuntimeError("the controller stopped unexpectedly")
                return 0
    finally:
        await sim.stop()


async def _first_of(stop: asyncio.Event, ctl: asyncio.Task[None]) -> None:
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiter, ctl}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


def _namespace() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}}


def _collection(obj: dict[str, Any]) -> str:
    group, _, version = str(obj["apiVersion"]).rpartition("/")
    plural = {
        "Service": "services",
        "Secret": "secrets",
        "MutatingWebhookConfiguration": "mutatingwebhookconfigurations",
        "ValidatingWebhookConfiguration": "validatingwebhookconfigurations",
    }[obj["kind"]]
    return resource_path(group, version, plural, obj["metadata"].get("namespace"))


async def _ensure(client: ApiClient, collection: str, obj: dict[str, Any]) -> None:
    try:
        await client.create(collection, obj)
    except ApiError as err:
        if err.status != 409:
            raise


async def _become_ready(
    sim: SimCluster, client: ApiClient, running: Running, ctl: asyncio.Task[None], stop: asyncio.Event
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT

    def failed() -> str | None:
        if ctl.done():
            err = None if ctl.cancelled() else ctl.exception()
            return f"the controller stopped while starting: {err or 'no error given'}"
        return None

    crd_path = resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions", name=f"{c.PLURAL}.{c.GROUP}")

    async def crd_established() -> bool:
        crd = await client.get(crd_path)
        conds = (crd.get("status") or {}).get("conditions") or []
        return any(x.get("type") == "Established" and x.get("status") == "True" for x in conds)

    async def admission_listening() -> bool:
        if stop.is_set():
            return True
        return running.started.is_set() and running.webhooks is not None and running.webhooks.ready()

    await _until("the JobSet CRD", crd_established, deadline, failed)
    await _until("the admission server", admission_listening, deadline, failed)
    if stop.is_set() or running.webhooks is None or running.controller is None:
        return
    controller = running.controller
    service = webhook_objects()[0]
    service["spec"]["ports"][0]["targetPort"] = running.webhooks.bound_port
    await _ensure(client, _collection(service), service)

    async def jobset_webhooks() -> bool:
        if stop.is_set():
            return True
        got = await sim.store.create("jobsets", _probe_jobset(), "default", dry_run=True)
        rules = got["spec"]["failurePolicy"]["rules"]
        return bool(rules[0].get("name"))  # the defaulting webhook named the rule

    async def pod_webhooks() -> bool:
        if stop.is_set():
            return True
        await sim.store.create("pods", _probe_pod(), "default", dry_run=True)
        return True

    async def caches_synced() -> bool:
        return stop.is_set() or controller.ready.is_set()

    await _until("the JobSet webhooks", jobset_webhooks, deadline, failed)
    await _until("the pod webhooks", pod_webhooks, deadline, failed)
    await _until("the controller's caches", caches_synced, deadline, failed)


def _announce(opts: UpOptions, sim: SimCluster, running: Running, say: Callable[[str], None]) -> None:
    ports = running.probes.ports if running.probes is not None else {}
    webhook_port = running.webhooks.bound_port if running.webhooks is not None else 0
    kc = os.path.abspath(opts.kubeconfig)
    pools = -(-opts.nodes // opts.nodes_per_pool) if opts.nodes else 0
    run_note = (
        f"pods without sim.pyjobset.io/ annotations run {opts.pod_run_seconds:g}s then succeed"
        if opts.pod_run_seconds is not None
        else "pods without sim.pyjobset.io/ annotations run until deleted (see --pod-run-seconds)"
    )
    lines = [
        f"simulated cluster: API server {sim.url}, {opts.nodes} nodes in {pools} node pools, "
        f"{opts.gpus_per_node} GPUs each",
        f"JobSet CRD installed; admission webhooks https://127.0.0.1:{webhook_port} "
        f"(Service {SYSTEM_NAMESPACE}/jobset-webhook-service, caBundle from internal certificate management)",
        f"metrics: http://127.0.0.1:{ports.get('metrics')}/metrics",
        f"probes: http://127.0.0.1:{ports.get('health')}/healthz and /readyz",
        run_note,
        f"kubeconfig written to {kc}",
        "",
        "Next:",
        f"  export KUBECONFIG={kc}",
        "  kubectl apply -f examples/pytorch-ddp.yaml        # or any JobSet YAML of yours",
        "  kubectl get jobsets -w",
        "  kubectl get jobs,pods -l jobset.sigs.k8s.io/jobset-name=pytorch-ddp",
        "",
        "Ctrl-C stops everything.",
    ]
    for line in lines:
        say(line)
