"""The e2e kubelet: runs the pods of installed controllers (``jobset-system`` and namespaces given) as processes.

No container runtime runs on our machines, so after ``kubectl apply -k deploy/`` the Deployment's pod is created,
scheduled and bound by the real control plane and then run by this module, which does a kubelet's share and only
that: it reads the *pod* (never the manifests), builds its volumes, starts its container in a sandbox, probes it
and reports the pod's status. Everything else is the real control plane's doing: the ReplicaSet and the pod, the
ServiceAccount admission that adds the token volume, the EndpointSlice of ``jobset-webhook-service`` built from
the pod's IP and readiness, and kube-apiserver calling the webhooks through it (``--enable-aggregator-routing``:
the API server dials a ready endpoint of the Service instead of its cluster IP, for which it would need kube-proxy
rules).

A pod gets:

* a network namespace of its own (``ip netns add``) joined to ours by a veth pair, the pod at ``10.200.<n>.2/30``
  and ours at ``10.200.<n>.1/30``; the pod IP reported in ``status.podIP`` is the former;
* a UTS namespace (its hostname is the pod's name) and a mount namespace with a root of its own: every top-level
  directory of the machine bind-mounted (read-only when ``readOnlyRootFilesystem``; our virtualenv stands in for
  the image), plus the pod's volume mounts at their ``mountPath`` (``subPath`` too): ``configMap`` and
  ``projected`` volumes (ServiceAccount token from a TokenRequest bound to the pod, ``kube-root-ca.crt``, the
  namespace from the downward API) as files, ``emptyDir`` as a tmpfs, ``secret`` volumes as files kept in step
  with the Secret (a controller that writes its own serving certificate into a Secret sees it appear, as with a
  real kubelet). So the controller finds its in-cluster credentials at ``/var/run/secrets/kubernetes.io/serviceaccount``
  and its configuration at the path the Deployment mounts it, and can write only where the pod can;
* the container's ``command``/``args`` and ``env`` (``value`` and ``fieldRef``) verbatim, except that a namespace
  given ``--namespace NS=BINARY`` has its entrypoint (``command[0]``, or the image's when the container has no
  command) replaced by ``BINARY`` (a Go binary built for the e2e tier stands in for its image), plus what the kubelet
  adds: ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT`` (the ``kubernetes`` Service's cluster IP and port)
  and ``HOSTNAME``. The ``kubernetes`` Service is reached as kube-proxy's userspace mode did: its cluster IP is an
  address of our loopback and a relay forwards it to the API server on 127.0.0.1.

Not done (no consumer here): ``runAsUser`` (the virtualenv lives under root's home), token refresh (tokens live an
hour, the tier minutes), liveness restarts, resource limits, image pulls.

Invariants: refuses to run unless its network namespace holds only loopback and ``/run`` is the private tmpfs
``tests/e2e/run.sh`` mounts (so every address and netns it creates lives inside namespaces the run created and
vanishes with it); the container is stopped (SIGTERM, ``terminationGracePeriodSeconds``, SIGKILL) when the pod is
deleted or this process is told to stop, and also dies with this process (PR_SET_PDEATHSIG).

Pods of each namespace are run one at a time (one pod per namespace at once: the installed Deployments have one
replica), the namespaces concurrently, each pod in its own network namespace ``10.200.<n>.0/30``.

Command line: ``python -m tests.e2e.kubelet run --kubeconfig ADMIN --workdir DIR --log FILE [--namespace
NS[=BINARY] ...]`` (foreground until SIGTERM; pods of ``jobset-system`` always; the output of another namespace's
containers goes to ``FILE``'s directory as ``NS.log``); ``python -m tests.e2e.kubelet wait-admission
--kubeconfig ADMIN`` returns once the API server defaults a JobSet through the installed mutating webhook (dry run).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.kube import ApiError, Client

JSON = dict[str, Any]
NAMESPACE = "jobset-system"
RUN_TMPFS = "pyjobset-run"  # the source name run.sh gives its private /run
VENV_BIN = str(Path(sys.executable).parent)
APP_ROOT = Path(__file__).resolve().parents[2]
"""The checkout (an editable install's sources live here)."""


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


def ensure_private_namespaces() -> None:
    """Refuse to touch networking outside a network namespace (and /run) that the e2e run created itself."""
    interfaces = {name for _, name in socket.if_nameindex()}  # this netns's (/sys/class/net may be another's)
    if interfaces != {"lo"}:
        raise SystemExit(
            f"kubelet: this network namespace has interfaces {sorted(interfaces)}; run inside a fresh one "
            "(tests/e2e/run.sh does: unshare --net --mount)"
        )
    mounts = [line.split(" - ") for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    run = [post.split()[:2] for pre, post in mounts if pre.split()[4] == "/run"]
    if not run or run[-1] != ["tmpfs", RUN_TMPFS]:
        raise SystemExit(f"kubelet: /run is not the private tmpfs {RUN_TMPFS!r} that tests/e2e/run.sh mounts")


# ---------------------------------------------------------------------------------------------- relay


class Relay:
    """Forwards TCP connections from ``listen`` to ``target`` (kube-proxy's old userspace mode, one Service)."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(listen, reuse_port=False)
        threading.Thread(target=self._accept, name="relay", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            conn.close()
            return
        upstream.settimeout(None)
        threading.Thread(target=_pump, args=(upstream, conn), daemon=True).start()
        _pump(conn, upstream)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            src.close()


# ---------------------------------------------------------------------------------------------- pod


@dataclass
class Mount:
    target: str  # mountPath inside the container
    source: Path | None = None  # None: a tmpfs (emptyDir)
    read_only: bool = False
    size: str = ""
    secret: str = ""  # the Secret a ``secret`` volume is kept in step with


def _secret_name(volume: JSON) -> str:
    return str((volume.get("secret") or {}).get("secretName", ""))


def _write_files(target: Path, files: dict[str, bytes]) -> None:
    """Write each file whose content changed, atomically (write aside, rename), so a reader never sees half."""
    for name, data in files.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.read_bytes() == data:
            continue
        aside = path.with_name(f".{path.name}.tmp")
        aside.write_bytes(data)
        aside.replace(path)


@dataclass
class RunningPod:
    pod: JSON
    netns: str
    ip: str
    proc: subprocess.Popen[bytes]
    container: JSON
    ready: bool = False
    started_at: str = ""
    mounts: list[Mount] = field(default_factory=list)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Kubelet:
    def __init__(self, admin: Client, workdir: Path, log: Path, entrypoints: dict[str, str] | None = None) -> None:
        """``entrypoints`` maps each namespace whose pods we run to the binary standing in for its image ("" keeps
        the container's own command); ``jobset-system`` is always run, its output going to ``log``."""
        self.admin = admin
        self.workdir = workdir
        self.entrypoints = {NAMESPACE: "", **(entrypoints or {})}
        self.logs = {ns: log if ns == NAMESPACE else log.with_name(f"{ns}.log") for ns in self.entrypoints}
        self.stopping = threading.Event()
        self.sandboxes = 0
        self._lock = threading.Lock()
        self.service_host = ""
        self.service_port = 0

    # ---- set-up ---------------------------------------------------------------------------------------------
    def start_service_relay(self) -> None:
        service = self.admin.get("/api/v1/namespaces/default/services/kubernetes")
        self.service_host = service["spec"]["clusterIP"]
        self.service_port = int(service["spec"]["ports"][0]["port"])
        api = urllib.parse.urlsplit(self.admin.server)
        _sh("ip", "link", "set", "lo", "up")
        _sh("ip", "addr", "add", f"{self.service_host}/32", "dev", "lo")
        Relay((self.service_host, self.service_port), (api.hostname or "127.0.0.1", api.port or 443))

    # ---- the loop -------------------------------------------------------------------------------------------
    def run(self) -> None:
        self.start_service_relay()
        failures: list[BaseException] = []

        def loop(namespace: str) -> None:
            try:
                self._loop(namespace)
            except BaseException as err:  # a broken pod stops the whole kubelet, as before, with its message
                failures.append(err)
                self.stopping.set()

        threads = [threading.Thread(target=loop, args=(ns,), name=f"kubelet-{ns}") for ns in self.entrypoints]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failures:
            raise failures[0]

    def _loop(self, namespace: str) -> None:
        while not self.stopping.is_set():
            pod = self._next_pod(namespace)
            if pod is None:
                continue
            running = self._start(pod)
            try:
                self._supervise(running)
            finally:
                self._stop(running)

    def _next_pod(self, namespace: str) -> JSON | None:
        try:
            return self.admin.wait_for(
                f"/api/v1/namespaces/{namespace}/pods",
                lambda p: (
                    bool(p["spec"].get("nodeName"))
                    and not p["metadata"].get("deletionTimestamp")
                    and p.get("status", {}).get("phase") in (None, "Pending")
                ),
                timeout=30,
                what="a pod bound to a node",
            )
        except TimeoutError:
            return None

    def _supervise(self, running: RunningPod) -> None:
        probe = running.container.get("readinessProbe") or {}
        period = float(probe.get("periodSeconds", 10))
        next_probe = time.monotonic() + float(probe.get("initialDelaySeconds", 0))
        path = f"/api/v1/namespaces/{running.pod['metadata']['namespace']}/pods/{running.pod['metadata']['name']}"
        pod_uid = running.pod["metadata"]["uid"]
        while not self.stopping.is_set():
            if running.proc.poll() is not None:
                self._report(running, exit_code=running.proc.returncode)
                return
            try:
                current = self.admin.get(path)
            except ApiError as err:
                if err.status == 404:
                    return
                raise
            if current["metadata"].get("deletionTimestamp") or current["metadata"]["uid"] != pod_uid:
                return
            self._refresh_secrets(running)
            if time.monotonic() >= next_probe:
                ready = self._probe(running, probe)
                if ready != running.ready:
                    running.ready = ready
                    self._report(running)
                next_probe = time.monotonic() + period
            self.stopping.wait(1.0)

    # ---- container ------------------------------------------------------------------------------------------
    def _start(self, pod: JSON) -> RunningPod:
        meta, spec = pod["metadata"], pod["spec"]
        containers = spec.get("containers") or []
        if len(containers) != 1 or spec.get("initContainers"):
            raise SystemExit(f"kubelet: pod {meta['name']}: only one container and no init containers are supported")
        container = containers[0]
        with self._lock:
            self.sandboxes += 1
            n = self.sandboxes
        netns, ip = f"pod-{n}", f"10.200.{n}.2"
        poddir = self.workdir / meta["uid"]
        poddir.mkdir(parents=True, exist_ok=True)
        self._sandbox(netns, n)
        mounts = self._volumes(pod, container, poddir)
        env = self._env(pod, container, ip)
        script = self._container_script(poddir / "rootfs", mounts, container, meta["name"])
        entrypoint = self.entrypoints.get(meta["namespace"], "")
        command = list(container.get("command") or [])
        if entrypoint:
            command = [entrypoint, *command[1:]]
        command += container.get("args") or []
        if not command:
            raise SystemExit(
                f"kubelet: pod {meta['name']}: the container has no command (no image entrypoint here; "
                f"give one with --namespace {meta['namespace']}=BINARY)"
            )
        argv = [shutil.which("ip") or "ip", "netns", "exec", netns]
        argv += [
            "unshare",
            "--mount",
            "--uts",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            script,
            "container",
            *command,
        ]
        with self.logs[meta["namespace"]].open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - one prctl call, async-signal-safe
            )
        running = RunningPod(pod, netns, ip, proc, container, started_at=_now(), mounts=mounts)
        self._report(running)
        print(f"kubelet: started pod {meta['name']} (pid {proc.pid}, ip {ip})", flush=True)
        return running

    def _stop(self, running: RunningPod) -> None:
        grace = float(running.pod["spec"].get("terminationGracePeriodSeconds", 30))
        if running.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(running.proc.pid, signal.SIGTERM)
            try:
                running.proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(running.proc.pid, signal.SIGKILL)
                running.proc.wait(10)
        with contextlib.suppress(subprocess.CalledProcessError):
            _sh("ip", "netns", "del", running.netns)
        path = f"/api/v1/namespaces/{running.pod['metadata']['namespace']}/pods/{running.pod['metadata']['name']}"
        with contextlib.suppress(ApiError):
            current = self.admin.get(path)
            if current["metadata"]["uid"] == running.pod["metadata"]["uid"] and current["metadata"].get(
                "deletionTimestamp"
            ):
                # The kubelet confirms a graceful deletion once the containers are gone.
                self.admin.delete(path, {"gracePeriodSeconds": 0, "preconditions": {"uid": current["metadata"]["uid"]}})
        print(f"kubelet: stopped pod {running.pod['metadata']['name']} ({running.proc.returncode})", flush=True)

    def _sandbox(self, netns: str, n: int) -> None:
        host, pod = f"veth{n}", "eth0"
        _sh("ip", "netns", "add", netns)
        _sh("ip", "link", "add", host, "type", "veth", "peer", "name", pod, "netns", netns)
        _sh("ip", "addr", "add", f"10.200.{n}.1/30", "dev", host)
        _sh("ip", "link", "set", host, "up")
        inside = ("ip", "netns", "exec", netns, "ip")
        _sh(*inside, "link", "set", "lo", "up")
        _sh(*inside, "addr", "add", f"10.200.{n}.2/30", "dev", pod)
        _sh(*inside, "link", "set", pod, "up")
        _sh(*inside, "route", "add", "default", "via", f"10.200.{n}.1")

    def _volumes(self, pod: JSON, container: JSON, poddir: Path) -> list[Mount]:
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        mounts = []
        for vm in container.get("volumeMounts") or []:
            volume = volumes[vm["name"]]
            read_only = bool(vm.get("readOnly"))
            if "emptyDir" in volume:
                if vm.get("subPath"):
                    raise SystemExit(f"kubelet: emptyDir {vm['name']} with subPath is not supported")
                size = (volume["emptyDir"] or {}).get("sizeLimit", "")
                mounts.append(Mount(vm["mountPath"], None, read_only, str(size)))
                continue
            source = poddir / "volumes" / vm["name"]
            if not source.exists():
                self._materialize(pod, volume, source)
            if vm.get("subPath"):
                source = source / vm["subPath"]
            fixed = "projected" in volume or "configMap" in volume or "secret" in volume
            mounts.append(Mount(vm["mountPath"], source, read_only or fixed, secret=_secret_name(volume)))
        return mounts

    def _refresh_secrets(self, running: RunningPod) -> None:
        """Keep ``secret`` volumes in step with their Secrets (a real kubelet syncs them periodically)."""
        ns = running.pod["metadata"]["namespace"]
        for m in running.mounts:
            if m.secret and m.source is not None:
                with contextlib.suppress(ApiError):
                    _write_files(m.source, self._secret_files(ns, m.secret))

    def _secret_files(self, namespace: str, name: str) -> dict[str, bytes]:
        data = self.admin.get(f"/api/v1/namespaces/{namespace}/secrets/{name}").get("data") or {}
        return {key: base64.b64decode(value) for key, value in data.items()}

    def _materialize(self, pod: JSON, volume: JSON, target: Path) -> None:
        """Write a configMap or projected volume's files (the kubelet's atomic writer is not needed: never updated)."""
        ns = pod["metadata"]["namespace"]
        files: dict[str, bytes] = {}
        if "configMap" in volume:
            files.update(self._config_map_files(ns, volume["configMap"]))
        elif "projected" in volume:
            for source in volume["projected"].get("sources") or []:
                if "serviceAccountToken" in source:
                    files[source["serviceAccountToken"]["path"]] = self._token(pod, source["serviceAccountToken"])
                elif "configMap" in source:
                    files.update(self._config_map_files(ns, source["configMap"]))
                elif "downwardAPI" in source:
                    for item in source["downwardAPI"].get("items") or []:
                        files[item["path"]] = _field(pod, item["fieldRef"]["fieldPath"]).encode()
                else:
                    raise SystemExit(f"kubelet: projected source {sorted(source)} is not supported")
        elif "secret" in volume:
            files.update(self._wait_secret(ns, volume["secret"]))
        else:
            raise SystemExit(
                f"kubelet: volume {volume['name']}: only configMap, secret, projected and emptyDir are supported"
            )
        target.mkdir(parents=True)
        _write_files(target, files)

    def _wait_secret(self, namespace: str, ref: JSON) -> dict[str, bytes]:
        """A missing Secret holds the pod back (as a real kubelet does) unless the volume says ``optional``."""
        deadline = time.monotonic() + 120
        while True:
            try:
                return self._secret_files(namespace, ref["secretName"])
            except ApiError as err:
                if err.status != 404 or ref.get("optional"):
                    if err.status == 404:
                        return {}
                    raise
                if time.monotonic() > deadline or self.stopping.is_set():
                    raise SystemExit(f"kubelet: secret {namespace}/{ref['secretName']} never appeared") from None
                self.stopping.wait(1.0)

    def _config_map_files(self, namespace: str, ref: JSON) -> dict[str, bytes]:
        data = self.admin.get(f"/api/v1/namespaces/{namespace}/configmaps/{ref['name']}").get("data") or {}
        items = ref.get("items") or [{"key": k, "path": k} for k in data]
        return {item["path"]: data[item["key"]].encode() for item in items}

    def _token(self, pod: JSON, source: JSON) -> bytes:
        meta = pod["metadata"]
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": int(source.get("expirationSeconds", 3600)),
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
                **({"audiences": [source["audience"]]} if source.get("audience") else {}),
            },
        }
        account = pod["spec"].get("serviceAccountName") or "default"
        created = self.admin.create(f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{account}/token", request)
        return str(created["status"]["token"]).encode()

    def _env(self, pod: JSON, container: JSON, ip: str) -> dict[str, str]:
        env = {
            "PATH": f"{VENV_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOSTNAME": pod["metadata"]["name"],
            "HOME": "/",
            "KUBERNETES_SERVICE_HOST": self.service_host,
            "KUBERNETES_SERVICE_PORT": str(self.service_port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.service_port),
        }
        status = {**pod.get("status", {}), "podIP": ip}
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = str(var["value"])
            elif "fieldRef" in (var.get("valueFrom") or {}):
                env[var["name"]] = _field({**pod, "status": status}, var["valueFrom"]["fieldRef"]["fieldPath"])
            else:
                raise SystemExit(f"kubelet: env {var['name']}: only value and fieldRef are supported")
        return env

    def _container_script(self, rootfs: Path, mounts: list[Mount], container: JSON, hostname: str) -> str:
        """Shell run inside the pod's network and a new mount namespace: build the root, mount, chroot, exec."""
        q = shlex.quote
        read_only_root = bool((container.get("securityContext") or {}).get("readOnlyRootFilesystem"))
        root = q(str(rootfs))
        lines = [
            "set -eu",
            f"hostname {q(hostname)}",
            f"mkdir -p {root}",
            f"mount -t tmpfs -o mode=0755 rootfs {root}",
            # The machine's directories stand in for the image (our virtualenv is the application).
            "for d in /*; do n=${d#/}; case $n in proc|sys|dev|tmp|run|lost+found) continue;; esac",
            f'  if [ -L "$d" ]; then cp -P "$d" {root}/"$n"; elif [ -d "$d" ]; then mkdir {root}/"$n"; '
            f'mount --rbind "$d" {root}/"$n"; '
            + (f'mount -o remount,bind,ro {root}/"$n"; ' if read_only_root else "")
            + "fi",
            "done",
            f"for d in proc sys dev; do mkdir {root}/$d; mount --rbind /$d {root}/$d; done",
            f"mkdir -p -m 1777 {root}/tmp {root}/run",
        ]
        for m in mounts:
            # Resolve the machine's symlinks (/var/run -> /run) here: inside the new root they point the same way.
            target = q(f"{rootfs}{os.path.realpath(m.target)}")
            if m.source is None:
                size = f",size={_tmpfs_size(m.size)}" if m.size else ""
                lines += [f"mkdir -p {target}", f"mount -t tmpfs -o mode=1777{size} emptydir {target}"]
            elif m.source.is_dir():
                lines += [f"mkdir -p {target}", f"mount --bind {q(str(m.source))} {target}"]
            else:
                lines += [f"mkdir -p $(dirname {target})", f"touch {target}"]
                lines.append(f"mount --bind {q(str(m.source))} {target}")
            if m.read_only:
                lines.append(f"mount -o remount,bind,ro {target}")
        # The application (our virtualenv and, for an editable install, the checkout it points into) must stay
        # visible even where it lives under a directory the pod replaces (/tmp is the pod's own emptyDir, /run a
        # tmpfs): a checkout in /tmp/... (as CI's may be) is bound back, read-only, at its own path.
        for app in sorted({os.path.realpath(sys.prefix), os.path.realpath(APP_ROOT)}):
            if app.startswith(("/tmp/", "/run/")):
                target = q(f"{rootfs}{app}")
                lines += [
                    f"mkdir -p {target}",
                    f"mount --rbind {q(app)} {target}",
                    f"mount -o remount,bind,ro {target}",
                ]
        if read_only_root:
            lines.append(f"mount -o remount,ro {root}")
        workdir = q(container.get("workingDir") or "/")
        lines.append(f'exec chroot {root} /bin/sh -c \'cd "$0" && exec "$@"\' {workdir} "$@"')
        return "\n".join(lines)

    # ---- status ---------------------------------------------------------------------------------------------
    def _probe(self, running: RunningPod, probe: JSON) -> bool:
        get = probe.get("httpGet")
        if not get:
            return running.proc.poll() is None
        port = _port(running.container, get["port"])
        url = f"{get.get('scheme', 'HTTP').lower()}://{running.ip}:{port}{get.get('path', '/')}"
        try:
            with urllib.request.urlopen(url, timeout=float(probe.get("timeoutSeconds", 1))) as resp:
                return 200 <= resp.status < 400
        except (urllib.error.URLError, OSError):
            return False

    def _report(self, running: RunningPod, exit_code: int | None = None) -> None:
        meta = running.pod["metadata"]
        now = _now()
        ready = "True" if running.ready and exit_code is None else "False"
        name = running.container["name"]
        if exit_code is None:
            state: JSON = {"running": {"startedAt": running.started_at}}
        else:
            state = {
                "terminated": {
                    "exitCode": exit_code,
                    "reason": "Error" if exit_code else "Completed",
                    "startedAt": running.started_at,
                    "finishedAt": now,
                }
            }
        reason = {} if ready == "True" else {"reason": "ContainersNotReady"}
        status = {
            "phase": "Running" if exit_code is None else ("Succeeded" if exit_code == 0 else "Failed"),
            "hostIP": self._host_ip(running.pod["spec"]["nodeName"]),
            "podIP": running.ip,
            "podIPs": [{"ip": running.ip}],
            "startTime": running.started_at,
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": running.started_at},
                {"type": "Initialized", "status": "True", "lastTransitionTime": running.started_at},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": now, **reason},
                {"type": "Ready", "status": ready, "lastTransitionTime": now, **reason},
            ],
            "containerStatuses": [
                {
                    "name": name,
                    "image": running.container.get("image", ""),
                    "imageID": "",
                    "containerID": f"pyjobset-e2e://{running.proc.pid}",
                    "ready": ready == "True",
                    "started": exit_code is None,
                    "restartCount": 0,
                    "state": state,
                }
            ],
        }
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status"
        with contextlib.suppress(ApiError):  # a pod deleted meanwhile has no status to report
            self.admin.patch(path, {"status": status}, kind="strategic")

    def _host_ip(self, node: str) -> str:
        addresses = self.admin.get(f"/api/v1/nodes/{node}").get("status", {}).get("addresses") or []
        return next((a["address"] for a in addresses if a["type"] == "InternalIP"), "")


