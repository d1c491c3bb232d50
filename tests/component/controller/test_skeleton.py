"""Walking skeleton end to end: simulated API server + controller; a 1+3 JobSet gets 4 Jobs and 1 Service."""

from __future__ import annotations

from api import constants as c
from cache.client import ApiClient, resource_path
from controller.app import Controller
from controller.decide.naming import job_key
from tests.builders import JobSetBuilder
from tests.conftest import wait_for


async def test_jobset_creates_four_jobs_and_one_service(
    api: ApiClient, controller: Controller | None, namespace: str
) -> None:
    js = JobSetBuilder("test-js", namespace).rjob("replicated-job-a", 1).rjob("replicated-job-b", 3).obj()
    created = await api.create(resource_path(c.GROUP, c.VERSION, c.PLURAL, namespace), js)
    uid = created["metadata"]["uid"]

    jobs_path = resource_path("batch", "v1", "jobs", namespace)
    jobs = await wait_for(api, jobs_path, lambda items: items if len(items) == 4 else None)
    names = sorted(j["metadata"]["name"] for j in jobs)
    assert names == [
        "test-js-replicated-job-a-0",
        "test-js-replicated-job-b-0",
        "test-js-replicated-job-b-1",
        "test-js-replicated-job-b-2",
    ]
    b2 = next(j for j in jobs if j["metadata"]["name"] == "test-js-replicated-job-b-2")
    labels = b2["metadata"]["labels"]
    assert labels[c.JOBSET_NAME_KEY] == "test-js"
    assert labels[c.JOBSET_UID_KEY] == uid
    assert labels[c.JOB_GLOBAL_INDEX_KEY] == "3"
    assert labels[c.GLOBAL_REPLICAS_KEY] == "4"
    assert labels[c.JOB_KEY] == job_key(namespace, "test-js-replicated-job-b-2")
    assert b2["metadata"]["annotations"][c.JOB_INDEX_KEY] == "2"
    assert b2["spec"]["template"]["metadata"]["labels"][c.RESTART_ATTEMPT_KEY] == "0"
    owner = b2["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("JobSet", "test-js", uid, True)

    services = await wait_for(
        api, resource_path("", "v1", "services", namespace), lambda items: items if items else None
    )
    assert [s["metadata"]["name"] for s in services] == ["test-js"]
    assert services[0]["spec"]["clusterIP"] == "None"
    assert services[0]["spec"]["selector"] == {c.JOBSET_NAME_KEY: "test-js"}

    def rjs_ok(items: list[dict]) -> bool:  # type: ignore[type-arg]
        status = items[0].get("status", {}) if items else {}
        names = {s["name"] for s in status.get("replicatedJobsStatus", [])}
        return names == {"replicated-job-a", "replicated-job-b"}

    assert await wait_for(api, resource_path(c.GROUP, c.VERSION, c.PLURAL, namespace), rjs_ok)
