"""Crash suite (issue 13 item 5): SIGKILL the controller process anywhere in a JobSet's life and restart it.

A JobSet of ~100 Jobs on the simulated cluster goes through creation, two restarts (the second one by a failure
its policy does not count toward ``maxRestarts``) and completion; the
controller (``pyjobset run`` as its own process) is SIGKILLed at seeded points chosen by observed progress — after
k Jobs created, right after a restart was decided, after k old Jobs were marked for deletion, after k Jobs of
the new attempt were created — and started again each time. After every kill: never two Jobs for one (name,
restart attempt), no Job without its live owner, restart counters never ahead of the failures injected; after
every phase the counters are exact; the JobSet reaches Completed; Events stay within the bound in
``tests.chaos.scenarios`` (derived from the spec's event rules). The full size (2,000 Jobs, 50+ kills) is the
benchmark ``scale_tests/bench_chaos.py``; the real control plane's kills are in ``tests/e2e/test_chaos.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.scenarios import sim_crash_run, sim_env


@pytest.mark.timeout(240)
@pytest.mark.parametrize("seed", [13])
async def test_sigkills_during_creation_and_restarts_of_a_100_job_jobset(tmp_path: Path, seed: int) -> None:
    async with sim_env(tmp_path) as env:
        figures = await sim_crash_run(env, n=100, failures=2, kills_per_phase=3, seed=seed, phase_timeout=90)
    assert figures.kills == 9, figures
    assert figures.starts == 10, figures
    assert figures.counted == 1  # the second failure restarts without counting toward maxRestarts
    assert figures.terminal == "Completed"
    print(f"\ncrash suite (kubesim, 100 Jobs): {figures.as_dict()}")
