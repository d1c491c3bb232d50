"""The client runtime: the API client, informers, stores and indexes, the work queue, rate limiters and leader
election.

Role: everything that talks to the API server and keeps the local model of the cluster. The types it decodes
into live in ``api`` (``api.records``, ``api.jobset_types``).

Invariant: imports ``api`` and never ``controller``, ``metrics`` or ``kubesim`` (import-linter layers); records
handed out of the store are immutable and shared, never changed in place.
"""
