"""The conformance kit: JobSet objects of the reference scenarios, Job status writers and watch-driven waits.

Role: everything the conformance scenarios share, reaching the cluster only through ``ApiClient`` (a kubeconfig),
so the same test runs on the simulated cluster and on the real control plane.

Two styles of child Jobs:

* **manual** (``manual(js)``): the Job template carries ``spec.managedBy: conformance.pyjobset.io/manual``, so the
  cluster's Job controller leaves the Jobs alone and the test writes their ``status`` subresource itself to pin
  exact failure reasons and messages. The status written is one the real API server accepts for a Job managed by
  someone else (its strengthened status validation): a finished Job has ``startTime``, no active pods, a
  ``FailureTarget`` beside ``Failed`` and ``SuccessCriteriaMet`` plus ``completionTime`` beside ``Complete``.
  Both backends' Job controllers skip such Jobs, so ``active``/``ready`` written by the test stick too
  (``mark_ready``). The pod template also carries a scheduling gate, so that a Job controller that ignored
  ``managedBy`` could only create pods that never run.
* **simulated** (``simulated(js, ...)``): the pod template carries the annotation contract
  (``sim.pyjobset.io/*``) and the cluster's Job controller, scheduler and kubelet (or KWOK) drive everything.

Waiting: ``wait_for`` and the ``Cluster.wait_*`` methods are driven by WATCH events (LIST, check, WATCH from that
resourceVersion, re-check on every event); every WATCH stream is closed explicitly when a wait ends, so no
connection is left for the garbage collector (which would warn, as an error, in a later test).
``Cluster.stays`` is the reference suite's "Consistently": it watches a bounded window and fails as soon as an
event breaks the predicate; callers first wait until the controller has *observed* the change under test (its
``replicatedJobsStatus`` reflects it), so the window only guards against a late wrong decision.

Workload-aware scheduling (117-119): ``require_workload_scheduling`` checks discovery for Workload and PodGroup in
``scheduling.k8s.io/v1beta1`` and skips (kubesim, which serves neither) or fails (``PYJOBSET_E2E_REQUIRE=1``)
without them; ``gang_group``, ``jobset_workload`` and ``in_pod_group`` build the objects a user creates.

Invariants: every wait is bounded; nothing here sleeps for a fixed time; objects are plain JSON dicts.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import os
from collections.abc import AsyncGenerator, Callable, Iterable
from typing import Any, cast

import orjson
import pytest

from api import constants as c
from cache.client import MERGE_PATCH, ApiClient, resource_path
from cache.errors import ApiError, Conflict
from tests.builders import JobSetBuilder
from tests.conftest import EXTERNAL_CONTROLLER, EXTERNAL_KUBECONFIG

JSON = dict[str, Any]

MANUAL_MANAGER = "conformance.pyjobset.io/manual"
HOLD = "conformance.pyjobset.io/hold"
"""A finalizer the tests put on a Job to keep it, deleted, for as long as they need."""
SIM = "sim.pyjobset.io/"
RUN_SECONDS = SIM + "run-seconds"
START_SECONDS = SIM + "start-seconds"
EXIT_CODE = SIM + "exit-code"
FAIL_WHEN = SIM + "fail-when"
EXIT_NOW = SIM + "exit-now"

RJOB_A = "replicated-job-a"
RJOB_B = "replicated-job-b"

EXTERNAL = bool(EXTERNAL_KUBECONFIG)
"""True when the suite runs against a cluster given by ``PYJOBSET_KUBECONFIG`` (e.g. the real control plane)."""

WAIT = 60.0 if EXTERNAL else 30.0
"""Upper bound of every wait; a wait that hits it fails the test."""

STAYS = 1.5
"""Length of a "stays so" observation window (seconds), watched event by event after the controller observed
the change under test."""


# --------------------------------------------------------------------------------------------- waiting


def _watch(api: ApiClient, path: str, params: dict[str, str]) -> AsyncGenerator[bytes, None]:
    """``ApiClient.watch`` is an async generator (typed as an iterator): closable with ``contextlib.aclosing``."""
    return cast(AsyncGenerator[bytes, None], api.watch(path, params))


async def wait_for(
    api: ApiClient,
    path: str,
    predicate: Callable[[list[JSON]], Any],
    *,
    params: dict[str, str] | None = None,
    limit: float = WAIT,
) -> Any:
    """Wait until ``predicate(items of LIST path)`` is truthy, re-checking after every WATCH event; returns its
    value. Raises ``TimeoutError`` after ``limit`` seconds."""
    async with asyncio.timeout(limit):
        while True:
            body = await api.get(path, params)
            value = predicate(body.get("items", []))
            if value:
                return value
            rv = body.get("metadata", {}).get("resourceVersion", "")
            watch_params = {"resourceVersion": rv, "allowWatchBookmarks": "false", "timeoutSeconds": "5"}
            watch_params.update(params or {})
            async with contextlib.aclosing(_watch(api, path, watch_params)) as events:
                async for line in events:
                    if orjson.loads(line).get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        break


# --------------------------------------------------------------------------------------------- objects


def base_jobset(namespace: str, name: str = "test-js", *, b_replicas: int = 3) -> JobSetBuilder:
    """The reference fixture ``test-js``: rjob a (1 replica) + rjob b (3 replicas), Indexed, DNS hostnames on,
    successPolicy All without targets."""
    return JobSetBuilder(name, namespace).rjob(RJOB_A, 1).rjob(RJOB_B, b_replicas)


def _rjobs(obj: JSON, names: Iterable[str] | None) -> list[JSON]:
    wanted = set(names) if names is not None else None
    return [rj for rj in obj["spec"]["replicatedJobs"] if wanted is None or rj["name"] in wanted]


def manual(obj: JSON, rjobs: Iterable[str] | None = None) -> JSON:
    """Make the named (default: all) replicated jobs' Jobs managed by the test (see the module docstring)."""
    out = copy.deepcopy(obj)
    for rj in _rjobs(out, rjobs):
        spec = rj["template"]["spec"]
        spec["managedBy"] = MANUAL_MANAGER
        pod = spec["template"]["spec"]
        pod["terminationGracePeriodSeconds"] = 0
        pod["schedulingGates"] = [{"name": "conformance.pyjobset.io/never"}]
    return out


