"""The real Kubernetes control plane as local processes: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and KWOK with fake nodes, all on 127.0.0.1 with random free ports.

Start order and readiness (each step waits for the previous one to be ready):
etcd (``/health``) → kube-apiserver (``/readyz``; generated PKI, RBAC authorization, ServiceAccount signing keys)
→ kube-controller-manager (``/healthz`` and the ``default`` ServiceAccount created by its serviceaccount
controller) → kube-scheduler (``/healthz``) → KWOK with the annotation-contract Stages
(``tests/e2e/stages/sim-contract.yaml``) → N Nodes shaped like kubesim's (same names, labels, capacities) → all
Nodes Ready. By default (``workload_scheduling``) the API server, controller-manager and scheduler run with the
workload-aware scheduling gates and the API server serves Workload and PodGroup (``scheduling.k8s.io/v1beta1``).

Invariants:
- Every process runs in its own process group, logs to ``<workdir>/logs/<name>.log`` and is stopped (SIGTERM to the
  group, then SIGKILL) in reverse start order by ``stop()``, which is idempotent and also runs from ``atexit``;
  processes started from the main thread additionally get SIGKILL if the harness process dies (PR_SET_PDEATHSIG),
  so nothing is left behind even when a test run is killed.
- Nothing listens outside loopback. The workdir (PKI, etcd data, logs, kubeconfigs) is private to one control
  plane and removed by ``stop()`` unless ``keep_workdir`` is set.
- Binaries come from ``tests/e2e/build.sh`` (``bin_dir()``); the harness never builds implicitly.

Command line (``python -m tests.e2e.harness`` or ``scale_tests/controlplane.py``): ``start`` runs in the foreground
until SIGINT/SIGTERM and prints the admin kubeconfig path; ``start --detach`` leaves the processes running and
records them in ``<workdir>/state.json``; ``stop --workdir DIR`` stops a detached plane; ``bin-dir`` prints where
the binaries are expected.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.e2e import pki
from tests.e2e.kube import ApiError, Client, has_condition

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
STAGES_FILE = HERE / "stages" / "sim-contract.yaml"
VERSIONS_FILE = HERE / "cluster" / "versions.env"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok")
SERVICE_CIDR = "10.0.0.0/24"
FIRST_SERVICE_IP = "10.0.0.1"
JSON = dict[str, Any]

WORKLOAD_SCHEDULING_GATES = ("GenericWorkload", "TopologyAwareWorkloadScheduling")
"""Kubernetes 1.37 feature gates of workload-aware scheduling: ``GenericWorkload`` (beta, off by default) serves
Workload and PodGroup, honours ``pod.spec.schedulingGroup`` and turns on the scheduler's GangScheduling plugin and
the controller-manager's PodGroup protection; ``TopologyAwareWorkloadScheduling`` (alpha) keeps a PodGroup's
``schedulingConstraints.topology`` and turns on the scheduler's topology placement plugins."""
WORKLOAD_SCHEDULING_API = "scheduling.k8s.io/v1beta1"
"""The group/version serving Workload and PodGroup in 1.37 (a beta version: off unless ``--runtime-config``)."""


def versions() -> dict[str, str]:
    out = {}
    for raw in VERSIONS_FILE.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def bin_dir() -> Path:
    """Where ``build.sh`` puts the binaries (``$PYJOBSET_CACHE`` or ``~/.cache/pyjobset``, keyed by version)."""
    root = Path(os.environ.get("PYJOBSET_CACHE") or Path.home() / ".cache" / "pyjobset")
    return root / f"k8s-{versions()['K8S_VERSION']}" / "bin"


def missing_binaries(directory: Path | None = None) -> list[str]:
    directory = directory or bin_dir()
    return [b for b in BINARIES if not os.access(directory / b, os.X_OK)]


