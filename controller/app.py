"""Wiring of the controller process: client, informers, stores, queue, reconciler, actor, servers.

Role: build every long-lived object once from ``Settings`` and a ``ClusterConfig`` — informers for JobSets, their
Jobs and pods, Services and Nodes; the JobSet reconciler and the placement-repair controller; the metrics hub;
the admission server; the metrics/probe listeners — start the informers, wait for their first LIST, freeze the
heap (``gc.freeze``: 100k cached records are never scanned again by full collections), then run the workers
until ``stop`` is set. Invariants: informers run before workers; workers only run while this process leads
(when leader election is on); shutdown cancels every task it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import structlog

from api import constants as c
from api.extensions import Defaults
from api.jobset_types import JobSet, ObjectMeta
from api.records import Job, Node, Pod, Service
from cache.client import ApiClient, ClusterConfig, resource_path
from cache.errors import ApiError, NotFound
from cache.informer import HasMeta, Informer, Quarantined
from cache.leader import LeaderElectionConfig
from cache.leader_thread import ThreadedLeaderElector
from cache.queue import WorkQueue
from cache.store import Store
from cache.tally import ChildTallies
from controller.act import Actor
from controller.events import EventRecorder
from controller.placement import POD_INDEXERS, PlacementRepair
from controller.reconciler import (
    JOBSET_LABEL_INDEX,
    OWNER_INDEX,
    JobSetReconciler,
    jobset_label_index,
    owner_uid_index,
)
from controller.settings import Settings
from controller.webhooks.server import WebhookServer, build_webhook_server, run_webhooks
from metrics.auth import MetricsAuthorizer
from metrics.hub import MetricsHub, api_host
from metrics.seam import LeadershipObserver, WatchedInformers
from metrics.server import ObservabilityServer, self_signed_tls_context, tls_context_from_dir
from metrics.settings import MetricsSettings

log = structlog.get_logger("pyjobset.app")

R = TypeVar("R", bound=HasMeta)


UNDECODABLE_REASON = "UndecodableObject"
"""Reason of the Warning Event on a JobSet when it, or one of its Jobs or pods, cannot be decoded."""


def _ns_name(obj: Any) -> str:
    return f"{obj.metadata.namespace}/{obj.metadata.name}"


@dataclass
class Controller:
    """Every long-lived object of one controller process (see the module docstring)."""

    settings: Settings
    client: ApiClient
    metrics_hub: MetricsHub | None = None
    jobsets: Store[JobSet] = field(init=False)
    jobs: Store[Job] = field(init=False)
    job_tallies: ChildTallies = field(init=False)
    services: Store[Service] = field(init=False)
    pods: Store[Pod] = field(init=False)
    nodes: Store[Node] = field(init=False)
    informers: list[Informer[Any]] = field(init=False, default_factory=list)
    watched: WatchedInformers = field(init=False)
    queue: WorkQueue[str] = field(init=False)
    reconciler: JobSetReconciler = field(init=False)
    placement: PlacementRepair = field(init=False)
    ready: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    recorder: EventRecorder = field(init=False)
    _event_tasks: set[asyncio.Task[None]] = field(init=False, default_factory=set)
    _informer_tasks: list[asyncio.Task[Any]] = field(init=False, default_factory=list)

    def _informer(
        self, group: str, version: str, plural: str, record: type[R], store: Store[R], label_selector: str | None = None
    ) -> Informer[R]:
        """The informer that keeps ``store`` in sync with every ``plural`` object (of ``label_selector``)."""
        path = resource_path(group, version, plural)
        return Informer(self.client, path, record, store, name=plural, label_selector=label_selector)

    def __post_init__(self) -> None:
        s = self.settings
        hub = self.metrics_hub
        self.jobsets = Store(_ns_name)
        self.job_tallies = ChildTallies(owner_uid_index)
        self.jobs = Store(_ns_name, {OWNER_INDEX: owner_uid_index}, listeners=[self.job_tallies])
        self.services = Store(_ns_name, {OWNER_INDEX: owner_uid_index})
        self.pods = Store(_ns_name, {JOBSET_LABEL_INDEX: jobset_label_index, **POD_INDEXERS})
        self.nodes = Store(lambda n: n.metadata.name)
        js_inf = self._informer(c.GROUP, c.VERSION, c.PLURAL, JobSet, self.jobsets)
        # Jobs and pods: only those of JobSets (every child we create carries the jobset-name label), so the
        # rest of a large cluster costs no memory; children are still matched by owner UID (D5 of behaviour.md).
        job_inf = self._informer("batch", "v1", "jobs", Job, self.jobs, label_selector=c.JOBSET_NAME_KEY)
        svc_inf = self._informer("", "v1", "services", Service, self.services)
        pod_inf = self._informer("", "v1", "pods", Pod, self.pods, label_selector=c.JOBSET_NAME_KEY)
        node_inf = self._informer("", "v1", "nodes", Node, self.nodes)
        self.informers = [js_inf, job_inf, svc_inf, pod_inf, node_inf]
        self.watched = WatchedInformers(jobsets=js_inf, jobs=job_inf, pods=pod_inf, nodes=node_inf)
        self.queue = WorkQueue(
            name="jobset",
            metrics=hub.queue_metrics("jobset") if hub is not None else None,
            coalesce_window=s.pyjobset.pod_event_coalescing,
        )
        self.recorder = EventRecorder(self.client)
        actor = Actor(self.client, self.recorder, jobs=job_inf, jobsets=js_inf, services=svc_inf)
        self.reconciler = JobSetReconciler(
            jobsets=self.jobsets,
            jobs=self.jobs,
            services=self.services,
            actor=actor,
            queue=self.queue,
            gates=dict(s.feature_gates),
            pods=self.pods,
            extensions=Defaults(record_failures=s.pyjobset.record_failures, fail_fast=s.pyjobset.fail_fast),
            tallies=self.job_tallies,
            status_window=s.pyjobset.status_coalescing,
        )
        self.placement = PlacementRepair(
            self.pods,
            self.nodes,
            self.client,
            queue=WorkQueue(name="pod", metrics=hub.queue_metrics("pod") if hub is not None else None),
        )
        js_inf.add_handler(self.reconciler.on_jobset)
        job_inf.add_handler(self.reconciler.on_owned)
        svc_inf.add_handler(self.reconciler.on_owned)
        pod_inf.add_handler(self.placement.on_pod)
        if s.gate(c.GATE_IN_PLACE_RESTART):
            pod_inf.add_handler(self.reconciler.on_pod)  # only the in-place restart path reads pods
        for inf in self.informers:
            inf.on_quarantine.append(self.on_undecodable)
        if hub is not None:
            self.attach_metrics(hub)

    def attach_metrics(self, hub: MetricsHub, *, controller_name: str = "jobset") -> None:
        """Wire ``hub`` into this controller through the seam of ``metrics.seam`` (appending, never replacing).

        * the reconciler's ``ReconcileObserver`` (``controller_runtime_reconcile_*``, series declared at zero) and
          the acting layer's ``PlanObserver`` (restarts, terminal outcomes);
        * the API client's ``on_request`` (``rest_client_requests_total``, host from the client's server URL);
        * the informers by typed handle (``self.watched``: lifecycle tracker, GPU collector), and every other
          informer in ``self.informers`` for its health;
        * the queue's in-progress timers, reported before each scrape.

        The queue's ``workqueue_*`` hooks are given at construction (``WorkQueue(metrics=hub.queue_metrics(name))``)
        and leader election reports through ``hub.leader(name)``.
        """
        hub.reconcile.declare(controller_name)
        self.reconciler.observers.append(hub.reconcile)
        self.reconciler.actor.observers.append(hub.tracker)
        self.client.on_request.append(hub.rest_client(api_host(self.client.config.server)))
        hub.pre_scrape.append(self.queue.report_unfinished)
        hub.watch(replace(self.watched, exported=list(self.informers)))

    def informers_running(self) -> bool:
        """Liveness: every informer task is still running. Informers retry every error themselves, so one that
        ended can only come back with a new process (a stall they can recover from is a readiness matter)."""
        return not any(t.done() for t in self._informer_tasks)

    def informers_progressing(self) -> bool:
        """Readiness: no informer has gone ``stall_after`` seconds without progress (see ``cache.informer``)."""
        return not any(inf.stalled() for inf in self.informers)

    def on_undecodable(self, item: Quarantined) -> None:
        """An informer skipped an object it could not decode: tell the owning JobSet's users with a Warning
        Event (through the one event recorder), since the controller now works from a stale or missing view."""
        if item.resource == "jobsets":
            js: JobSet | None = JobSet(
                metadata=ObjectMeta(
                    name=item.name, namespace=item.namespace, uid=item.uid, resource_version=item.resource_version
                )
            )
            what = "this JobSet"
        else:
            js = self.jobsets.get(f"{item.namespace}/{item.jobset}") if item.jobset else None
            what = f"{item.kind or item.resource} {item.name}"
        if js is None:
            return
        kept = "its previous version is used until it changes" if item.stale_kept else "it is ignored until it changes"
        note = f"The controller cannot read {what} (resourceVersion {item.resource_version}); {kept}: {item.detail}"
        task = asyncio.get_running_loop().create_task(
            self.recorder.record(js, "Warning", UNDECODABLE_REASON, note), name="event:undecodable"
        )
        self._event_tasks.add(task)
        task.add_done_callback(self._event_tasks.discard)

    async def wait_synced(self) -> None:
        await asyncio.gather(*(inf.synced.wait() for inf in self.informers))

    async def run(
        self,
        stop: asyncio.Event,
        *,
        leading: Callable[[], Coroutine[Any, Any, None]] | None = None,
        workers: int | None = None,
    ) -> None:
        """Run until ``stop`` is set. ``leading`` (if given) returns once this process holds the lease.

        ``workers`` reconcile JobSets concurrently (default: ``controller.groupKindConcurrency``, 1 like the
        reference); the queue never gives one JobSet to two workers at a time.
        """
        if workers is None:
            workers = self.settings.controller.workers()
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(inf.run(), name=f"informer:{inf.name}") for inf in self.informers
        ]
        self._informer_tasks = tasks[:]
        stopper = asyncio.create_task(stop.wait(), name="stop")
        tasks.append(stopper)
        try:
            if not await _first(self.wait_synced(), stopper):
                return
            gc.collect()
            gc.freeze()
            log.info(
                "caches_synced",
                jobsets=len(self.jobsets),
                jobs=len(self.jobs),
                services=len(self.services),
                pods=len(self.pods),
                nodes=len(self.nodes),
            )
            self.ready.set()
            if leading is not None and not await _first(leading(), stopper):
                return
            tasks += [asyncio.create_task(self.reconciler.run_worker(), name=f"worker-{i}") for i in range(workers)]
            tasks.append(asyncio.create_task(self.placement.run(), name="placement"))
            await stopper
        finally:
            self.queue.shut_down()
            self.placement.queue.shut_down()
            self._informer_tasks = []
            tasks += self._event_tasks
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t


async def _first(work: Coroutine[Any, Any, None], stopper: asyncio.Task[Any]) -> bool:
    """Run ``work`` until it finishes (True) or ``stopper`` does first (False; ``work`` is cancelled)."""
    task = asyncio.create_task(work)
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False


class StartupError(Exception):
    """The controller cannot start (API server unreachable, CRD missing); the message says what to do."""


async def preflight(config: ClusterConfig) -> None:
    """Fail fast, with one actionable message, when the API server or the JobSet API is not there.

    Like controller-runtime's manager, which exits when it cannot build its REST mapping, rather than letting
    informers retry forever against a server that will never answer.
    """
    async with ApiClient(config, max_retries=3, request_timeout=10.0) as client:
        try:
            await client.get("/version")
        except ApiError as err:
            raise StartupError(f"cannot reach the API server at {config.server}: {err}") from err
        try:
            await client.get(f"/apis/{c.GROUP}/{c.VERSION}")
        except NotFound as err:
            raise StartupError(
                f"the API server does not serve {c.GROUP}/{c.VERSION}: install the JobSet CRD first "
                "(kubectl apply -f deploy/crd/)"
            ) from err
        except ApiError as err:
            raise StartupError(f"cannot read {c.GROUP}/{c.VERSION} from the API server: {err}") from err


class LeadershipLost(Exception):
    """The Lease was lost while leading: the process must exit (non-zero) so a fresh one can campaign."""


@dataclass
class Running:
    """What ``run_controller`` started, for a process that embeds it (``pyjobset up``) to wait on and report.

    Filled once the probe listeners are up (``started`` is then set): the controller (``ready`` = caches synced),
    the admission server (None with ``webhooks=False``; ``ready()`` and ``bound_port`` once it serves) and the
    metrics/probe listeners (``ports``).
    """

    controller: Controller | None = None
    webhooks: WebhookServer | None = None
    probes: ObservabilityServer | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)


async def run_controller(
    settings: Settings,
    config: ClusterConfig,
    stop: asyncio.Event,
    *,
    webhooks: bool = True,
    running: Running | None = None,
) -> None:
    """Entry point used by ``pyjobset run``, ``up`` and the demo (``running``, if given, is filled as it starts).

    Runs the controller, the metrics and probe listeners and (unless ``webhooks`` is False) the HTTPS admission
    server. With leader election on, caches sync at once (a standby is warm) and webhooks serve in every replica,
    but reconcile workers start only once this process holds the Lease; losing it stops everything at once and
    raises ``LeadershipLost``. The elector renews from a thread of its own with a client of its own
    (``cache.leader_thread``), so Lease renewals wait neither behind a burst of Job creates on the shared bucket
    nor behind a reconcile that holds this loop.
    """
    cc = settings.client_connection
    hub = MetricsHub(MetricsSettings())
    # Before any listener starts: under leader election a standby never exports the per-JobSet and GPU families.
    leader_metrics = (
        hub.leader(settings.leader_election.resource_name) if settings.leader_election.leader_elect else None
    )
    # Two clients: the controller's writes are fenced by leader election (``_run_with_election``); the admission
    # server serves, and manages its certificate, in every replica, so its client is never fenced.
    async with (
        ApiClient(config, qps=cc.qps, burst=cc.burst) as client,
        ApiClient(config, qps=cc.qps, burst=cc.burst) as webhook_client,
    ):
        controller = Controller(settings, client, metrics_hub=hub)
        side_tasks: list[asyncio.Task[Any]] = []
        readiness: dict[str, Callable[[], bool]] = {
            "caches-synced": controller.ready.is_set,
            "informers-progressing": controller.informers_progressing,
        }
        srv: WebhookServer | None = None
        if webhooks:
            webhook_client.on_request.append(hub.rest_client(api_host(config.server)))
            srv = build_webhook_server(
                settings, webhook_client, controller.pods, controller.nodes, jobsets=controller.jobsets
            )
            readiness["webhook-certs"] = srv.ready
            side_tasks.append(
                asyncio.create_task(
                    run_webhooks(settings, webhook_client, controller.pods, controller.nodes, stop, server=srv),
                    name="webhooks",
                )
            )
        probes = ObservabilityServer(
            render=hub.render,
            metrics_bind_address=settings.metrics.bind_address,
            health_bind_address=settings.health.health_probe_bind_address,
            readiness_checks=readiness,
            # /healthz is answered on the event loop, so a loop blocked for longer than the probe's timeout x
            # failureThreshold already fails it; beyond that only an informer that has ended is unrecoverable.
            liveness_checks={"informers-running": controller.informers_running},
            readiness_path=settings.health.readiness_endpoint_name,
            liveness_path=settings.health.liveness_endpoint_name,
            metrics_tls=_metrics_tls(settings),
            metrics_authorizer=MetricsAuthorizer(client) if settings.metrics.secure else None,
        )
        await probes.start()
        log.info("listening", **probes.ports)
        if running is not None:
            running.controller, running.webhooks, running.probes = controller, srv, probes
            running.started.set()
        try:
            await _run_with_election(settings, config, controller, leader_metrics, stop)
        finally:
            stop.set()
            for t in side_tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            await probes.stop()


def _metrics_tls(settings: Settings) -> ssl.SSLContext | None:
    """As the reference: the certDir's tls.crt/tls.key, else a self-signed certificate; None when not secure."""
    if settings.metrics.cert_dir:
        return tls_context_from_dir(settings.metrics.cert_dir)
    return self_signed_tls_context() if settings.metrics.secure else None


