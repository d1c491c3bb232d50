"""Controller-health metrics fed by hooks: reconciles, the real work queue, the REST client, leader, informers."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY, Histogram

from cache.store import Store
from metrics.hub import MetricsHub
from metrics.registry import SCRAPE_FAMILIES
from metrics.seam import WatchedInformers
from tools import synthetic as syn


def v(hub: MetricsHub, metric: str, /, **labels: str) -> float | None:
    return hub.registry.get_sample_value(metric, labels)


@pytest.mark.parametrize(
    ("results", "totals", "errors"),
    [
        (["success", "success"], {"success": 2}, 0),
        (["error", "success", "error"], {"error": 2, "success": 1}, 2),
        (["requeue_after"], {"requeue_after": 1}, 0),
    ],
)
def test_reconcile_counts_results_errors_and_times(results: list[str], totals: dict[str, int], errors: int) -> None:
    hub = MetricsHub()
    hub.reconcile.declare("jobset")
    for i, result in enumerate(results):
        hub.reconcile.reconcile_done("jobset", result, 0.002 * (i + 1))
    for result in ("success", "error", "requeue_after"):
        assert v(hub, "controller_runtime_reconcile_total", controller="jobset", result=result) == totals.get(result, 0)
    assert v(hub, "controller_runtime_reconcile_errors_total", controller="jobset") == errors
    assert v(hub, "controller_runtime_reconcile_time_seconds_count", controller="jobset") == len(results)
    expected_sum = sum(0.002 * (i + 1) for i in range(len(results)))
    assert v(hub, "controller_runtime_reconcile_time_seconds_sum", controller="jobset") == pytest.approx(expected_sum)


def test_rest_client_counts_by_code_method_and_host() -> None:
    hub = MetricsHub()
    hook = hub.rest_client("10.0.0.1:6443")
    for method, code in [("GET", 200), ("GET", 200), ("POST", 201), ("POST", 409), ("PUT", 0)]:
        hook(method, code)
    assert v(hub, "rest_client_requests_total", code="200", method="GET", host="10.0.0.1:6443") == 2
    assert v(hub, "rest_client_requests_total", code="409", method="POST", host="10.0.0.1:6443") == 1
    assert v(hub, "rest_client_requests_total", code="<error>", method="PUT", host="10.0.0.1:6443") == 1


def test_leader_status_goes_up_and_down() -> None:
    hub = MetricsHub()
    lead = hub.leader("6d4f6a47.jobset.x-k8s.io")
    assert v(hub, "leader_election_master_status", name="6d4f6a47.jobset.x-k8s.io") == 0
    lead.started_leading()
    assert v(hub, "leader_election_master_status", name="6d4f6a47.jobset.x-k8s.io") == 1
    lead.stopped_leading()
    assert v(hub, "leader_election_master_status", name="6d4f6a47.jobset.x-k8s.io") == 0


def test_informer_collector_reads_counters_sizes_and_sync_at_scrape_time() -> None:
    hub = MetricsHub()
    infs = syn.fake_informers()
    hub.add_informers(infs.values())
    infs["nodes"].upsert(syn.node("n0", "p"))
    infs["nodes"].upsert(syn.node("n1", "p"))
    infs["pods"].watch_restarts = 3
    infs["pods"].relists = 2
    infs["pods"].watch_events = 7
    infs["pods"].watch_bytes = 7000
    infs["jobs"].synced = False
    assert v(hub, "informer_cache_objects", resource="nodes") == 2
    assert v(hub, "informer_watch_restarts_total", resource="pods") == 3
    assert v(hub, "informer_relists_total", resource="pods") == 2
    assert v(hub, "informer_watch_events_total", resource="pods") == 7
    assert v(hub, "informer_watch_bytes_total", resource="pods") == 7000
    assert v(hub, "informer_synced", resource="jobs") == 0
    assert v(hub, "informer_synced", resource="jobsets") == 1


def test_watch_registers_informers_by_typed_handle() -> None:
    hub = MetricsHub()
    infs = syn.fake_informers()
    services = syn.FakeInformer("services", Store(lambda o: o.metadata.name))
    hub.watch(
        WatchedInformers(
            jobsets=infs["jobsets"], jobs=infs["jobs"], pods=infs["pods"], nodes=infs["nodes"], exported=[services]
        )
    )
    assert infs["jobsets"].handlers == [hub.tracker.on_jobset]
    assert infs["jobs"].handlers == [hub.tracker.on_job]
    assert infs["pods"].handlers == [hub.tracker.on_pod]
    assert infs["nodes"].handlers == []
    infs["nodes"].upsert(syn.node("n", "pool-x", gpus=8))
    assert v(hub, "jobset_gpu_allocatable", node_pool="pool-x") == 8
    assert v(hub, "informer_synced", resource="services") == 1
    assert v(hub, "informer_cache_objects", resource="nodes") == 1


def test_watched_informers_export_in_the_given_order_then_the_roles_left_out() -> None:
    infs = syn.fake_informers()
    w = WatchedInformers(
        jobsets=infs["jobsets"], jobs=infs["jobs"], pods=infs["pods"], exported=[infs["pods"], infs["jobsets"]]
    )
    assert [inf.name for inf in w.all()] == ["pods", "jobsets", "jobs"]


def test_watch_without_nodes_feeds_the_tracker_but_counts_no_gpus() -> None:
    hub = MetricsHub()
    infs = syn.fake_informers()
    hub.watch(WatchedInformers(jobsets=infs["jobsets"], jobs=infs["jobs"], pods=infs["pods"]))
    infs["nodes"].upsert(syn.node("n", "pool-x", gpus=8))
    assert v(hub, "jobset_gpu_allocatable", node_pool="pool-x") is None
    assert v(hub, "informer_synced", resource="nodes") is None
    infs["jobsets"].upsert(syn.jobset("train"))
    assert "default/train" in hub.tracker.views


async def test_controller_attach_metrics_plugs_every_hook_without_replacing_lists() -> None:
    from cache.client import ApiClient, ClusterConfig
    from controller.app import Controller
    from controller.settings import load_settings

    hub = MetricsHub()
    client = ApiClient(ClusterConfig(server="https://api.example:6443"))
    ctl = Controller(load_settings(overrides={"leader_election.leader_elect": False}), client, metrics_hub=hub)
    assert ctl.reconciler.observers == [hub.reconcile]
    assert ctl.reconciler.actor.observers == [hub.tracker]
    assert len(client.on_request) == 1
    client.on_request[0]("GET", 200)
    assert v(hub, "rest_client_requests_total", code="200", method="GET", host="api.example:6443") == 1
    assert ctl.queue.report_unfinished in hub.pre_scrape
    by_name = {inf.name: inf for inf in ctl.informers}
    assert by_name["jobsets"].handlers == [ctl.reconciler.on_jobset, hub.tracker.on_jobset]
    assert by_name["jobs"].handlers == [ctl.reconciler.on_owned, hub.tracker.on_job]
    assert by_name["pods"].handlers[-1] == hub.tracker.on_pod
    assert hub.tracker.on_pod not in by_name["nodes"].handlers
    assert v(hub, "informer_synced", resource="services") == 0
    assert v(hub, "controller_runtime_reconcile_total", controller="jobset", result="success") == 0
    text = hub.render_sync().decode()
    synced = [line for line in text.splitlines() if line.startswith("informer_synced{")]
    rows = [line.split('resource="')[1].split('"')[0] for line in synced]
    assert rows == [inf.name for inf in ctl.informers], "exported in the controller's informer order"


def test_registry_is_dedicated_and_every_metric_documented_with_explicit_buckets() -> None:
    hub = MetricsHub()
    hub.queue_metrics("jobset").added()
    assert REGISTRY.get_sample_value("workqueue_adds_total", {"name": "jobset"}) is None
    assert hub.registry.get_sample_value("workqueue_adds_total", {"name": "jobset"}) == 1
    names = [f.name for f in SCRAPE_FAMILIES]
    assert len(names) == len(set(names))
    assert all(f.help for f in SCRAPE_FAMILIES)
    for family in hub.registry.collect():
        assert family.documentation, family.name
    default = list(Histogram.DEFAULT_BUCKETS)
    histograms = [m for m in vars(hub.metrics).values() if isinstance(m, Histogram)]
    assert len(histograms) == 6
    for hist in histograms:
        assert list(hist._upper_bounds) != default, hist._name


def test_informers_for_metrics_adds_only_what_is_missing() -> None:
    from api import constants as c
    from cache.client import ApiClient, ClusterConfig
    from metrics.hub import informers_for_metrics

    client = ApiClient(ClusterConfig(server="http://127.0.0.1:1"))
    both = informers_for_metrics(client)
    assert [(i.name, i.label_selector) for i in both] == [("pods", c.JOBSET_NAME_KEY), ("nodes", None)]
    assert [i.name for i in informers_for_metrics(client, ["jobsets", "pods"])] == ["nodes"]
    assert informers_for_metrics(client, ["pods", "nodes"]) == []


FLEET_FAMILIES = {f.name for f in SCRAPE_FAMILIES if f.name.startswith("jobset_")} | {
    "jobset_terminal_outcomes",
    "jobset_startup_phase_seconds",
    "jobset_startup_seconds",
    "jobset_recovery_seconds",
    "jobset_metrics_jobsets_over_cap",
}
EVERY_REPLICA = {
    "controller_runtime_reconcile",
    "workqueue_depth",
    "rest_client_requests",
    "leader_election_master_status",
    "informer_synced",
    "informer_cache_objects",
}


def families(body: bytes) -> set[str]:
    """Family names in an exposition (counters without their ``_total``, as declared)."""
    return {line.split()[2].removesuffix("_total") for line in body.decode().splitlines() if line.startswith("# TYPE ")}


async def test_only_the_leader_exports_per_jobset_and_gpu_families() -> None:
    """A standby's caches see the same JobSets and GPUs as the leader's: it must not export them a second time."""
    time = syn.FakeTime()
    hub = MetricsHub(clock=time.clock)
    await syn.populate(hub, time)  # every family has data; populate leaves this process leading
    assert families(await hub.render()) >= FLEET_FAMILIES | EVERY_REPLICA

    lead = hub.leader(syn.LEASE)  # a replica that lost (or never won) the lease
    lead.stopped_leading()
    standby = families(await hub.render())
    assert standby & FLEET_FAMILIES == set()
    assert standby >= EVERY_REPLICA
    assert v(hub, "leader_election_master_status", name=syn.LEASE) == 0

    lead.started_leading()
    assert families(await hub.render()) >= FLEET_FAMILIES
    assert families(hub.render_sync()) >= FLEET_FAMILIES


async def test_without_leader_election_the_only_replica_exports_everything() -> None:
    time = syn.FakeTime()
    hub = MetricsHub(clock=time.clock)
    infs = syn.fake_informers()
    hub.watch(syn.watched(infs))
    assert {"jobset_state_count", "jobset_cluster_gpu_allocatable"} <= families(await hub.render())
    hub.leader(syn.LEASE)  # under election, a replica that has not won yet: standby
    assert "jobset_cluster_gpu_allocatable" not in families(await hub.render())
