"""Chaos benchmark (issue 13 items 5, 6, 8): the CI chaos suites at full size, with figures.

    crash   a JobSet of 2,000 Jobs on the simulated cluster: creation, 8 restarts, completion, with the controller
            process SIGKILLed at 6 seeded progress points per phase (54 kills) and restarted each time; every
            invariant of ``tests/chaos`` checked after every kill. ``--real``: also 10 kills on the real control
            plane (a 20-Job JobSet, 4 restarts; needs ``tests/e2e/build.sh``).
    storm   5 minutes of faults on about 10 % of the controller's API calls (429 + Retry-After, 500, 30 s hangs,
            watches dropped or ended with a 410; every watch stream also dropped every 2 s) while a 500-Job
            JobSet restarts and new JobSets arrive; then exact convergence. Controller CPU seconds (from its
            rusage) and API requests/s (its own ``rest_client_requests_total``) during the storm.
    fuzz    10,000 hypothesis-generated JobSets through kubesim's admission path with our webhooks (served by
            the controller process): codes, denials, accepted JobSets all reconciled, reconcile errors.

Writes ``scale_tests/results/bench_chaos.json`` and prints a summary. Never a pass/fail test, but a broken
invariant stops it with the assertion that failed. Run:
``.venv/bin/python -m scale_tests.bench_chaos [--only crash,real,storm,fuzz] [--jobs 2000] [--storm-seconds 300]
[--fuzz-examples 10000] [--real]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
JSON = dict[str, Any]


async def crash_sim(jobs: int, failures: int, kills_per_phase: int, seed: int) -> JSON:
    from tests.chaos.scenarios import sim_crash_run, sim_env

    with tempfile.TemporaryDirectory(prefix="bench-chaos-") as tmp:
        async with sim_env(Path(tmp)) as env:
            figures = await sim_crash_run(
                env, n=jobs, failures=failures, kills_per_phase=kills_per_phase, seed=seed, phase_timeout=900
            )
    return figures.as_dict()


async def crash_real(jobs: int, failures: int, kills_per_phase: int, seed: int) -> JSON:
    from cache.client import ApiClient, load_cluster_config, resource_path
    from tests.chaos.harness import JOBSETS, ControllerProcess, Tracker, big_jobset, follow_api
    from tests.chaos.scenarios import crash_run
    from tests.e2e.harness import REPO, ControlPlane, missing_binaries, rbac_manifests
    from tests.e2e.test_chaos import exit_pod

    if missing_binaries():
        return {"skipped": "control-plane binaries missing: run tests/e2e/build.sh"}
    with tempfile.TemporaryDirectory(prefix="bench-chaos-real-") as tmp, ControlPlane() as plane:
        plane.install_jobset_crd()
        kubeconfig = plane.service_account_kubeconfig(
            "jobset-system", "pyjobset-e2e", rbac_manifests(REPO / "deploy" / "rbac"), Path(tmp) / "ctl.kubeconfig"
        )
        ns = "chaos"
        plane.admin.create("/api/v1/namespaces", {"metadata": {"name": ns}})
        plane.admin.wait_for(
            f"/api/v1/namespaces/{ns}/serviceaccounts", lambda sa: sa["metadata"]["name"] == "default", timeout=60
        )
        proc = ControllerProcess(str(kubeconfig), Path(tmp))
        tracker = Tracker(ns, "crash")
        async with ApiClient(await load_cluster_config(str(plane.kubeconfig))) as api:

            async def create() -> None:
                await api.create(resource_path(*JOBSETS, ns), big_jobset("crash", jobs, max_restarts=failures))

            async def fail_job(job: str, counted: bool) -> None:  # a pod failure is always counted
                await exit_pod(api, ns, job, "1")

            async def complete_all(names: list[str]) -> None:
                await asyncio.gather(*(exit_pod(api, ns, j, "0") for j in names))

            async with follow_api(api, tracker):
                try:
                    figures = await crash_run(
                        tracker,
                        proc,
                        create,
                        fail_job,
                        complete_all,
                        n=jobs,
                        failures=failures,
                        kills_per_phase=kills_per_phase,
                        rng=random.Random(seed),
                        phase_timeout=600,
                    )
                finally:
                    proc.stop()
    return figures.as_dict()


async def storm(seconds: float, jobs: int, seed: int) -> JSON:
    from tests.chaos.scenarios import sim_env, storm_run

    with tempfile.TemporaryDirectory(prefix="bench-storm-") as tmp:
        async with sim_env(Path(tmp)) as env:
            figures = await storm_run(
                env,
                duration=seconds,
                n=jobs,
                extra_jobsets=max(4, int(seconds // 15)),
                failures=max(3, int(seconds // 20)),
                seed=seed,
                settle_timeout=600,
            )
    assert figures.requests <= figures.request_bound, figures
    return figures.as_dict()


def fuzz(examples: int) -> JSON:
    from tests.chaos.admission import FuzzCluster
    from tests.chaos.test_admission_fuzz import run_fuzz

    with tempfile.TemporaryDirectory(prefix="bench-fuzz-") as tmp:
        cluster = FuzzCluster(Path(tmp))
        try:
            t0 = time.monotonic()
            out = run_fuzz(cluster, examples)
            out["wall_s"] = round(time.monotonic() - t0, 1)
            out["controller_cpu_s"] = round(cluster.proc.live_cpu_seconds(), 2)
        finally:
            cluster.close()
    out["samples"] = out["samples"][:5]
    assert out["controller_alive"], out
    assert not out["not_reconciled"], out
    assert out["unexplained_reconcile_failures"] == {}, out
    return out


def main() -> None:
    from controller.cli import configure_logging

    configure_logging("warning")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="crash,storm,fuzz", help="sections: crash, real, storm, fuzz")
    parser.add_argument("--jobs", type=int, default=2000, help="Jobs in the crash JobSet (simulated)")
    parser.add_argument("--failures", type=int, default=8, help="restarts injected in the crash run")
    parser.add_argument("--kills-per-phase", type=int, default=6)
    parser.add_argument("--real", action="store_true", help="also 10 kills on the real control plane")
    parser.add_argument("--real-jobs", type=int, default=20)
    parser.add_argument("--storm-seconds", type=float, default=300.0)
    parser.add_argument("--storm-jobs", type=int, default=500)
    parser.add_argument("--fuzz-examples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    only = set(args.only.split(","))
    # Sections run separately (``--only``) add to the results of earlier runs rather than replace them.
    path = RESULTS / "bench_chaos.json"
    results: JSON = json.loads(path.read_text()) if path.exists() else {}
    results.setdefault("args", {})[",".join(sorted(only))] = vars(args)

    def report(key: str, value: JSON) -> None:
        results[key] = value
        print(json.dumps({key: value}), file=sys.stderr, flush=True)

    if "crash" in only:
        report("crash_sim", asyncio.run(crash_sim(args.jobs, args.failures, args.kills_per_phase, args.seed)))
    if "real" in only or args.real:
        report("crash_real", asyncio.run(crash_real(args.real_jobs, 4, 2, args.seed)))
    if "storm" in only:
        report("storm", asyncio.run(storm(args.storm_seconds, args.storm_jobs, args.seed)))
    if "fuzz" in only:
        report("fuzz", fuzz(args.fuzz_examples))
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    summary = {
        "kills survived (simulated)": results.get("crash_sim", {}).get("kills"),
        "kills survived (real plane)": results.get("crash_real", {}).get("kills"),
        "faults injected and survived": sum((results.get("storm", {}).get("faults") or {}).values()),
        "watch streams dropped": results.get("storm", {}).get("streams_dropped"),
        "storm controller CPU share": results.get("storm", {}).get("controller_cpu_share"),
        "storm requests/s": results.get("storm", {}).get("requests_per_s"),
        "fuzzed JobSets (accepted)": (results.get("fuzz", {}).get("examples"), results.get("fuzz", {}).get("accepted")),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
