"""The HTTPS admission server: AdmissionReview v1 in, AdmissionReview out, for the four webhook paths.

Role: the second entry point of the controller (architecture.md). The API server POSTs an ``AdmissionReview``
to one of

* ``/mutate-jobset-x-k8s-io-v1alpha2-jobset`` — JobSet defaulting, CREATE only (a JSONPatch from
  ``jobset_defaults.defaulting_patch``; other operations are allowed untouched, see behaviour.md §0 / issue #926);
* ``/validate-jobset-x-k8s-io-v1alpha2-jobset`` — ``validate_create`` / ``validate_update``; a rejection carries
  the 422 ``Invalid`` Status with one cause per field error, so ``kubectl`` prints the reference's text;
* ``/mutate--v1-pod`` and ``/validate--v1-pod`` — exclusive placement (``pod_webhooks``), reading leaders and
  nodes from the controller's cache (:class:`CachePlacementLookup`).

Answers: a review that cannot be read at all (not JSON, wrong content type, no ``request``, no ``uid``) is an
HTTP 400 carrying an AdmissionReview whose response says why (controller-runtime answers such requests with
HTTP 200 and the 400 inside; the API server never sends them, so only other clients see the difference); a
readable review always gets HTTP 200 with ``allowed`` and, when denied, a ``status`` with the code (400 for an
object of the wrong shape, 403 for pod placement denials, 404 for a missing leader node, 422 for JobSet
validation). Bodies over ``max_body`` bytes get 413. An unexpected exception is logged and answered with a
denial of code 500 (never an HTTP 500), which the fuzz tests hold at zero.

TLS: 1.2 minimum (``tls.minVersion: VersionTLS13`` raises it), ``tls.cipherSuites`` given by their Go names
are mapped to OpenSSL's for TLS 1.2 (TLS 1.3 suites are fixed, as in Go), HTTP/1.1 only. The serving pair comes
from :mod:`controller.webhooks.certs` (internal management; imported only then, it needs ``cryptography``) or
:mod:`controller.webhooks.certfiles` and is re-loaded into the same ``SSLContext`` on rotation, so new
connections get the new certificate without a restart. The server starts listening only once a certificate is
loaded; ``ready()`` (for ``/readyz``) is false until then.

Invariants: handlers never write to the API (the PVC lookup of JobSet validation only reads); a request is
handled within the API server's timeout because every lookup is a cache read except the optional PVC GETs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import orjson
import structlog
from aiohttp import web

from api.jobset_types import JobSet
from api.jsontypes import JSON
from api.records import Node, Pod
from cache.client import ApiClient, resource_path
from cache.errors import NotFound
from cache.store import Store
from controller.placement import POD_NAME_INDEX
from controller.settings import Settings
from controller.webhooks.certfiles import FileCertSource

if TYPE_CHECKING:
    from controller.webhooks.certs import CertManager
from controller.webhooks.jobset_defaults import defaulting_patch
from controller.webhooks.jobset_validation import rejection_status, validate_create, validate_update
from controller.webhooks.pod_webhooks import Denial, JobSetLookup, PlacementLookup, mutate_pod, validate_pod

log = structlog.get_logger("pyjobset.webhooks")


MUTATE_JOBSET_PATH: Final = "/mutate-jobset-x-k8s-io-v1alpha2-jobset"
VALIDATE_JOBSET_PATH: Final = "/validate-jobset-x-k8s-io-v1alpha2-jobset"
MUTATE_POD_PATH: Final = "/mutate--v1-pod"
VALIDATE_POD_PATH: Final = "/validate--v1-pod"
MAX_BODY: Final = 8 * 1024 * 1024
"""An AdmissionReview carries the object and the old object (each up to etcd's ~1.5 MiB limit, as JSON)."""

# Go cipher-suite names (crypto/tls) → OpenSSL names, TLS 1.2 suites. The TLS 1.3 names are accepted and
# ignored, as Go does.
GO_CIPHERS: Final = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
}
TLS13_SUITES: Final = frozenset({"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"})


