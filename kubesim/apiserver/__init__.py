"""kubesim's HTTP face: the Kubernetes REST API over aiohttp, on 127.0.0.1 only.

Role: ``server`` (dispatch and the REST verbs), ``routing`` (which resource a path names), ``bodies``
(request bodies, ``Accept``), ``httputil`` (targets and JSON/Status responses), ``httpwatch`` (watch streams),
``discovery`` and ``tables`` (what kubectl reads), ``protobuf`` (the bodies kubectl's generators send),
``faults`` (fault injection and its control paths).

Invariants: every call into the cluster goes through :class:`kubesim.storage.store.Store`'s public API; nothing
here imports the in-cluster controllers (:mod:`kubesim.cluster`).
"""
