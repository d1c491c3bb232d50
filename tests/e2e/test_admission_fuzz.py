"""Generated JobSets through the real admission path: kube-apiserver calling our installed webhooks (issue 13, 8).

``tests/chaos/test_admission_fuzz.py`` fuzzes kubesim's admission path and follows every accepted JobSet through
the controller; this test sends the same hypothesis-generated JobSets to the real kube-apiserver of the e2e tier,
which calls the webhooks of the installed Deployment (``run.sh``: ``deploy/`` applied with kubectl, the pod run by
``tests/e2e/kubelet.py``, the Service routed to it). Every answer must be 2xx, or a 4xx ``Status``: a 422 names
a field under ``metadata`` or ``spec`` in every cause, a 400 says which field has the wrong type; never a 5xx,
which would also be what kube-apiserver answers when a webhook crashes or times out (``failurePolicy: Fail``).
In the first test an accepted JobSet is deleted at once (foreground), so the plane never holds hundreds of
generated Jobs. The second follows a sample through the installed controller: JobSets from
``plausible_jobsets`` (a valid skeleton under fuzzed policies, network, suspend, coordinator, managedBy, TTL ...)
whose pods KWOK can run to completion (the contract annotation ``run-seconds`` on the pod template) are created
together; each must reach the state its spec predicts — Completed (or removed by its TTL after finishing),
Suspended with every Job created suspended, or left alone (another ``managedBy``, or no replicas at all) — with
Jobs named ``<jobset>-<replicated job>-<index>`` and carrying the JobSet's labels and owner reference, no Warning
Event on the JobSet and no 5xx; then each is deleted (foreground) and its Jobs go with it.

The sizes are ``PYJOBSET_E2E_FUZZ_EXAMPLES`` (default 150 in CI) and ``PYJOBSET_E2E_FOLLOW_EXAMPLES`` (default
150 generated, about a third of them accepted and followed); ``scale_tests/bench_chaos.py`` runs the big one on
kubesim.
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.chaos.admission import BAD_REQUESTS, MANAGER, any_jobsets, fold_replicas, plausible_jobsets
from tests.e2e.kube import ApiError, Client

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get("PYJOBSET_E2E_ADMISSION") != "1", reason="needs the install of tests/e2e/run.sh (admission on)"
    ),
]

JSON = dict[str, Any]
EXAMPLES = int(os.environ.get("PYJOBSET_E2E_FUZZ_EXAMPLES", "150"))
FOLLOW_EXAMPLES = int(os.environ.get("PYJOBSET_E2E_FOLLOW_EXAMPLES", "150"))
FOLLOW_LIMIT = 240.0  # seconds for every followed JobSet to reach its predicted state (a bound, not a figure)
# kube-apiserver words a wrong JSON type in its own way besides Go's decoder message; both name the field.
REAL_BAD_REQUESTS = {**BAD_REQUESTS, "wrong type (apiserver)": r"json: cannot unmarshal|unmarshalerDecoder"}


def check_refusal(err: ApiError, obj: Any) -> None:
    """A refusal is a 4xx Status that says where the request is wrong."""
    body = err.body if isinstance(err.body, dict) else {}
    assert err.status < 500, f"HTTP {err.status} for {json.dumps(obj)[:2000]}: {err}"
    assert 400 <= err.status < 500, err
    assert body.get("kind") == "Status", err
    if err.status == 422:
        causes = (body.get("details") or {}).get("causes") or []
        # kube-apiserver adds a cause with field "<nil>" when it skipped the CRD's CEL rules because of earlier
        # errors ("some validation rules were not checked"); every other cause names the field.
        named = [c for c in causes if c.get("field") != "<nil>"]
        assert named, err
        for cause in named:
            assert str(cause.get("field", "")).startswith(("metadata", "spec")), err
    if err.status == 400:
        message = str(body.get("message"))
        assert any(re.search(p, message) for p in REAL_BAD_REQUESTS.values()), f"a 400 naming no field: {err}"


def test_generated_jobsets_get_2xx_or_a_4xx_naming_the_field(admin: Client, namespace: str) -> None:
    codes: Counter[int] = Counter()
    path = f"/apis/jobset.x-k8s.io/v1alpha2/namespaces/{namespace}/jobsets"

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(any_jobsets)
    def one(obj: Any) -> None:
        obj = fold_replicas(obj)
        if isinstance(obj, dict):
            obj.setdefault("apiVersion", "jobset.x-k8s.io/v1alpha2")
            obj.setdefault("kind", "JobSet")
        refused: ApiError | None = None
        try:
            created = admin.create(path, obj)
        except ApiError as err:
            refused = err
        if refused is not None:
            check_refusal(refused, obj)
            codes[refused.status] += 1
            return
        codes[201] += 1
        name = created["metadata"]["name"]
        admin.delete(f"{path}/{name}", {"propagationPolicy": "Foreground"})

    one()
    assert sum(codes.values()) >= EXAMPLES
    assert codes[201] > 0, f"nothing was accepted, so the webhooks' accepting path was never exercised: {codes}"
    assert codes[422] > 0, f"nothing was refused by validation: {codes}"


# --- followed through the installed controller ---------------------------------------------------------------

LABEL = "jobset.sigs.k8s.io/"
RUN_SECONDS = "sim.pyjobset.io/run-seconds"


@dataclass
class Followed:
    """One accepted JobSet, what its spec predicts, and what was seen of it."""

    name: str
    uid: str
    spec: JSON
    outcome: str  # "completed", "suspended", "foreign", "empty"
    last: JSON = field(default_factory=dict)
    gone: bool = False

    @property
    def expected_jobs(self) -> dict[str, tuple[str, int]]:
        """Job name -> (replicated job, index)."""
        return {
            f"{self.name}-{r['name']}-{i}": (r["name"], i)
            for r in self.spec["replicatedJobs"]
            for i in range(int(r.get("replicas", 1)))
        }

    def settled(self) -> bool:
        status = self.last.get("status") or {}
        if self.outcome == "completed":
            # A TTL may remove it once finished, possibly before we saw the Completed status.
            return status.get("terminalState") == "Completed" or (
                self.gone and self.spec.get("ttlSecondsAfterFinished") is not None
            )
        if self.outcome == "suspended":
            conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
            counts = {r.get("name"): r.get("suspended", 0) for r in status.get("replicatedJobsStatus") or []}
            return conditions.get("Suspended") == "True" and all(
                counts.get(r["name"], 0) == r.get("replicas", 1) for r in self.spec["replicatedJobs"]
            )
        return True  # left alone: checked once the others have settled (see the test)


def predict(created: JSON) -> str:
    """The state the spec leads to when every pod succeeds (KWOK runs each for ``run-seconds``)."""
    spec = created["spec"]
    if spec.get("managedBy", MANAGER) != MANAGER:
        return "foreign"  # another controller's: ours must not touch it
    if spec.get("suspend"):
        return "suspended"  # condition Suspended, every Job created suspended (none when there are no replicas)
    if sum(int(r.get("replicas", 1)) for r in spec["replicatedJobs"]) == 0:
        return "empty"  # no Job to create, and by the spec (4.6) it never completes
    return "completed"


def runnable(obj: JSON, index: int) -> JSON:
    """The generated JobSet with a name of its own and pods that KWOK completes one second after they start."""
    obj = copy.deepcopy(fold_replicas(obj))
    obj.update({"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet"})
    obj["metadata"] = {"name": f"fz-{index}"}
    for rjob in obj["spec"]["replicatedJobs"]:
        pod = rjob["template"]["spec"]["template"]
        pod.setdefault("metadata", {}).setdefault("annotations", {})[RUN_SECONDS] = "1"
    return obj


def _with_spec(**fields: Any) -> Any:
    def put(obj: JSON) -> JSON:
        return {**obj, "spec": {**obj["spec"], **fields}}

    return put


# Half as generated; a share forced suspended or handed to another controller, so every predicted state is met
# in a CI-sized sample (generated ``suspend``/``managedBy`` values are rarely both valid and set).
followed_jobsets = st.one_of(
    plausible_jobsets(),
    plausible_jobsets(),
    plausible_jobsets().map(_with_spec(suspend=True)),
    plausible_jobsets().map(_with_spec(managedBy="example.com/another-controller")),
)


def follow(admin: Client, path: str, followed: dict[str, Followed], limit: float) -> None:
    """Watch the namespace's JobSets (LIST, then WATCH from its resourceVersion) until each has settled."""
    deadline = time.monotonic() + limit
    while (remaining := deadline - time.monotonic()) > 0:
        listing = admin.get(path)
        present = {item["metadata"]["name"]: item for item in listing.get("items") or []}
        for f in followed.values():
            f.gone = f.name not in present
            f.last = present.get(f.name, f.last)
        if all(f.settled() for f in followed.values()):
            return
        query = {
            "watch": "1",
            "resourceVersion": listing["metadata"]["resourceVersion"],
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(max(1, int(remaining))),
        }
        try:
            for event in admin._watch(path, query, timeout=remaining + 5):
                if event["type"] == "ERROR":
                    break  # 410 Gone: list again
                obj = event["object"]
                seen = followed.get(obj.get("metadata", {}).get("name", ""))
                if seen is None or event["type"] == "BOOKMARK":
                    continue
                seen.last, seen.gone = obj, event["type"] == "DELETED"
                if all(x.settled() for x in followed.values()):
                    return
        except TimeoutError:
            break
    pending = {f.name: (f.outcome, f.gone, (f.last.get("status") or {})) for f in followed.values() if not f.settled()}
    raise AssertionError(f"not in the predicted state after {limit}s: {json.dumps(pending)[:4000]}")


