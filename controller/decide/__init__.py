"""Pure JobSet policy: snapshot + now → Plan.

Invariant (enforced by import-linter): modules here import only records, constants, msgspec, a regular-expression
engine and the standard library. They never await, read a clock, log, or raise for control flow; reasons, events,
errors and diagnostics are data in the Plan.

Entry point: ``controller.decide.reconcile.decide(snapshot, now) -> Plan``. Modules, in reconcile order:
``plan`` (the contract), ``classify`` (children and counts), ``conditions`` (status draft, 4.9 semantics),
``failure`` (4.5), ``success`` (4.6), ``children`` and ``naming`` (manifests, labels, PVCs, Service),
``elastic`` (gate ElasticJobSet), ``startup`` (4.4 creation, dependsOn, InOrder), ``suspend`` (4.7),
``inplace`` (4.10), ``ttl`` (4.8).
"""
