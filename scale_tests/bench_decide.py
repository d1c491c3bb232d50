"""Micro-benchmark of the pure decision ``controller.decide.decide`` on large JobSets (goal P3 of performance.md).

Workload: one JobSet with a single replicated job of N = 1k / 5k / 15k single-pod Jobs (plus a 1-replica leader
rjob), decided in four states:
* ``steady``     every Job ready, nothing to do (the common reconcile: status unchanged, empty Plan);
* ``failure``    one Job failed: the failure policy bumps ``restarts`` (the pass that starts a restart);
* ``restart``    ``restarts`` bumped, every Job is previous-attempt: N foreground deletes are planned;
* ``recreate``   no Jobs left: N Job manifests are built (the creation pass of a restart or a new JobSet).
A second section times the steady-state *reconcile* (snapshot build from the Job store + ``decide``) twice in the
same run: ``full`` (no tally: every child is classified) and ``tally`` (the snapshot carries the incrementally kept
``cache.tally`` view, as the running controller builds it); the full pass is that figure's baseline.
A third section, ``restart_wait``, times a reconcile in the middle of a restart (every previous-attempt Job being
deleted, ten gone and re-created), with and without the tally: the pass a restart repeats for every Job event
(one Job is replaced before each pass, so no cached copy is reused). The steady ``tally`` figure reads an unchanged
store: since the store's owner-index tuple and the tally's attempt views are cached, it is the reconcile that
follows no child change (the echo of a status write); one after a Job change also copies that attempt's buckets.
Prints and writes JSON (µs per decide, best of several rounds) to ``scale_tests/results/bench_decide.json`` in
the common schema (``scale_tests/record.py``). There is no baseline: no other implementation of this decision
runs in Python (the reference is Go, inside its reconciler), so the file says ``baseline: null`` and why.
Figures are recorded, never asserted: this is not a timed test.
Run: ``.venv/bin/python -m scale_tests.bench_decide [--sizes 1000,5000,15000]``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api import constants as c  # noqa: E402
from api.jobset_types import JobSet  # noqa: E402
from api.plan import Snapshot  # noqa: E402
from api.records import Job  # noqa: E402
from cache.store import Store  # noqa: E402
from cache.tally import ChildTallies  # noqa: E402
from controller.decide import children  # noqa: E402
from controller.decide.reconcile import decide  # noqa: E402
from controller.reconciler import OWNER_INDEX, owner_uid_index  # noqa: E402
from scale_tests import record  # noqa: E402
from tests.builders import JobSetBuilder, failed_status, ready_status  # noqa: E402

NOW = dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)
SIZES = (1000, 5000, 15000)


def make_jobset(n: int, *, restarts: int = 0) -> JobSet:
    return (
        JobSetBuilder("big")
        .rjob("leader", 1)
        .rjob("workers", n)
        .set("spec.failurePolicy", {"maxRestarts": 10})
        .record(restarts=restarts)
    )


def make_jobs(js: JobSet) -> list[Job]:
    ready = ready_status()
    out = []
    for rjob in js.spec.replicated_jobs:
        for i in range(rjob.replicas):
            manifest = children.build_job(js, rjob, i)
            manifest["metadata"]["uid"] = f"uid-{i}-{rjob.name}"
            manifest["status"] = ready
            out.append(msgspec.convert(manifest, Job))
    return out


def timed(snap: Snapshot, rounds: int) -> tuple[float, Any]:
    best = float("inf")
    plan = None
    for _ in range(rounds):
        start = time.perf_counter()
        plan = decide(snap, NOW)
        best = min(best, time.perf_counter() - start)
    return best * 1e6, plan


def with_status_of(js: JobSet, plan: Any) -> JobSet:
    return msgspec.structs.replace(js, status=plan.status) if plan.status is not None else js


def bench(n: int) -> dict[str, Any]:
    rounds = 7 if n <= 5000 else 5
    js = make_jobset(n)
    jobs = make_jobs(js)
    # Settle the status (replicatedJobsStatus) so the steady state really is steady.
    _, first = timed(Snapshot(jobset=js, jobs=tuple(jobs), service_exists=True), 1)
    js = with_status_of(js, first)
    steady_us, steady = timed(Snapshot(jobset=js, jobs=tuple(jobs), service_exists=True), rounds)
    assert steady.is_empty, steady

    failed_job = msgspec.convert({**msgspec.to_builtins(jobs[-1]), "status": failed_status()}, Job)
    failing = (*jobs[:-1], failed_job)
    failure_us, failure = timed(Snapshot(jobset=js, jobs=failing, service_exists=True), rounds)
    assert failure.status is not None
    assert failure.status.restarts == 1

    restarted = with_status_of(js, failure)
    restart_us, restart = timed(Snapshot(jobset=restarted, jobs=failing, service_exists=True), rounds)
    assert len(restart.delete_jobs) == min(n + 1, c.MAX_CHILD_WRITES_PER_PASS)  # one bounded pass

    recreate_us, recreate = timed(Snapshot(jobset=restarted, jobs=(), service_exists=True), max(2, rounds // 2))
    assert len(recreate.create_jobs) == min(n + 1, c.MAX_CHILD_WRITES_PER_PASS)

    return {
        "jobs": n + 1,
        "steady_us": round(steady_us, 1),
        "failure_us": round(failure_us, 1),
        "restart_delete_us": round(restart_us, 1),
        "recreate_build_us": round(recreate_us, 1),
        "steady_us_per_job": round(steady_us / (n + 1), 3),
        "recreate_us_per_manifest": round(recreate_us / len(recreate.create_jobs), 3),
    }


def bench_reconcile(n: int) -> dict[str, Any]:
    """Steady state, snapshot build + decide: full pass vs tally, same Jobs, same store, same run."""
    rounds = 9 if n <= 5000 else 7
    js = make_jobset(n)
    tallies = ChildTallies(owner_uid_index)
    store: Store[Job] = Store(lambda j: j.key, {OWNER_INDEX: owner_uid_index}, listeners=[tallies])
    for job in make_jobs(js):
        store.upsert(job)
    uid = js.metadata.uid
    js = with_status_of(
        js, decide(Snapshot(jobset=js, jobs=tuple(store.by_index(OWNER_INDEX, uid)), service_exists=True), NOW)
    )

    def once(use_tally: bool) -> tuple[float, Any]:
        start = time.perf_counter()
        jobs = tuple(store.by_index(OWNER_INDEX, uid))
        tally = tallies.view(uid) if use_tally else None
        plan = decide(Snapshot(jobset=js, jobs=jobs, service_exists=True, tally=tally), NOW)
        return time.perf_counter() - start, plan

    out: dict[str, Any] = {"jobs": n + 1}
    for mode in ("full", "tally"):
        best = min((once(mode == "tally") for _ in range(rounds)), key=lambda r: r[0])
        elapsed, plan = best
        assert plan.is_empty, plan
        out[f"{mode}_ms"] = round(elapsed * 1e3, 3)
    out["speedup"] = round(out["full_ms"] / max(out["tally_ms"], 1e-6), 1)
    return out


def bench_restart_wait(n: int) -> dict[str, Any]:
    """A pass in the middle of a restart (issue 18): ``restarts`` bumped, every previous-attempt Job already being
    deleted (foreground) and ten of them gone, so the pass re-creates those ten. Snapshot build + decide, with the
    tally (as the controller runs it) and without (full pass), same store, same run."""
    rounds = 9 if n <= 5000 else 7
    js = make_jobset(n)
    tallies = ChildTallies(owner_uid_index)
    store: Store[Job] = Store(lambda j: j.key, {OWNER_INDEX: owner_uid_index}, listeners=[tallies])
    going = "2026-01-01T00:00:30Z"
    gone = {f"big-workers-{i}" for i in range(0, n, max(1, n // 10))}
    for job in make_jobs(js):
        if job.metadata.name not in gone:
            meta = msgspec.structs.replace(job.metadata, deletion_timestamp=going)
            store.upsert(msgspec.structs.replace(job, metadata=meta))
    js = msgspec.structs.replace(js, status=msgspec.structs.replace(js.status, restarts=1))
    uid = js.metadata.uid
    touched = store.index_tuple(OWNER_INDEX, uid)[-1]

    def once(use_tally: bool) -> tuple[float, Any]:
        # One Job event before each pass, as in a real restart: the changed attempt's buckets are copied again.
        store.upsert(msgspec.structs.replace(touched))
        start = time.perf_counter()
        jobs = store.index_tuple(OWNER_INDEX, uid)
        tally = tallies.view(uid) if use_tally else None
        plan = decide(Snapshot(jobset=js, jobs=jobs, service_exists=True, tally=tally), NOW)
        return time.perf_counter() - start, plan

    out: dict[str, Any] = {"jobs": n + 1, "missing": len(gone)}
    for mode in ("full", "tally"):
        elapsed, plan = min((once(mode == "tally") for _ in range(rounds)), key=lambda r: r[0])
        assert len(plan.create_jobs) == len(gone), plan
        assert not plan.delete_jobs
        out[f"{mode}_ms"] = round(elapsed * 1e3, 3)
    return out


NO_BASELINE = "no other implementation of this decision runs here (the reference's is Go code inside its reconciler)"


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    load_before = record.load_average()
    results = [bench(n) for n in sizes]
    reconcile = [bench_reconcile(n) for n in sizes]
    restart_wait = [bench_restart_wait(n) for n in sizes]
    big = results[-1]
    steady = reconcile[-1]
    figures = [
        record.figure(
            "P3",
            f"steady reconcile (snapshot from the Job store + decide) of a {steady['jobs']:,}-Job JobSet with the "
            "incremental tally, best of rounds",
            steady["tally_ms"],
            "ms",
            target=("<=", 2.0),
            target_text="≤ 2 ms per steady reconcile of a 15k-Job JobSet",
            baseline=(steady["full_ms"], "the same reconcile classifying every child (no tally), same run"),
            size=f"{steady['jobs']:,} Jobs",
        ),
        record.figure(
            "P3",
            f"pure decide() of a steady {big['jobs']:,}-Job JobSet (nothing to do), best of rounds; "
            "one part of a reconcile",
            round(big["steady_us"] / 1e3, 2),
            "ms",
            target=("<=", 2.0),
            target_text="≤ 2 ms per steady reconcile of a 15k-Job JobSet",
            baseline_reason=NO_BASELINE,
            size=f"{big['jobs']:,} Jobs",
        ),
        record.figure(
            "decide",
            f"pure decide() building {big['jobs']:,} Job manifests (a restart's re-creation pass)",
            round(big["recreate_build_us"] / 1e3, 1),
            "ms",
            baseline_reason=NO_BASELINE,
            size=f"{big['jobs']:,} Jobs",
        ),
    ]
    doc = record.document(
        "bench_decide",
        figures,
        load_before=load_before,
        workload="1 leader + N single-pod workers; steady (all ready), failure (1 failed), "
        "restart (all previous -> deletes), recreate (no Jobs -> N manifests); best of rounds",
        details={"sizes": sizes, "results": results, "steady_reconcile": reconcile, "restart_wait": restart_wait},
    )
    record.write(doc, command="python -m scale_tests.bench_decide --sizes " + args.sizes)
    print(json.dumps(doc, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
