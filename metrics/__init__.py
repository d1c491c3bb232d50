"""Metrics, health endpoints, dashboards and alerts of the JobSet controller.

Modules: ``registry`` (every metric: names, help, labels, buckets), ``settings`` (cardinality and exposition
options), ``hooks`` (adapters for the reconciler, work queue, REST client and leader election), ``lifecycle``
(the JobSet lifecycle tracker: restarts, start-up phases, recovery, terminal outcomes, idle GPU-seconds),
``readers`` (reading slim records), ``collectors`` (scrape-time values: informers, per-JobSet state, GPU
occupancy), ``exposition`` (text format rendered in slices on the event loop), ``hub`` (assembly and
``attach``), ``server`` (``/metrics``, ``/healthz``, ``/readyz``, TLS), ``auth`` (TokenReview and
SubjectAccessReview of scrapes), ``dashboards`` (Grafana and PrometheusRule generator), ``synthetic`` (records
and scripted lives for tests and benchmarks).

Layering: ``metrics`` reads ``cache`` and never imports ``controller`` or ``kubesim`` (import-linter contract);
hooks into the controller are typed structurally.
"""
