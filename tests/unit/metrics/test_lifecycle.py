"""JobSet lifecycle metrics: restarts, start-up phases, recovery, terminal outcomes, per-JobSet state, caps.

Driven through the same hooks the controller uses (informer handlers, ``plan_applied``) on a fake clock.
"""

from __future__ import annotations

import pytest

from api import constants as c
from api.plan import Outcome, Plan
from metrics.hub import MetricsHub
from metrics.settings import OTHER_JOBSET, MetricsSettings
from tools import synthetic as syn


def make_hub(settings: MetricsSettings | None = None) -> tuple[MetricsHub, dict[str, syn.FakeInformer], syn.FakeTime]:
    t = syn.FakeTime()
    hub = MetricsHub(settings, clock=t.clock)
    infs = syn.fake_informers()
    hub.watch(syn.watched(infs))
    return hub, infs, t


def value(hub: MetricsHub, name: str, **labels: str) -> float | None:
    return hub.registry.get_sample_value(name, labels)


def test_scripted_life_counts_one_restart_with_its_labels() -> None:
    hub, infs, t = make_hub()
    syn.ScriptedLife(infs, hub.tracker, t).run()
    restart_labels = {
        "namespace": "team-a",
        "jobset_name": "train",
        "action": "RestartJobSet",
        "rule": "nodeFailure",
        "reason": "FailurePolicy_nodeFailure",
    }
    assert value(hub, "jobset_restarts_total", **restart_labels) == 1.0
    samples = [
        s for m in hub.registry.collect() if m.name == "jobset_restarts" for s in m.samples if s.name.endswith("_total")
    ]
    assert len(samples) == 1
    assert value(hub, "jobset_completed_total", jobset_name="train", namespace="team-a") == 1.0
    assert value(hub, "jobset_failed_total", jobset_name="train", namespace="team-a") is None
    assert (
        value(hub, "jobset_terminal_outcomes_total", namespace="team-a", state="Completed", reason="AllJobsCompleted")
        == 1
    )


@pytest.mark.parametrize(
    ("trigger", "phase", "seconds"),
    [
        ("create", "jobs_created", 2.0),
        ("create", "pods_scheduled", 3.0),
        ("create", "pods_running", 4.0),
        ("create", "pods_ready", 1.0),
        ("restart", "jobs_created", 2.0),
        ("restart", "pods_scheduled", 3.0),
        ("restart", "pods_running", 4.0),
        ("restart", "pods_ready", 1.0),
    ],
)
def test_scripted_life_times_each_start_up_phase(trigger: str, phase: str, seconds: float) -> None:
    hub, infs, t = make_hub()
    syn.ScriptedLife(infs, hub.tracker, t).run()
    labels = {"trigger": trigger, "phase": phase}
    assert value(hub, "jobset_startup_phase_seconds_count", **labels) == 1
    assert value(hub, "jobset_startup_phase_seconds_sum", **labels) == pytest.approx(seconds)


def test_scripted_life_observes_total_start_up_and_recovery() -> None:
    hub, infs, t = make_hub()
    syn.ScriptedLife(infs, hub.tracker, t).run()
    for trigger in ("create", "restart"):
        assert value(hub, "jobset_startup_seconds_count", namespace="team-a", trigger=trigger) == 1
        assert value(hub, "jobset_startup_seconds_sum", namespace="team-a", trigger=trigger) == pytest.approx(10.0)
    assert value(hub, "jobset_recovery_seconds_count", namespace="team-a", action="RestartJobSet") == 1
    assert value(hub, "jobset_recovery_seconds_sum", namespace="team-a", action="RestartJobSet") == pytest.approx(10.0)


def test_state_follows_the_story_and_series_vanish_on_delete() -> None:
    hub, infs, t = make_hub()
    life = syn.ScriptedLife(infs, hub.tracker, t)
    states = {}
    for step in life.steps():
        states[step] = [
            s.labels["state"]
            for m in hub.registry.collect()
            if m.name == "jobset_status"
            for s in m.samples
            if s.labels["jobset_name"] == "train"
        ]
    assert states == {
        "created": ["Starting"],
        "running": ["Running"],
        "failed": ["Starting"],
        "restarting": ["Restarting"],
        "recovered": ["Running"],
        "completed": ["Completed"],
    }
    t.advance(30)
    assert value(hub, "jobset_state_seconds", namespace="team-a", jobset_name="train", state="Completed") == 30
    infs["jobsets"].delete(life.js)
    names = {s.labels.get("jobset_name") for m in hub.registry.collect() for s in m.samples}
    assert "train" not in names


