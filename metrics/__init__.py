"""Metrics, health endpoints and alerts of the JobSet controller.

Modules: ``registry`` (every metric: names, help, labels, buckets), ``settings`` (cardinality and exposition
options), ``seam`` (the interfaces the controller calls and the typed informer handles it registers: the only
``metrics`` module the controller's reconcile loop and acting layer import), ``hooks`` (adapters for the
reconciler, work queue, REST client and leader election), ``lifecycle`` (the JobSet lifecycle tracker: restarts,
start-up phases, recovery, terminal outcomes, idle GPU-seconds), ``readers`` (reading slim records),
``collectors`` (scrape-time values: informers, per-JobSet state, GPU occupancy), ``exposition`` (text format
rendered in slices on the event loop), ``hub`` (assembly: ``MetricsHub`` implements the seam), ``server``
(``/metrics``, ``/healthz``, ``/readyz``, TLS), ``auth`` (TokenReview and SubjectAccessReview of scrapes). The
dashboard and alert generator and the synthetic records for tests live in ``tools/``, outside the product.

Layering (import-linter): ``api`` ← ``cache`` ← ``controller`` / ``metrics``. ``metrics`` imports ``api`` (the
real ``Plan``/``Outcome`` types, records) and ``cache`` (client, informers, stores), never ``controller``,
``kubesim`` or ``tools``; ``controller`` imports ``metrics.seam`` from its reconcile loop and acting layer, and the
rest of ``metrics`` only from its composition root ``controller.app``, which wires the hub in
(``Controller.attach_metrics``).
"""
