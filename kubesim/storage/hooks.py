"""What is plugged into the write path after the store exists: CRD schema strategy and admission hooks.

Role: :class:`WriteHooks` is the one object the write path (:mod:`kubesim.storage.writes`) and the deletion
path (:mod:`kubesim.storage.deletion`) consult for custom-resource defaults/validation and for mutating and
validating admission. :func:`kubesim.storage.schema.install` fills ``schema``;
:func:`kubesim.storage.admission.install` fills ``webhooks`` and appends to ``mutating``/``validating``. A bare
:class:`~kubesim.storage.store.Store` has none of them (in-process tests that need no CRDs or webhooks).

Invariants: hooks run in registration order; a mutating hook returning None left the object unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from kubesim.storage.objects import AdmissionAttributes, AdmissionHook
from kubesim.storage.resources import ResourceInfo

JSON = dict[str, Any]


class SchemaStrategy(Protocol):
    """Custom-resource defaults and validation from the CRD's structural schema."""

    def default(self, info: ResourceInfo, obj: JSON) -> None: ...

    def prepare_create(self, info: ResourceInfo, obj: JSON) -> None: ...

    def validate(self, info: ResourceInfo, obj: JSON, old: JSON | None) -> list[JSON]: ...


class WebhookAdmission(Protocol):
    """The webhook caller (``kubesim.storage.admission.Admission``), kept to close its client session."""

    async def close(self) -> None: ...


@dataclass
class WriteHooks:
    """The pluggable parts of every write (see the module docstring)."""

    schema: SchemaStrategy | None = None
    webhooks: WebhookAdmission | None = None
    mutating: list[AdmissionHook] = field(default_factory=list)
    validating: list[AdmissionHook] = field(default_factory=list)


async def admit(hooks: list[AdmissionHook], attrs: AdmissionAttributes) -> JSON | None:
    """Run ``hooks`` in order; the changed object, or None when no hook changed it."""
    changed = None
    for hook in hooks:
        result = await hook(attrs)
        if result is not None:
            changed = attrs.obj = result
    return changed
