"""Pure JobSet policy: snapshot + now → Plan.

Invariant (enforced by import-linter): modules here import only ``api`` (records, constants, the
``api.plan`` Snapshot/Plan vocabulary), msgspec, re2 (failure-policy patterns) and the standard library — a
forbidden contract rules out every other external package and the stdlib's I/O, clock and randomness modules, and
``decide`` is the bottom layer inside ``controller`` (no other controller module, no ``cache``, ``metrics`` or
``kubesim``). They never await, read a clock, log, or raise for control flow; reasons, events, errors and
diagnostics are data in the Plan.

Entry point: ``controller.decide.reconcile.decide(snapshot, now) -> Plan``. Modules, in reconcile order:
``classify`` (children and counts), ``conditions`` (status draft, 4.9 semantics),
``failure`` (4.5), ``success`` (4.6), ``children`` and ``naming`` (manifests, labels, PVCs, Service),
``elastic`` (gate ElasticJobSet), ``startup`` (4.4 creation, dependsOn, InOrder), ``suspend`` (4.7),
``inplace`` (4.10), ``ttl`` (4.8).
"""