def server_tls_context(min_version: str = "", cipher_suites: Sequence[str] = ()) -> ssl.SSLContext:
    """A server context honouring the ``tls`` settings block (certificates are loaded separately)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3 if min_version == "VersionTLS13" else ssl.TLSVersion.TLSv1_2
    if min_version not in ("", "VersionTLS12", "VersionTLS13"):
        raise ValueError(f"tls.minVersion {min_version!r}: use VersionTLS12 or VersionTLS13")
    names = []
    for suite in cipher_suites:
        if suite in TLS13_SUITES:
            continue
        if suite not in GO_CIPHERS:
            raise ValueError(f"tls.cipherSuites: unknown or unsupported cipher suite {suite!r}")
        names.append(GO_CIPHERS[suite])
    if names:
        ctx.set_ciphers(":".join(names))
    ctx.set_alpn_protocols(["http/1.1"])  # HTTP/2 disabled, like the reference's webhook server
    return ctx


# --------------------------------------------------------------------------------------------- lookups


@dataclass(frozen=True)
class CachePlacementLookup:
    """``PlacementLookup`` over the controller's pod store (``POD_NAME_INDEX``) and node store."""

    pods: Store[Pod]
    nodes: Store[Node]

    def pods_named(self, namespace: str, base_name: str) -> Sequence[Pod]:
        return self.pods.by_index(POD_NAME_INDEX, f"{namespace}/{base_name}")

    def node(self, name: str) -> Node | None:
        return self.nodes.get(name)


@dataclass(frozen=True)
class CacheJobSetLookup:
    """``JobSetLookup`` over the controller's JobSet store (keyed ``namespace/name``)."""

    jobsets: Store[JobSet]

    def jobset(self, namespace: str, name: str) -> JobSet | None:
        return self.jobsets.get(f"{namespace}/{name}")


PvcGetter = Callable[[str, str], Awaitable[Mapping[str, Any] | None]]
"""``(namespace, name)`` → the PVC, ``None`` when absent; raises on other errors."""


def api_pvc_getter(client: ApiClient) -> PvcGetter:
    async def get(namespace: str, name: str) -> Mapping[str, Any] | None:
        try:
            return await client.get(resource_path("", "v1", "persistentvolumeclaims", namespace, name))
        except NotFound:
            return None

    return get


# --------------------------------------------------------------------------------------------- handlers


class _BadReview(ValueError):
    pass


def _response(uid: str, *, allowed: bool, status: JSON | None = None, patch: Sequence[JSON] = ()) -> JSON:
    out: JSON = {"uid": uid, "allowed": allowed}
    if status is not None:
        out["status"] = status
    if patch:
        out["patchType"] = "JSONPatch"
        out["patch"] = base64.b64encode(orjson.dumps(list(patch))).decode()
    return out


def _bad_request(message: str) -> JSON:
    return {"status": "Failure", "message": message, "reason": "BadRequest", "code": 400}


@dataclass
class AdmissionHandlers:
    """Turns one ``AdmissionReview`` request into a response, per webhook; no HTTP here."""

    gates: Mapping[str, bool]
    lookup: PlacementLookup
    pvc_getter: PvcGetter | None = None
    pvc_timeout: float = 5.0
    jobsets: JobSetLookup | None = None

    async def mutate_jobset(self, req: JSON) -> JSON:
        uid = req["uid"]
        if req.get("operation") != "CREATE":
            return _response(uid, allowed=True)
        obj = req.get("object")
        if not isinstance(obj, dict):
            return _response(uid, allowed=False, status=_bad_request("the request carries no JobSet object"))
        _, ops = defaulting_patch(obj)
        return _response(uid, allowed=True, patch=ops)

    async def validate_jobset(self, req: JSON) -> JSON:
        uid = req["uid"]
        op = req.get("operation")
        obj = req.get("object")
        if op == "CREATE":
            lookup = await self._pvc_lookup(obj, req)
            errors = validate_create(obj, self.gates, lookup)
        elif op == "UPDATE":
            errors = validate_update(obj, req.get("oldObject"), self.gates)
        else:
            return _response(uid, allowed=True)
        if not errors:
            return _response(uid, allowed=True)
        return _response(uid, allowed=False, status=rejection_status(obj, errors))

    async def _pvc_lookup(self, obj: Any, req: JSON) -> Callable[[str], Mapping[str, Any] | None] | None:
        """Pre-fetch the PVCs validation will ask about (only JobSets with volume claim policies have any)."""
        spec = obj.get("spec") if isinstance(obj, dict) else None
        policies = spec.get("volumeClaimPolicies") if isinstance(spec, dict) else None
        if self.pvc_getter is None or not isinstance(policies, list) or not policies:
            return None
        wanted: list[str] = []

        def record(name: str) -> None:
            wanted.append(name)

        validate_create(obj, self.gates, record)  # a dry pass only collects the PVC names it would read
        namespace = _namespace(req)
        getter = self.pvc_getter
        found: dict[str, Mapping[str, Any] | Exception | None] = {}

        async def fetch(name: str) -> None:
            try:
                found[name] = await getter(namespace, name)
            except Exception as err:  # noqa: BLE001 - any failure becomes the reference's internal error
                found[name] = err

        names = list(dict.fromkeys(wanted))
        try:
            # Stay well inside the API server's webhook timeout (10 s by default) whatever the client retries.
            async with asyncio.timeout(self.pvc_timeout):
                await asyncio.gather(*(fetch(n) for n in names))
        except TimeoutError:
            for name in names:
                found.setdefault(name, TimeoutError(f"no answer within {self.pvc_timeout:g}s"))

        def lookup(name: str) -> Mapping[str, Any] | None:
            value = found.get(name)
            if isinstance(value, Exception):
                raise value
            return value

        return lookup

    async def mutate_pod(self, req: JSON) -> JSON:
        uid = req["uid"]
        if req.get("operation") != "CREATE":
            return _response(uid, allowed=True)
        result = mutate_pod(req.get("object"), _namespace(req), self.lookup, self.jobsets)
        if result.denial is not None:
            return _response(uid, allowed=False, status=result.denial.status())
        return _response(uid, allowed=True, patch=result.patch)

    async def validate_pod(self, req: JSON) -> JSON:
        uid = req["uid"]
        if req.get("operation") != "CREATE":
            return _response(uid, allowed=True)
        denial: Denial | None = validate_pod(req.get("object"), _namespace(req), self.lookup)
        if denial is not None:
            return _response(uid, allowed=False, status=denial.status())
        return _response(uid, allowed=True)