def test_idle_gpu_seconds_integrate_held_gpus_while_not_running() -> None:
    hub, infs, t = make_hub()
    syn.ScriptedLife(infs, hub.tracker, t).run()
    # 4 pods x 8 GPUs bound 5 s before ready (twice) = 2 x 160; 3 pods x 8 GPUs for the 1 s between the failure
    # and the restart decision = 24.
    assert value(hub, "jobset_gpu_idle_seconds_total", namespace="team-a", jobset_name="train") == pytest.approx(344)


def test_idle_gpu_seconds_include_the_open_interval_at_scrape_time() -> None:
    hub, infs, t = make_hub()
    life = syn.ScriptedLife(infs, hub.tracker, t, rjobs=(("w", 1, 1),), gpus_per_pod=4)
    life.nodes()
    infs["jobsets"].upsert(life.js)
    infs["pods"].upsert(syn.pod(life.js, "w", 0, 0, node="a3-pool-0", gpus=4))
    t.advance(7)
    assert value(hub, "jobset_gpu_idle_seconds_total", namespace="team-a", jobset_name="train") == pytest.approx(28)
    assert value(hub, "jobset_gpus_held", namespace="team-a", jobset_name="train") == 4


def test_failed_outcome_counts_exactly_once_per_applied_plan() -> None:
    hub, infs, _ = make_hub()
    js = syn.jobset("x", "ns1")
    infs["jobsets"].upsert(js)
    failed = syn.with_status(js, conditions=((c.COND_FAILED, "ReachedMaxRestarts"),))
    hub.tracker.plan_applied(js, Plan(outcome=Outcome("failed", "ReachedMaxRestarts"), status=failed.status))
    hub.tracker.plan_applied(js, Plan())  # a later plan without an outcome counts nothing
    infs["jobsets"].upsert(failed)
    assert value(hub, "jobset_failed_total", jobset_name="x", namespace="ns1") == 1
    assert (
        value(hub, "jobset_terminal_outcomes_total", namespace="ns1", state="Failed", reason="ReachedMaxRestarts") == 1
    )
    assert value(hub, "jobset_status", namespace="ns1", jobset_name="x", state="Failed") == 1


def test_milestones_reached_before_sync_are_not_timed() -> None:
    hub, infs, t = make_hub()
    for inf in infs.values():
        inf.synced = False
    life = syn.ScriptedLife(infs, hub.tracker, t, rjobs=(("w", 1, 2),))
    life.nodes()
    infs["jobsets"].upsert(life.js)
    infs["jobs"].upsert(syn.job(life.js, "w", 0))
    for r in range(2):
        infs["pods"].upsert(syn.pod(life.js, "w", 0, r, node=f"n{r}", phase="Running"))
    t.advance(600)
    for inf in infs.values():
        inf.synced = True
    hub.tracker.poll_synced()
    assert value(hub, "jobset_status", namespace="team-a", jobset_name="train", state="Starting") == 1
    t.advance(5)
    for r in range(2):
        infs["pods"].upsert(syn.pod(life.js, "w", 0, r, node=f"n{r}", phase="Running", ready=True))
    # pods_ready was witnessed but its start (pods_running) was not: no phase observation, but the total from
    # creation is exact because creationTimestamp is known.
    ready = {"trigger": "create", "phase": "pods_ready"}
    assert value(hub, "jobset_startup_phase_seconds_count", **ready) in (None, 0)
    assert value(hub, "jobset_startup_seconds_sum", namespace="team-a", trigger="create") == pytest.approx(605)
    assert value(hub, "jobset_status", namespace="team-a", jobset_name="train", state="Running") == 1


def test_created_suspended_starts_timing_at_resume() -> None:
    hub, infs, t = make_hub()
    js = syn.jobset("s", "ns", rjobs=(("w", 1, 1),), suspend=True)
    infs["jobsets"].upsert(js)
    assert value(hub, "jobset_status", namespace="ns", jobset_name="s", state="Suspended") == 1
    t.advance(100)
    import msgspec

    resumed = msgspec.structs.replace(js, spec=msgspec.structs.replace(js.spec, suspend=False))
    infs["jobsets"].upsert(resumed)
    t.advance(3)
    infs["jobs"].upsert(syn.job(js, "w", 0))
    infs["pods"].upsert(syn.pod(js, "w", 0, 0, node="n", phase="Running", ready=True))
    assert value(hub, "jobset_startup_seconds_sum", namespace="ns", trigger="resume") == pytest.approx(3)
    assert value(hub, "jobset_startup_seconds_count", namespace="ns", trigger="create") in (None, 0)


