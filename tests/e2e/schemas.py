"""JSON schemas for kubeconform, made offline from the OpenAPI v3 documents a real kube-apiserver serves.

Role: kubeconform validates manifests against one JSON schema per (group, version, kind); it normally downloads
them, which cannot happen here. The e2e tier runs the pinned kube-apiserver, whose ``/openapi/v3`` holds the
exact schemas of every built-in kind of that release, so :func:`write_schemas` turns the documents of the
group-versions a set of manifests uses into files laid out for the kubeconform schema location
:data:`SCHEMA_LOCATION`.

Invariants: each schema file is one group-version's whole ``components/schemas`` plus a root ``$ref`` to the
kind's definition, so every ``$ref`` resolves inside the file; strict mode (``additionalProperties: false`` on
every object with declared properties, except where Kubernetes keeps unknown fields) makes a misspelt field an
error, as ``kubectl apply`` (strict field validation) would; ``int-or-string`` and ``Quantity`` values accept
both forms, and ``nullable`` ones accept null, because JSON Schema knows neither OpenAPI extension.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.e2e.kube import Client

JSON = dict[str, Any]

SCHEMA_LOCATION = "{{ .Group }}/{{ .ResourceAPIVersion }}/{{ .ResourceKind }}.json"
"""kubeconform ``-schema-location`` template below the schema directory (Group is ``v1`` for the core group)."""

_REF_PREFIX = "#/components/schemas/"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"


def _group_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def _openapi_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _convert(node: Any) -> Any:
    """One OpenAPI v3 schema node as strict JSON Schema (see the module invariants)."""
    if isinstance(node, list):
        return [_convert(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: JSON = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            # A map of property names to schemas, not a schema: its keys may be "type", "anyOf", ... (as in the
            # CRD's own JSONSchemaProps), so only its values are converted.
            out[key] = {name: _convert(sub) for name, sub in value.items()}
        else:
            out[key] = _convert(value)
    if out.get("format") == "int-or-string" or out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.pop("format", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _kind_definitions(components: JSON) -> dict[tuple[str, str, str], str]:
    found: dict[tuple[str, str, str], str] = {}
    for name, schema in components.items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            found[(gvk.get("group", ""), gvk["version"], gvk["kind"])] = name
    return found


def wait_until_published(client: Client, api_version: str, *, timeout: float = 60.0) -> None:
    """Wait until ``/openapi/v3`` lists ``api_version``: the API server publishes a new CRD's schema shortly
    after the CRD is Established, and nothing can be watched for that, so this polls (bounded)."""
    group, version = _group_version(api_version)
    deadline = time.monotonic() + timeout
    while _openapi_path(group, version) not in client.get("/openapi/v3")["paths"]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the API server did not publish {api_version} in /openapi/v3 within {timeout}s")
        time.sleep(0.2)


def write_schemas(client: Client, kinds: Iterable[tuple[str, str]], directory: Path) -> list[Path]:
    """Write the schema of each ``(apiVersion, kind)`` the API server serves into ``directory``.

    Raises ``LookupError`` naming the kind when the server does not serve it (a typo in a manifest's
    apiVersion or kind, or a kind of a CRD that is not installed)."""
    index = client.get("/openapi/v3")["paths"]
    documents: dict[tuple[str, str], JSON] = {}
    written: list[Path] = []
    for api_version, kind in sorted(set(kinds)):
        group, version = _group_version(api_version)
        key = (group, version)
        if key not in documents:
            entry = index.get(_openapi_path(group, version))
            if entry is None:
                raise LookupError(f"the API server serves no {api_version} (needed for kind {kind})")
            raw = client.get(entry["serverRelativeURL"].split("?", 1)[0])
            documents[key] = {name: _convert(schema) for name, schema in raw["components"]["schemas"].items()}
            for special in (_QUANTITY, _INT_OR_STRING):
                if special in documents[key]:
                    description = documents[key][special].get("description", "")
                    documents[key][special] = {
                        "description": description,
                        "anyOf": [{"type": "integer"}, {"type": "number"}, {"type": "string"}],
                    }
        components = documents[key]
        definition = _kind_definitions(components).get((group, version, kind))
        if definition is None:
            raise LookupError(f"the API server serves no kind {kind} in {api_version}")
        path = directory / (group or version) / version / f"{kind.lower()}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        schema = {"$ref": _REF_PREFIX + definition, "components": {"schemas": components}}
        path.write_text(json.dumps(schema), encoding="utf-8")
        written.append(path)
    return written