def check_jobs(f: Followed, jobs: list[JSON]) -> None:
    """Jobs named ``<jobset>-<rjob>-<index>``, labelled and owned as the JobSet's; all of them when suspended."""
    expected = f.expected_jobs
    names = {j["metadata"]["name"] for j in jobs}
    assert names <= set(expected), f"{f.name}: Jobs the spec does not name: {sorted(names - set(expected))}"
    if f.outcome in ("foreign", "empty"):
        assert not jobs, f"{f.name} ({f.outcome}) got Jobs: {sorted(names)}"
        return
    if f.outcome == "suspended":
        assert names == set(expected), f"{f.name}: missing Jobs {sorted(set(expected) - names)}"
        assert all(j["spec"].get("suspend") is True for j in jobs), f"{f.name}: a Job of a suspended JobSet runs"
    elif not f.gone:
        assert jobs, f"{f.name}: Completed without a Job"
    for job in jobs:
        rjob, index = expected[job["metadata"]["name"]]
        labels = job["metadata"].get("labels") or {}
        want = {"jobset-name": f.name, "replicatedjob-name": rjob, "job-index": str(index), "restart-attempt": "0"}
        got = {k: labels.get(LABEL + k) for k in want}
        assert got == want, f"{job['metadata']['name']}: labels {got}, want {want}"
        owners = [o for o in job["metadata"].get("ownerReferences") or [] if o.get("controller")]
        assert [(o.get("kind"), o.get("name"), o.get("uid")) for o in owners] == [("JobSet", f.name, f.uid)], owners


