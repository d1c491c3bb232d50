"""kubesim's base layer: what the storage, the HTTP server and the in-cluster controllers all share.

Role: ``errors`` (Kubernetes ``Status`` bodies and :class:`~kubesim.util.errors.ApiError`), ``selectors`` (label
and field selector strings, and the one ``metav1.LabelSelector`` matcher), ``jsonutil`` (deep copies and
exact-size serialisation of JSON values) and ``timefmt`` (``metav1.Time`` formatting and parsing).

Invariants: pure functions and values only -- no I/O, no state, no import of any other kubesim package (the
import-linter ``layers`` contract checks it).
"""
