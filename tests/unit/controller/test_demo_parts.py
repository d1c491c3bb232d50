"""The demo's pure parts: option checks, the progress display (TTY and plain), metric readings, the summary."""

from __future__ import annotations

import io

import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from controller.demo import DemoOptions
from controller.demo.progress import Progress, bar
from controller.demo.readings import read
from controller.demo.scenario import jobsets_for
from controller.demo.timeline import Point, Timeline, summary


def test_no_scenario_flag_is_the_classic_sample() -> None:
    options = DemoOptions()
    assert not options.fleet
    [sample] = jobsets_for(options)
    assert sample["metadata"]["name"] == "demo"
    assert [rj["replicas"] for rj in sample["spec"]["replicatedJobs"]] == [1, 3]


def test_fleet_jobsets_share_the_nodes_and_take_whole_nodes() -> None:
    options = DemoOptions(nodes=10, gpus_per_node=4, jobsets=3)
    assert options.fleet
    jobsets = jobsets_for(options)
    assert [js["metadata"]["name"] for js in jobsets] == ["train-0", "train-1", "train-2"]
    [workers] = jobsets[0]["spec"]["replicatedJobs"]
    assert workers["replicas"] == 4  # ceil(10 / 3)
    pod = workers["template"]["spec"]["template"]
    assert pod["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] == "4"
    assert DemoOptions(fail_at=3).run_seconds == 7  # pods outlive the failure


@pytest.mark.parametrize(
    ("options", "flag"),
    [
        (DemoOptions(nodes=0), "--nodes 0"),
        (DemoOptions(gpus_per_node=0), "--gpus-per-node 0"),
        (DemoOptions(jobsets=0), "--jobsets 0"),
        (DemoOptions(jobset_size=-1), "--jobset-size -1"),
        (DemoOptions(fail_at=-2), "--fail-at -2"),
        (DemoOptions(pod_run_seconds=-1), "--pod-run-seconds -1"),
        (DemoOptions(timeout=0), "--timeout 0"),
        (DemoOptions(plot="timeline.svg"), "--plot timeline.svg"),
    ],
)
def test_each_bad_flag_gets_one_line_naming_it(options: DemoOptions, flag: str) -> None:
    [problem] = options.problems()
    assert problem.startswith(flag + ": ")
    assert "\n" not in problem


def test_plain_progress_prints_changes_as_lines_and_throttles() -> None:
    out = io.StringIO()
    progress = Progress(out, tty=False, min_interval=1.0)
    progress.status(0.0, "a")
    progress.status(0.5, "b")  # within the interval: held back
    progress.status(1.2, "b")  # shown once the interval has passed
    progress.status(1.5, "b")  # unchanged: not repeated
    progress.note(1.6, "node failed")
    progress.close()
    assert out.getvalue() == "[  0.0s] a\n[  1.2s] b\n[  1.6s] node failed\n"


def test_tty_progress_redraws_one_line_and_notes_stay() -> None:
    out = io.StringIO()
    progress = Progress(out, tty=True, columns=200)
    progress.status(0.0, "a", 0.5)
    progress.status(0.3, "b")
    progress.note(0.4, "restart")
    progress.status(0.5, "c")
    progress.close()
    text = out.getvalue()
    assert text.startswith("\r\x1b[2K[   0.0s] [" + "#" * 10 + "." * 10 + "] a")
    assert "\r\x1b[2K[   0.3s] b" in text
    assert "\r\x1b[2K[  0.4s] restart\n" in text
    assert text.endswith("c\n")
    assert bar(2.0, 4) == "[####]"


def _families() -> list[object]:
    status = GaugeMetricFamily("jobset_status", "", labels=["namespace", "jobset_name", "state"])
    status.add_metric(["ns", "a", "Completed"], 1)
    status.add_metric(["ns", "b", "Failed"], 1)
    restarts = CounterMetricFamily(
        "jobset_restarts", "", labels=["namespace", "jobset_name", "action", "rule", "reason"]
    )
    restarts.add_metric(["ns", "a", "RestartJobSet", "", "FailedJobs"], 2)
    restarts.add_metric(["ns", "a", "RestartJobSet", "r1", "PodFailurePolicy"], 1)
    alloc = GaugeMetricFamily("jobset_cluster_gpu_allocatable", "")
    alloc.add_metric([], 64)
    startup = HistogramMetricFamily("jobset_startup_seconds", "", labels=["namespace", "trigger"])
    startup.add_metric(["ns", "create"], [("1.0", 1), ("5.0", 3), ("+Inf", 4)], sum_value=12.0)
    return [status, restarts, alloc, startup]


def test_reading_a_scrape() -> None:
    reading = read(_families())
    assert reading.state == {("ns", "a"): "Completed", ("ns", "b"): "Failed"}
    assert reading.restarts_applied == {("ns", "a"): 3}
    assert reading.restarts == 3
    assert reading.gpus_allocatable == 64
    assert reading.startup.count == 4
    assert reading.startup.mean == 3.0
    assert reading.startup.quantile_bound(0.5) == 5.0


def test_summary_reports_the_metrics_numbers() -> None:
    timeline = Timeline()
    timeline.add(Point(0.0, 0, 0, 0, 0, 0))  # nothing allocatable yet: left out of the occupancy
    timeline.add(Point(1.0, 2, 2, 32, 64, 0))
    timeline.add(Point(2.0, 2, 2, 64, 64, 2))
    assert timeline.restarts_at == [2.0, 2.0]
    text = summary(read(_families()), timeline)
    assert "JobSets by state: Completed=1, Failed=1" in text
    assert "restarts: 3 in total; a=3" in text
    assert "start-up (attempt start -> all pods ready): 4 observed, mean 3.00s, p90 <= +Inf" not in text
    assert "4 observed, mean 3.00s, p90 > last bucket" in text
    assert "recovery (restart decided -> all pods ready again): none observed" in text
    assert "GPU occupancy: mean 75%, peak 100% of allocatable" in text


def test_tty_progress_is_cut_to_the_terminal_width() -> None:
    out = io.StringIO()
    Progress(out, tty=True, columns=40).status(0.0, "x" * 100)
    assert len(out.getvalue().removeprefix("\r\x1b[2K")) == 39
