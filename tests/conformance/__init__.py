"""The JobSet conformance suite: every scenario of ``docs/design/conformance.md`` against a kubeconfig.

Runs unchanged on the simulated cluster (default) and on the real control plane (``PYJOBSET_KUBECONFIG``, plus
``PYJOBSET_EXTERNAL_CONTROLLER=1`` when the controller runs as its own process; ``PYJOBSET_FEATURE_GATES`` then
says which gates it has). Test names carry the scenario numbers (``test_c14_...``).

Where each scenario lives:

* ``test_success.py`` — 2, 3, 5-9, 11, 42, 43
* ``test_failure.py`` — 10, 13-16, 21, 22, 24, 25, 28, 30-32; message patterns, Recreate vs BlockingRecreate,
  RestartingJobSet clearing, finished JobSets deleting active Jobs
* ``test_lifecycle.py`` — 1, 36, 38, 39, 46-49, 53, 54; InOrder startup and resume
* ``test_policies.py`` — 40, 59-61, 64, 65; TTL after finished
* ``test_controller_side.py`` — controller side of 8.B (67, 68/69, 71, 74, 77, 82, 91); child labels, exclusive
  placement node-selector strategy, Service reuse, JobCreationFailed retry and event series
* ``test_webhook_scenarios.py`` — 66-102 through the API server's admission path (our webhook server)
* ``test_in_place_restart.py`` — controller half of in-place restart (behaviour.md §4.10), the test playing the agents
* ``test_end_to_end.py`` — 103, 104, 106, 107, 109, 110, 113, 114 (pod-driven); 117-119 skipped (they need
  Kubernetes 1.36 alpha workload-aware scheduling)

Shared machinery: ``kit.py`` (objects, Job status writers, watch-driven waits), ``conftest.py`` (fixtures, gates).
"""
