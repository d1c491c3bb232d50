"""A minimal synchronous Kubernetes REST client for the e2e harness and smoke tests (standard library only).

It reads a kubeconfig as written by ``tests.e2e.pki.write_kubeconfig`` (embedded CA, client certificate or
token), sends JSON requests and follows watches. The project's real client lives in ``cache/``; this one exists so
the harness can bootstrap the control plane (nodes, RBAC, tokens) without depending on code under test.

Invariants: every call is bounded by a timeout; ``wait_for`` is event driven (LIST, then WATCH from the list's
resourceVersion, re-listing when the watch ends or expires) and never polls with sleeps; errors surface as
``ApiError`` carrying the HTTP status and the server's ``Status`` body.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

JSON = dict[str, Any]


class ApiError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, body: JSON | str) -> None:
        self.status = status
        self.body = body
        reason = body.get("reason", "") if isinstance(body, dict) else ""
        message = body.get("message", body) if isinstance(body, dict) else body
        super().__init__(f"HTTP {status} {reason}: {message}")


class Client:
    """JSON over HTTPS (or plain HTTP, the simulated cluster) to one API server, as the kubeconfig's current user."""

    def __init__(self, kubeconfig: Path, *, timeout: float = 30.0) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        context_name = config["current-context"]
        context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        self.server = cluster["server"].rstrip("/")
        self.timeout = timeout
        ca = cluster.get("certificate-authority-data")  # absent for ``pyjobset up``'s plain-HTTP kubesim
        self._ssl = ssl.create_default_context(cadata=base64.b64decode(ca).decode() if ca else None)
        self._headers = {"Accept": "application/json"}
        if "token" in user:
            self._headers["Authorization"] = f"Bearer {user['token']}"
        else:
            # ssl wants files for the client certificate; they live only as long as the load call.
            with tempfile.TemporaryDirectory() as tmp:
                cert, key = Path(tmp, "c.crt"), Path(tmp, "c.key")
                cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
                key.write_bytes(base64.b64decode(user["client-key-data"]))
                self._ssl.load_cert_chain(cert, key)

    def request(
        self,
        method: str,
        path: str,
        body: JSON | list[Any] | None = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> JSON:
        url = self.server + path + (("?" + urllib.parse.urlencode(query)) if query else "")
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, context=self._ssl, timeout=timeout or self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            text = err.read().decode(errors="replace")
            try:
                raise ApiError(err.code, json.loads(text)) from None
            except json.JSONDecodeError:
                raise ApiError(err.code, text) from None
        decoded: JSON = json.loads(raw) if raw else {}
        return decoded

    def get_raw(self, path: str, *, timeout: float | None = None) -> bytes:
        """GET a non-JSON endpoint such as ``/readyz``; returns the body of a 2xx answer."""
        req = urllib.request.Request(self.server + path, headers=self._headers)
        try:
            with urllib.request.urlopen(req, context=self._ssl, timeout=timeout or self.timeout) as resp:
                return bytes(resp.read())
        except urllib.error.HTTPError as err:
            raise ApiError(err.code, err.read().decode(errors="replace")) from None

    def get(self, path: str, **query: str) -> JSON:
        return self.request("GET", path, query=query or None)

    def create(self, path: str, body: JSON) -> JSON:
        return self.request("POST", path, body)

    def patch(self, path: str, body: JSON, *, kind: str = "merge") -> JSON:
        types = {
            "merge": "application/merge-patch+json",
            "strategic": "application/strategic-merge-patch+json",
            "json": "application/json-patch+json",
        }
        return self.request("PATCH", path, body, content_type=types[kind])

    def delete(self, path: str, body: JSON | None = None) -> JSON:
        return self.request("DELETE", path, body)

    def ensure(self, path: str, body: JSON) -> JSON:
        """Create ``body`` in collection ``path``; an existing object of that name is returned unchanged."""
        try:
            return self.create(path, body)
        except ApiError as err:
            if err.status != 409:
                raise
            return self.get(f"{path}/{body['metadata']['name']}")

    def _watch(self, path: str, query: dict[str, str], timeout: float) -> Iterator[JSON]:
        url = self.server + path + "?" + urllib.parse.urlencode(query)
        req = urllib.request.Request(url, headers=self._headers)
        with urllib.request.urlopen(req, context=self._ssl, timeout=timeout) as resp:
            for line in resp:
                if line.strip():
                    yield json.loads(line)

    def wait_for(
        self,
        path: str,
        predicate: Callable[[JSON], bool],
        *,
        timeout: float = 60.0,
        label_selector: str | None = None,
        field_selector: str | None = None,
        what: str = "",
    ) -> JSON:
        """Return the first object of collection ``path`` satisfying ``predicate`` (LIST, then WATCH)."""
        deadline = time.monotonic() + timeout
        selectors = {}
        if label_selector:
            selectors["labelSelector"] = label_selector
        if field_selector:
            selectors["fieldSelector"] = field_selector
        last: JSON | None = None
        while (remaining := deadline - time.monotonic()) > 0:
            listing = self.get(path, **selectors)
            items: list[JSON] = listing.get("items") or []
            for item in items:
                last = item
                if predicate(item):
                    return item
            query = {
                **selectors,
                "watch": "1",
                "resourceVersion": listing["metadata"]["resourceVersion"],
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(max(1, int(remaining))),
            }
            try:
                for event in self._watch(path, query, timeout=remaining + 5):
                    if event["type"] == "ERROR":
                        break  # typically 410 Gone: re-list
                    if event["type"] in ("ADDED", "MODIFIED"):
                        last = event["object"]
                        if predicate(last):
                            return last
            except TimeoutError:
                break
        raise TimeoutError(f"timed out after {timeout}s waiting for {what or path}; last seen: {json.dumps(last)}")

    def wait_gone(self, path: str, *, timeout: float = 60.0) -> None:
        """Wait until the object at ``path`` (a collection path plus ``/name``) no longer exists."""
        collection, _, name = path.rpartition("/")
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            listing = self.get(collection, fieldSelector=f"metadata.name={name}")
            if not listing.get("items"):
                return
            query = {
                "fieldSelector": f"metadata.name={name}",
                "watch": "1",
                "resourceVersion": listing["metadata"]["resourceVersion"],
                "timeoutSeconds": str(max(1, int(remaining))),
            }
            try:
                for event in self._watch(collection, query, timeout=remaining + 5):
                    if event["type"] == "DELETED":
                        return
                    if event["type"] == "ERROR":
                        break
            except TimeoutError:
                break
        raise TimeoutError(f"timed out after {timeout}s waiting for {path} to be deleted")


def condition(obj: JSON, kind: str) -> JSON | None:
    """The status condition of type ``kind`` in ``obj``, if any."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def has_condition(obj: JSON, kind: str, status: str = "True") -> bool:
    cond = condition(obj, kind)
    return cond is not None and cond.get("status") == status
