"""Fault injection for tests and what-if runs: added latency, 429/500 answers, hangs, dropped and expired watches.

Role: :class:`Faults` holds the knobs the API server consults on every request (``SimCluster.faults``) and
draws the fault, if any, for one request (:meth:`Faults.draw`);
:func:`control` serves ``/kubesim/faults`` and ``/kubesim/watches`` so an out-of-process cluster
(``pyjobset sim``) can be steered the same way. These paths are kubesim's own, outside the Kubernetes API.

Invariants: faults apply only to ``/api`` and ``/apis`` requests (never to health or the control paths);
every random choice draws from ``rng`` so a seeded run is reproducible; injected errors are real Status bodies
(``TooManyRequests`` with ``Retry-After``, ``InternalError``, ``Invalid`` with one cause); a watch fault answers
the way a real server's stream ends (no events at all, or one 410 ``Expired`` ERROR event); ``counts`` tallies
every fault injected.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from kubesim.apiserver.bodies import read_body
from kubesim.apiserver.httputil import json_response
from kubesim.storage.store import Store
from kubesim.util import errors
from kubesim.util.errors import ApiError


@dataclass
class Faults:
    """Fault injection knobs (tests set them at run time through ``SimCluster.faults``)."""

    latency: float = 0.0  # seconds added to every API request
    error_rate: float = 0.0  # fraction of API requests answered with ``error_code``
    error_code: int = 500  # 429, 500, or 422 (an Invalid naming ``invalid_field``, as CRD validation answers)
    invalid_field: str = "spec"
    error_codes: tuple[int, ...] = ()  # when set, each injected error picks one of these (429 or 500)
    retry_after: int = 1
    hang_rate: float = 0.0  # fraction of API requests held for ``hang_seconds`` before being served
    hang_seconds: float = 30.0
    watch_fault_rate: float = 0.0  # fraction of WATCH requests ended at once: dropped, or with a 410 ERROR
    paths: tuple[str, ...] = ()  # only requests whose path contains one of these (empty: all)
    verbs: tuple[str, ...] = ()  # only these HTTP methods (empty: all)
    rng: random.Random = field(default_factory=random.Random)
    counts: Counter[str] = field(default_factory=Counter)  # faults injected so far, by kind

    def applies(self, request: web.Request) -> bool:
        if self.paths and not any(p in request.path for p in self.paths):
            return False
        return not self.verbs or request.method in self.verbs

    def active(self) -> bool:
        return bool(self.error_rate or self.hang_rate or self.watch_fault_rate)

    def draw(self, request: web.Request, watch: bool) -> str | None:
        """The fault for one API request, counted: ``"429"``/``"500"``/``"422"``, ``"hang"``, ``"watch-drop"``,
        ``"watch-expire"``, or None. One draw per knob, in that order, so each rate is the fraction of calls."""
        if not self.applies(request):
            return None
        kind: str | None = None
        if self.error_rate and self.rng.random() < self.error_rate:
            kind = str(self.rng.choice(self.error_codes) if self.error_codes else self.error_code)
        elif self.hang_rate and self.rng.random() < self.hang_rate:
            kind = "hang"
        elif watch and self.watch_fault_rate and self.rng.random() < self.watch_fault_rate:
            kind = self.rng.choice(("watch-drop", "watch-expire"))
        if kind is not None:
            self.counts[kind] += 1
        return kind


async def control(faults: Faults, store: Store, request: web.Request) -> web.StreamResponse:
    """Fault injection for out-of-process clusters (``pyjobset sim``): not part of the Kubernetes API.

    ``PUT /kubesim/faults`` with ``{"latency": s, "errorRate": f, "errorCode": 429|500|422, "errorCodes": [...],
    "retryAfter": s, "hangRate": f, "hangSeconds": s, "watchFaultRate": f, "paths": [...], "verbs": [...]}``
    (``GET`` reads them, with ``counts``); ``POST /kubesim/watches`` with
    ``{"action": "drop"|"expire", "resource": "pods"}`` ends watches (``expire``: with a 410 ERROR event).
    """
    f = faults
    if request.path == "/kubesim/faults":
        if request.method == "PUT":
            body = await read_body(request)
            if not isinstance(body, dict):
                raise errors.bad_request("expected an object")
            f.latency = float(body.get("latency", 0.0))
            f.error_rate = float(body.get("errorRate", 0.0))
            f.error_code = int(body.get("errorCode", 500))
            f.error_codes = tuple(int(code) for code in body.get("errorCodes") or ())
            f.retry_after = int(body.get("retryAfter", 1))
            f.hang_rate = float(body.get("hangRate", 0.0))
            f.hang_seconds = float(body.get("hangSeconds", 30.0))
            f.watch_fault_rate = float(body.get("watchFaultRate", 0.0))
            f.paths = tuple(body.get("paths") or ())
            f.verbs = tuple(body.get("verbs") or ())
        return json_response(
            orjson.dumps(
                {
                    "latency": f.latency,
                    "errorRate": f.error_rate,
                    "errorCode": f.error_code,
                    "errorCodes": list(f.error_codes),
                    "retryAfter": f.retry_after,
                    "hangRate": f.hang_rate,
                    "hangSeconds": f.hang_seconds,
                    "watchFaultRate": f.watch_fault_rate,
                    "paths": list(f.paths),
                    "verbs": list(f.verbs),
                    "counts": dict(f.counts),
                }
            )
        )
    if request.path == "/kubesim/watches" and request.method == "POST":
        body = await read_body(request)
        if not isinstance(body, dict) or body.get("action") not in ("drop", "expire"):
            raise errors.bad_request('expected {"action": "drop"|"expire"}')
        resource = body.get("resource")
        if body["action"] == "drop":
            store.drop_watches(resource)
        else:
            store.expire_watches(resource)
        return json_response(b'{"ok":true}')
    raise ApiError(errors.status(404, "NotFound", "the server could not find the requested resource", {}))


def injected(faults: Faults, code: int | None = None) -> ApiError:
    """The error an injected fault answers with (``code`` 429, 500 or 422; default ``faults.error_code``)."""
    chosen = code if code is not None else faults.error_code
    if chosen == 429:
        return errors.too_many_requests(faults.retry_after)
    if chosen == 422:
        field = faults.invalid_field
        cause = {"reason": "FieldValueInvalid", "message": "Invalid value: injected fault", "field": field}
        return errors.invalid("Object", "", "injected", [cause])
    return errors.internal("injected fault")


def ended_watch(kind: str) -> web.Response:
    """A watch stream that ends at once: with no event (a dropped connection) or one 410 ``Expired`` ERROR event
    (the server's answer to a resourceVersion it no longer has), both of which make a client list again."""
    body = b""
    if kind == "watch-expire":
        gone = errors.status(410, "Expired", "too old resource version: injected fault")
        body = orjson.dumps({"type": "ERROR", "object": gone}) + b"\n"
    return web.Response(body=body, status=200, content_type="application/json")
