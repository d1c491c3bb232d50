"""Fuzzing through the real admission path (issue 13 item 8), simulated cluster.

Hypothesis-generated JobSets (the pure fuzz tests' strategies, plus valid skeletons under fuzzed policies) are
POSTed to kubesim's API server, which runs the CRD schema and calls our webhooks (registered by the
Mutating/ValidatingWebhookConfiguration objects of ``deploy/webhook``, served by the controller process itself).
Each is accepted or answered with a 4xx Status (a 422 names ``metadata``/``spec`` fields in every cause); never a
5xx or a crash. Every accepted JobSet is then acted on by the controller (its Jobs, or a condition, or left to
its ``managedBy``) with no reconcile error — but one, which the reference shares and which is reported: a JobSet
with no replicated jobs and a dotted name is admitted, and its headless Service can never be created (the
controller says so in a ``HeadlessServiceCreationFailed`` Event and backs off).
``PYJOBSET_FUZZ_ADMISSION_EXAMPLES`` sets the budget (CI: 300; ``scale_tests/bench_chaos.py`` runs 10,000).
See ``tests/chaos/admission.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.chaos.admission import FuzzCluster, any_jobsets
from tests.chaos.harness import total

EXAMPLES = int(os.environ.get("PYJOBSET_FUZZ_ADMISSION_EXAMPLES", "300"))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FuzzCluster]:
    fc = FuzzCluster(tmp_path)
    try:
        yield fc
    finally:
        fc.close()


def run_fuzz(cluster: FuzzCluster, examples: int) -> dict[str, Any]:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(obj=any_jobsets)
    def one(obj: Any) -> None:
        cluster.submit(obj)

    one()
    pending = cluster.wait_reconciled(limit=120)
    unexplained = cluster.unexplained_failures()
    metrics = cluster.proc.metrics()
    out = cluster.outcomes
    return {
        "examples": out.examples,
        "accepted": len(out.accepted),
        "codes": dict(out.codes),
        "denials": dict(out.reasons.most_common()),
        "bad_requests": dict(out.bad_requests),
        "not_reconciled": [(p, cluster.describe(*p)) for p in pending],
        "samples": out.samples,
        "reconcile_errors": total(metrics, "controller_runtime_reconcile_errors_total"),
        "jobsets_failing_as_in_the_reference": sorted(set(cluster.reconcile_failures()) - set(unexplained)),
        "unexplained_reconcile_failures": unexplained,
        "reconciles": total(metrics, "controller_runtime_reconcile_total", controller="jobset"),
        "controller_alive": cluster.proc.alive(),
    }


@pytest.mark.timeout(300)
def test_generated_jobsets_through_admission_and_the_controller(cluster: FuzzCluster) -> None:
    figures = run_fuzz(cluster, EXAMPLES)
    print(f"\nadmission fuzz (kubesim): {figures}")
    assert figures["controller_alive"], cluster.proc.tail()
    assert figures["accepted"] > 0, figures
    assert figures["not_reconciled"] == [], figures
    # Reconcile errors only where the reference fails the same way, and says so in an Event (see
    # FuzzCluster.unexplained_failures): anything else is a JobSet admitted that the controller cannot reconcile.
    assert figures["unexplained_reconcile_failures"] == {}, figures
    if not figures["jobsets_failing_as_in_the_reference"]:
        assert figures["reconcile_errors"] == 0, cluster.proc.tail()
