"""Discovery documents and the minimal OpenAPI that kubectl needs.

Role: build ``/api``, ``/apis``, ``/apis/<g>``, group-version resource lists and ``/version`` from the
:class:`~kubesim.storage.resources.Registry`, plus OpenAPI v2/v3 documents that declare each resource's operations
(so kubectl knows the server validates fields itself and skips client-side schema validation) and carry the
``x-kubernetes-group-version-kind`` of each kind.

Invariants: documents are rebuilt only when the registry's ``generation`` changes; every served resource
appears in exactly one group-version list per served version, with its subresources (``pods/status``).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from kubesim.storage.resources import Registry, ResourceInfo

JSON = dict[str, Any]

VERBS_NAMESPACED = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
VERSION_INFO: JSON = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-kubesim",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _aliases(info: ResourceInfo) -> JSON:
    """``shortNames`` and ``categories`` of a discovery entry (left out when empty, as kube-apiserver does)."""
    out: JSON = {}
    if info.short_names:
        out["shortNames"] = list(info.short_names)
    if info.categories:
        out["categories"] = list(info.categories)
    return out


def _resource_entries(info: ResourceInfo) -> list[JSON]:
    main: JSON = {
        "name": info.resource,
        "singularName": info.singular,
        "namespaced": info.namespaced,
        "kind": info.kind,
        "verbs": list(VERBS_NAMESPACED),
    }
    main.update(_aliases(info))
    main["storageVersionHash"] = hashlib.sha256(info.qualified.encode()).digest()[:8].hex()
    out = [main]
    if info.status:
        out.append(
            {
                "name": f"{info.resource}/status",
                "singularName": "",
                "namespaced": info.namespaced,
                "kind": info.kind,
                "verbs": ["get", "patch", "update"],
            }
        )
    if info.storage == ("", "pods"):
        out.append(
            {"name": "pods/binding", "singularName": "", "namespaced": True, "kind": "Binding", "verbs": ["create"]}
        )
        out.append(
            {
                "name": "pods/eviction",
                "singularName": "",
                "namespaced": True,
                "group": "policy",
                "version": "v1",
                "kind": "Eviction",
                "verbs": ["create"],
            }
        )
    if info.storage == ("", "namespaces"):
        out.append(
            {
                "name": "namespaces/finalize",
                "singularName": "",
                "namespaced": False,
                "kind": "Namespace",
                "verbs": ["update"],
            }
        )
    return out


class Discovery:
    """Cached discovery documents for one registry."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._gen = -1
        self._docs: dict[str, bytes] = {}

    def _rebuild(self) -> None:
        if self._gen == self.registry.generation:
            return
        self._gen = self.registry.generation
        docs: dict[str, bytes] = {}
        groups = self.registry.groups()
        docs["/api"] = orjson.dumps(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:0"}],
            }
        )
        group_docs: list[JSON] = []
        for group, infos in sorted(groups.items(), key=lambda kv: (kv[0] != "", kv[0])):
            versions: list[str] = []
            for info in infos:
                for v in info.versions:
                    if v not in versions:
                        versions.append(v)
            for v in versions:
                resources: list[JSON] = []
                for info in sorted(infos, key=lambda i: i.resource):
                    if v in info.versions:
                        resources.extend(_resource_entries(info))
                gv = f"{group}/{v}" if group else v
                path = f"/apis/{gv}" if group else f"/api/{v}"
                docs[path] = orjson.dumps(
                    {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
                )
            if group:
                gdoc = {
                    "name": group,
                    "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                    "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
                }
                group_docs.append(gdoc)
                docs[f"/apis/{group}"] = orjson.dumps({"kind": "APIGroup", "apiVersion": "v1", **gdoc})
        docs["/apis"] = orjson.dumps({"kind": "APIGroupList", "apiVersion": "v1", "groups": group_docs})
        docs["/version"] = orjson.dumps(VERSION_INFO)
        for api_version in ("v2", "v2beta1"):
            core, named = self._aggregated(groups, api_version)
            docs[f"aggregated:{api_version}:/api"] = core
            docs[f"aggregated:{api_version}:/apis"] = named
        docs.update(self._openapi(groups))
        self._docs = docs

    def _aggregated(self, groups: dict[str, list[ResourceInfo]], api_version: str) -> tuple[bytes, bytes]:
        """Aggregated discovery (``apidiscovery.k8s.io``): every group, version and resource in one document."""

        def kind_ref(info: ResourceInfo, version: str, kind: str | None = None) -> JSON:
            # kube-apiserver leaves group and version empty: they are the enclosing group-version's.
            return {"group": "", "version": "", "kind": kind or info.kind}

        def resource(info: ResourceInfo, version: str) -> JSON:
            r: JSON = {
                "resource": info.resource,
                "responseKind": kind_ref(info, version),
                "scope": "Namespaced" if info.namespaced else "Cluster",
                "singularResource": info.singular,
                "verbs": list(VERBS_NAMESPACED),
            }
            r.update(_aliases(info))
            subs: list[JSON] = []
            if info.status:
                subs.append(
                    {
                        "subresource": "status",
                        "responseKind": kind_ref(info, version),
                        "verbs": ["get", "patch", "update"],
                    }
                )
            if info.storage == ("", "pods"):
                subs.append(
                    {"subresource": "binding", "responseKind": kind_ref(info, version, "Binding"), "verbs": ["create"]},
                )
                subs.append(
                    {
                        "subresource": "eviction",
                        "responseKind": {"group": "policy", "version": "v1", "kind": "Eviction"},
                        "verbs": ["create"],
                    }
                )
            if subs:
                r["subresources"] = subs
            return r

        def group_doc(name: str, infos: list[ResourceInfo]) -> JSON:
            versions: list[str] = []
            for info in infos:
                for v in info.versions:
                    if v not in versions:
                        versions.append(v)
            return {
                "metadata": {"name": name} if name else {},
                "versions": [
                    {
                        "version": v,
                        "freshness": "Current",
                        "resources": [
                            resource(i, v) for i in sorted(infos, key=lambda i: i.resource) if v in i.versions
                        ],
                    }
                    for v in versions
                ],
            }

        head = {"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{api_version}", "metadata": {}}
        core = [group_doc("", groups[""])] if "" in groups else []
        named = [group_doc(g, infos) for g, infos in sorted(groups.items()) if g]
        return orjson.dumps({**head, "items": core}), orjson.dumps({**head, "items": named})

    def aggregated(self, path: str, api_version: str) -> bytes | None:
        self._rebuild()
        return self._docs.get(f"aggregated:{api_version}:{path.rstrip('/')}")

    def get(self, path: str) -> bytes | None:
        self._rebuild()
        return self._docs.get(path.rstrip("/") or "/")

    def _openapi(self, groups: dict[str, list[ResourceInfo]]) -> dict[str, bytes]:
        """OpenAPI v3 index and per-group-version documents; a v2 document with every path."""
        out: dict[str, bytes] = {}
        index: JSON = {"paths": {}}
        v2_paths: JSON = {}
        v2_defs: JSON = {}
        for group, infos in groups.items():
            versions = sorted({v for i in infos for v in i.versions})
            for v in versions:
                gv_path = f"apis/{group}/{v}" if group else f"api/{v}"
                paths: JSON = {}
                schemas: JSON = {}
                for info in infos:
                    if v not in info.versions:
                        continue
                    name = _def_name(info, v)
                    schema: JSON = _schema_for(info, v)
                    schema["x-kubernetes-group-version-kind"] = [{"group": group, "version": v, "kind": info.kind}]
                    schemas[name] = schema
                    base = (
                        f"/{gv_path}/namespaces/{{namespace}}/{info.resource}"
                        if info.namespaced
                        else f"/{gv_path}/{info.resource}"
                    )
                    ops = _operations(info, name)
                    paths[base] = {k: ops[k] for k in ("get", "post")}
                    paths[base + "/{name}"] = {k: ops[k] for k in ("get", "put", "patch", "delete")}
                    if info.status:
                        paths[base + "/{name}/status"] = {k: ops[k] for k in ("get", "put", "patch")}
                doc = {
                    "openapi": "3.0.0",
                    "info": {"title": "Kubernetes", "version": "v1.32.0"},
                    "paths": paths,
                    "components": {"schemas": schemas},
                }
                body = orjson.dumps(doc)
                digest = hashlib.sha512(body).hexdigest()[:64].upper()
                out[f"/openapi/v3/{gv_path}"] = body
                index["paths"][gv_path] = {"serverRelativeURL": f"/openapi/v3/{gv_path}?hash={digest}"}
                v2_paths.update(paths)
                v2_defs.update(schemas)
        out["/openapi/v3"] = orjson.dumps(index)
        v2_doc = {
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": _v2_paths(v2_paths),
            "definitions": v2_defs,
        }
        out["/openapi/v2"] = orjson.dumps(v2_doc)
        return out


def _def_name(info: ResourceInfo, version: str) -> str:
    group = info.group or "core"
    rev = ".".join(reversed(group.split("."))) if "." in group else f"io.k8s.api.{group}"
    return f"{rev}.{version}.{info.kind}"


def _schema_for(info: ResourceInfo, version: str) -> JSON:
    if info.crd is not None:
        for ver in (info.crd.get("spec") or {}).get("versions") or []:
            if ver.get("name") == version:
                schema = ((ver.get("schema") or {}).get("openAPIV3Schema")) or {}
                return dict(schema) if isinstance(schema, dict) else {}
    return {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "description": f"{info.kind} (kubesim serves built-in kinds without a field schema)",
    }


def _operations(info: ResourceInfo, def_name: str) -> JSON:
    ref = {"$ref": f"#/components/schemas/{def_name}"}
    body = {"content": {"application/json": {"schema": ref}}}
    params = [
        {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
        {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
        {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
    ]
    gvk = {"group": info.group, "version": info.version, "kind": info.kind}
    resp = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}

    def op(action: str, with_body: bool) -> JSON:
        o: JSON = {
            "operationId": f"{action}{info.kind}",
            "responses": resp,
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
        }
        if with_body:
            o["requestBody"] = body
            o["parameters"] = params
        return o

    return {
        "get": op("get", False),
        "post": op("post", True),
        "put": op("put", True),
        "patch": op("patch", True),
        "delete": op("delete", False),
    }


def _v2_paths(paths: JSON) -> JSON:
    out: JSON = {}
    for path, ops in paths.items():
        out[path] = {}
        for verb, op in ops.items():
            o = {k: v for k, v in op.items() if k not in ("requestBody", "responses")}
            o["responses"] = {"200": {"description": "OK"}}
            params = [
                {"name": p["name"], "in": "query", "type": "string", "uniqueItems": True}
                for p in op.get("parameters", [])
            ]
            if "requestBody" in op:
                params.append({"name": "body", "in": "body", "required": True, "schema": {"type": "object"}})
            if params:
                o["parameters"] = params
            out[path][verb] = o
    return out
