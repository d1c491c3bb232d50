"""Admission webhooks: JobSet defaulting and validation (and, later, the pod webhooks and the HTTPS server).

Role: the second entry point into the controller (see ``architecture.md``). Everything in this package up to
the server is pure: functions take raw JSON objects (what an ``AdmissionReview`` carries) and feature gates,
and return a new object or a list of field errors rendered exactly like Kubernetes'.

Invariants: no I/O except through injected callables (``pvc_lookup``); no exception escapes for any
JSON-compatible input; for a JSON object every error names a field path under ``metadata`` or ``spec``.
"""

from controller.webhooks.fielderrors import ErrorList, FieldError, Path, invalid_status
from controller.webhooks.jobset_defaults import default_jobset
from controller.webhooks.jobset_validation import validate_create, validate_schema_rules, validate_update

__all__ = [
    "ErrorList",
    "FieldError",
    "Path",
    "default_jobset",
    "invalid_status",
    "validate_create",
    "validate_schema_rules",
    "validate_update",
]
