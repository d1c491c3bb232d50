"""Chaos harness: the controller as a process that can be SIGKILLed, and a tracker of what the cluster holds.

Role: shared by the chaos suites (``tests/chaos``), the real-plane chaos tests (``tests/e2e/test_chaos.py``)
and the benchmark (``scale_tests/bench_chaos.py``).

- :class:`ControllerProcess` runs ``pyjobset run`` as its own process (loopback listeners only, leader election
  off so a restarted process acts at once), kills it with SIGKILL, restarts it, scrapes its metrics and adds up
  the CPU seconds of every incarnation (``wait4`` rusage: exact even after SIGKILL).
- :class:`Tracker` follows one JobSet's Jobs, the JobSet and its Events from a change feed — kubesim's
  synchronous commit hook (:func:`follow_store`: no event can be missed, kills fire inside the commit) or a
  LIST+WATCH through the API (:func:`follow_api`, for the real control plane) — and records every Job ever
  created per (name, restart attempt). Tests wait on predicates over it (:meth:`Tracker.until`, woken by
  changes, never by sleeps) and arm one-shot triggers (:meth:`Tracker.on`) that run inside the change that
  makes them true: that is how a kill lands "after the k-th Job was created".
- :func:`check_safety` and :func:`check_settled` are the invariants: one Job per (name, attempt) ever, no Job
  without its live owner, restart counters never ahead of the failures injected (and exact once settled).

Invariants: nothing here listens outside 127.0.0.1; every process started is stopped by ``stop()`` (and gets
SIGKILL with its parent via PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import random
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from api import constants as c
from cache.client import ApiClient, resource_path
from cache.errors import ApiError

JSON = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
JOBSETS = (c.GROUP, c.VERSION, c.PLURAL)


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec: one async-signal-safe prctl
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


# ------------------------------------------------------------------------------------------------ the process


@dataclass
class ControllerProcess:
    """``pyjobset run`` against ``kubeconfig``; ``kill()`` is SIGKILL, ``start()`` a fresh incarnation."""

    kubeconfig: str
    workdir: Path
    qps: float = 500.0
    burst: int = 500
    extra_args: tuple[str, ...] = ()
    metrics_port: int = field(default_factory=free_port)
    health_port: int = field(default_factory=free_port)
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0
    cpu_seconds: float = 0.0  # CPU of every ended incarnation (user + system)
    logs: list[Path] = field(default_factory=list)

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "controller.cli",
            "run",
            f"--kubeconfig={self.kubeconfig}",
            f"--metrics-bind-address=127.0.0.1:{self.metrics_port}",
            "--metrics-secure=false",
            f"--health-probe-bind-address=127.0.0.1:{self.health_port}",
            "--leader-elect=false",
            f"--kube-api-qps={self.qps:g}",
            f"--kube-api-burst={self.burst}",
            *(self.extra_args or ("--webhooks=false",)),
        ]

    def start(self) -> None:
        assert not self.alive(), "already running"
        self.starts += 1
        log = self.workdir / f"controller-{self.starts}.log"
        self.logs.append(log)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - one prctl call, async-signal-safe
            )

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        """Running (a dead, unreaped process is not: it is left for ``reap`` to read its CPU time)."""
        if self.popen is None or self.popen.returncode is not None:
            return False
        try:
            info = os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        return info is None

    def signal_kill(self) -> None:
        """SIGKILL now (synchronous: safe inside a commit hook); ``reap()`` collects it."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.kills += 1

    def reap(self) -> int:
        """Wait for the process to end and add its CPU time; returns its exit status."""
        assert self.popen is not None
        if self.popen.returncode is not None:
            return self.popen.returncode
        _, status, usage = os.wait4(self.pid, 0)
        self.popen.returncode = os.waitstatus_to_exitcode(status)
        self.cpu_seconds += usage.ru_utime + usage.ru_stime
        return self.popen.returncode

    def kill(self) -> None:
        self.signal_kill()
        self.reap()

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM (a clean shutdown), SIGKILL after ``grace``; reaps either way. Blocks: from a loop that serves
        the API the controller talks to, use ``await asyncio.to_thread(proc.stop)``."""
        if self.popen is None or self.popen.returncode is not None:
            return
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.alive():
                os.kill(self.pid, signal.SIGKILL)
        self.reap()

    def live_cpu_seconds(self) -> float:
        """CPU seconds of the running incarnation (from /proc), plus every ended one."""
        total = self.cpu_seconds
        if self.alive():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def metrics(self) -> dict[str, float]:
        """The running incarnation's metrics, as ``name{labels}`` -> value."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            text = resp.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            m = re.match(r"^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$", line)
            if m:
                out[m.group(1)] = float(m.group(2))
        return out

    def tail(self, lines: int = 40) -> str:
        if not self.logs:
            return ""
        with contextlib.suppress(OSError):
            return "\n".join(self.logs[-1].read_text(errors="replace").splitlines()[-lines:])
        return ""


