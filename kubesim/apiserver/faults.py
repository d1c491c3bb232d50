"""Fault injection for tests and what-if runs: added latency, 429/500 answers, dropped and expired watches.

Role: :class:`Faults` holds the knobs the API server consults on every request (``SimCluster.faults``);
:func:`control` serves ``/kubesim/faults`` and ``/kubesim/watches`` so an out-of-process cluster
(``pyjobset sim``) can be steered the same way. These paths are kubesim's own, outside the Kubernetes API.

Invariants: faults apply only to ``/api`` and ``/apis`` requests (never to health or the control paths);
``error_rate`` draws from ``rng`` so a seeded run is reproducible; injected errors are real Status bodies
(``TooManyRequests`` with ``Retry-After``, ``InternalError``).
"""

from __future__ import annotations

import random
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
    error_code: int = 500  # 429 or 500
    retry_after: int = 1
    paths: tuple[str, ...] = ()  # only requests whose path contains one of these (empty: all)
    verbs: tuple[str, ...] = ()  # only these HTTP methods (empty: all)
    rng: random.Random = field(default_factory=random.Random)

    def applies(self, request: web.Request) -> bool:
        if self.paths and not any(p in request.path for p in self.paths):
            return False
        return not self.verbs or request.method in self.verbs


async def control(faults: Faults, store: Store, request: web.Request) -> web.StreamResponse:
    """Fault injection for out-of-process clusters (``pyjobset sim``): not part of the Kubernetes API.

    ``PUT /kubesim/faults`` with ``{"latency": s, "errorRate": f, "errorCode": 429|500, "retryAfter": s,
    "paths": [...], "verbs": [...]}`` (``GET`` reads them); ``POST /kubesim/watches`` with
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
            f.retry_after = int(body.get("retryAfter", 1))
            f.paths = tuple(body.get("paths") or ())
            f.verbs = tuple(body.get("verbs") or ())
        return json_response(
            orjson.dumps(
                {
                    "latency": f.latency,
                    "errorRate": f.error_rate,
                    "errorCode": f.error_code,
                    "retryAfter": f.retry_after,
                    "paths": list(f.paths),
                    "verbs": list(f.verbs),
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


def injected(faults: Faults) -> ApiError:
    """The error an injected fault answers with."""
    if faults.error_code == 429:
        return errors.too_many_requests(faults.retry_after)
    return errors.internal("injected fault")
