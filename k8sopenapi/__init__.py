"""The vendored subset of the Kubernetes OpenAPI definitions: data only, shipped inside the wheel.

Role: the one place the JSON documents ``kubernetes-<version>.json`` live (package data, so an installed wheel
has them): ``api.crdgen`` builds the CRD's embedded JobTemplateSpec/PVC schemas from them at run time (``pyjobset
demo`` installs that CRD), and ``kubesim.knownfields`` reports unknown fields of built-in kinds with them.

Invariants: a data package at the bottom of every layer: it imports nothing of ours, so both ``api`` and the
simulated cluster (which may import no product package) can read it; read through ``importlib.resources``
(works from a wheel, a zip or a checkout); only ``python -m api.crdgen --refresh-openapi``, run from a
checkout, writes here (``SOURCE_DIR``).
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Final

SOURCE_DIR: Final = Path(__file__).resolve().parent
"""This package's directory in a checkout: where ``api.crdgen --refresh-openapi`` writes a new document."""


def document_name(version: str) -> str:
    return f"kubernetes-{version}.json"


def document(version: str) -> Traversable:
    """The vendored document of one Kubernetes release (``read_bytes``/``read_text`` it)."""
    return files(__name__).joinpath(document_name(version))


def documents() -> list[Traversable]:
    """Every vendored document, sorted by name (one release is vendored at a time; the newest sorts last)."""
    found = [f for f in files(__name__).iterdir() if f.name.startswith("kubernetes-") and f.name.endswith(".json")]
    return sorted(found, key=lambda f: f.name)
