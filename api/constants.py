"""Wire-level constants of the JobSet API: group/version, label and annotation keys, reasons, names.

These strings are copied exactly from the behavioural contract (``docs/design/behaviour.md``) because
clients, Kueue and tests read them. Invariant: pure data, no imports beyond the standard library.
"""

from typing import Final

GROUP: Final = "jobset.x-k8s.io"
VERSION: Final = "v1alpha2"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "JobSet"
PLURAL: Final = "jobsets"
SINGULAR: Final = "jobset"

CONTROLLER_NAME: Final = "jobset.sigs.k8s.io/jobset-controller"
"""The reserved ``spec.managedBy`` value that means "this controller"."""

_P: Final = "jobset.sigs.k8s.io/"
JOBSET_NAME_KEY: Final = _P + "jobset-name"
JOBSET_UID_KEY: Final = _P + "jobset-uid"
REPLICATED_JOB_NAME_KEY: Final = _P + "replicatedjob-name"
RESTART_ATTEMPT_KEY: Final = _P + "restart-attempt"
JOB_RESTART_ATTEMPT_KEY: Final = _P + "job-restart-attempt"
REPLICATED_JOB_REPLICAS_KEY: Final = _P + "replicatedjob-replicas"
GLOBAL_REPLICAS_KEY: Final = _P + "global-replicas"
JOB_INDEX_KEY: Final = _P + "job-index"
JOB_GLOBAL_INDEX_KEY: Final = _P + "job-global-index"
JOB_KEY: Final = _P + "job-key"
GROUP_NAME_KEY: Final = _P + "group-name"
GROUP_REPLICAS_KEY: Final = _P + "group-replicas"
JOB_GROUP_INDEX_KEY: Final = _P + "job-group-index"
COORDINATOR_KEY: Final = _P + "coordinator"
PRIORITY_KEY: Final = _P + "priority"
IN_PLACE_RESTART_ATTEMPT_KEY: Final = _P + "in-place-restart-attempt"
DISABLE_IN_PLACE_RESTART_KEY: Final = _P + "disable-in-place-restart"

EXCLUSIVE_TOPOLOGY_KEY: Final = "alpha.jobset.sigs.k8s.io/exclusive-topology"
NODE_SELECTOR_STRATEGY_KEY: Final = "alpha.jobset.sigs.k8s.io/node-selector"
NAMESPACED_JOB_KEY: Final = "alpha.jobset.sigs.k8s.io/namespaced-job"
NO_SCHEDULE_TAINT_KEY: Final = "alpha.jobset.sigs.k8s.io/no-schedule"

JOB_COMPLETION_INDEX_ANNOTATION: Final = "batch.kubernetes.io/job-completion-index"

DEFAULT_GROUP_NAME: Final = "default"
FOREGROUND_DELETION_FINALIZER: Final = "foregroundDeletion"

# Condition types.
COND_COMPLETED: Final = "Completed"
COND_FAILED: Final = "Failed"
COND_SUSPENDED: Final = "Suspended"
COND_RESTARTING: Final = "RestartingJobSet"
COND_STARTUP_IN_PROGRESS: Final = "StartupPolicyInProgress"
COND_STARTUP_COMPLETED: Final = "StartupPolicyCompleted"

# Feature gates.
GATE_IN_PLACE_RESTART: Final = "InPlaceRestart"
GATE_RESTART_JOB: Final = "RestartJob"
GATE_ELASTIC_JOBSET: Final = "ElasticJobSet"
GATE_TLS_OPTIONS: Final = "TLSOptions"

# Limits of the JobSet schema: the CRD generator emits them (``api.jobset_types``), the webhook's schema check
# restates them with the API server's messages, and the policy relies on them.
MAX_DEPENDS_ON: Final = 5
"""``replicatedJobs[].dependsOn`` holds at most this many items."""
MAX_VOLUME_CLAIM_POLICIES: Final = 50
"""``spec.volumeClaimPolicies`` holds at most this many items."""
MAX_VOLUME_CLAIM_TEMPLATES: Final = 50
"""``spec.volumeClaimPolicies[].templates`` holds at most this many items."""
MAX_REPLICAS_WITH_RESTART_JOB: Final = 1024
"""A replicated job targeted by a RestartJob action has at most this many replicas, because its per-Job restart
counters (``status.replicatedJobsStatus[].jobRestarts`` and ``jobRestartsCountTowardsMax``, one entry per Job
index) hold at most this many items."""

# Bounds of our own (behaviour.md §5.5 "Size limits" and §4 "Bounded passes"): the reference has none of these.
MAX_CHILD_WRITES_PER_PASS: Final = 200
"""A reconcile pass carries at most this many Job creates (and as many deletes, and as many updates); a larger
JobSet is worked through in several passes, each requeued behind the other queued JobSets."""
MAX_JOBS_PER_JOBSET: Final = 65_536
"""Admission refuses a JobSet whose replicated jobs' ``replicas`` add up to more (one Job per node of the largest
clusters JobSet is run on, 65k nodes)."""
MAX_REPLICATED_JOBS: Final = 100
"""Admission refuses a JobSet with more ``spec.replicatedJobs`` entries (each is a template of its own; every child
Job's labels cost O(replicated jobs) to compute)."""
MAX_JOBSET_BYTES: Final = 1024 * 1024
"""Admission refuses a JobSet whose JSON encoding is larger (etcd's default request limit is 1.5 MiB, and the
status, managed fields and later updates need room)."""