def test_restart_decided_by_another_leader_is_timed_from_the_status_event() -> None:
    hub, infs, t = make_hub()
    js = syn.jobset("r", "ns", rjobs=(("w", 1, 1),))
    infs["jobsets"].upsert(js)
    infs["jobs"].upsert(syn.job(js, "w", 0))
    infs["pods"].upsert(syn.pod(js, "w", 0, 0, node="n", phase="Running", ready=True))
    t.advance(50)
    infs["jobsets"].upsert(syn.with_status(js, restarts=1))
    assert value(hub, "jobset_status", namespace="ns", jobset_name="r", state="Restarting") == 1
    t.advance(4)
    infs["jobs"].upsert(syn.job(js, "w", 0, attempt=1))
    infs["pods"].upsert(syn.pod(js, "w", 0, 0, attempt=1, node="n", phase="Running", ready=True))
    assert value(hub, "jobset_recovery_seconds_sum", namespace="ns", action="unknown") == pytest.approx(4)
    # No restart counter: only applied plans count (D4 of behaviour.md); the other leader counted it.
    assert not [s for m in hub.registry.collect() if m.name == "jobset_restarts" for s in m.samples]


def test_pods_of_an_old_attempt_or_another_uid_do_not_count() -> None:
    hub, infs, _ = make_hub()
    js = syn.jobset("u", "ns", rjobs=(("w", 1, 1),), restarts=1)
    infs["jobsets"].upsert(js)
    infs["pods"].upsert(syn.pod(js, "w", 0, 0, attempt=0, node="n", phase="Running", ready=True))
    other = syn.jobset("u", "ns", uid="someone-else", rjobs=(("w", 1, 1),), restarts=1)
    infs["pods"].upsert(syn.pod(other, "w", 0, 1, attempt=1, node="n", phase="Running", ready=True))
    assert value(hub, "jobset_pods", namespace="ns", jobset_name="u", phase="ready") == 0
    infs["pods"].upsert(syn.pod(js, "w", 0, 2, attempt=1, node="n", phase="Running", ready=True))
    assert value(hub, "jobset_pods", namespace="ns", jobset_name="u", phase="ready") == 1


@pytest.mark.parametrize(
    ("settings", "own_series"),
    [
        pytest.param(MetricsSettings(max_jobsets=2), {"js-0", "js-1"}, id="capped-at-2"),
        pytest.param(MetricsSettings(per_jobset_series=False), set(), id="off"),
    ],
)
def test_per_jobset_series_are_capped(settings: MetricsSettings, own_series: set[str]) -> None:
    hub, infs, _ = make_hub(settings)
    jobsets = [syn.jobset(f"js-{i}", "ns", rjobs=(("w", 1, 1),)) for i in range(4)]
    for js in jobsets:
        infs["jobsets"].upsert(js)
        hub.tracker.plan_applied(js, Plan(outcome=Outcome("restarted", "r", action="RestartJobSet")))
    names = {s.labels["jobset_name"] for m in hub.registry.collect() for s in m.samples if "jobset_name" in s.labels}
    assert names == own_series | {OTHER_JOBSET}
    expected_other = 4 - len(own_series)
    other = {"namespace": "ns", "jobset_name": OTHER_JOBSET, "action": "RestartJobSet", "rule": "", "reason": "r"}
    assert value(hub, "jobset_restarts_total", **other) == expected_other
    assert value(hub, "jobset_metrics_jobsets_over_cap") == expected_other
    assert value(hub, "jobset_state_count", namespace="ns", state="Restarting") == 4


def test_a_freed_slot_is_reused_and_other_counters_stay_monotonic() -> None:
    hub, infs, t = make_hub(MetricsSettings(max_jobsets=1))
    a, b = syn.jobset("a", "ns", rjobs=(("w", 1, 1),)), syn.jobset("b", "ns", rjobs=(("w", 1, 1),))
    infs["jobsets"].upsert(a)
    infs["jobsets"].upsert(b)
    infs["pods"].upsert(syn.pod(b, "w", 0, 0, node="n", gpus=2))
    t.advance(10)
    key = {"namespace": "ns", "jobset_name": OTHER_JOBSET}
    assert value(hub, "jobset_gpu_idle_seconds_total", **key) == pytest.approx(20)
    infs["pods"].delete(syn.pod(b, "w", 0, 0))
    infs["jobsets"].delete(b)
    assert value(hub, "jobset_gpu_idle_seconds_total", **key) == pytest.approx(20)
    infs["jobsets"].delete(a)
    c_ = syn.jobset("c", "ns", rjobs=(("w", 1, 1),))
    infs["jobsets"].upsert(c_)
    assert value(hub, "jobset_status", namespace="ns", jobset_name="c", state="Starting") == 1