async def _run_with_election(
    settings: Settings,
    config: ClusterConfig,
    controller: Controller,
    leader_metrics: LeadershipObserver | None,
    stop: asyncio.Event,
) -> None:
    le = settings.leader_election
    if leader_metrics is None:
        await controller.run(stop)
        return
    # The renewer runs on a thread of its own with its own client (same TLS and credentials): a reconcile that
    # holds this loop for longer than the renew deadline cannot cost the Lease (``cache.leader_thread``).
    elector = ThreadedLeaderElector(
        config,
        LeaderElectionConfig(
            namespace=le.resource_namespace or settings.namespace,
            name=le.resource_name,
            lease_duration=le.lease_duration,
            renew_deadline=le.renew_deadline,
            retry_period=le.retry_period,
        ),
    )
    lost = False

    def on_stopped() -> None:
        nonlocal lost
        if not stop.is_set():
            lost = True
            log.error("leader_election_lost", lease=le.resource_name)
        controller.queue.shut_down()
        stop.set()

    elector.started_callbacks += [lambda: log.info("leader_elected", lease=le.resource_name)]
    elector.started_callbacks.append(leader_metrics.started_leading)
    elector.stopped_callbacks += [leader_metrics.stopped_leading, on_stopped]
    # No write leaves this process unless it leads with authority left: a leader frozen (SIGSTOP) past its
    # renew deadline wakes to refused writes (``cache.errors.Fenced``) while its elector notices the loss.
    controller.client.write_fence = elector.may_write
    campaign = asyncio.create_task(elector.run(), name="leader-election")
    try:
        await controller.run(stop, leading=elector.wait_leading)
    finally:
        campaign.cancel()  # releases the Lease on a clean shutdown
        with contextlib.suppress(asyncio.CancelledError):
            await campaign
    if lost:
        raise LeadershipLost(f"lost the lease {le.resource_name}")
