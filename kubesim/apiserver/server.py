"""The simulated API server's HTTP face: the Kubernetes REST API on 127.0.0.1.

Role: translate REST requests (paths, verbs, query parameters, content types, ``Accept`` for Table and
PartialObjectMetadata) into :class:`~kubesim.storage.store.Store` calls and their results into the exact wire
forms kube-apiserver sends: objects and lists as JSON, watch streams as newline-delimited JSON events, errors as
``Status`` bodies. Bodies and ``Accept`` come from :mod:`kubesim.apiserver.bodies`, discovery and OpenAPI from
:mod:`kubesim.apiserver.discovery`, tables from :mod:`kubesim.apiserver.tables`, watch streams from
:mod:`kubesim.apiserver.httpwatch`, fault injection from :mod:`kubesim.apiserver.faults`. Connections start on
the lean HTTP/1.1 front of :mod:`kubesim.apiserver.fastpath` (plain requests, :meth:`ApiServer.serve`), which
hands a connection to aiohttp (:meth:`ApiServer.handle`) for watches, injected faults and kubesim's own paths.

Invariants: every response to an API path is JSON; no exception escapes a handler: an :class:`ApiError` is the
client's (its Status, 4xx), anything else is a kubesim bug (a 500 ``InternalError`` Status and a logged stack
trace -- never a 4xx); LIST
responses are assembled from the stored bytes without decoding them; a watch event is serialised once for all
plain-JSON watchers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from aiohttp import web

from kubesim.apiserver import openapiv2pb, tables
from kubesim.apiserver.bodies import accepted_view, read_body, read_raw
from kubesim.apiserver.discovery import Discovery
from kubesim.apiserver.fastpath import FastRequest, FastServer
from kubesim.apiserver.faults import Faults, control, ended_watch, injected
from kubesim.apiserver.httputil import (
    MAX_BODY,
    HttpRequest,
    Target,
    aggregated_version,
    as_bool,
    error_response,
    json_response,
)
from kubesim.apiserver.httpwatch import serve_watch
from kubesim.apiserver.routing import Router
from kubesim.storage.objects import WARNINGS
from kubesim.storage.store import Store
from kubesim.util import errors
from kubesim.util.errors import ApiError
from kubesim.util.jsonutil import header_quoted

JSON = dict[str, Any]
log = logging.getLogger("kubesim.apiserver.server")

# Stores whose DELETE answers with the deleted object when it is removed at once (kube-apiserver's
# ``ReturnDeletedObject``); every other kind answers with a ``Status`` naming what was deleted.
_RETURNS_DELETED_OBJECT = frozenset(
    {
        ("", "pods"),
        ("", "services"),
        ("", "namespaces"),
        ("", "serviceaccounts"),
        ("", "persistentvolumes"),
        ("", "persistentvolumeclaims"),
        ("", "resourcequotas"),
        ("", "podtemplates"),
        ("storage.k8s.io", "csidrivers"),
        ("storage.k8s.io", "csinodes"),
        ("storage.k8s.io", "storageclasses"),
        ("storage.k8s.io", "volumeattachments"),
        ("storage.k8s.io", "volumeattributesclasses"),
        ("resource.k8s.io", "resourceclaims"),
        ("resource.k8s.io", "resourceclaimtemplates"),
        ("resource.k8s.io", "resourceslices"),
        ("resource.k8s.io", "deviceclasses"),
    }
)

__all__ = ["ApiServer"]


def _streaming(request: HttpRequest) -> web.Request:
    """A request whose answer is streamed (a WATCH) is aiohttp's: the fast path diverts every such request."""
    if not isinstance(request, web.Request):
        raise TypeError("a streamed response needs an aiohttp request")  # FastServer's divert() is wrong
    return request


