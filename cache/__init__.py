"""The cluster model: slim records, informers, stores and indexes, the work queue and the API client.

Invariant: nothing in this package imports from ``controller``, ``metrics`` or ``kubesim``; records handed
out of the store are immutable and shared, never changed in place.
"""