def _field(pod: JSON, path: str) -> str:
    simple = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"]["namespace"],
        "metadata.uid": pod["metadata"]["uid"],
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
        "status.podIP": pod.get("status", {}).get("podIP", ""),
    }
    if path not in simple:
        raise SystemExit(f"kubelet: fieldRef {path} is not supported")
    return str(simple[path])


def _port(container: JSON, port: int | str) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise SystemExit(f"kubelet: probe port {port!r} is not a port of the container")


def _tmpfs_size(quantity: str) -> str:
    units = {"Ki": "k", "Mi": "m", "Gi": "g"}
    for suffix, unit in units.items():
        if quantity.endswith(suffix):
            return quantity[: -len(suffix)] + unit
    return quantity


# ---------------------------------------------------------------------------------------------- admission check

USER_JOBSET: JSON = {
    "apiVersion": "jobset.x-k8s.io/v1alpha2",
    "kind": "JobSet",
    "metadata": {"name": "admission-probe", "namespace": "default"},
    "spec": {
        "replicatedJobs": [
            {
                "name": "w",
                "template": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}},
            }
        ]
    },
}


def wait_admission(admin: Client, timeout: float = 180.0) -> JSON:
    """Return a dry-run-created JobSet once the installed mutating webhook has defaulted it."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            path = "/apis/jobset.x-k8s.io/v1alpha2/namespaces/default/jobsets"
            created = admin.request("POST", path, USER_JOBSET, query={"dryRun": "All"})
            if created["spec"].get("successPolicy"):
                return created
            last = "created without defaults"
        except ApiError as err:
            last = err
        time.sleep(1.0)  # the webhook endpoint appears asynchronously; there is no event to watch for it here
    raise TimeoutError(f"admission through the installed webhooks not working after {timeout}s: {last}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the installed controller's pods as processes (e2e only).")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--kubeconfig", type=Path, required=True)
    run.add_argument("--workdir", type=Path, required=True)
    run.add_argument("--log", type=Path, required=True, help="where the container's output goes")
    run.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="NS[=BINARY]",
        help="also run the pods of NS (BINARY stands in for the image's entrypoint); repeatable",
    )
    wait = sub.add_parser("wait-admission")
    wait.add_argument("--kubeconfig", type=Path, required=True)
    wait.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    admin = Client(args.kubeconfig)
    if args.command == "wait-admission":
        try:
            created = wait_admission(admin, args.timeout)
        except TimeoutError as err:
            raise SystemExit(f"kubelet: {err}") from None
        print(f"admission: the API server defaulted a JobSet through the webhooks: {json.dumps(created['spec'])}")
        return 0
    ensure_private_namespaces()
    entrypoints = dict(ns.partition("=")[::2] for ns in args.namespace)
    kubelet = Kubelet(admin, args.workdir, args.log, entrypoints)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: kubelet.stopping.set())
    kubelet.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