class ApiServer:
    """aiohttp application serving one :class:`Store`."""

    def __init__(self, store: Store, *, bookmark_interval: float = 1.0) -> None:
        self.store = store
        self.discovery = Discovery(store.registry)
        self.router = Router(store.registry)
        self.faults = Faults()
        self.bookmark_interval = bookmark_interval
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self.fast: FastServer | None = None  # the connections' first protocol (kubesim.apiserver.fastpath)
        self._watch_tasks: set[asyncio.Task[Any]] = set()
        self.port = 0
        self.requests = 0
        self._openapi_v2_pb: tuple[bytes, bytes] | None = None  # (JSON document, its protobuf encoding)

    # ------------------------------------------------------------------------------------ lifecycle

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> int:
        """Listen on ``host``:``port`` (0: any free port); every connection starts on the fast path."""
        self._runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=0.5, handler_cancellation=True
        )
        await self._runner.setup()
        assert self._runner.server is not None  # set by setup()
        self.fast = FastServer(self._handle_fast, self._runner.server, self._divert, self._eager)
        self._listener = await asyncio.get_running_loop().create_server(self.fast, host, port, reuse_address=True)
        self.port = int(self._listener.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        self.store.drop_watches()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self.fast is not None:
            self.fast.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------------------------ dispatch

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """aiohttp's entry: fault injection and kubesim's control paths, then the API (:meth:`serve`)."""
        self.requests += 1
        try:
            path = request.path
            if self.faults.latency and path.startswith(("/api", "/apis")):
                await asyncio.sleep(self.faults.latency)
            if self.faults.active() and path.startswith(("/api/", "/apis/")):
                fault = self.faults.draw(request, watch=request.method == "GET" and as_bool(request.query.get("watch")))
                if fault in ("429", "500", "422"):
                    return error_response(injected(self.faults, int(fault)))
                if fault == "hang":
                    await asyncio.sleep(self.faults.hang_seconds)
                elif fault is not None:
                    return ended_watch(fault)
            if path.startswith("/kubesim/"):
                return await control(self.faults, self.store, request)
        except ApiError as err:
            return error_response(err)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a bug in kubesim must not take the server down
            log.exception("unexpected error serving %s %s", request.method, request.path)
            return error_response(errors.internal(f"{type(exc).__name__}: {exc}"))
        return await self.serve(request)

    async def _handle_fast(self, request: FastRequest) -> web.StreamResponse:
        """The fast path's entry (no faults are injected and the request is no watch: see :meth:`_divert`)."""
        self.requests += 1
        return await self.serve(request)

    async def serve(self, request: HttpRequest) -> web.StreamResponse:
        """One Kubernetes API request, from aiohttp or from the fast path: documents, then the REST verbs."""
        try:
            doc = self._doc_path(request)
            if doc is not None:
                return doc
            target = self.router.resolve(request.path)
            return await self._dispatch(request, target)
        except ApiError as err:
            log.debug("%s %s -> %d %s", request.method, request.path_qs, err.code, err.message)
            return error_response(err)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a bug in kubesim must not take the server down
            log.exception("unexpected error serving %s %s", request.method, request.path)
            return error_response(errors.internal(f"{type(exc).__name__}: {exc}"))

    def _eager(self) -> bool:
        """Whether a fast-path request may start outside a task: only while no admission webhook is configured
        and no hook but the webhook caller is installed (calling a webhook needs a task: aiohttp's client
        timeouts); anything else that waits is resumed in a task from its first wait on."""
        hooks = self.store.hooks
        caller = hooks.webhooks
        for hook in (*hooks.mutating, *hooks.validating):
            if getattr(hook, "__self__", None) is not caller:
                return False
        store = self.store
        return not (
            store.bucket(store.info("mutatingwebhookconfigurations")).objects
            or store.bucket(store.info("validatingwebhookconfigurations")).objects
        )

    def _divert(self, request: FastRequest) -> bool:
        """Requests the fast path leaves to aiohttp: injected faults or latency, watches, kubesim's own paths."""
        if self.faults.latency or self.faults.active() or request.path.startswith("/kubesim/"):
            return True
        return request.method == "GET" and "watch" in request.query_string and as_bool(request.query.get("watch"))

    def _doc_path(self, request: HttpRequest) -> web.StreamResponse | None:
        path = request.path.rstrip("/") or "/"
        if path in ("/healthz", "/readyz", "/livez"):
            return web.Response(text="ok")
        if request.method != "GET":
            return None
        if path in ("/api", "/apis"):
            wanted = aggregated_version(request.headers.get("Accept", ""))
            if wanted is not None:
                doc = self.discovery.aggregated(path, wanted)
                if doc is not None:
                    ctype = f"application/json;g=apidiscovery.k8s.io;v={wanted};as=APIGroupDiscoveryList"
                    return web.Response(body=doc, headers={"Content-Type": ctype})
        if path.startswith("/openapi/") or path in ("/api", "/apis", "/version") or path.count("/") <= 3:
            body = self.discovery.get(path)
            if body is not None and path == "/openapi/v2":
                return self._openapi_v2(body, request.headers.get("Accept", ""))
            if body is not None:
                if path == "/api":
                    doc = orjson.loads(body)
                    doc["serverAddressByClientCIDRs"][0]["serverAddress"] = f"127.0.0.1:{self.port}"
                    body = orjson.dumps(doc)
                return json_response(body)
        return None

    def _openapi_v2(self, body: bytes, accept: str) -> web.Response:
        """JSON or gnostic protobuf by ``Accept``, as kube-apiserver answers; 406 when neither is acceptable."""
        wanted = openapiv2pb.negotiate(accept)
        if wanted == "json":
            return json_response(body)
        if wanted is None:
            return web.Response(status=406, text="")
        if self._openapi_v2_pb is None or self._openapi_v2_pb[0] is not body:
            self._openapi_v2_pb = (body, openapiv2pb.encode_document(orjson.loads(body)))
        return web.Response(body=self._openapi_v2_pb[1], headers={"Content-Type": openapiv2pb.MEDIA_TYPE})

    async def _dispatch(self, request: HttpRequest, t: Target) -> web.StreamResponse:
        m = request.method
        q = request.query
        if m == "GET":
            if t.name is None or (as_bool(q.get("watch")) and t.name is None):
                if as_bool(q.get("watch")):
                    return await serve_watch(self.store, self.bookmark_interval, _streaming(request), t)
                return self._list(request, t)
            if as_bool(q.get("watch")):
                return await serve_watch(self.store, self.bookmark_interval, _streaming(request), t, name=t.name)
            return self._get(request, t)
        if m == "POST":
            if t.name is not None and t.subresource == "binding":
                return await self._bind(request, t)
            if t.name is not None and t.subresource == "eviction":
                return await self._evict(request, t)
            if t.name is not None:
                raise errors.method_not_allowed()
            return await self._create(request, t)
        if m == "PUT":
            if t.name is None:
                raise errors.method_not_allowed()
            return await self._update(request, t)
        if m == "PATCH":
            if t.name is None:
                raise errors.method_not_allowed()
            return await self._patch(request, t)
        if m == "DELETE":
            if t.name is None:
                return await self._delete_collection(request, t)
            return await self._delete(request, t)
        raise errors.method_not_allowed()

    # ------------------------------------------------------------------------------------ bodies

    def _dry_run(self, request: HttpRequest) -> bool:
        vals = request.query.getall("dryRun", [])
        for v in vals:
            if v != "All":
                raise errors.bad_request(f'Invalid dryRun value "{v}": supported values: "All"')
        return bool(vals)

    def _warnings(self, warnings: list[str]) -> dict[str, str]:
        if not warnings:
            return {}
        return {"Warning": ", ".join(f"299 - {header_quoted(w)}" for w in warnings)}

    # ------------------------------------------------------------------------------------ reads

    def _get(self, request: HttpRequest, t: Target) -> web.StreamResponse:
        assert t.name is not None
        entry = self.store.get_entry(t.info, t.name, t.namespace)
        raw = self.store.serve_raw(t.info, entry.raw, t.version)
        as_ = accepted_view(request)
        if as_ == "Table":
            obj = orjson.loads(raw)
            tab = tables.table(
                t.info,
                t.version,
                [obj],
                request.query.get("includeObject", "Metadata"),
                {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
            )
            return json_response(orjson.dumps(tab))
        if as_ == "PartialObjectMetadata":
            obj = orjson.loads(raw)
            return json_response(
                orjson.dumps(
                    {
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": obj.get("metadata", {}),
                    }
                )
            )
        return json_response(raw)

    def _list(self, request: HttpRequest, t: Target) -> web.StreamResponse:
        q = request.query
        try:
            limit = int(q.get("limit", "0") or 0)
        except ValueError:
            raise errors.bad_request(f"invalid limit: {q.get('limit')}") from None
        page = self.store.list_page(
            t.info,
            t.namespace,
            q.get("labelSelector"),
            q.get("fieldSelector"),
            max(0, limit),
            q.get("continue") or None,
        )
        meta: JSON = {"resourceVersion": page.resource_version}
        if page.continue_token:
            meta["continue"] = page.continue_token
            if page.remaining is not None:
                meta["remainingItemCount"] = page.remaining
        items = (
            [self.store.serve_raw(t.info, raw, t.version) for raw in page.items]
            if (t.info.from_storage is not None or t.version != t.info.version)
            else page.items
        )
        as_ = accepted_view(request)
        if as_ == "Table":
            objs = [orjson.loads(r) for r in items]
            tab = tables.table(t.info, t.version, objs, q.get("includeObject", "Metadata"), meta)
            return json_response(orjson.dumps(tab))
        if as_ in ("PartialObjectMetadataList", "PartialObjectMetadata"):
            objs = [
                {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": orjson.loads(r).get("metadata", {}),
                }
                for r in items
            ]
            return json_response(
                orjson.dumps(
                    {
                        "kind": "PartialObjectMetadataList",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": meta,
                        "items": objs,
                    }
                )
            )
        head = orjson.dumps(
            {"kind": t.info.list_kind, "apiVersion": t.info.api_version_for(t.version), "metadata": meta}
        )
        body = head[:-1] + b',"items":[' + b",".join(items) + b"]}"
        return json_response(body)

    # ------------------------------------------------------------------------------------ watch

    # ------------------------------------------------------------------------------------ writes

    def _out(self, t: Target, obj: JSON, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        obj = self.store.view(t.info, obj, t.version) if t.version != t.info.version else obj
        return json_response(orjson.dumps(obj), status, headers)

    async def _create(self, request: HttpRequest, t: Target) -> web.StreamResponse:
        body = await read_body(request)
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request was not a JSON object")
        warnings = WARNINGS.set([])
        try:
            obj = await self.store.create(
                t.info,
                body,
                t.namespace,
                dry_run=self._dry_run(request),
                field_manager=request.query.get("fieldManager"),
                field_validation=request.query.get("fieldValidation"),
                owned=True,
            )
            return self._out(t, obj, 201, self._warnings(warnings.var.get() or []))
        finally:
            WARNINGS.reset(warnings)

    async def _update(self, request: HttpRequest, t: Target) -> web.StreamResponse:
        assert t.name is not None
        body = await read_body(request)
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request was not a JSON object")
        if t.subresource == "finalize":
            return self._out(t, await self._finalize(t, body))
        warnings = WARNINGS.set([])
        try:
            obj = await self.store.update(
                t.info,
                body,
                t.namespace,
                subresource=t.subresource,
                dry_run=self._dry_run(request),
                name=t.name,
                field_manager=request.query.get("fieldManager"),
                field_validation=request.query.get("fieldValidation"),
                owned=True,
            )
            return self._out(t, obj, 200, self._warnings(warnings.var.get() or []))
        finally:
            WARNINGS.reset(warnings)

    async def _finalize(self, t: Target, body: JSON) -> JSON:
        assert t.name is not None
        spec_fins = (body.get("spec") or {}).get("finalizers") or []

        def build(old: JSON) -> JSON:
            old.setdefault("spec", {})["finalizers"] = spec_fins
            return old

        return await self.store.update_fn(t.info, t.name, None, build)

    async def _patch(self, request: HttpRequest, t: Target) -> web.StreamResponse:
        assert t.name is not None
        ctype = (request.content_type or "").lower()
        types = {
            "application/merge-patch+json": "merge",
            "application/json-patch+json": "json",
            "application/strategic-merge-patch+json": "strategic",
            "application/apply-patch+yaml": "apply",
            "application/apply-patch+json": "apply",
        }
        ptype = types.get(ctype)
        if ptype is None:
            raise ApiError(
                errors.status(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media "
                    f"types include: {', '.join(types)}",
                )
            )
        patch = await read_body(request)
        existed = t.subresource != "" or ptype != "apply" or self._exists(t)
        warnings = WARNINGS.set([])
        try:
            obj = await self.store.patch(
                t.info,
                t.name,
                patch,
                t.namespace,
                patch_type=ptype,
                subresource=t.subresource,
                dry_run=self._dry_run(request),
                field_manager=request.query.get("fieldManager"),
                force=as_bool(request.query.get("force")),
                field_validation=request.query.get("fieldValidation"),
            )
            return self._out(t, obj, 200 if existed else 201, self._warnings(warnings.var.get() or []))
        finally:
            WARNINGS.reset(warnings)

    def _exists(self, t: Target) -> bool:
        assert t.name is not None
        try:
            self.store.get_entry(t.info, t.name, t.namespace)
        except ApiError:
            return False
        return True

    def _delete_options(self, request: HttpRequest, body: Any) -> JSON:
        opts: JSON = body if isinstance(body, dict) else {}
        q = request.query
        if "propagationPolicy" in q:
            opts["propagationPolicy"] = q["propagationPolicy"]
        if "gracePeriodSeconds" in q:
            try:
                opts["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
            except ValueError:
                raise errors.bad_request("invalid gracePeriodSeconds") from None
        if "orphanDependents" in q:
            opts["orphanDependents"] = as_bool(q["orphanDependents"])
        if q.getall("dryRun", []):
            opts["dryRun"] = ["All"]
        return opts

    async def _delete_body(self, request: HttpRequest) -> Any:
        if request.can_read_body:
            raw = await read_raw(request)
            if raw.strip():
                try:
                    return orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from None
        return None

    async def _delete(self, request: HttpRequest, t: Target) -> web.StreamResponse:
        assert t.name is not None
        opts = self._delete_options(request, await self._delete_body(request))
        obj, gone = await self.store.delete_ex(
            t.info,
            t.name,
            t.namespace,
            propagation_policy=opts.get("propagationPolicy"),
            grace_period_seconds=opts.get("gracePeriodSeconds"),
            preconditions=opts.get("preconditions"),
            dry_run=bool(opts.get("dryRun")),
            orphan_dependents=opts.get("orphanDependents"),
            api_group_version=t.info.api_version_for(t.version),
        )
        headers = None
        if (
            t.info.storage == ("batch", "jobs")
            and not opts.get("propagationPolicy")
            and opts.get("orphanDependents") is None
        ):
            headers = self._warnings(
                [
                    "child pods are preserved by default when jobs are deleted; set "
                    "propagationPolicy=Background to remove them or set "
                    "propagationPolicy=Orphan to suppress this warning"
                ]
            )
        if gone and t.info.storage not in _RETURNS_DELETED_OBJECT:
            details: JSON = {"name": obj["metadata"]["name"]}
            if t.info.group:
                details["group"] = t.info.group
            details["kind"] = t.info.resource  # kube-apiserver puts the resource here, not the kind
            details["uid"] = obj["metadata"].get("uid", "")
            status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
            return json_response(orjson.dumps(status), 200, headers)
        # A lingering object (finalizers, graceful deletion) answers 200, 202 only for orphanDependents=false.
        code = 202 if not gone and opts.get("orphanDependents") is False else 200
        return self._out(t, obj, code, headers)

    async def _delete_collection(self, request: HttpRequest, t: Target) -> web.StreamResponse:
        opts = self._delete_options(request, await self._delete_body(request))
        q = request.query
        page = self.store.list_page(t.info, t.namespace, q.get("labelSelector"), q.get("fieldSelector"))
        deleted = []
        for raw in page.items:
            meta = orjson.loads(raw)["metadata"]
            with contextlib.suppress(ApiError):
                obj, _ = await self.store.delete_ex(
                    t.info,
                    meta["name"],
                    meta.get("namespace"),
                    propagation_policy=opts.get("propagationPolicy"),
                    grace_period_seconds=opts.get("gracePeriodSeconds"),
                    dry_run=bool(opts.get("dryRun")),
                    orphan_dependents=opts.get("orphanDependents"),
                    api_group_version=t.info.api_version_for(t.version),
                )
                deleted.append(orjson.dumps(obj))
        head = orjson.dumps(
            {
                "kind": t.info.list_kind,
                "apiVersion": t.info.api_version_for(t.version),
                "metadata": {"resourceVersion": self.store.resource_version},
            }
        )
        return json_response(head[:-1] + b',"items":[' + b",".join(deleted) + b"]}")

    async def _bind(self, request: HttpRequest, t: Target) -> web.StreamResponse:
        assert t.name is not None
        assert t.namespace is not None
        body = await read_body(request)
        node = ((body or {}).get("target") or {}).get("name") if isinstance(body, dict) else None
        if not node:
            raise errors.invalid(
                "Binding", "", t.name, [errors.field_cause("FieldValueRequired", "target.name", "Required value")]
            )
        await self.store.bind(t.name, t.namespace, node)
        return json_response(
            orjson.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}), 201
        )

    async def _evict(self, request: HttpRequest, t: Target) -> web.StreamResponse:
        assert t.name is not None
        body = await read_body(request)
        opts = (body.get("deleteOptions") if isinstance(body, dict) else None) or {}
        if not isinstance(opts, dict):
            raise errors.bad_request("deleteOptions must be an object")
        await self.store.evict(t.name, t.namespace or "default", opts.get("gracePeriodSeconds"))
        return json_response(
            orjson.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}), 201
        )
