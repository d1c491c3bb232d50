"""Kubernetes API errors as exceptions that carry a real ``Status`` object.

Role: every failure of the simulated API server, in-process or over HTTP, is an :class:`ApiError` whose
``status`` is the exact ``meta/v1 Status`` body kube-apiserver would send (code, reason, message, details with
causes). The HTTP layer serialises ``status`` verbatim; in-process callers catch ``ApiError`` and read
``code``/``reason``.

Invariants: ``status["code"] == code`` and ``status["reason"] == reason``; messages follow kube-apiserver's
wording (``pods "x" not found``, ``Operation cannot be fulfilled on ...``), because clients match on them.
"""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]


class ApiError(Exception):
    """An API failure with its ``Status`` body."""

    def __init__(self, status: JSON, headers: dict[str, str] | None = None) -> None:
        super().__init__(status.get("message", ""))
        self.status = status
        self.headers = headers or {}

    @property
    def code(self) -> int:
        return int(self.status["code"])

    @property
    def reason(self) -> str:
        return str(self.status.get("reason", ""))

    @property
    def message(self) -> str:
        return str(self.status.get("message", ""))


def status(code: int, reason: str, message: str, details: JSON | None = None) -> JSON:
    """A failure ``Status`` body."""
    body: JSON = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def qualified(resource: str, group: str) -> str:
    """``pods`` or ``jobs.batch``: how kube-apiserver names a resource in messages."""
    return f"{resource}.{group}" if group else resource


def _details(name: str, group: str, kind: str) -> JSON:
    d: JSON = {"name": name}
    if group:
        d["group"] = group
    d["kind"] = kind
    return d


def not_found(resource: str, group: str, name: str) -> ApiError:
    return ApiError(
        status(404, "NotFound", f'{qualified(resource, group)} "{name}" not found', _details(name, group, resource))
    )


def already_exists(resource: str, group: str, name: str) -> ApiError:
    return ApiError(
        status(
            409,
            "AlreadyExists",
            f'{qualified(resource, group)} "{name}" already exists',
            _details(name, group, resource),
        )
    )


def conflict(resource: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(
        status(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}',
            _details(name, group, resource),
        )
    )


STALE = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(kind: str, group: str, name: str, causes: list[JSON]) -> ApiError:
    """422 Invalid. ``causes`` are ``{"reason", "message", "field"}`` dicts (``message`` without the field)."""
    parts = [f"{c['field']}: {c['message']}" if c.get("field") else str(c["message"]) for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    details = _details(name, group, kind)
    details["causes"] = causes
    return ApiError(
        status(
            422,
            "Invalid",
            f'{kind}.{group} "{name}" is invalid: {summary}' if group else f'{kind} "{name}" is invalid: {summary}',
            details,
        )
    )


def field_cause(reason: str, field: str, message: str) -> JSON:
    """One cause of an Invalid error: reasons are ``FieldValueInvalid``, ``FieldValueRequired``, ..."""
    return {"reason": reason, "message": message, "field": field}


def bad_request(message: str) -> ApiError:
    return ApiError(status(400, "BadRequest", message))


def forbidden(resource: str, group: str, name: str, why: str, cause: JSON | None = None) -> ApiError:
    details = _details(name, group, resource)
    if cause:
        details["causes"] = [cause]
    prefix = f'{qualified(resource, group)} "{name}"' if name else qualified(resource, group)
    return ApiError(status(403, "Forbidden", f"{prefix} is forbidden: {why}", details))


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> ApiError:
    return ApiError(status(405, "MethodNotAllowed", message, {}))


def gone(message: str) -> ApiError:
    return ApiError(status(410, "Expired", message))


def too_large(message: str = "the request entity is too large") -> ApiError:
    return ApiError(status(413, "RequestEntityTooLarge", message))


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        status(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - "
            f"accepted media types include: application/json, application/yaml, "
            f"application/apply-patch+yaml ({content_type})",
        )
    )


def too_many_requests(retry_after: int = 1) -> ApiError:
    return ApiError(
        status(
            429, "TooManyRequests", "Too many requests, please try again later.", {"retryAfterSeconds": retry_after}
        ),
        {"Retry-After": str(retry_after)},
    )


def internal(message: str) -> ApiError:
    return ApiError(
        status(500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]})
    )


def timeout(message: str) -> ApiError:
    return ApiError(status(504, "Timeout", message))