def _namespace(req: JSON) -> str:
    ns = req.get("namespace")
    if isinstance(ns, str) and ns:
        return ns
    obj = req.get("object")
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    value = meta.get("namespace") if isinstance(meta, dict) else None
    return value if isinstance(value, str) else ""


def parse_review(body: bytes, content_type: str) -> tuple[str, JSON]:
    """(apiVersion, request) of an AdmissionReview; raises ``_BadReview`` (→ HTTP 400)."""
    if content_type != "application/json":
        raise _BadReview(f"contentType={content_type}, expected application/json")
    if not body:
        raise _BadReview("request body is empty")
    try:
        review = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise _BadReview(f"couldn't decode the AdmissionReview: {err}") from None
    if not isinstance(review, dict):
        raise _BadReview("the AdmissionReview is not a JSON object")
    api_version = review.get("apiVersion")
    if (
        api_version not in ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
        or review.get("kind") != "AdmissionReview"
    ):
        raise _BadReview("expected apiVersion admission.k8s.io/v1 and kind AdmissionReview")
    req = review.get("request")
    if not isinstance(req, dict) or not isinstance(req.get("uid"), str) or not req["uid"]:
        raise _BadReview("the AdmissionReview has no request with a uid")
    return str(api_version), req


Handler = Callable[[JSON], Awaitable[JSON]]


def _review_out(api_version: str, response: JSON) -> bytes:
    return orjson.dumps({"apiVersion": api_version, "kind": "AdmissionReview", "response": response})


RequestObserver = Callable[[str, int, float], None]
"""``(webhook path, HTTP status, seconds)`` after every request — controller-runtime's webhook metrics hook."""


