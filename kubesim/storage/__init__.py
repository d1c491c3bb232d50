"""kubesim's storage: the in-process API server minus HTTP -- objects, write semantics, watches, CRDs, admission.

Role: :class:`kubesim.storage.store.Store` is the handle everyone uses; it wires the collaborators by constructor
injection: ``objectstore`` (buckets of stored bytes, resourceVersions, indexes, commits; ``buckets`` underneath),
``writes`` (create/update/patch/bind through GuaranteedUpdate), ``deletion`` (DELETE, finalizers, eviction),
``watches`` (watch registration and replay) and ``hooks`` (the pluggable CRD schema and admission). Strategies
and formats: ``builtins``, ``knownfields``, ``decode`` (body shapes), ``patch``, ``apply``, ``resources``,
``objects``. Plug-ins on a Store: ``schema`` (CRDs), ``admission`` (webhooks), ``gc`` (garbage collector and
namespace termination).

Invariants: nothing here speaks HTTP or knows the in-cluster controllers; the import-linter contracts keep the
order plug-ins -> store -> deletion -> writes/watches -> objectstore/hooks -> strategies -> buckets -> resources.
"""