def test_own_restart_whose_watch_event_arrives_before_plan_applied_is_timed_fully() -> None:
    hub, infs, t = make_hub()
    js = syn.jobset("w", "ns", rjobs=(("w", 1, 1),))
    infs["jobsets"].upsert(js)
    infs["jobs"].upsert(syn.job(js, "w", 0))
    infs["pods"].upsert(syn.pod(js, "w", 0, 0, node="n", phase="Running", ready=True))
    t.advance(10)
    restarted = syn.with_status(js, restarts=1)
    infs["jobsets"].upsert(restarted)  # the acting layer was still recording events when the watch caught up
    outcome = Outcome("restarted", "FailurePolicy_r", action="RestartJobSet", rule="r")
    hub.tracker.plan_applied(js, Plan(outcome=outcome, status=restarted.status))
    t.advance(2)
    infs["jobs"].upsert(syn.job(js, "w", 0, attempt=1))
    t.advance(3)
    infs["pods"].upsert(syn.pod(js, "w", 0, 0, attempt=1, node="n", phase="Running", ready=True))
    jobs_created = {"trigger": "restart", "phase": "jobs_created"}
    assert value(hub, "jobset_startup_phase_seconds_sum", **jobs_created) == pytest.approx(2)
    assert value(hub, "jobset_recovery_seconds_sum", namespace="ns", action="RestartJobSet") == pytest.approx(5)
    assert value(hub, "jobset_recovery_seconds_count", namespace="ns", action="unknown") in (None, 0)


def test_per_job_restart_times_recovery_only_after_pods_are_ready_again() -> None:
    hub, infs, t = make_hub()
    js = syn.jobset("pj", "ns", rjobs=(("w", 2, 1),))
    infs["jobsets"].upsert(js)
    for i in range(2):
        infs["jobs"].upsert(syn.job(js, "w", i))
        infs["pods"].upsert(syn.pod(js, "w", i, 0, node="n", phase="Running", ready=True))
    t.advance(5)
    infs["pods"].upsert(syn.pod(js, "w", 1, 0, node="n", phase="Failed"))
    hub.tracker.plan_applied(js, Plan(outcome=Outcome("restarted", "r", action="RestartJob"), status=js.status))
    assert value(hub, "jobset_status", namespace="ns", jobset_name="pj", state="Restarting") == 1
    t.advance(4)
    infs["pods"].delete(syn.pod(js, "w", 1, 0))
    infs["pods"].upsert(syn.pod(js, "w", 1, 1, node="n", phase="Running", ready=True))
    assert value(hub, "jobset_recovery_seconds_sum", namespace="ns", action="RestartJob") == pytest.approx(4)
    assert value(hub, "jobset_startup_seconds_count", namespace="ns", trigger="restart") in (None, 0)


def test_a_jobset_recreated_under_the_same_name_starts_afresh() -> None:
    hub, infs, t = make_hub()
    old = syn.jobset("same", "ns", uid="uid-old", rjobs=(("w", 1, 1),))
    infs["jobsets"].upsert(old)
    hub.tracker.plan_applied(old, Plan(outcome=Outcome("restarted", "r", action="RestartJobSet")))
    t.advance(5)
    new = syn.jobset("same", "ns", uid="uid-new", rjobs=(("w", 1, 1),), created=t.now)
    infs["jobsets"].upsert(new)  # an update with another UID: a delete followed by a create
    assert not [s for m in hub.registry.collect() if m.name == "jobset_restarts" for s in m.samples]
    assert value(hub, "jobset_state_seconds", namespace="ns", jobset_name="same", state="Starting") == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"max_jobsets": -1}, {"gpu_resource": ""}, {"exposition": "fast"}, {"exposition_slice_seconds": 0}],
    ids=["negative-cap", "no-resource", "bad-mode", "zero-slice"],
)
def test_bad_settings_fail_at_construction(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="metrics:"):
        MetricsSettings(**kwargs)  # type: ignore[arg-type]


def test_badput_gpu_seconds_are_recovery_time_times_gpus_held() -> None:
    hub, infs, t = make_hub()
    syn.ScriptedLife(infs, hub.tracker, t).run()
    # One restart, recovered in 10 s (jobset_recovery_seconds), with 4 pods x 8 GPUs held once all were ready.
    assert value(hub, "jobset_recovery_seconds_sum", namespace="team-a", action="RestartJobSet") == pytest.approx(10)
    assert value(hub, "jobset_badput_gpu_seconds_total", namespace="team-a", jobset_name="train") == pytest.approx(320)


def test_badput_is_zero_without_restarts() -> None:
    hub, infs, t = make_hub()
    life = syn.ScriptedLife(infs, hub.tracker, t, rjobs=(("w", 1, 1),), gpus_per_pod=4)
    life.nodes()
    infs["jobsets"].upsert(life.js)
    infs["pods"].upsert(syn.pod(life.js, "w", 0, 0, node="a3-pool-0", gpus=4))
    assert value(hub, "jobset_badput_gpu_seconds_total", namespace="team-a", jobset_name="train") == 0