def _endpoint(
    path: str, name: str, handler: Handler, observers: Sequence[RequestObserver]
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def serve(request: web.Request) -> web.Response:
        started = time.perf_counter()
        resp = await _answer(request, name, handler)
        for observe in observers:
            observe(path, resp.status, time.perf_counter() - started)
        return resp

    return serve


async def _answer(request: web.Request, name: str, handler: Handler) -> web.Response:
    body = await request.read()
    try:
        api_version, req = parse_review(body, request.content_type)
    except _BadReview as err:
        out = _review_out("admission.k8s.io/v1", _response("", allowed=False, status=_bad_request(str(err))))
        return web.Response(status=400, body=out, content_type="application/json")
    try:
        response = await handler(req)
    except RecursionError:
        response = _response(req["uid"], allowed=False, status=_bad_request("the object is nested too deeply"))
    except Exception:
        log.exception("webhook_handler_crashed", webhook=name, uid=req["uid"])
        status = {"status": "Failure", "message": "internal error in the webhook", "reason": "InternalError"}
        response = _response(req["uid"], allowed=False, status={**status, "code": 500})
    if not response.get("allowed"):
        log.debug("admission_denied", webhook=name, uid=req["uid"], code=response["status"].get("code"))
    return web.Response(body=_review_out(api_version, response), content_type="application/json")


def build_app(
    handlers: AdmissionHandlers, *, max_body: int = MAX_BODY, observers: Sequence[RequestObserver] = ()
) -> web.Application:
    app = web.Application(client_max_size=max_body)
    routes = (
        (MUTATE_JOBSET_PATH, "mjobset.kb.io", handlers.mutate_jobset),
        (VALIDATE_JOBSET_PATH, "vjobset.kb.io", handlers.validate_jobset),
        (MUTATE_POD_PATH, "mpod.kb.io", handlers.mutate_pod),
        (VALIDATE_POD_PATH, "vpod.kb.io", handlers.validate_pod),
    )
    for path, name, handler in routes:
        app.router.add_post(path, _endpoint(path, name, handler, observers))
    return app


# --------------------------------------------------------------------------------------------- server


CertSource: TypeAlias = "CertManager | FileCertSource"


@dataclass
class WebhookServer:
    """Certificate source + HTTPS listener (see the module docstring)."""

    handlers: AdmissionHandlers
    certs: CertSource
    host: str = ""
    port: int = 9443
    tls: ssl.SSLContext = field(default_factory=server_tls_context)
    max_body: int = MAX_BODY
    observers: list[RequestObserver] = field(default_factory=list)
    """Request hooks (metrics), read at every request. A 413 from the body limit is answered by aiohttp unseen."""
    bound_port: int = field(default=0, init=False)
    _runner: web.AppRunner | None = field(default=None, init=False)
    _cert_task: asyncio.Task[None] | None = field(default=None, init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _loaded: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def __post_init__(self) -> None:
        self.certs.listeners.append(self._load)

    def _load(self, crt: Path, key: Path) -> None:
        self.tls.load_cert_chain(crt, key)  # later handshakes use the new pair; open connections keep theirs
        self._loaded.set()
        log.info("webhook_cert_loaded", cert=str(crt))

    def ready(self) -> bool:
        """For ``/readyz``: a certificate is loaded and the listener is up."""
        return self._loaded.is_set() and self._runner is not None

    async def start(self, stop: asyncio.Event | None = None) -> bool:
        """Run the certificate source, wait for a certificate, then listen; False if ``stop`` came first."""
        self._cert_task = asyncio.create_task(self.certs.run(self._stop), name="webhook-certs")
        waiters = {asyncio.ensure_future(self._loaded.wait())}
        if stop is not None:
            waiters.add(asyncio.ensure_future(stop.wait()))
        _done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for w in pending:
            w.cancel()
        if not self._loaded.is_set():
            await self.stop()
            return False
        app = build_app(self.handlers, max_body=self.max_body, observers=self.observers)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host or None, self.port, ssl_context=self.tls, reuse_address=True)
        await site.start()
        addresses = runner.addresses  # this runner's one site: (host, port[, flowinfo, scope_id])
        self.bound_port = int(addresses[0][1]) if addresses else self.port
        self._runner = runner
        log.info("webhook_server_started", port=self.bound_port)
        return True

    async def stop(self) -> None:
        self._stop.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if self._cert_task is not None:
            task, self._cert_task = self._cert_task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def build_webhook_server(
    settings: Settings,
    client: ApiClient,
    pods: Store[Pod],
    nodes: Store[Node],
    *,
    host: str | None = None,
    port: int | None = None,
    cert_hosts: Sequence[str] = (),
    jobsets: Store[JobSet] | None = None,
) -> WebhookServer:
    """A server configured from the settings: webhook host/port/certDir, internalCertManagement, tls.

    ``cert_hosts`` adds SANs to the internally managed certificate (e.g. ``127.0.0.1`` when the API server
    reaches a controller running outside the cluster through a ``url`` clientConfig).
    """
    icm = settings.internal_cert_management
    certs: CertSource
    if icm.enable:
        from controller.webhooks.certs import CertManager  # cryptography: only for internal management

        certs = CertManager(
            client,
            namespace=settings.namespace,
            secret_name=icm.webhook_secret_name,
            service_name=icm.webhook_service_name,
            cert_dir=settings.webhook.cert_dir,
            extra_hosts=tuple(cert_hosts),
        )
    else:
        certs = FileCertSource(settings.webhook.cert_dir)
    handlers = AdmissionHandlers(
        gates=dict(settings.feature_gates),
        lookup=CachePlacementLookup(pods, nodes),
        pvc_getter=api_pvc_getter(client),
        jobsets=CacheJobSetLookup(jobsets) if jobsets is not None else None,
    )
    return WebhookServer(
        handlers,
        certs,
        host=settings.webhook.host if host is None else host,
        port=settings.webhook.port if port is None else port,
        tls=server_tls_context(settings.tls.min_version, settings.tls.cipher_suites),
    )


async def run_webhooks(
    settings: Settings,
    client: ApiClient,
    pods: Store[Pod],
    nodes: Store[Node],
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
    *,
    server: WebhookServer | None = None,
) -> None:
    """Serve admission until ``stop``; ``ready`` is set once certificates are loaded and the port listens."""
    srv = server or build_webhook_server(settings, client, pods, nodes)
    try:
        if not await srv.start(stop):
            return
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        await srv.stop()
