"""Dynamic admission: mutating then validating webhooks, called as kube-apiserver calls them.

Role: :func:`install` adds two hooks to a :class:`~kubesim.storage.store.Store`; for every write they find the
``MutatingWebhookConfiguration`` / ``ValidatingWebhookConfiguration`` webhooks that match (``rules``:
operations, apiGroups, apiVersions, resources incl. ``*`` and subresources, scope; ``namespaceSelector``;
``objectSelector``; ``matchConditions`` in CEL) and POST an ``admission.k8s.io/v1 AdmissionReview`` over
HTTPS, verified with the webhook's ``caBundle`` (server name ``<service>.<namespace>.svc`` for service
references), within ``timeoutSeconds`` (default 10). A mutating webhook's ``JSONPatch`` is applied to the
object before the next webhook sees it.

Reaching services: a simulated cluster has no service network, so a ``clientConfig.service`` reference is
resolved by :attr:`Admission.endpoints` (``(namespace, name) -> "https://127.0.0.1:9443"``) when the test or demo
registered one, else to ``https://127.0.0.1:<targetPort>`` of the Service object (the port a locally running
controller listens on), else to port 443.

Invariants: a denial is the apiserver's error (``admission webhook "<name>" denied the request: ...`` with the
webhook's code, 400 when it gives none or one below 400, as kube-apiserver); a call that fails (connection,
timeout, bad response) rejects the request with a 500 under ``failurePolicy: Fail`` (the default) and is skipped
under ``Ignore``; webhook configurations themselves are never sent to webhooks; without configurations a write
never yields to the loop.
"""

from __future__ import annotations

import base64
import copy
import ssl
import uuid
from typing import Any

import aiohttp
import celpy
import orjson
from celpy.adapter import json_to_cel

from kubesim.storage.objects import AdmissionAttributes, warn
from kubesim.storage.patch import json_patch
from kubesim.storage.store import Store
from kubesim.util import errors
from kubesim.util.errors import ApiError
from kubesim.util.selectors import match_label_selector

JSON = dict[str, Any]
MUTATING = ("admissionregistration.k8s.io", "mutatingwebhookconfigurations")
VALIDATING = ("admissionregistration.k8s.io", "validatingwebhookconfigurations")
USER = {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]}


def _match_list(values: list[str] | None, want: str) -> bool:
    return bool(values) and ("*" in values or want in values)  # type: ignore[operator]


def rule_matches(rule: JSON, attrs: AdmissionAttributes) -> bool:
    info = attrs.info
    if not _match_list(rule.get("operations"), attrs.operation):
        return False
    if not _match_list(rule.get("apiGroups"), info.group):
        return False
    if not _match_list(rule.get("apiVersions"), info.version):
        return False
    resources = rule.get("resources") or []
    wanted = f"{info.resource}/{attrs.subresource}" if attrs.subresource else info.resource
    if not any(_resource_matches(r, info.resource, attrs.subresource, wanted) for r in resources):
        return False
    scope = rule.get("scope", "*")
    if scope == "Cluster" and info.namespaced:
        return False
    return not (scope == "Namespaced" and not info.namespaced)


def _resource_matches(r: str, resource: str, sub: str, wanted: str) -> bool:
    if r in ("*/*", wanted) or (r == "*" and not sub):
        return True
    if r.endswith("/*") and sub and r[:-2] in (resource, "*"):
        return True
    return bool(r.startswith("*/") and sub and r[2:] == sub)


class _BadResponse(ValueError):
    pass


