"""Authentication and authorization of metrics scrapes, as the reference's secure metrics endpoint does it.

Role: a scraper presents a bearer token (the shipped ServiceMonitor sends its ServiceAccount token); the token
is checked with a ``TokenReview`` and the resulting user with a ``SubjectAccessReview`` for verb ``get`` on the
non-resource URL (``/metrics``) — what the ``jobset-metrics-reader`` ClusterRole grants. ``check`` answers the
HTTP status to serve: 200, 401 (no or invalid token) or 403 (authenticated, not allowed); 500 when the API
server could not answer (never cached, so the next scrape asks again).

Invariants: verdicts are cached per (token digest, path) — allowed for ``ttl_allowed``, refused for
``ttl_denied`` seconds — so a scrape every 15 s costs two API calls per ``ttl_allowed``; raw tokens are never
kept or logged (the cache holds a SHA-256 digest); the cache is bounded (oldest entry evicted).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from cache.client import ApiClient
from cache.errors import ApiError

TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"  # noqa: S105 - an API path, not a secret
ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


class MetricsAuthorizer:
    """TokenReview + SubjectAccessReview with a bounded TTL cache (see the module docstring)."""

    def __init__(
        self,
        client: ApiClient,
        *,
        ttl_allowed: float = 120.0,
        ttl_denied: float = 10.0,
        max_entries: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ttl_allowed = ttl_allowed
        self.ttl_denied = ttl_denied
        self.max_entries = max_entries
        self.clock = clock
        self._cache: OrderedDict[tuple[str, str], tuple[float, int]] = OrderedDict()

    async def __call__(self, authorization: str | None, path: str) -> int:
        return await self.check(authorization, path)

    async def check(self, authorization: str | None, path: str) -> int:
        token = _bearer(authorization)
        if token is None:
            return 401
        key = (hashlib.sha256(token.encode()).hexdigest(), path)
        now = self.clock()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            verdict = await self._review(token, path)
        except ApiError:
            return 500
        ttl = self.ttl_allowed if verdict == 200 else self.ttl_denied
        self._cache[key] = (now + ttl, verdict)
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return verdict

    async def _review(self, token: str, path: str) -> int:
        review = await self.client.create(
            TOKEN_REVIEWS,
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}},
        )
        status = review.get("status") or {}
        if not status.get("authenticated"):
            return 401
        user: dict[str, Any] = status.get("user") or {}
        spec: dict[str, Any] = {
            "user": user.get("username", ""),
            "groups": user.get("groups") or [],
            "nonResourceAttributes": {"path": path, "verb": "get"},
        }
        if user.get("uid"):
            spec["uid"] = user["uid"]
        if user.get("extra"):
            spec["extra"] = user["extra"]
        access = await self.client.create(
            ACCESS_REVIEWS,
            {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec},
        )
        return 200 if (access.get("status") or {}).get("allowed") else 403


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
