"""Fuzzing through the real admission path of the simulated cluster, with the controller as its own process.

Role: :class:`FuzzCluster` runs kubesim on an event loop in a thread (so hypothesis can drive plain synchronous
tests) with the JobSet CRD and the webhook configurations of ``deploy/webhook`` registered unchanged; the
controller runs as ``pyjobset run --config`` with its webhooks on (listening on 127.0.0.1 only), its own
certificate manager writing the Secret and the caBundle, and kubesim calling it for every JobSet write exactly
as kube-apiserver would. :meth:`FuzzCluster.submit` POSTs one generated JobSet (in a namespace of its own, so
names never collide) and classifies the answer; :meth:`FuzzCluster.unreconciled` lists accepted JobSets the
controller has not acted on.

The strategies are the pure fuzz tests' (``tests/unit/controller/test_fuzz_jobset_validation.py``), plus
``plausible_jobsets``: a valid skeleton whose every spec field but the replicated jobs is drawn from those
strategies, so that many generated JobSets get through admission and reach the controller. Replicas above 8
are folded (``r % 9``) before sending: an accepted JobSet of two billion Jobs is valid, but no test can wait
for it (validation of big replicas stays covered by the webhook fuzz tests).

Invariants: every answer is 2xx, or 4xx with a Status; a 422 names a field under ``metadata`` or ``spec`` in
every cause; never a 5xx, a reset connection or a dead controller.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from cache.client import resource_path
from tests.chaos.harness import JOBSETS, ControllerProcess, free_port
from tests.chaos.scenarios import SimEnv, sim_env
from tests.unit.controller.test_fuzz_jobset_validation import jobsets, spec

JSON = dict[str, Any]
DEPLOY_WEBHOOK = Path(__file__).resolve().parents[2] / "deploy" / "webhook"
SYSTEM_NS = "jobset-system"
SERVICE = "jobset-webhook-service"
MANAGER = "jobset.sigs.k8s.io/jobset-controller"

# What a 400 may say, each naming where the request is wrong: a field of the wrong JSON type (as Go's decoder
# words it), the object's namespace, or JSON the server cannot parse at all (kubesim's answer to a lone UTF-16
# surrogate, which kube-apiserver instead decodes to U+FFFD: a known difference, listed in the report).
BAD_REQUESTS = {
    "wrong type at a field": r"cannot unmarshal \w+ into Go struct field \S+|into Go value of type",
    "namespace mismatch": r"the namespace of the provided object does not match",
    "unparseable JSON": r"json parse error",
}

_valid_rjob_names = st.sampled_from(["a", "b", "w", "leader", "worker"])
_valid_rjob = st.fixed_dictionaries(
    {
        "name": _valid_rjob_names,
        "replicas": st.integers(min_value=0, max_value=4),
        "template": st.just(
            {
                "spec": {
                    "template": {
                        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}
                    }
                }
            }
        ),
    }
)


@st.composite
def plausible_jobsets(draw: st.DrawFn) -> JSON:
    """A valid skeleton (name, 1-3 replicated jobs) under fuzzed policies, network, suspend, coordinator, ..."""
    rjobs = draw(st.lists(_valid_rjob, min_size=1, max_size=3, unique_by=lambda r: r["name"]))
    fuzzed = draw(spec)
    fuzzed = dict(fuzzed) if isinstance(fuzzed, dict) else {}
    fuzzed.pop("replicatedJobs", None)
    return {"metadata": {"name": "fz"}, "spec": {"replicatedJobs": rjobs, **fuzzed}}


any_jobsets = st.one_of(jobsets, plausible_jobsets())


def fold_replicas(obj: Any) -> Any:
    """Replicas above 8 become ``r % 9`` (see the module docstring); anything else is left as generated."""
    if not isinstance(obj, dict) or not isinstance(obj.get("spec"), dict):
        return obj
    rjobs = obj["spec"].get("replicatedJobs")
    if isinstance(rjobs, list):
        for rjob in rjobs:
            if isinstance(rjob, dict):
                r = rjob.get("replicas")
                if isinstance(r, int) and not isinstance(r, bool) and r > 8:
                    rjob["replicas"] = r % 9
    return obj


@dataclass
class Outcomes:
    accepted: list[tuple[str, str]] = field(default_factory=list)  # (namespace, name)
    codes: Counter[int] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    examples: int = 0
    samples: list[str] = field(default_factory=list)  # messages of non-422 denials, for the report
    bad_requests: Counter[str] = field(default_factory=Counter)  # 400s by kind (BAD_REQUESTS)


class FuzzCluster:
    """kubesim in a thread, the controller process with webhooks on, and a synchronous ``submit``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-kubesim", daemon=True)
        self.thread.start()
        self._stack = contextlib.AsyncExitStack()
        self.env: SimEnv = self.call(self._start())
        self.changed = 0
        self.webhook_port = free_port()
        config = workdir / "config.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "config.jobset.x-k8s.io/v1alpha1",
                    "kind": "Configuration",
                    "webhook": {"host": "127.0.0.1", "port": self.webhook_port, "certDir": str(workdir / "certs")},
                }
            )
        )
        self.env.sim.admission.endpoints[(SYSTEM_NS, SERVICE)] = f"https://127.0.0.1:{self.webhook_port}"  # type: ignore[union-attr]
        self.proc = ControllerProcess(
            self.env.kubeconfig, workdir, extra_args=(f"--config={config}", "--webhooks=true")
        )
        self.outcomes = Outcomes()
        self._n = 0
        self._barrier_passed = False
        try:
            self.proc.start()
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    # ---- lifecycle
    async def _start(self) -> SimEnv:
        env = await self._stack.enter_async_context(sim_env(self.workdir, namespace="fuzz-setup"))
        await env.admin.create(resource_path("", "v1", "namespaces"), {"metadata": {"name": SYSTEM_NS}})
        plural = {
            "MutatingWebhookConfiguration": ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", None),
            "ValidatingWebhookConfiguration": ("admissionregistration.k8s.io", "validatingwebhookconfigurations", None),
            "Secret": ("", "secrets", SYSTEM_NS),
            "Service": ("", "services", SYSTEM_NS),
        }
        for path in sorted(DEPLOY_WEBHOOK.glob("*.yaml")):
            doc = yaml.safe_load(path.read_text())
            if doc.get("kind") in plural:
                group, res, ns = plural[doc["kind"]]
                await env.admin.create(resource_path(group, "v1", res, ns), doc)
        return env

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(300)

    def _wait_ready(self, limit: float = 60.0) -> None:
        """Poll the readiness probe (caches synced, webhook certificates loaded): a probe has no event to await."""
        deadline = time.monotonic() + limit
        url = f"http://127.0.0.1:{self.proc.health_port}/readyz"
        while True:
            assert self.proc.alive(), f"the controller exited:\n{self.proc.tail()}"
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(url, timeout=5) as resp:
                    if resp.status == 200:
                        break
            assert time.monotonic() < deadline, f"the controller is not ready after {limit}s:\n{self.proc.tail()}"
            time.sleep(0.1)
        # Both webhooks answer through the API server (our certificate manager wrote the caBundle): a denial only
        # our validating webhook makes, and a default only our mutating webhook sets.
        status, body = self._post(resource_path("", "v1", "namespaces"), {"metadata": {"name": "fuzz-probe"}})
        assert status == 201, body
        rjob = {
            "name": "a",
            "replicas": 1,
            "template": {"spec": {"template": {"spec": {"containers": [{"name": "m", "image": "x"}]}}}},
        }
        denied = {
            "metadata": {"name": "x"},
            "spec": {"replicatedJobs": [rjob], "successPolicy": {"operator": "All", "targetReplicatedJobs": ["nope"]}},
        }
        status, body = self._post(resource_path(*JOBSETS, "fuzz-probe"), denied)
        assert status == 422, body
        assert body["message"].startswith('admission webhook "vjobset.kb.io" denied the request'), body
        status, body = self._post(
            resource_path(*JOBSETS, "fuzz-probe"), {"metadata": {"name": "x"}, "spec": {"replicatedJobs": [rjob]}}
        )
        assert status == 201, body
        assert body["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"

    def close(self) -> None:
        self.proc.stop()
        self.call(self._stack.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    # ---- traffic
    def _post(self, path: str, obj: Any) -> tuple[int, JSON]:
        body = json.dumps(obj).encode()  # json, not orjson: lone surrogates in generated text reach the server
        req = urllib.request.Request(
            self.env.sim.url + path, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                return err.code, json.loads(raw)
            except ValueError:
                return err.code, {"raw": raw.decode(errors="replace")}

    def submit(self, obj: Any) -> None:
        """POST one generated JobSet in a fresh namespace; assert the answer is 2xx or a clean 4xx."""
        self._n += 1
        ns = f"fz-{self._n}"
        status, created = self._post(resource_path("", "v1", "namespaces"), {"metadata": {"name": ns}})
        assert status == 201, created
        obj = fold_replicas(obj)
        status, answer = self._post(resource_path(*JOBSETS, ns), obj)
        out = self.outcomes
        out.examples += 1
        out.codes[status] += 1
        assert status < 500, f"HTTP {status} for {json.dumps(obj)[:2000]}: {answer}"
        if status in (200, 201):
            out.accepted.append((ns, answer["metadata"]["name"]))
            return
        assert 400 <= status < 500, (status, answer)
        assert answer.get("kind") == "Status", answer
        reason = str(answer.get("reason"))
        out.reasons[f"{status} {reason}"] += 1
        if status != 422 and len(out.samples) < 20:
            out.samples.append(f"{status} {answer.get('message')}"[:300])
        if status == 400:
            message = str(answer.get("message"))
            kind = next((k for k, pattern in BAD_REQUESTS.items() if re.search(pattern, message)), None)
            assert kind is not None, f"a 400 that names no field: {answer}"
            out.bad_requests[kind] += 1
        if status == 422:
            causes = (answer.get("details") or {}).get("causes") or []
            assert causes, answer
            for cause in causes:
                assert str(cause.get("field", "")).startswith(("metadata", "spec")), answer

    # ---- after the run
    def reconciled(self, ns: str, name: str) -> bool:
        """The controller acted on an accepted JobSet: its Jobs exist, or it wrote a condition / terminal state,
        or the JobSet is managed by another controller (then it must be left alone), or it has no Jobs to create
        and the controller wrote its status."""
        store = self.env.sim.store
        js = store.get_nowait("jobsets", name, ns)
        if js is None:
            return True  # deleted (ttl after finishing): acted on
        if (js.get("spec") or {}).get("managedBy", MANAGER) != MANAGER:
            return True
        status = js.get("status") or {}
        if status.get("conditions") or status.get("terminalState"):
            return True
        replicas = sum(int(r.get("replicas", 1)) for r in (js.get("spec") or {}).get("replicatedJobs") or [])
        if replicas == 0:
            # No Job to create and, by the spec (4.6), it never completes: nothing to see but a status, which has
            # nothing to say without replicated jobs. The barrier in wait_reconciled shows the controller got past
            # it (its queue is first in, first out) and the reconcile-error count shows it did so cleanly.
            return self._barrier_passed
        return any(
            (j["metadata"].get("labels") or {}).get("jobset.sigs.k8s.io/jobset-name") == name
            for j in self.call(store.list("jobs", ns))
        )

    def wait_reconciled(self, limit: float) -> list[tuple[str, str]]:
        """Accepted JobSets not yet acted on after ``limit`` s; re-checked when Jobs or JobSets change."""
        self._barrier_passed = False
        barrier = "fz-barrier"
        status, body = self._post(resource_path("", "v1", "namespaces"), {"metadata": {"name": barrier}})
        assert status == 201, body
        rjob = {
            "name": "a",
            "replicas": 1,
            "template": {"spec": {"template": {"spec": {"containers": [{"name": "m", "image": "x"}]}}}},
        }
        status, body = self._post(
            resource_path(*JOBSETS, barrier), {"metadata": {"name": "b"}, "spec": {"replicatedJobs": [rjob]}}
        )
        assert status == 201, body
        changed = threading.Event()
        store = self.env.sim.store

        def on_commit(info: Any, event: Any) -> None:
            if info.resource in ("jobs", "jobsets"):
                changed.set()

        self.loop.call_soon_threadsafe(store.subscribe, on_commit)
        deadline = time.monotonic() + limit

        def settle(pending: list[tuple[str, str]]) -> list[tuple[str, str]]:
            while pending:
                changed.clear()
                pending = [p for p in pending if not self.reconciled(*p)]
                if not pending or time.monotonic() > deadline:
                    break
                changed.wait(max(0.0, deadline - time.monotonic()))
            return pending

        late = settle([(barrier, "b")])
        if late:
            return late
        self._barrier_passed = True
        return settle(list(self.outcomes.accepted))

    def reconcile_failures(self) -> dict[str, str]:
        """JobSets (``ns/name``) whose reconcile failed, with the last error, from the controller's log."""
        out: dict[str, str] = {}
        for log in self.proc.logs:
            for line in log.read_text(errors="replace").splitlines():
                if '"reconcile_failed"' in line:
                    with contextlib.suppress(ValueError):
                        entry = json.loads(line)
                        out[str(entry.get("jobset"))] = str(entry.get("error"))
        return out

    def unexplained_failures(self) -> dict[str, str]:
        """Reconcile failures other than the one the reference has too: a JobSet with no replicated jobs whose name
        (given, or generated from ``generateName``) is a DNS-1123 subdomain but not a DNS-1035 label passes
        admission (only Job names are checked against DNS-1035, and there are none), and its headless Service
        (named after it) is then rejected on every attempt. The controller says so with a Warning
        ``HeadlessServiceCreationFailed`` Event and backs off."""
        unexplained = {}
        store = self.env.sim.store
        for key, error in self.reconcile_failures().items():
            ns, _, name = key.partition("/")
            js = store.get_nowait("jobsets", name, ns) or {}
            no_rjobs = not (js.get("spec") or {}).get("replicatedJobs")
            events = self.call(store.list("events", ns))
            told = any(
                e.get("reason") == "HeadlessServiceCreationFailed"
                and (e.get("regarding") or e.get("involvedObject") or {}).get("name") == name  # events.k8s.io or v1
                for e in events
            )
            if not (no_rjobs and told and "creating headless service" in error):
                reasons = sorted({str(e.get("reason")) for e in events})
                unexplained[key] = f"{error} (spec {js.get('spec')}, events {reasons})"
        return unexplained

    def describe(self, ns: str, name: str) -> JSON:
        js = self.env.sim.store.get_nowait("jobsets", name, ns) or {}
        return {"spec": js.get("spec"), "status": js.get("status")}
