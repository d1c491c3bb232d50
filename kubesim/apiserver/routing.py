"""Routing: which served resource a REST path names.

Role: :func:`resolve` turns ``/api/v1/namespaces/ns/pods/name/status`` or
``/apis/batch/v1/jobs`` into a :class:`~kubesim.apiserver.httputil.Target` by the registry of served resources
(built-ins and established CRDs), the way kube-apiserver's path handlers do.

:class:`Router` remembers resolved paths until the registry changes (a controller posts to the same few paths).

Invariants: a path names a target only when its resource is served at that version, its scope matches (no
namespace segment for cluster-scoped resources) and its subresource exists for that resource; anything else is
the apiserver's 404 ``NotFound`` Status.
"""

from __future__ import annotations

from kubesim.apiserver.httputil import Target
from kubesim.storage.resources import Registry
from kubesim.util import errors
from kubesim.util.errors import ApiError


def resolve(registry: Registry, path: str) -> Target:
    """The resource, version, namespace, name and subresource a REST path names; 404 when none is served."""
    parts = [p for p in path.split("/") if p]
    not_found = ApiError(errors.status(404, "NotFound", "the server could not find the requested resource", {}))
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise not_found
    if not rest:
        raise not_found
    namespace: str | None = None
    if rest[0] == "watch":
        raise not_found
    if (
        rest[0] == "namespaces"
        and len(rest) >= 3
        and group == ""
        and rest[2] in ("status", "finalize")
        and len(rest) == 3
        and registry.get("", rest[2]) is None
    ):
        resource, sub = "namespaces", rest[2]
        name: str | None = rest[1]
    elif rest[0] == "namespaces" and len(rest) >= 3:
        namespace, resource = rest[1], rest[2]
        name = rest[3] if len(rest) > 3 else None
        sub = "/".join(rest[4:])
    else:
        resource = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = "/".join(rest[2:])
    info = registry.get(group, resource)
    if info is None or version not in info.versions:
        raise not_found
    if namespace is not None and not info.namespaced:
        raise not_found
    if sub and not (
        (sub == "status" and info.status)
        or (sub in ("binding", "eviction") and info.storage == ("", "pods"))
        or (sub == "finalize" and info.storage == ("", "namespaces"))
        or (sub == "scale" and info.scale)
    ):
        raise not_found
    return Target(info, version, namespace, name, sub)


class Router:
    """:func:`resolve` with a bounded memory of resolved paths, forgotten whenever the registry changes.

    Targets are shared between requests: callers never change them."""

    MAX = 4096

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._seen: dict[str, Target] = {}
        self._generation = registry.generation

    def resolve(self, path: str) -> Target:
        if self._generation != self.registry.generation:
            self._seen.clear()
            self._generation = self.registry.generation
        hit = self._seen.get(path)
        if hit is None:
            hit = resolve(self.registry, path)
            if len(self._seen) >= self.MAX:
                self._seen.clear()
            self._seen[path] = hit
        return hit