def build() -> Path:
    """Run ``build.sh`` (a no-op when the binaries are current) and return the binary directory."""
    subprocess.run([str(HERE / "build.sh")], check=True)
    return bin_dir()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Process:
    """One component process in its own process group."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)


class StartError(RuntimeError):
    """A component failed to start or become ready; the message carries the tail of its log."""


@dataclass
class NodeShape:
    """Shape of the fake nodes; defaults and naming follow kubesim (``kubesim/cluster/nodes.py``)."""

    count: int = 4
    gpus_per_node: int = 8
    nodes_per_pool: int = 2


@dataclass
class ControlPlane:
    """A running (after ``start()``) real control plane. Use as a context manager or call ``stop()``."""

    nodes: NodeShape = field(default_factory=NodeShape)
    workdir: Path | None = None
    binaries: Path | None = None
    keep_workdir: bool = False
    verbosity: int = 1
    api_qps: int = 200
    workload_scheduling: bool = True
    """Start every component with ``WORKLOAD_SCHEDULING_GATES`` and serve ``WORKLOAD_SCHEDULING_API``."""
    processes: list[Process] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    node_names: list[str] = field(default_factory=list)
    ca_pem: bytes = b""
    admin: Client = field(init=False, repr=False)
    ca: pki.Pki = field(init=False, repr=False)
    serving: pki.CertPair = field(init=False, repr=False)
    sa_keys: pki.CertPair = field(init=False, repr=False)
    front_proxy: pki.CertPair = field(init=False, repr=False)
    _owns_workdir: bool = False
    _kubeconfig: Path | None = None
    _server: str | None = None
    _detach: bool = False
    _stopped: bool = False

    # ---- paths -------------------------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        """Admin (system:masters) kubeconfig."""
        if self._kubeconfig is not None:
            return self._kubeconfig
        assert self.workdir is not None
        return self.workdir / "admin.kubeconfig"

    @property
    def server(self) -> str:
        return self._server or f"https://127.0.0.1:{self.ports['apiserver']}"

    def _bin(self, name: str) -> str:
        assert self.binaries is not None
        return str(self.binaries / name)

    @classmethod
    def attach(cls, kubeconfig: Path) -> ControlPlane:
        """A handle on a control plane started elsewhere (``start --detach``): ``stop()`` leaves it running."""
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        plane = cls(workdir=kubeconfig.parent, binaries=bin_dir())
        plane._stopped = True
        plane._kubeconfig = kubeconfig
        plane._server = cluster["server"]
        plane.ca_pem = base64.b64decode(cluster["certificate-authority-data"])
        plane.admin = Client(kubeconfig)
        return plane

    # ---- lifecycle ---------------------------------------------------------------------------------------
    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, *, detach: bool = False) -> None:
        self.binaries = self.binaries or bin_dir()
        missing = missing_binaries(self.binaries)
        if missing:
            raise StartError(f"missing binaries in {self.binaries}: {missing}; run tests/e2e/build.sh first")
        if self.workdir is None:
            _remove_stale_workdirs()
            self.workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX))
            (self.workdir / "owner.pid").write_text(str(os.getpid()))
            self._owns_workdir = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        self._detach = detach
        if not detach:
            atexit.register(self.stop)
        try:
            self._pki()
            self._start_etcd()
            self._start_apiserver()
            self._start_controller_manager()
            self._start_scheduler()
            self._start_kwok()
            self._create_nodes()
            self._write_state()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for proc in reversed(self.processes):
            proc.stop()
        if self.workdir is not None and self._owns_workdir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def _spawn(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Process:
        assert self.workdir is not None
        log = self.workdir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env={**os.environ, **(env or {})},
                start_new_session=True,
                # Only async-signal-safe work (one prctl call) runs in the child; see _die_with_parent.
                preexec_fn=None  # noqa: PLW1509
                if self._detach or threading.current_thread() is not threading.main_thread()
                else _die_with_parent,
            )
        proc = Process(name, popen, log)
        self.processes.append(proc)
        return proc

    def _wait(self, proc: Process, what: str, check: Any, timeout: float = 60.0) -> None:
        """Poll ``check()`` (health endpoints have no event to await) until true, the process dies, or timeout."""
        deadline = time.monotonic() + timeout
        last_error: object = None
        while time.monotonic() < deadline:
            if not proc.alive():
                raise StartError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
            try:
                if check():
                    return
            except (OSError, ApiError, ValueError) as err:
                last_error = err
            time.sleep(0.2)
        raise StartError(f"{proc.name}: {what} not ready after {timeout}s ({last_error}):\n{proc.tail()}")

    # ---- steps -------------------------------------------------------------------------------------------
    def _pki(self) -> None:
        assert self.workdir is not None
        for name in ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler", "kwok"):
            self.ports[name] = free_port()
        ca = pki.Pki(self.workdir / "pki")
        self.ca_pem = ca.ca_pem
        self.ca = ca
        self.serving = ca.serving("apiserver", ips=(FIRST_SERVICE_IP,))
        self.sa_keys = ca.service_account_keys()
        self.front_proxy = ca.client("front-proxy-client", "front-proxy-client")
        identities = {
            "admin": ("pyjobset-e2e-admin", ("system:masters",)),
            "controller-manager": ("system:kube-controller-manager", ()),
            "scheduler": ("system:kube-scheduler", ()),
            "kwok": ("kwok-controller", ("system:masters",)),
        }
        for stem, (user, groups) in identities.items():
            pair = ca.client(stem, user, groups)
            pki.write_kubeconfig(
                self.workdir / f"{stem}.kubeconfig",
                server=f"https://127.0.0.1:{self.ports['apiserver']}",
                ca_pem=ca.ca_pem,
                user=user,
                client=pair,
            )

    def _start_etcd(self) -> None:
        assert self.workdir is not None
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd-peer']}"
        proc = self._spawn(
            "etcd",
            [
                self._bin("etcd"),
                "--name=pyjobset-e2e",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=pyjobset-e2e={peer}",
                "--unsafe-no-fsync=true",  # throw-away data: durability is not worth the fsync latency
                "--log-level=warn",
            ],
        )
        self._wait(proc, "/health", lambda: b'"true"' in _http_get(f"{client}/health"))

    def _start_apiserver(self) -> None:
        assert self.workdir is not None
        proc = self._spawn(
            "kube-apiserver",
            [
                self._bin("kube-apiserver"),
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.ports['apiserver']}",
                f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
                f"--cert-dir={self.workdir / 'pki' / 'apiserver-generated'}",
                f"--tls-cert-file={self.serving.cert}",
                f"--tls-private-key-file={self.serving.key}",
                f"--client-ca-file={self.ca.ca.cert}",
                # Front-proxy (aggregation layer) identity: also lets components' delegated authentication
                # find a request-header CA instead of logging its absence.
                f"--requestheader-client-ca-file={self.ca.ca.cert}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={self.front_proxy.cert}",
                f"--proxy-client-key-file={self.front_proxy.key}",
                "--authorization-mode=RBAC",
                "--anonymous-auth=true",  # /healthz, /readyz, /version stay readable, as on kubeadm clusters
                f"--service-account-key-file={self.sa_keys.cert}",
                f"--service-account-signing-key-file={self.sa_keys.key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # The built-in "kubernetes" Service endpoints would point at 127.0.0.1, which Endpoints reject.
                "--endpoint-reconciler-type=none",
                # Webhook (and aggregated API) Services are dialled at a ready endpoint of their EndpointSlices,
                # not at the cluster IP: no kube-proxy runs here to route cluster IPs (tests/e2e/kubelet.py).
                "--enable-aggregator-routing=true",
                "--allow-privileged=true",
                "--profiling=false",
                *self._gate_flags(),
                *([f"--runtime-config={WORKLOAD_SCHEDULING_API}=true"] if self.workload_scheduling else []),
                f"--v={self.verbosity}",
            ],
        )
        admin = Client(self.kubeconfig, timeout=5)
        self._wait(proc, "/readyz", lambda: admin.get_raw("/readyz", timeout=5) == b"ok", timeout=90)
        self.admin = Client(self.kubeconfig)

    def _gate_flags(self) -> list[str]:
        """The same ``--feature-gates`` for the API server, the controller-manager and the scheduler."""
        if not self.workload_scheduling:
            return []
        return ["--feature-gates=" + ",".join(f"{gate}=true" for gate in WORKLOAD_SCHEDULING_GATES)]

    def _component_flags(self, stem: str) -> list[str]:
        assert self.workdir is not None
        kubeconfig = self.workdir / f"{stem}.kubeconfig"
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports[stem]}",
            f"--cert-dir={self.workdir / 'pki' / (stem + '-generated')}",
            "--leader-elect=false",
            # Client-side limits (defaults 20/30 for the controller-manager, 50/100 for the scheduler) throttle
            # garbage collection and namespace deletion when a suite deletes hundreds of objects at once; raised
            # as on large production clusters. Throughput only: no behaviour depends on them.
            f"--kube-api-qps={self.api_qps}",
            f"--kube-api-burst={2 * self.api_qps}",
            *self._gate_flags(),
            f"--v={self.verbosity}",
        ]

    def _start_controller_manager(self) -> None:
        proc = self._spawn(
            "kube-controller-manager",
            [
                self._bin("kube-controller-manager"),
                *self._component_flags("controller-manager"),
                "--controllers=*",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={self.sa_keys.key}",
                f"--root-ca-file={self.ca.ca.cert}",
                f"--cluster-signing-cert-file={self.ca.ca.cert}",
                f"--cluster-signing-key-file={self.ca.ca.key}",
            ],
        )
        url = f"https://127.0.0.1:{self.ports['controller-manager']}/healthz"
        self._wait(proc, "/healthz", lambda: _http_get(url) == b"ok", timeout=90)
        self._wait(
            proc,
            "the default ServiceAccount",
            lambda: bool(self.admin.get("/api/v1/namespaces/default/serviceaccounts/default")),
            timeout=90,
        )

    def _start_scheduler(self) -> None:
        proc = self._spawn("kube-scheduler", [self._bin("kube-scheduler"), *self._component_flags("scheduler")])
        url = f"https://127.0.0.1:{self.ports['scheduler']}/healthz"
        self._wait(proc, "/healthz", lambda: _http_get(url) == b"ok", timeout=90)

    def _start_kwok(self) -> None:
        assert self.workdir is not None
        home = self.workdir / "kwok-home"  # keeps a user's ~/.kwok/kwok.yaml out of the picture
        home.mkdir(exist_ok=True)
        proc = self._spawn(
            "kwok",
            [
                self._bin("kwok"),
                f"--kubeconfig={self.workdir / 'kwok.kubeconfig'}",
                f"--config={STAGES_FILE}",
                "--manage-all-nodes=true",
                f"--server-address=127.0.0.1:{self.ports['kwok']}",
                "--node-lease-duration-seconds=40",
                "--cidr=100.64.0.1/10",
                "--node-ip=10.127.0.1",
            ],
            env={"HOME": str(home)},
        )
        url = f"http://127.0.0.1:{self.ports['kwok']}/healthz"
        self._wait(proc, "/healthz", lambda: _http_get(url).strip() == b"ok", timeout=60)

    def _create_nodes(self) -> None:
        from kubesim.cluster import nodes as simnodes

        shape = simnodes.NodeShape(gpus=self.nodes.gpus_per_node)
        names = []
        for i in range(self.nodes.count):
            node = simnodes.make_node(i, nodes_per_pool=self.nodes.nodes_per_pool, shape=shape, now=time.time())
            status = node.get("status", {})
            # KWOK's Stages own conditions and heartbeats; we only declare what a kubelet would register.
            body = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": node["metadata"],
                "spec": {k: v for k, v in node.get("spec", {}).items() if k != "podCIDR"},
                "status": {k: status[k] for k in ("capacity", "allocatable", "addresses", "nodeInfo") if k in status},
            }
            created = self.admin.ensure("/api/v1/nodes", body)
            names.append(created["metadata"]["name"])
        ready: set[str] = set()

        def all_ready(node: JSON) -> bool:
            if has_condition(node, "Ready"):
                ready.add(node["metadata"]["name"])
            return ready >= set(names)

        if names:
            self.admin.wait_for("/api/v1/nodes", all_ready, timeout=60, what=f"{len(names)} Ready nodes")
        self.node_names = names

    def _write_state(self) -> None:
        assert self.workdir is not None
        state = {
            "kubeconfig": str(self.kubeconfig),
            "server": self.server,
            "ports": self.ports,
            "processes": [{"name": p.name, "pid": p.popen.pid} for p in self.processes],
        }
        (self.workdir / "state.json").write_text(json.dumps(state, indent=2))

    # ---- helpers for tests -------------------------------------------------------------------------------
    def kubectl(self, *args: str, input: str | None = None, kubeconfig: Path | None = None) -> str:
        """Run the pinned kubectl against this control plane (admin by default); raises on failure."""
        result = subprocess.run(
            [self._bin("kubectl"), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def install_jobset_crd(self) -> None:
        """Apply ``deploy/crd/`` with the pinned kubectl and wait until the JobSet resource is served."""
        self.kubectl("apply", "--server-side", "-f", str(REPO / "deploy" / "crd"))
        self.admin.wait_for(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            lambda crd: has_condition(crd, "Established"),
            field_selector="metadata.name=jobsets.jobset.x-k8s.io",
            what="the JobSet CRD Established",
        )

    def start_controller(self, kubeconfig: Path, *extra_args: str, name: str = "pyjobset-controller") -> Process:
        """Run ``pyjobset run`` as its own process (same interpreter) against this plane with ``kubeconfig``.

        The process joins ``processes``, so ``stop()`` stops it first; stop it earlier with ``Process.stop``. Its
        output goes to ``logs/<name>.log`` (give replicas distinct names).
        """
        argv = [
            sys.executable,
            "-m",
            "controller.cli",
            "run",
            f"--kubeconfig={kubeconfig}",
            "--metrics-bind-address=0",
            f"--health-probe-bind-address=127.0.0.1:{free_port()}",
            "--webhooks=false",  # the admission server would listen on every interface; e2e keeps to loopback
            *extra_args,
        ]
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))}
        return self._spawn(name, argv, env=env)

    def restart_component(self, name: str, *, timeout: float = 90.0) -> None:
        """Stop one component (SIGTERM to its process group, SIGKILL after 10 s) and start it again with the same
        command line, then wait until it is healthy: ``etcd`` (``/health``) or ``kube-apiserver`` (``/readyz``).

        Works on a plane started here and on one attached to (``start --detach`` elsewhere, e.g. by ``run.sh``):
        the command line then comes from ``/proc/<pid>/cmdline`` of the pid in ``state.json``, the new process is
        detached like the old one, and ``state.json`` is updated so ``stop --workdir`` stops the new process.
        """
        assert self.workdir is not None
        checks = {
            "etcd": lambda: b'"true"' in _http_get(f"http://127.0.0.1:{self._etcd_port()}/health"),
            "kube-apiserver": lambda: Client(self.kubeconfig, timeout=5).get_raw("/readyz", timeout=5) == b"ok",
        }
        if name not in checks:
            raise ValueError(f"restart_component: {name!r} is not one of {sorted(checks)}")
        owned = next((p for p in self.processes if p.name == name), None)
        state_file = self.workdir / "state.json"
        if owned is not None:
            argv = [str(a) for a in owned.popen.args]  # type: ignore[union-attr]
            index = self.processes.index(owned)
            owned.stop()
            self.processes.remove(owned)
            proc = self._spawn(name, argv)
            self.processes.remove(proc)
            self.processes.insert(index, proc)  # stop() keeps the reverse start order (apiserver before etcd)
        else:
            state = json.loads(state_file.read_text())
            entry = next(p for p in state["processes"] if p["name"] == name)
            pid = int(entry["pid"])
            argv = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _pid_alive(pid):
                time.sleep(0.05)
            if _pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            detach, self._detach = self._detach, True  # outlives this process, as the original did
            try:
                proc = self._spawn(name, argv)
            finally:
                self._detach = detach
            self.processes.remove(proc)  # not ours to stop: the plane's owner stops it through state.json
            _RESTARTED.append(proc)  # held until exit: a collected Popen of a live process warns
            entry["pid"] = proc.popen.pid
            state_file.write_text(json.dumps(state, indent=2))
        self._wait(proc, "healthy after a restart", checks[name], timeout=timeout)
        if owned is not None:
            self._write_state()

    def _etcd_port(self) -> int:
        if "etcd" in self.ports:
            return self.ports["etcd"]
        assert self.workdir is not None
        return int(json.loads((self.workdir / "state.json").read_text())["ports"]["etcd"])

    def service_account_kubeconfig(
        self,
        namespace: str,
        name: str,
        rbac_manifests: Iterable[Path],
        out: Path,
        *,
        token_seconds: int = 86400,
    ) -> Path:
        """Create ServiceAccount ``namespace/name``, bind it with the given RBAC manifests, write a kubeconfig.

        See ``bind_service_account``; the kubeconfig carries a TokenRequest token for the ServiceAccount, so the
        holder has exactly the permissions those manifests grant (plus what every authenticated user has).
        """
        return bind_service_account(
            self.admin, self.server, self.ca_pem, namespace, name, rbac_manifests, out, token_seconds
        )


INSTALLED_NAMESPACE = "jobset-system"
INSTALLED_ACCOUNT = "jobset-controller-manager"  # deploy/rbac/service_account.yaml, the Deployment's identity


def installed_identity(plane: ControlPlane, directory: Path, *, token_seconds: int = 3600) -> Path:
    """Install the controller's identity from ``deploy/`` with kubectl (its Namespace, then ``deploy/rbac``) and
    write a kubeconfig whose ``tokenFile`` holds a TokenRequest token of ``jobset-controller-manager``.

    For controllers the harness runs outside the installed Deployment's pod (``tests/e2e/kubelet.py`` runs that
    one with in-cluster credentials): same account and permissions, credentials read from a file as a pod's are.
    """
    # --force-conflicts: deploy/ is the authority over these objects; a test that bound another account to the same
    # roles through the API (the chaos suite's own controller) must not make the next install fail.
    namespace = REPO / "deploy" / "manager" / "namespace.yaml"
    plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(namespace))
    plane.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(REPO / "deploy" / "rbac"))
    token = plane.admin.create(
        f"/api/v1/namespaces/{INSTALLED_NAMESPACE}/serviceaccounts/{INSTALLED_ACCOUNT}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": token_seconds},
        },
    )["status"]["token"]
    directory.mkdir(parents=True, exist_ok=True)
    token_file = directory / "token"
    token_file.write_text(token)
    return token_file_kubeconfig(plane, token_file, directory / "controller.kubeconfig")


def token_file_kubeconfig(plane: ControlPlane, token_file: Path, out: Path) -> Path:
    """A kubeconfig for this plane whose user reads its bearer token from ``token_file`` on every use."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "e2e",
                "cluster": {
                    "server": plane.server,
                    "certificate-authority-data": base64.b64encode(plane.ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": "controller", "user": {"tokenFile": str(token_file)}}],
        "contexts": [
            {"name": "e2e", "context": {"cluster": "e2e", "user": "controller", "namespace": INSTALLED_NAMESPACE}}
        ],
        "current-context": "e2e",
    }
    out.write_text(yaml.safe_dump(config))
    return out


def rbac_manifests(directory: Path) -> list[Path]:
    """The manifest files of an RBAC directory: its kustomization's ``resources`` if any, else every YAML file."""
    kustomization = directory / "kustomization.yaml"
    if kustomization.exists():
        resources = yaml.safe_load(kustomization.read_text()).get("resources") or []
        return [directory / r for r in resources if (directory / r).is_file()]
    return sorted(p for p in directory.glob("*.yaml"))


def bind_service_account(
    admin: Client,
    server: str,
    ca_pem: bytes,
    namespace: str,
    name: str,
    rbac_manifests: Iterable[Path],
    out: Path,
    token_seconds: int = 86400,
) -> Path:
    """Apply RBAC manifests for ServiceAccount ``namespace/name`` and write a token kubeconfig to ``out``.

    Every ``ServiceAccount`` subject of the manifests' (Cluster)RoleBindings is rewritten to ``namespace/name``,
    so the manifests may name another account (as in ``deploy/``). Objects are created, or replaced when they
    exist. Supported kinds: Namespace, ServiceAccount, ClusterRole, ClusterRoleBinding, Role, RoleBinding.
    """
    admin.ensure("/api/v1/namespaces", {"metadata": {"name": namespace}})
    admin.ensure(f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": name}})
    for manifest in rbac_manifests:
        for doc in yaml.safe_load_all(manifest.read_text()):
            if doc:
                _apply_rbac_doc(admin, doc, namespace, name)
    token = admin.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": token_seconds},
        },
    )["status"]["token"]
    return pki.write_kubeconfig(
        out,
        server=server,
        ca_pem=ca_pem,
        user=f"system:serviceaccount:{namespace}:{name}",
        token=token,
        namespace=namespace,
    )


