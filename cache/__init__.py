"""The client runtime: the API client, informers, stores and indexes, the work queue, rate limiters and leader
election.

Role: everything that talks to the API server and keeps the local model of the cluster. The types it decodes
into live in ``api`` (``api.records``, ``api.jobset_types``).

Invariant: the layer above ``api`` and below ``controller`` / ``metrics`` (import-linter layers ``api`` ← ``cache``
← ``controller`` / ``metrics``): imports ``api`` and never ``controller``, ``metrics``, ``kubesim`` or ``tools``;
records handed out of the store are immutable and shared, never changed in place.
"""
