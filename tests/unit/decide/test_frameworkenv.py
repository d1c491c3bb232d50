"""``pyjobset.io/inject-env``: the variables one pod gets, ranks across uneven replicated jobs, parsing."""

from __future__ import annotations

import pytest

from api import extensions as x
from controller.decide.frameworkenv import (
    PodIdentity,
    annotation_errors,
    coordinator_host,
    flavours,
    master_port,
    pod_env,
    world_size,
)
from tests.builders import JobSetBuilder


def uneven(inject: str = "generic", **more: str) -> JobSetBuilder:
    """driver: 1 Job x 1 pod; workers: 2 Jobs x 4 pods; ps: 3 Jobs x 2 pods → 15 pods."""
    b = (
        JobSetBuilder("train")
        .rjob("driver", 1)
        .rjob("workers", 2, parallelism=4, completions=4)
        .rjob("ps", 3, parallelism=2, completions=2)
        .annotate(x.INJECT_ENV_KEY, inject)
    )
    for key, value in more.items():
        b.annotate(key, value)
    return b


def env_of(b: JobSetBuilder, rjob: str, job: int, idx: int, attempt: int = 0) -> dict[str, str]:
    return dict(pod_env(b.record(), PodIdentity(rjob, job, idx, attempt)))


def test_ranks_are_dense_and_unique_across_replicated_jobs_of_different_parallelism() -> None:
    b = uneven()
    js = b.record()
    pods = [("driver", 0, 0)]
    pods += [("workers", j, i) for j in range(2) for i in range(4)]
    pods += [("ps", j, i) for j in range(3) for i in range(2)]
    ranks = [int(env_of(b, *p)["JOBSET_RANK"]) for p in pods]
    assert ranks == list(range(15))
    assert world_size(js) == 15
    assert env_of(b, "workers", 1, 2)["JOBSET_RANK"] == "7"  # 1 + 1*4 + 2
    assert env_of(b, "ps", 2, 1)["JOBSET_RANK"] == "14"  # 1 + 8 + 2*2 + 1
    assert env_of(b, "ps", 2, 1)["JOBSET_GLOBAL_INDEX"] == "5"  # 1 + 2 + 2


def test_rank_does_not_depend_on_the_restart_attempt() -> None:
    b = uneven()
    first, later = env_of(b, "workers", 1, 3, attempt=0), env_of(b, "workers", 1, 3, attempt=4)
    assert later["JOBSET_RESTART_ATTEMPT"] == "4"
    assert {k: v for k, v in first.items() if k != "JOBSET_RESTART_ATTEMPT"} == {
        k: v for k, v in later.items() if k != "JOBSET_RESTART_ATTEMPT"
    }


def test_generic_variables_name_the_pod() -> None:
    env = env_of(uneven(), "workers", 1, 2, attempt=3)
    assert env == {
        "JOBSET_NAME": "train",
        "JOBSET_REPLICATED_JOB": "workers",
        "JOBSET_JOB_INDEX": "1",
        "JOBSET_GLOBAL_INDEX": "2",
        "JOBSET_RESTART_ATTEMPT": "3",
        "JOBSET_WORLD_SIZE": "15",
        "JOBSET_RANK": "7",
        "JOBSET_COORDINATOR": "train-driver-0-0.train",
    }


def test_torch_and_jax_use_their_default_ports_and_the_coordinator() -> None:
    env = env_of(uneven("torch,jax"), "ps", 0, 1)
    assert env == {
        "MASTER_ADDR": "train-driver-0-0.train",
        "MASTER_PORT": "29500",
        "WORLD_SIZE": "15",
        "RANK": "10",
        "NODE_RANK": "10",
        "GROUP_RANK": "10",
        "JAX_COORDINATOR_ADDRESS": "train-driver-0-0.train:1234",
        "JAX_NUM_PROCESSES": "15",
        "JAX_PROCESS_ID": "10",
    }


def test_master_port_annotation_sets_both_ports() -> None:
    env = env_of(uneven("jax, torch", **{x.MASTER_PORT_KEY: "7777"}), "driver", 0, 0)
    assert env["MASTER_PORT"] == "7777"
    assert env["JAX_COORDINATOR_ADDRESS"] == "train-driver-0-0.train:7777"


def test_spec_coordinator_and_subdomain_name_the_coordinator() -> None:
    b = uneven("torch").set("spec.coordinator", {"replicatedJob": "ps", "jobIndex": 1, "podIndex": 1})
    b.set("spec.network.subdomain", "net")
    assert coordinator_host(b.record()) == "train-ps-1-1.net"
    assert env_of(b, "workers", 0, 0)["MASTER_ADDR"] == "train-ps-1-1.net"


def test_rank_zero_skips_empty_replicated_jobs() -> None:
    b = (
        JobSetBuilder("t")
        .rjob("none", 0)
        .rjob("w", 2, parallelism=2, completions=2)
        .annotate(x.INJECT_ENV_KEY, "generic")
    )
    assert coordinator_host(b.record()) == "t-w-0-0.t"
    assert env_of(b, "w", 1, 1)["JOBSET_RANK"] == "3"


def test_no_opt_in_or_unknown_pod_gives_nothing() -> None:
    assert pod_env(JobSetBuilder("t").rjob("w", 1).record(), PodIdentity("w", 0, 0)) == []
    b = uneven()
    assert env_of(b, "missing", 0, 0) == {}
    assert env_of(b, "workers", 2, 0) == {}  # only 2 replicas
    assert env_of(b, "workers", 0, 4) == {}  # only 4 completion indexes
    assert env_of(uneven("pytorch"), "driver", 0, 0) == {}  # admission refuses it; never half-applied


@pytest.mark.parametrize(
    ("value", "expected"),
    [("torch", ("torch",)), ("generic,jax", ("jax", "generic")), (" jax , torch ", ("torch", "jax"))],
)
def test_flavours_accepts_the_contract_values(value: str, expected: tuple[str, ...]) -> None:
    assert flavours(value) == (expected, None)


@pytest.mark.parametrize("value", ["", "pytorch", "torch,", "torch,,jax", "TORCH"])
def test_flavours_rejects_anything_else_with_the_expected_form(value: str) -> None:
    names, err = flavours(value)
    assert names == ()
    assert err is not None
    assert '"torch", "jax" and "generic"' in err


@pytest.mark.parametrize("value", ["0", "65536", "-1", "http", "29500.0", ""])
def test_master_port_rejects_non_ports(value: str) -> None:
    assert master_port(value, 5)[1] is not None


def test_annotation_errors_name_each_bad_annotation() -> None:
    errs = annotation_errors({x.INJECT_ENV_KEY: "mpi", x.MASTER_PORT_KEY: "99999", "other": "x"})
    assert [(k, v) for k, v, _ in errs] == [(x.INJECT_ENV_KEY, "mpi"), (x.MASTER_PORT_KEY, "99999")]
    assert annotation_errors({x.INJECT_ENV_KEY: "torch", x.MASTER_PORT_KEY: "29501"}) == []


def test_rank_zero_skips_replicated_jobs_whose_jobs_have_no_pods() -> None:
    # Replicas but zero completions: its Jobs run no pod, so rank 0 (the coordinator) is the next one's first pod.
    b = (
        JobSetBuilder("t")
        .rjob("empty", 2, parallelism=0, completions=0)
        .rjob("w", 1, parallelism=2, completions=2)
        .annotate(x.INJECT_ENV_KEY, "generic")
    )
    assert coordinator_host(b.record()) == "t-w-0-0.t"