_RBAC_PATHS = {
    "Namespace": ("/api/v1", "namespaces", False),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
}


def _apply_rbac_doc(admin: Client, doc: JSON, namespace: str, name: str) -> None:
    kind = doc.get("kind", "")
    if kind.endswith("List"):
        for item in doc.get("items") or []:
            _apply_rbac_doc(admin, item, namespace, name)
        return
    if kind not in _RBAC_PATHS:
        raise ValueError(f"unsupported kind in RBAC manifest: {kind}")
    prefix, plural, namespaced = _RBAC_PATHS[kind]
    doc = json.loads(json.dumps(doc))
    if kind.endswith("Binding"):
        for subject in doc.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount":
                subject["name"], subject["namespace"] = name, namespace
    meta = doc.setdefault("metadata", {})
    if namespaced:
        meta["namespace"] = meta.get("namespace") or namespace
        admin.ensure("/api/v1/namespaces", {"metadata": {"name": meta["namespace"]}})
        collection = f"{prefix}/namespaces/{meta['namespace']}/{plural}"
    else:
        collection = f"{prefix}/{plural}"
    try:
        admin.create(collection, doc)
    except ApiError as err:
        if err.status != 409:
            raise
        current = admin.get(f"{collection}/{meta['name']}")
        meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        admin.request("PUT", f"{collection}/{meta['name']}", doc)