class Admission:
    """Finds and calls the webhooks for one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.endpoints: dict[tuple[str, str], str] = {}
        self._session: aiohttp.ClientSession | None = None
        self._ssl: dict[str, ssl.SSLContext] = {}
        self.calls = 0
        self._env = celpy.Environment()
        self._cel: dict[str, Any] = {}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------------------------ hooks

    async def mutate(self, attrs: AdmissionAttributes) -> JSON | None:
        if not self.store.bucket(self.store.info("mutatingwebhookconfigurations")).objects:
            return None
        changed = None
        for hook in self._webhooks(MUTATING, attrs):
            patched = await self._call(hook, attrs, mutating=True)
            if patched is not None:
                changed = attrs.obj = patched
        return changed

    async def validate(self, attrs: AdmissionAttributes) -> JSON | None:
        if not self.store.bucket(self.store.info("validatingwebhookconfigurations")).objects:
            return None
        for hook in self._webhooks(VALIDATING, attrs):
            await self._call(hook, attrs, mutating=False)
        return None

    # ------------------------------------------------------------------------------------ matching

    def _webhooks(self, storage: tuple[str, str], attrs: AdmissionAttributes) -> list[JSON]:
        if attrs.info.storage in (MUTATING, VALIDATING):
            return []
        info = self.store.registry.get(*storage)
        assert info is not None
        out: list[JSON] = []
        bucket = self.store.bucket(info)
        for key in bucket.sorted_keys():
            entry = bucket.objects.get(key)
            if entry is None:
                continue
            for hook in entry.obj().get("webhooks") or []:
                if self._matches(hook, attrs):
                    out.append(hook)
        return out

    def _matches(self, hook: JSON, attrs: AdmissionAttributes) -> bool:
        if not any(rule_matches(r, attrs) for r in hook.get("rules") or []):
            return False
        # An absent or empty objectSelector/namespaceSelector selects everything (the API defaults both to {}).
        obj_sel = hook.get("objectSelector")
        labels_new = ((attrs.obj or {}).get("metadata") or {}).get("labels") or {}
        labels_old = ((attrs.old or {}).get("metadata") or {}).get("labels") or {}
        if obj_sel and not (
            (attrs.obj is not None and match_label_selector(obj_sel, labels_new))
            or (attrs.old is not None and match_label_selector(obj_sel, labels_old))
        ):
            return False
        ns_sel = hook.get("namespaceSelector")
        if ns_sel and (attrs.info.namespaced or attrs.info.storage == ("", "namespaces")):
            ns_name = attrs.namespace if attrs.info.namespaced else attrs.name
            ns_obj = self.store.get_nowait("namespaces", ns_name) or {}
            ns_labels = (ns_obj.get("metadata") or {}).get("labels") or {"kubernetes.io/metadata.name": ns_name}
            if not match_label_selector(ns_sel, ns_labels):
                return False
        return self._match_conditions(hook, attrs)

    def _match_conditions(self, hook: JSON, attrs: AdmissionAttributes) -> bool:
        """``matchConditions``: CEL over ``object``, ``oldObject`` and ``request``; all must hold."""
        conditions = hook.get("matchConditions") or []
        if not conditions:
            return True
        activation = {
            "object": json_to_cel(attrs.obj),
            "oldObject": json_to_cel(attrs.old),
            "request": json_to_cel(
                {
                    "operation": attrs.operation,
                    "name": attrs.name,
                    "namespace": attrs.namespace,
                    "subResource": attrs.subresource,
                    "userInfo": USER,
                    "resource": {
                        "group": attrs.info.group,
                        "version": attrs.info.version,
                        "resource": attrs.info.resource,
                    },
                }
            ),
        }
        for cond in conditions:
            expr = str(cond.get("expression", ""))
            try:
                prog = self._cel.get(expr)
                if prog is None:
                    prog = self._cel[expr] = self._env.program(self._env.compile(expr))
                if not bool(prog.evaluate(activation)):
                    return False
            except Exception as exc:  # noqa: BLE001 - a failing condition is decided by failurePolicy
                if hook.get("failurePolicy", "Fail") == "Ignore":
                    return False
                raise errors.internal(
                    f'failed calling webhook "{hook.get("name", "")}": matchCondition "{cond.get("name", "")}" '
                    f"failed: {exc}"
                ) from None
        return True

    # ------------------------------------------------------------------------------------ calling

    def _url(self, hook: JSON) -> tuple[str, str | None]:
        cc = hook.get("clientConfig") or {}
        if cc.get("url"):
            return str(cc["url"]), None
        svc = cc.get("service") or {}
        ns, name = svc.get("namespace", ""), svc.get("name", "")
        path = svc.get("path") or "/"
        base = self.endpoints.get((ns, name))
        if base is None:
            port = int(svc.get("port") or 443)
            svc_obj = self.store.get_nowait("services", name, ns)
            for p in (svc_obj or {}).get("spec", {}).get("ports") or []:
                if int(p.get("port", 0)) == port and isinstance(p.get("targetPort"), int):
                    port = int(p["targetPort"])
            base = f"https://127.0.0.1:{port}"
        return base.rstrip("/") + path, f"{name}.{ns}.svc"

    def _ssl_context(self, hook: JSON) -> ssl.SSLContext:
        ca = (hook.get("clientConfig") or {}).get("caBundle") or ""
        ctx = self._ssl.get(ca)
        if ctx is None:
            ctx = ssl.create_default_context()
            if ca:
                ctx.load_verify_locations(cadata=base64.b64decode(ca).decode())
            self._ssl[ca] = ctx
        return ctx

    def _review(self, attrs: AdmissionAttributes) -> JSON:
        info = attrs.info
        gvk = {"group": info.group, "version": info.version, "kind": info.kind}
        gvr = {"group": info.group, "version": info.version, "resource": info.resource}
        request: JSON = {
            "uid": str(uuid.uuid4()),
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": attrs.name,
            "namespace": attrs.namespace,
            "operation": attrs.operation,
            "userInfo": USER,
            "object": attrs.obj,
            "oldObject": attrs.old,
            "dryRun": attrs.dry_run,
            "options": attrs.options,
        }
        if attrs.subresource:
            request["subResource"] = attrs.subresource
            request["requestSubResource"] = attrs.subresource
        if not attrs.namespace:
            del request["namespace"]
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}

    async def _call(self, hook: JSON, attrs: AdmissionAttributes, mutating: bool) -> JSON | None:
        name = hook.get("name", "")
        url, server_name = self._url(hook)
        timeout = float(hook.get("timeoutSeconds") or 10)
        review = self._review(attrs)
        self.calls += 1
        try:
            if self._session is None:
                self._session = aiohttp.ClientSession()
            async with self._session.post(
                url,
                data=orjson.dumps(review),
                headers={"Content-Type": "application/json", "Accept": "application/json"},
                ssl=self._ssl_context(hook) if url.startswith("https") else False,
                server_hostname=server_name if url.startswith("https") else None,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                body = await resp.read()
                status = resp.status
            response = _check_response(status, body, review["request"]["uid"])
        except (aiohttp.ClientError, TimeoutError, ValueError, ssl.SSLError, OSError) as exc:
            if hook.get("failurePolicy", "Fail") == "Ignore":
                warn(f'failed calling webhook "{name}": {exc}')
                return None
            what = "context deadline exceeded" if isinstance(exc, TimeoutError) else str(exc)
            raise errors.internal(
                f'failed calling webhook "{name}": failed to call webhook: Post "{url}": {what}'
            ) from None
        for w in response.get("warnings") or []:
            warn(str(w))
        if not response.get("allowed"):
            raise _denied(name, response.get("status") or {})
        patch = response.get("patch")
        if mutating and patch and attrs.obj is not None:
            if response.get("patchType") != "JSONPatch":
                raise errors.internal(f'failed calling webhook "{name}": unsupported patch type')
            try:
                ops = orjson.loads(base64.b64decode(patch))
                return json_patch(copy.deepcopy(attrs.obj), ops)  # type: ignore[no-any-return]
            except (ValueError, ApiError) as exc:
                raise errors.internal(f'failed calling webhook "{name}": {exc}') from None
        return None


def _check_response(status: int, body: bytes, uid: str) -> JSON:
    if status != 200:
        raise _BadResponse(f"received invalid webhook response status {status}")
    response = orjson.loads(body).get("response")
    if not isinstance(response, dict) or response.get("uid") != uid:
        raise _BadResponse("expected response.uid to match the request uid")
    return response


def _denied(name: str, result: JSON) -> ApiError:
    code = max(int(result.get("code") or 0), 400)
    denied_by = f'admission webhook "{name}" denied the request'
    if result.get("message"):
        message = f"{denied_by}: {result['message']}"
    elif result.get("reason"):
        message = f"{denied_by}: {result['reason']}"
    else:
        message = f"{denied_by} without explanation"
    status = errors.status(code, str(result.get("reason") or ""), message, result.get("details"))
    return ApiError(status)


def install(store: Store) -> Admission:
    """Enable webhook admission on ``store``; returns the :class:`Admission` (for ``endpoints``)."""
    existing = store.hooks.webhooks
    if isinstance(existing, Admission):
        return existing
    adm = Admission(store)
    store.hooks.webhooks = adm
    store.hooks.mutating.append(adm.mutate)
    store.hooks.validating.append(adm.validate)
    return adm
