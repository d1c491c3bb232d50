"""The JobSet API as this project speaks it: types, slim records, wire constants, the CRD generator and the
decision vocabulary.

Role: the shared language of every other package. ``jobset_types`` is the JobSet API (``jobset.x-k8s.io/v1alpha2``)
as typed msgspec records and the single source of the CRD (``crdgen`` generates ``deploy/crd/``; a test fails on
drift); ``records`` are the slim, immutable records the cache decodes Jobs, Pods, Nodes and Services into;
``constants`` holds every label, annotation, condition, reason and limit that crosses the wire; ``plan`` is the
``Snapshot`` → ``Plan``/``Outcome`` vocabulary shared by the pure policy, the acting layer and the metrics;
``jsontypes`` is the ``JSON`` alias and the one deep copy of decoded JSON; ``timefmt`` formats and parses
Kubernetes timestamps.

Invariants: no I/O and no runtime state (``crdgen`` reads and writes files only when run as a tool); imports
only the standard library, msgspec and PyYAML (for ``crdgen``); the bottom layer (import-linter layers ``api`` ←
``cache`` ← ``controller`` / ``metrics``): every other product package may import it, it imports none of them.
"""