@pytest.mark.timeout(600)
def test_accepted_jobsets_reach_the_state_their_spec_predicts(admin: Client, namespace: str) -> None:
    path = f"/apis/jobset.x-k8s.io/v1alpha2/namespaces/{namespace}/jobsets"
    jobs_path = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    followed: dict[str, Followed] = {}
    codes: Counter[int] = Counter()
    counter = iter(range(1_000_000))

    @settings(max_examples=FOLLOW_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(followed_jobsets)
    def one(obj: JSON) -> None:
        obj = runnable(obj, next(counter))
        try:
            created = admin.create(path, obj)
        except ApiError as err:
            check_refusal(err, obj)
            codes[err.status] += 1
            return
        codes[201] += 1
        name = created["metadata"]["name"]
        followed[name] = Followed(name, created["metadata"]["uid"], created["spec"], predict(created))

    one()
    outcomes = Counter(f.outcome for f in followed.values())
    print(
        f"\nfollowed {len(followed)} accepted JobSets of {sum(codes.values())}: {dict(outcomes)}, codes {dict(codes)}"
    )
    assert outcomes["completed"] > 0, outcomes
    assert outcomes["suspended"] > 0, outcomes

    follow(admin, path, followed, FOLLOW_LIMIT)

    jobs_by_owner: dict[str, list[JSON]] = {}
    for job in admin.get(jobs_path).get("items") or []:
        owner = (job["metadata"].get("labels") or {}).get(LABEL + "jobset-name", "")
        jobs_by_owner.setdefault(owner, []).append(job)
    events = admin.get(f"/api/v1/namespaces/{namespace}/events").get("items") or []
    for f in followed.values():
        check_jobs(f, jobs_by_owner.get(f.name, []))
        if f.outcome in ("foreign", "empty"):
            status = f.last.get("status") or {}
            assert not status.get("conditions"), f"{f.name} ({f.outcome}): {status}"
        warnings = [
            f"{e.get('reason')}: {e.get('message')}"
            for e in events
            if e.get("type") == "Warning" and (e.get("involvedObject") or {}).get("name") == f.name
        ]
        assert warnings == [], f"{f.name}: {warnings}"

    for f in followed.values():
        if not f.gone:
            admin.delete(f"{path}/{f.name}", {"propagationPolicy": "Foreground"})
    for f in followed.values():
        admin.wait_gone(f"{path}/{f.name}", timeout=120)
    for job in admin.get(jobs_path).get("items") or []:
        admin.wait_gone(f"{jobs_path}/{job['metadata']['name']}", timeout=120)