def total(metrics: dict[str, float], name: str, **labels: str) -> float:
    want = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(v for k, v in metrics.items() if k.split("{")[0] == name and all(w in k for w in want))


async def scrape(proc: ControllerProcess, name: str, **labels: str) -> float:
    metrics = await asyncio.to_thread(proc.metrics)
    return total(metrics, name, **labels)


# ------------------------------------------------------------------------------------------------ the tracker


def attempt_of(job: JSON) -> str:
    return str(((job.get("metadata") or {}).get("labels") or {}).get(c.RESTART_ATTEMPT_KEY, "?"))


@dataclass
class Tracker:
    """What the cluster holds for one JobSet, fed change by change (see the module docstring)."""

    namespace: str
    name: str
    jobs: dict[str, JSON] = field(default_factory=dict)  # Jobs present now, by name
    created: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (name, attempt) -> UIDs created
    removing: Counter[str] = field(default_factory=Counter)  # attempt -> Jobs marked for deletion or gone
    jobset: JSON | None = None
    jobset_uids: list[str] = field(default_factory=list)
    events: dict[str, JSON] = field(default_factory=dict)  # Events about the JobSet, by UID
    changes: int = 0
    _seen_removing: set[str] = field(default_factory=set)
    _waiters: list[tuple[Callable[[Tracker], bool], asyncio.Future[None]]] = field(default_factory=list)
    _triggers: list[tuple[Callable[[Tracker], bool], Callable[[], None]]] = field(default_factory=list)

    # ---- feeding
    def feed(self, resource: str, type_: str, obj: JSON) -> None:
        meta = obj.get("metadata") or {}
        if meta.get("namespace") != self.namespace:
            return
        if resource == "jobs":
            labels = meta.get("labels") or {}
            if labels.get(c.JOBSET_NAME_KEY) != self.name:
                return
            name, uid = meta["name"], meta["uid"]
            if type_ == "DELETED":
                self.jobs.pop(name, None)
            else:
                if self.jobs.get(name, {}).get("metadata", {}).get("uid") != uid:
                    uids = self.created.setdefault((name, attempt_of(obj)), [])
                    if uid not in uids:
                        uids.append(uid)
                self.jobs[name] = obj
            if (type_ == "DELETED" or meta.get("deletionTimestamp")) and uid not in self._seen_removing:
                self._seen_removing.add(uid)
                self.removing[attempt_of(obj)] += 1
        elif resource == "jobsets":
            if meta.get("name") != self.name:
                return
            if type_ == "DELETED":
                self.jobset = None
            else:
                self.jobset = obj
                if meta["uid"] not in self.jobset_uids:
                    self.jobset_uids.append(meta["uid"])
        elif resource == "events":
            regarding = obj.get("regarding") or obj.get("involvedObject") or {}
            if regarding.get("kind") == c.KIND and regarding.get("name") == self.name and type_ != "DELETED":
                self.events[meta["uid"]] = obj
        else:
            return
        self.changes += 1
        self._wake()

    def _wake(self) -> None:
        if self._triggers:
            fired = [t for t in self._triggers if t[0](self)]
            for t in fired:
                self._triggers.remove(t)
                t[1]()
        if self._waiters:
            for pred, fut in list(self._waiters):
                if fut.done():
                    self._waiters.remove((pred, fut))
                elif pred(self):
                    fut.set_result(None)
                    self._waiters.remove((pred, fut))

    # ---- waiting
    def on(self, pred: Callable[[Tracker], bool], action: Callable[[], None]) -> None:
        """Run ``action`` once, inside the first change after which ``pred`` holds (or now, if it holds)."""
        if pred(self):
            action()
        else:
            self._triggers.append((pred, action))

    def disarm(self) -> None:
        self._triggers.clear()

    async def wait(self, pred: Callable[[Tracker], bool], limit: float) -> bool:
        """Whether ``pred`` held within ``limit`` seconds (woken by changes, not polled)."""
        if pred(self):
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((pred, fut))
        try:
            await asyncio.wait_for(fut, limit)
        except TimeoutError:
            return False
        return True

    async def until(self, pred: Callable[[Tracker], bool], what: str, limit: float, on_timeout: str = "") -> None:
        if not await self.wait(pred, limit):
            raise AssertionError(f"timed out after {limit:g}s waiting for {what}; {self.summary()}\n{on_timeout}")

    # ---- reading
    def status(self) -> JSON:
        return (self.jobset or {}).get("status") or {}

    def restarts(self) -> int:
        return int(self.status().get("restarts") or 0)

    def restarts_toward_max(self) -> int:
        return int(self.status().get("restartsCountTowardsMax") or 0)

    def terminal(self) -> str:
        return str(self.status().get("terminalState") or "")

    def created_count(self, attempt: int) -> int:
        a = str(attempt)
        return sum(1 for (_, at) in self.created if at == a)

    def live(self, attempt: int) -> list[JSON]:
        a = str(attempt)
        return [j for j in self.jobs.values() if attempt_of(j) == a and not j["metadata"].get("deletionTimestamp")]

    def settled(self, attempt: int, n: int) -> bool:
        """Exactly the ``n`` Jobs of ``attempt`` exist, none marked for deletion, and no other attempt's."""
        return len(self.jobs) == n and len(self.live(attempt)) == n

    def event_emissions(self) -> int:
        """Events emitted (an aggregated Event with ``series.count`` k stands for k emissions)."""
        return sum(int(((e.get("series") or {}).get("count")) or 1) for e in self.events.values())

    def event_reasons(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for e in self.events.values():
            out[str(e.get("reason"))] += int(((e.get("series") or {}).get("count")) or 1)
        return out

    def summary(self) -> str:
        by_attempt = Counter(attempt_of(j) for j in self.jobs.values())
        deleting = sum(1 for j in self.jobs.values() if j["metadata"].get("deletionTimestamp"))
        conditions = [(x.get("type"), x.get("status"), x.get("reason")) for x in self.status().get("conditions") or []]
        return (
            f"jobs now by attempt {dict(by_attempt)} ({deleting} deleting), created {len(self.created)}, "
            f"restarts {self.restarts()}/{self.restarts_toward_max()}, terminal {self.terminal()!r}, "
            f"conditions {conditions}"
        )


# ------------------------------------------------------------------------------------------------ change feeds


def follow_store(store: Any, tracker: Tracker) -> None:
    """Feed ``tracker`` from kubesim's commit hook (synchronous, in commit order, nothing missed)."""
    names = {"jobs", "jobsets", "events"}

    def on_commit(info: Any, event: Any) -> None:
        if info.resource in names and event.type in ("ADDED", "MODIFIED", "DELETED"):
            tracker.feed(info.resource, event.type, event.shared_obj())

    for resource, ns in (("jobs", tracker.namespace), ("jobsets", tracker.namespace), ("events", tracker.namespace)):
        for obj in _list_now(store, resource, ns):
            tracker.feed(resource, "ADDED", obj)
    store.subscribe(on_commit)


def _list_now(store: Any, resource: str, namespace: str) -> list[JSON]:
    info = store.info(resource)
    return [orjson.loads(raw) for raw in store.list_page(info, namespace, None, None).items]


@contextlib.asynccontextmanager
async def follow_api(client: ApiClient, tracker: Tracker) -> AsyncIterator[None]:
    """Feed ``tracker`` by LIST+WATCH of Jobs, JobSets and Events through the API (resumes after any error)."""
    paths = {
        "jobs": resource_path("batch", "v1", "jobs", tracker.namespace),
        "jobsets": resource_path(*JOBSETS, tracker.namespace),
        "events": resource_path("events.k8s.io", "v1", "events", tracker.namespace),
    }

    async def loop(resource: str, path: str) -> None:
        delay = 0.1
        while True:
            try:
                listing = await client.get(path)
                present = {o["metadata"]["uid"]: o for o in listing.get("items") or []}
                known = {
                    o["metadata"]["uid"]: o
                    for o in (
                        tracker.jobs.values()
                        if resource == "jobs"
                        else ([tracker.jobset] if resource == "jobsets" and tracker.jobset else [])
                    )
                }
                for uid, obj in known.items():
                    if uid not in present:
                        tracker.feed(resource, "DELETED", obj)
                for obj in present.values():
                    tracker.feed(resource, "ADDED", obj)
                rv = listing["metadata"]["resourceVersion"]
                while True:
                    params = {"resourceVersion": rv, "allowWatchBookmarks": "true", "timeoutSeconds": "60"}
                    ended_with_error = False
                    async for line in client.watch(path, params):
                        ev = orjson.loads(line)
                        if ev["type"] == "ERROR":
                            ended_with_error = True
                            break
                        rv = ev["object"]["metadata"].get("resourceVersion", rv)
                        if ev["type"] != "BOOKMARK":
                            tracker.feed(resource, ev["type"], ev["object"])
                    if ended_with_error:
                        break
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except (ApiError, OSError, ValueError, KeyError):
                await asyncio.sleep(delay)  # the API server is restarting: back off, then list again
                delay = min(delay * 2, 2.0)

    tasks = [asyncio.create_task(loop(r, p), name=f"follow-{r}") for r, p in paths.items()]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t


# ------------------------------------------------------------------------------------------------ invariants


def check_safety(t: Tracker, failures_injected: int, counted: int | None = None) -> None:
    """What must hold at every instant, also right after a SIGKILL (``counted``: the failures injected that the
    failure policy counts toward ``maxRestarts``; default all)."""
    counted = failures_injected if counted is None else counted
    twice = {k: v for k, v in t.created.items() if len(v) > 1}
    assert not twice, f"two Jobs for one (name, restart attempt): {twice}"
    assert t.jobset is not None, "the JobSet is gone"
    assert len(t.jobset_uids) == 1, f"the JobSet was re-created: {t.jobset_uids}"
    uid = t.jobset_uids[0]
    for job in t.jobs.values():
        owners = [o for o in job["metadata"].get("ownerReferences") or [] if o.get("controller")]
        orphan = f"orphaned Job {job['metadata']['name']}: controller owners {owners}, live JobSet UID {uid}"
        assert len(owners) == 1, orphan
        assert owners[0]["uid"] == uid, orphan
        assert owners[0]["kind"] == c.KIND, orphan
    assert t.restarts() <= failures_injected, f"restarts {t.restarts()} > failures injected {failures_injected}"
    assert t.restarts_toward_max() <= counted, f"restartsCountTowardsMax {t.restarts_toward_max()} > {counted}"
    highest = max((int(a) for (_, a) in t.created if a.isdigit()), default=0)
    assert highest <= failures_injected, f"Jobs of attempt {highest} after {failures_injected} failures"


def check_settled(t: Tracker, failures_injected: int, n: int, counted: int | None = None) -> None:
    """Once the controller caught up with ``failures_injected`` failures (``counted`` of them toward the max)."""
    counted = failures_injected if counted is None else counted
    check_safety(t, failures_injected, counted)
    assert t.restarts() == failures_injected, t.summary()
    assert t.restarts_toward_max() == counted, t.summary()
    assert t.settled(failures_injected, n), t.summary()
    for attempt in range(failures_injected + 1):
        assert t.created_count(attempt) == n, f"attempt {attempt}: {t.created_count(attempt)} Jobs created, want {n}"


# ------------------------------------------------------------------------------------------------ workload


UNCOUNTED_REASON = "DeadlineExceeded"


def big_jobset(name: str, n: int, max_restarts: int, *, uncounted_rule: bool = False) -> JSON:
    """One replicated job of ``n`` single-pod Jobs that fail the JobSet on first failure (backoffLimit 0).

    ``uncounted_rule``: a Job failing with reason ``DeadlineExceeded`` restarts the JobSet without counting toward
    ``maxRestarts`` (RestartJobSetAndIgnoreMaxRestarts); any other failure takes the default, counted restart."""
    rules = [
        {"name": "uncounted", "action": "RestartJobSetAndIgnoreMaxRestarts", "onJobFailureReasons": [UNCOUNTED_REASON]}
    ]
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": {"maxRestarts": max_restarts, **({"rules": rules} if uncounted_rule else {})},
            "replicatedJobs": [
                {
                    "name": "w",
                    "replicas": n,
                    "template": {
                        "spec": {
                            "parallelism": 1,
                            "completions": 1,
                            "backoffLimit": 0,
                            "template": {
                                "metadata": {"annotations": {"sim.pyjobset.io/run-seconds": "3600"}},
                                "spec": {
                                    "restartPolicy": "Never",
                                    "containers": [{"name": "main", "image": "busybox"}],
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def failed_status(reason: str = "BackoffLimitExceeded") -> JSON:
    now = _now()
    conditions = [
        {"type": t, "status": "True", "reason": reason, "message": "chaos", "lastTransitionTime": now}
        for t in ("FailureTarget", "Failed")
    ]
    return {"status": {"startTime": now, "failed": 1, "conditions": conditions}}


def complete_status() -> JSON:
    now = _now()
    conditions = [
        {"type": t, "status": "True", "reason": "CompletionsReached", "lastTransitionTime": now}
        for t in ("SuccessCriteriaMet", "Complete")
    ]
    return {"status": {"startTime": now, "completionTime": now, "succeeded": 1, "conditions": conditions}}


async def patch_job_status(store: Any, namespace: str, name: str, body: JSON) -> None:
    """Write a Job's status in kubesim as its Job controller would (no Job controller runs there)."""
    await store.patch("jobs", name, body, namespace=namespace, subresource="status")


def pick_live_job(t: Tracker, attempt: int, rng: random.Random) -> str:
    names = sorted(j["metadata"]["name"] for j in t.live(attempt))
    assert names, f"no live Job of attempt {attempt}: {t.summary()}"
    return rng.choice(names)