_WORKDIR_PREFIX = "pyjobset-cp-"
_RESTARTED: list[Process] = []


def _remove_stale_workdirs() -> None:
    """Delete temp workdirs whose owning process died without cleaning up (e.g. a SIGKILLed test run)."""
    for path in Path(tempfile.gettempdir()).glob(_WORKDIR_PREFIX + "*"):
        try:
            owner = int((path / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if not _pid_alive(owner):
            shutil.rmtree(path, ignore_errors=True)


def _http_get(url: str, timeout: float = 5.0) -> bytes:
    """GET without client credentials; TLS is not verified (self-signed component serving certificates)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, context=ctx if url.startswith("https") else None, timeout=timeout) as r:
            return bytes(r.read())
    except urllib.error.HTTPError as err:
        return bytes(err.read())


# ---- command line ----------------------------------------------------------------------------------------------


def _stop_detached(workdir: Path) -> int:
    """Stop the process groups recorded in ``state.json`` one by one in reverse start order, as ``stop()`` does
    (the apiserver must go before etcd, or it spends its grace period retrying etcd)."""
    state = json.loads((workdir / "state.json").read_text())
    for proc in reversed(state["processes"]):
        pid = proc["pid"]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.05)
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie of ours would count as alive: reap it when it is our child.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the real Kubernetes control plane (with KWOK) locally.")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start etcd, kube-apiserver, controller-manager, scheduler and KWOK")
    start.add_argument("--nodes", type=int, default=4, help="number of fake nodes (default 4)")
    start.add_argument("--gpus-per-node", type=int, default=8, help="nvidia.com/gpu per node (default 8)")
    start.add_argument("--nodes-per-pool", type=int, default=2, help="nodes per gke-nodepool (default 2)")
    start.add_argument("--workdir", type=Path, default=None, help="state directory (default: a new temp dir)")
    start.add_argument("--kubeconfig", type=Path, default=None, help="also copy the admin kubeconfig here")
    start.add_argument("--build", action="store_true", help="run tests/e2e/build.sh first (no-op when current)")
    start.add_argument("--detach", action="store_true", help="leave it running; stop later with `stop --workdir`")
    start.add_argument(
        "--workload-scheduling",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"feature gates {', '.join(WORKLOAD_SCHEDULING_GATES)} on every component and {WORKLOAD_SCHEDULING_API} "
        "served (Workload, PodGroup; default on)",
    )
    stop = sub.add_parser("stop", help="stop a control plane started with --detach")
    stop.add_argument("--workdir", type=Path, required=True)
    sub.add_parser("bin-dir", help="print where the binaries are expected")
    args = parser.parse_args(argv)

    if args.command == "bin-dir":
        print(bin_dir())
        return 0
    if args.command == "stop":
        return _stop_detached(args.workdir)
    if args.build:
        build()
    plane = ControlPlane(
        nodes=NodeShape(args.nodes, args.gpus_per_node, args.nodes_per_pool),
        workdir=args.workdir,
        keep_workdir=args.detach,
        workload_scheduling=args.workload_scheduling,
    )
    plane.start(detach=args.detach)
    if args.kubeconfig:
        shutil.copyfile(plane.kubeconfig, args.kubeconfig)
    print(f"kubeconfig: {args.kubeconfig or plane.kubeconfig}", flush=True)
    print(f"server: {plane.server}", flush=True)
    print(f"workdir: {plane.workdir}", flush=True)
    if args.detach:
        print(f"stop with: {sys.executable} -m tests.e2e.harness stop --workdir {plane.workdir}", flush=True)
        return 0
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        while not stopping.wait(1.0):
            dead = [p.name for p in plane.processes if not p.alive()]
            if dead:
                print(f"component(s) exited: {dead}; stopping", file=sys.stderr, flush=True)
                return 1
        return 0
    finally:
        plane.stop()


if __name__ == "__main__":
    sys.exit(main())