def simulated(obj: JSON, rjobs: Iterable[str] | None = None, **annotations: str) -> JSON:
    """Pod-driven replicated jobs: put ``sim.pyjobset.io/<key>`` annotations (keys with ``_`` for ``-``) on the
    pod templates; pods terminate at once when deleted."""
    out = copy.deepcopy(obj)
    for rj in _rjobs(out, rjobs):
        pod = rj["template"]["spec"]["template"]
        pod["spec"]["terminationGracePeriodSeconds"] = 0
        anns = pod.setdefault("metadata", {}).setdefault("annotations", {})
        for key, value in annotations.items():
            anns[SIM + key.replace("_", "-")] = value
    return out


def set_job_spec(obj: JSON, rjob_name: str, **fields: Any) -> JSON:
    """Set Job-spec fields (e.g. ``backoffLimit``) of one replicated job's template."""
    out = copy.deepcopy(obj)
    for rj in _rjobs(out, [rjob_name]):
        rj["template"]["spec"].update(fields)
    return out


# --------------------------------------------------------------------------------------------- status helpers


def now_rfc3339(offset_seconds: int = 0) -> str:
    when = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=offset_seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(js: JSON | None, ctype: str) -> JSON | None:
    for cond in ((js or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return dict(cond)
    return None


def is_true(js: JSON | None, ctype: str) -> bool:
    cond = condition(js, ctype)
    return cond is not None and cond.get("status") == "True"


def is_active(js: JSON | None) -> bool:
    """The reference's "active" check: none of Failed / Completed / Suspended is True."""
    return not any(is_true(js, t) for t in (c.COND_FAILED, c.COND_COMPLETED, c.COND_SUSPENDED))


def rjob_status(js: JSON | None, name: str) -> JSON | None:
    for st in ((js or {}).get("status") or {}).get("replicatedJobsStatus") or []:
        if st.get("name") == name:
            return dict(st)
    return None


def counts(js: JSON | None, name: str) -> dict[str, int]:
    """``{ready, succeeded, failed, active, suspended}`` of one replicatedJobsStatus entry (absent → zeros)."""
    st = rjob_status(js, name) or {}
    return {k: int(st.get(k) or 0) for k in ("ready", "succeeded", "failed", "active", "suspended")}


def expected(**values: int) -> dict[str, int]:
    base = {"ready": 0, "succeeded": 0, "failed": 0, "active": 0, "suspended": 0}
    base.update(values)
    return base


def recomputed_counts(jobs: list[JSON], rjob_name: str, restarts: int) -> dict[str, int]:
    """replicatedJobsStatus counts recomputed from live Jobs per the formulas of behaviour.md §1.6."""
    out = expected()
    for job in jobs:
        labels = job["metadata"].get("labels") or {}
        if labels.get(c.REPLICATED_JOB_NAME_KEY) != rjob_name:
            continue
        if int(labels.get(c.RESTART_ATTEMPT_KEY, "0")) < restarts:
            continue
        conds = {x["type"]: x["status"] for x in (job.get("status") or {}).get("conditions") or []}
        st = job.get("status") or {}
        if conds.get("Complete") == "True":
            out["succeeded"] += 1
            continue
        if conds.get("Failed") == "True":
            out["failed"] += 1
            continue
        spec = job["spec"]
        parallelism = int(spec.get("parallelism", 1))
        completions = int(spec.get("completions", parallelism))
        if int(st.get("succeeded") or 0) + int(st.get("ready") or 0) >= min(parallelism, completions):
            out["ready"] += 1
        if int(st.get("active") or 0) > 0:
            out["active"] += 1
        if spec.get("suspend"):
            out["suspended"] += 1
    return out


def _terminal(js: JSON) -> JSON | None:
    return js if (js.get("status") or {}).get("terminalState") else None


def job_names(jobs: Iterable[JSON]) -> list[str]:
    return sorted(j["metadata"]["name"] for j in jobs)


def live(jobs: Iterable[JSON]) -> list[JSON]:
    """Jobs not being deleted."""
    return [j for j in jobs if not j["metadata"].get("deletionTimestamp")]


# --------------------------------------------------------------------------------------------- the cluster


class Cluster:
    """One test's namespace on the cluster under test."""

    def __init__(self, api: ApiClient, namespace: str) -> None:
        self.api = api
        self.ns = namespace
        self.jobsets_path = resource_path(c.GROUP, c.VERSION, c.PLURAL, namespace)
        self.jobs_path = resource_path("batch", "v1", "jobs", namespace)
        self.pods_path = resource_path("", "v1", "pods", namespace)
        self.services_path = resource_path("", "v1", "services", namespace)
        self.pvcs_path = resource_path("", "v1", "persistentvolumeclaims", namespace)
        self.events_path = resource_path("events.k8s.io", "v1", "events", namespace)

    # ----------------------------------------------------------------------------- JobSets

    async def create(self, obj: JSON) -> JSON:
        obj = copy.deepcopy(obj)
        obj["metadata"]["namespace"] = self.ns
        return await self.api.create(self.jobsets_path, obj)

    async def jobset(self, name: str) -> JSON:
        return await self.api.get(f"{self.jobsets_path}/{name}")

    async def update_jobset(self, name: str, mutate: Callable[[JSON], None]) -> JSON:
        """GET, mutate, PUT; retried on a conflict with the controller's status writes (bounded)."""
        for _ in range(20):
            obj = await self.jobset(name)
            mutate(obj)
            try:
                return await self.api.replace(f"{self.jobsets_path}/{name}", obj)
            except Conflict:
                continue
        raise AssertionError(f"JobSet {name}: 20 conflicting updates in a row")

    async def set_suspend(self, name: str, value: bool) -> JSON:
        return await self.api.patch(f"{self.jobsets_path}/{name}", {"spec": {"suspend": value}})

    async def wait_jobset(self, name: str, predicate: Callable[[JSON], Any], *, limit: float = WAIT) -> Any:
        """Wait (WATCH-driven) until ``predicate(jobset)`` is truthy; returns its value."""

        def check(items: list[JSON]) -> Any:
            return predicate(items[0]) if items else None

        try:
            return await wait_for(
                self.api, self.jobsets_path, check, params={"fieldSelector": f"metadata.name={name}"}, limit=limit
            )
        except TimeoutError:
            raise AssertionError(f"JobSet {name}: condition not reached; last seen: {await self._dump(name)}") from None

    async def wait_observed(self, name: str, rjob_name: str, want: dict[str, int]) -> JSON:
        """Wait until the controller's ``replicatedJobsStatus`` for ``rjob_name`` equals ``want`` (all counts)."""
        return await self.wait_jobset(name, lambda js: js if counts(js, rjob_name) == want else None)  # type: ignore[no-any-return]

    async def wait_counts(self, name: str, want: dict[str, dict[str, int]]) -> JSON:
        """Wait until ``replicatedJobsStatus`` matches ``want`` (rjob name → all counts) in one observation."""

        def check(js: JSON) -> JSON | None:
            return js if all(counts(js, rj) == w for rj, w in want.items()) else None

        return await self.wait_jobset(name, check)  # type: ignore[no-any-return]

    async def wait_condition(self, name: str, ctype: str, status: str = "True") -> JSON:
        def check(js: JSON) -> JSON | None:
            cond = condition(js, ctype)
            return js if cond is not None and cond.get("status") == status else None

        return await self.wait_jobset(name, check)  # type: ignore[no-any-return]

    async def wait_terminal(self, name: str, state: str) -> JSON:
        """Wait until ``status.terminalState`` is set; fail at once if it is not ``state``."""
        js: JSON = await self.wait_jobset(name, _terminal)
        assert js["status"]["terminalState"] == state, f"terminalState: {js['status']}"
        return js

    async def wait_gone(self, path: str, name: str, *, limit: float = WAIT) -> None:
        """Wait (WATCH-driven) until the object ``name`` in the collection ``path`` no longer exists."""
        await wait_for(
            self.api, path, lambda items: not items, params={"fieldSelector": f"metadata.name={name}"}, limit=limit
        )

    async def _dump(self, name: str) -> str:
        try:
            js = await self.jobset(name)
        except ApiError as err:
            return f"<{err}>"
        return orjson.dumps(js.get("status") or {}).decode()

    # ----------------------------------------------------------------------------- Jobs

    async def jobs(self, jobset: str | None = None) -> list[JSON]:
        params = {"labelSelector": f"{c.JOBSET_NAME_KEY}={jobset}"} if jobset else None
        items: list[JSON] = (await self.api.get(self.jobs_path, params)).get("items", [])
        return sorted(items, key=lambda j: j["metadata"]["name"])

    async def wait_jobs(
        self, predicate: Callable[[list[JSON]], Any], *, jobset: str | None = None, limit: float = WAIT
    ) -> Any:
        """Wait (WATCH-driven) until ``predicate(jobs sorted by name)`` is truthy; returns its value."""
        params = {"labelSelector": f"{c.JOBSET_NAME_KEY}={jobset}"} if jobset else None

        def check(items: list[JSON]) -> Any:
            return predicate(sorted(items, key=lambda j: j["metadata"]["name"]))

        try:
            return await wait_for(self.api, self.jobs_path, check, params=params, limit=limit)
        except TimeoutError:
            seen = [
                (j["metadata"]["name"], j["metadata"].get("labels", {}).get(c.RESTART_ATTEMPT_KEY))
                for j in await self.jobs(jobset)
            ]
            raise AssertionError(f"Jobs: condition not reached; last seen: {seen}") from None

    async def wait_job_count(self, n: int, *, jobset: str | None = None, attempt: int | None = None) -> list[JSON]:
        """Wait until exactly ``n`` live Jobs exist (optionally: all with ``restart-attempt == attempt``)."""

        def check(jobs: list[JSON]) -> list[JSON] | None:
            alive = live(jobs)
            if attempt is not None:
                alive = [j for j in alive if j["metadata"]["labels"].get(c.RESTART_ATTEMPT_KEY) == str(attempt)]
                if len(live(jobs)) != len(alive):
                    return None
            return alive if len(alive) == n else None

        return await self.wait_jobs(check, jobset=jobset)  # type: ignore[no-any-return]

    async def write_job_status(self, job: JSON | str, status: JSON) -> JSON:
        name = job if isinstance(job, str) else job["metadata"]["name"]
        return await self.api.patch(f"{self.jobs_path}/{name}/status", {"status": status}, patch_type=MERGE_PATCH)

    async def _start_time(self, name: str) -> str:
        job = await self.api.get(f"{self.jobs_path}/{name}")
        return str((job.get("status") or {}).get("startTime") or job["metadata"]["creationTimestamp"])

    async def complete(self, *jobs: JSON | str) -> None:
        """Mark manual Jobs Complete (SuccessCriteriaMet + Complete, completionTime, all completions succeeded)."""
        for job in jobs:
            name = job if isinstance(job, str) else job["metadata"]["name"]
            spec = (await self.api.get(f"{self.jobs_path}/{name}"))["spec"]
            start, at = await self._start_time(name), now_rfc3339()
            done = {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"}
            message = "Reached expected number of succeeded pods"
            await self.write_job_status(
                name,
                {
                    "startTime": start,
                    "completionTime": max(start, at),
                    "active": 0,
                    "ready": 0,
                    "succeeded": int(spec.get("completions") or spec.get("parallelism") or 1),
                    "conditions": [
                        {**done, "message": message, "lastTransitionTime": at, "lastProbeTime": at},
                        {
                            "type": "Complete",
                            "status": "True",
                            "reason": "CompletionsReached",
                            "message": message,
                            "lastTransitionTime": at,
                            "lastProbeTime": at,
                        },
                    ],
                },
            )

    async def mark_ready(self, *jobs: JSON | str) -> None:
        """Mark manual Jobs running with every pod ready (``active == ready == parallelism``, ``startTime``)."""
        for job in jobs:
            name = job if isinstance(job, str) else job["metadata"]["name"]
            spec = (await self.api.get(f"{self.jobs_path}/{name}"))["spec"]
            pods = int(spec.get("parallelism") or 1)
            await self.write_job_status(
                name, {"startTime": await self._start_time(name), "active": pods, "ready": pods, "terminating": 0}
            )

    async def fail(
        self, job: JSON | str, reason: str = "BackoffLimitExceeded", message: str = "", *, at: str | None = None
    ) -> None:
        """Mark a manual Job Failed with ``reason``/``message`` (FailureTarget + Failed, same reason)."""
        name = job if isinstance(job, str) else job["metadata"]["name"]
        when = at or now_rfc3339()
        message = message or f"Job failed with reason {reason}"
        conds = [
            {
                "type": ctype,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastTransitionTime": when,
                "lastProbeTime": when,
            }
            for ctype in ("FailureTarget", "Failed")
        ]
        start = await self._start_time(name)
        await self.write_job_status(
            name, {"startTime": start, "active": 0, "ready": 0, "failed": 1, "conditions": conds}
        )

    async def hold(self, job: str) -> None:
        """Add the ``HOLD`` finalizer to a Job: once deleted it stays (with a deletionTimestamp) until released."""
        await self.api.patch(f"{self.jobs_path}/{job}", {"metadata": {"finalizers": [HOLD]}})

    async def release(self, job: str) -> None:
        """Remove the ``HOLD`` finalizer (GET + PUT with the resourceVersion, retried on conflicts)."""
        for _ in range(20):
            obj = await self.api.get(f"{self.jobs_path}/{job}")
            obj["metadata"]["finalizers"] = [f for f in obj["metadata"].get("finalizers") or [] if f != HOLD]
            try:
                await self.api.replace(f"{self.jobs_path}/{job}", obj)
                return
            except Conflict:
                continue
        raise AssertionError(f"Job {job}: 20 conflicting updates in a row")

    # ----------------------------------------------------------------------------- pods

    async def pods(self, job: str | None = None) -> list[JSON]:
        params = {"labelSelector": f"batch.kubernetes.io/job-name={job}"} if job else None
        items: list[JSON] = (await self.api.get(self.pods_path, params)).get("items", [])
        return sorted(items, key=lambda p: p["metadata"]["name"])

    async def wait_pods(self, predicate: Callable[[list[JSON]], Any], *, job: str | None = None) -> Any:
        params = {"labelSelector": f"batch.kubernetes.io/job-name={job}"} if job else None
        return await wait_for(self.api, self.pods_path, predicate, params=params, limit=WAIT)

    async def exit_now(self, job: str, code: int) -> None:
        """Make every running pod of ``job`` exit with ``code`` (annotation contract ``exit-now``)."""

        def running(pods: list[JSON]) -> list[JSON] | None:
            run = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
            return run or None

        for pod in await self.wait_pods(running, job=job):
            await self.api.patch(
                f"{self.pods_path}/{pod['metadata']['name']}", {"metadata": {"annotations": {EXIT_NOW: str(code)}}}
            )

    # ----------------------------------------------------------------------------- other objects

    async def services(self) -> list[JSON]:
        items: list[JSON] = (await self.api.get(self.services_path)).get("items", [])
        return items

    async def wait_services(self, n: int) -> list[JSON]:
        """Wait until exactly ``n`` Services exist in the namespace (none being deleted)."""

        def check(items: list[JSON]) -> list[JSON] | None:
            alive = [s for s in items if not s["metadata"].get("deletionTimestamp")]
            return alive if len(alive) == n and len(items) == n else None

        result: list[JSON] = await wait_for(self.api, self.services_path, check, limit=WAIT)
        return result

    async def pvcs(self) -> list[JSON]:
        items: list[JSON] = (await self.api.get(self.pvcs_path)).get("items", [])
        return sorted(items, key=lambda p: p["metadata"]["name"])

    async def events(self, regarding: str | None = None) -> list[JSON]:
        items: list[JSON] = (await self.api.get(self.events_path)).get("items", [])
        if regarding is not None:
            items = [e for e in items if (e.get("regarding") or {}).get("name") == regarding]
        return items

    async def wait_event(self, regarding: str, reason: str) -> JSON:
        def check(items: list[JSON]) -> JSON | None:
            for ev in items:
                if (ev.get("regarding") or {}).get("name") == regarding and ev.get("reason") == reason:
                    return ev
            return None

        result: JSON = await wait_for(self.api, self.events_path, check, limit=WAIT)
        return result

    async def stays(
        self, path: str, predicate: Callable[[list[JSON]], bool], *, params: dict[str, str] | None = None
    ) -> None:
        """Assert ``predicate(items)`` holds now and after every WATCH event during a ``STAYS``-second window.

        The window is bounded and event-driven: it ends early with a failure as soon as an event breaks the
        predicate. Use it only after waiting for the controller to have observed the change under test.
        """
        body = await self.api.get(path, params)
        assert predicate(body.get("items", [])), f"{path}: predicate false at the start of the window"
        rv = body.get("metadata", {}).get("resourceVersion", "")
        watch_params = {"resourceVersion": rv, "allowWatchBookmarks": "false", "timeoutSeconds": str(int(STAYS) + 2)}
        watch_params.update(params or {})
        window = asyncio.timeout(STAYS)
        try:
            async with window, contextlib.aclosing(_watch(self.api, path, watch_params)) as events:
                async for line in events:
                    if orjson.loads(line).get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        items = (await self.api.get(path, params)).get("items", [])
                        assert predicate(items), f"{path}: predicate broken during the window: {items}"
        except TimeoutError:
            if not window.expired():
                raise

    async def jobset_stays(self, name: str, predicate: Callable[[JSON], bool]) -> None:
        await self.stays(
            self.jobsets_path,
            lambda items: bool(items) and predicate(items[0]),
            params={"fieldSelector": f"metadata.name={name}"},
        )


def gates_from_env() -> dict[str, bool] | None:
    """Feature gates of an external controller, from ``PYJOBSET_FEATURE_GATES`` (``A=true,B`` form); None when
    the controller runs in the test's loop (the tests configure it themselves)."""
    if not EXTERNAL_CONTROLLER:
        return None
    out: dict[str, bool] = {}
    for raw in os.environ.get("PYJOBSET_FEATURE_GATES", "").split(","):
        item = raw.strip()
        if not item:
            continue
        key, _, value = item.partition("=")
        out[key.strip()] = value.strip().lower() not in ("false", "0", "off")
    return out


# --------------------------------------------------------------------------------------------- admission


def _selects(selector: JSON, labels: dict[str, str]) -> bool:
    """Whether a label selector (``matchLabels`` + ``matchExpressions``) selects an object with ``labels``."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }.get(op, True)  # an operator we do not know: assume it may select (the safe answer here)
        if not ok:
            return False
    return True


def _admits_jobsets(hook: JSON) -> bool:
    for rule in hook.get("rules") or []:
        groups, resources = rule.get("apiGroups") or [], rule.get("resources") or []
        if {"*", c.GROUP}.intersection(groups) and {"*", "*/*", "jobsets"}.intersection(resources):
            return True
    return False


async def jobset_webhooks(api: ApiClient, namespace: str) -> list[str]:
    """The admission webhooks (``configuration/webhook``) that see JobSet writes in ``namespace``."""
    labels = (await api.get(resource_path("", "v1", "namespaces", name=namespace)))["metadata"].get("labels") or {}
    labels = {"kubernetes.io/metadata.name": namespace, **labels}
    found: list[str] = []
    for kind in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
        items = (await api.get(resource_path("admissionregistration.k8s.io", "v1", kind))).get("items", [])
        for config in items:
            for hook in config.get("webhooks") or []:
                if _admits_jobsets(hook) and _selects(hook.get("namespaceSelector") or {}, labels):
                    found.append(f"{config['metadata']['name']}/{hook['name']}")
    return found


# ------------------------------------------------------------------------------------ workload-aware scheduling

WAS_GROUP = "scheduling.k8s.io"
WAS_VERSION = "v1beta1"
WAS_RESOURCES = ("workloads", "podgroups")
RACK_LABEL = "topology.kubernetes.io/rack"
WAS_GATES = "GenericWorkload=true,TopologyAwareWorkloadScheduling=true"


async def served_resources(api: ApiClient, group: str, version: str) -> set[str]:
    """Resource names the cluster's discovery lists for ``group/version`` (empty when it is not served)."""
    try:
        body = await api.get(f"/apis/{group}/{version}")
    except ApiError:
        return set()
    return {str(r.get("name")) for r in body.get("resources") or []}


async def require_workload_scheduling(api: ApiClient) -> None:
    """Skip (kubesim, or an external cluster without the API) or fail (``PYJOBSET_E2E_REQUIRE=1``) unless the
    cluster serves Workload and PodGroup in ``scheduling.k8s.io/v1beta1`` (Kubernetes 1.37)."""
    missing = sorted(set(WAS_RESOURCES) - await served_resources(api, WAS_GROUP, WAS_VERSION))
    if not missing:
        return
    if not EXTERNAL:
        pytest.skip(
            f"kubesim does not serve {WAS_GROUP}/{WAS_VERSION} ({', '.join(missing)}) and its scheduler has no "
            "gang or topology-aware placement: this scenario runs on the real control plane (tests/e2e/run.sh)"
        )
    _unsupported(f"the cluster does not serve {WAS_GROUP}/{WAS_VERSION} {missing}")


async def require_topology_constraints() -> None:
    """Called when the API server dropped a PodGroup's ``schedulingConstraints`` (its TopologyAwareWorkloadScheduling
    gate is off): skip, or fail under ``PYJOBSET_E2E_REQUIRE=1``."""
    _unsupported(
        "the API server dropped the PodGroup's spec.schedulingConstraints (TopologyAwareWorkloadScheduling off)"
    )


def _unsupported(what: str) -> None:
    message = (
        f"{what}: start kube-apiserver with --runtime-config={WAS_GROUP}/{WAS_VERSION}=true "
        f"--feature-gates={WAS_GATES}, and kube-scheduler and kube-controller-manager with "
        f"--feature-gates={WAS_GATES} (tests/e2e/harness.py does so by default)"
    )
    if os.environ.get("PYJOBSET_E2E_REQUIRE") == "1":
        pytest.fail(message)
    pytest.skip(message)


def was_path(resource: str, namespace: str) -> str:
    return resource_path(WAS_GROUP, WAS_VERSION, resource, namespace)


def gang_group(name: str, min_count: int, *, workload: str | None = None, topology_key: str | None = None) -> JSON:
    """A PodGroup with the gang policy (and optionally a topology constraint), optionally made from ``workload``'s
    template of the same name."""
    spec: JSON = {"schedulingPolicy": {"gang": {"minCount": min_count}}}
    if workload is not None:
        spec["workloadRef"] = {"workloadName": workload, "templateName": name}
    if topology_key is not None:
        spec["schedulingConstraints"] = {"topology": [{"key": topology_key}]}
    return {"apiVersion": f"{WAS_GROUP}/{WAS_VERSION}", "kind": "PodGroup", "metadata": {"name": name}, "spec": spec}


def jobset_workload(name: str, jobset: str, group: JSON) -> JSON:
    """A Workload whose controllerRef is the JobSet ``jobset``, with one pod-group template shaped like ``group``."""
    template = {"name": group["metadata"]["name"], **{k: v for k, v in group["spec"].items() if k != "workloadRef"}}
    return {
        "apiVersion": f"{WAS_GROUP}/{WAS_VERSION}",
        "kind": "Workload",
        "metadata": {"name": name},
        "spec": {
            "controllerRef": {"apiGroup": c.GROUP, "kind": "JobSet", "name": jobset},
            "podGroupTemplates": [template],
        },
    }


def in_pod_group(obj: JSON, group: str, *, cpu: str | None = None, affinity: JSON | None = None) -> JSON:
    """Every replicated job's pods join the PodGroup ``group`` (``spec.schedulingGroup.podGroupName``), optionally
    requesting ``cpu`` and with a node ``affinity``."""
    out = copy.deepcopy(obj)
    for rj in _rjobs(out, None):
        pod = rj["template"]["spec"]["template"]["spec"]
        pod["schedulingGroup"] = {"podGroupName": group}
        if cpu is not None:
            for container in pod["containers"]:
                container["resources"] = {"requests": {"cpu": cpu}}
        if affinity is not None:
            pod["affinity"] = affinity
    return out


def pod_group_condition(group: JSON, ctype: str = "PodGroupInitiallyScheduled") -> JSON | None:
    for cond in (group.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return dict(cond)
    return None
