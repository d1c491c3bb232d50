"""One error hierarchy for everything that talks to the Kubernetes API.

    ApiError                      any failed API call; carries HTTP status, Status reason, message
    ├── TransientError            worth retrying with backoff
    │   ├── TooManyRequests       429 (honours Retry-After)
    │   ├── ServerError           5xx
    │   └── ConnectionFailed      timeouts, resets, refused connections (status 0)
    │       └── WatchIdle         a WATCH delivered nothing (no event, no bookmark) for its idle bound
    └── TerminalError             retrying the same request cannot help
        ├── BadRequest            400
        ├── Unauthorized          401
        ├── Forbidden             403
        ├── NotFound              404
        ├── Conflict              409 reason Conflict (stale resourceVersion)
        ├── AlreadyExists         409 reason AlreadyExists
        ├── Gone                  410 (expired resourceVersion: re-list)
        └── Invalid               422 (field causes in ``details``)

Invariant: ``error_for(status, body)`` maps every HTTP status to exactly one class; callers branch on classes,
never on numbers. Messages never include request bodies or credentials.
"""

from __future__ import annotations

from typing import Any

import orjson


class ApiError(Exception):
    status: int = 0

    def __init__(self, message: str, *, status: int = 0, reason: str = "", details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status or type(self).status
        self.reason = reason
        self.details = details
        self.retry_after: float | None = None


class TransientError(ApiError):
    pass


class TooManyRequests(TransientError):
    status = 429


class ServerError(TransientError):
    status = 500


class ConnectionFailed(TransientError):
    status = 0


class WatchIdle(ConnectionFailed):
    """A WATCH stream went silent for longer than its read-idle bound: presumed dead (a proxy or NAT that
    froze the connection without a FIN or RST), torn down so the informer can reconnect."""


class TerminalError(ApiError):
    pass


class BadRequest(TerminalError):
    status = 400


class Unauthorized(TerminalError):
    status = 401


class Forbidden(TerminalError):
    status = 403


class NotFound(TerminalError):
    status = 404


class Conflict(TerminalError):
    status = 409


class AlreadyExists(Conflict):
    status = 409


class Gone(TerminalError):
    status = 410


class Invalid(TerminalError):
    status = 422


_BY_STATUS: dict[int, type[ApiError]] = {
    cls.status: cls for cls in (BadRequest, Unauthorized, Forbidden, NotFound, Conflict, Gone, Invalid, TooManyRequests)
}


def error_for(status: int, body: bytes, *, retry_after: str | None = None) -> ApiError:
    """Build the error for an HTTP failure from the API server's ``Status`` body (tolerates non-JSON)."""
    reason = ""
    message = ""
    details: Any = None
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        reason = str(parsed.get("reason") or "")
        message = str(parsed.get("message") or "")
        details = parsed.get("details")
    if not message:
        message = body[:200].decode(errors="replace") if body else f"HTTP {status}"
    cls: type[ApiError]
    if status == 409 and reason == "AlreadyExists":
        cls = AlreadyExists
    elif status >= 500:
        cls = ServerError
    else:
        cls = _BY_STATUS.get(status, TerminalError if status < 500 else ServerError)
    err = cls(message, status=status, reason=reason, details=details)
    if retry_after is not None:
        try:
            err.retry_after = float(retry_after)
        except ValueError:
            err.retry_after = None
    return err
