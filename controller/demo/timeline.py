"""The demo's timeline: samples over time, the summary drawn from the metrics, and the PNG picture.

Role: :class:`Timeline` keeps one :class:`Point` per progress tick (Jobs created, pods running, GPUs held and
allocatable, restarts so far) and the marks (failure injected, restarts seen); :func:`summary` writes the
closing report from the last metrics :class:`~controller.demo.readings.Reading` and the timeline;
:func:`write_png` draws the timeline with matplotlib, imported only when a picture is asked for.

Invariants: matplotlib is optional (the dev extra): without it :func:`write_png` raises :class:`PlotError` with
a one-line message naming the fix, never an ImportError trace; the picture is written with the non-interactive
Agg backend (no display needed); numbers in the summary are the metrics' own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.demo.readings import Histogram, Reading


class PlotError(Exception):
    """The timeline picture cannot be drawn (missing matplotlib, unwritable path); the message is one line."""


@dataclass(frozen=True)
class Point:
    t: float
    jobs: int
    pods_running: int
    gpus_held: float
    gpus_allocatable: float
    restarts: int


@dataclass
class Timeline:
    points: list[Point] = field(default_factory=list)
    restarts_at: list[float] = field(default_factory=list)
    failures_at: list[float] = field(default_factory=list)

    def add(self, point: Point) -> None:
        if self.points and point.restarts > self.points[-1].restarts:
            self.restarts_at.extend([point.t] * (point.restarts - self.points[-1].restarts))
        self.points.append(point)

    def occupancy(self) -> tuple[float, float]:
        """Mean and peak GPU occupancy (held / allocatable) over the samples, ignoring samples with nothing
        allocatable yet."""
        shares = [p.gpus_held / p.gpus_allocatable for p in self.points if p.gpus_allocatable > 0]
        if not shares:
            return 0.0, 0.0
        return sum(shares) / len(shares), max(shares)


def _latency(h: Histogram) -> str:
    if not h.count:
        return "none observed"
    p90 = h.quantile_bound(0.9)
    bound = "" if p90 is None else (", p90 > last bucket" if math.isinf(p90) else f", p90 <= {p90:g}s")
    return f"{int(h.count)} observed, mean {h.mean or 0.0:.2f}s{bound}"


def summary(reading: Reading, timeline: Timeline) -> str:
    """The closing report, every number from the controller's metrics (``reading``) or sampled from them."""
    states: dict[str, int] = {}
    for state in reading.state.values():
        states[state] = states.get(state, 0) + 1
    mean, peak = timeline.occupancy()
    lines = [
        "",
        "controller metrics (scraped from the in-process registry):",
        "  JobSets by state: " + (", ".join(f"{s}={n}" for s, n in sorted(states.items())) or "none"),
        f"  restarts: {reading.restarts} in total"
        + "".join(
            f"; {name}={n}"
            for (_ns, name), n in sorted(reading.restarts_applied.items())
            if n  # only the JobSets that restarted
        ),
        f"  start-up (attempt start -> all pods ready): {_latency(reading.startup)}",
        f"  recovery (restart decided -> all pods ready again): {_latency(reading.recovery)}",
        f"  GPU occupancy: mean {mean:.0%}, peak {peak:.0%} of allocatable; "
        f"idle GPU-seconds (held while not running) {sum(reading.gpu_idle_seconds.values()):.0f}",
    ]
    return "\n".join(lines)


MISSING_MATPLOTLIB = "--plot needs matplotlib, which is not installed; run: pip install matplotlib"


def require_matplotlib() -> None:
    """Raise :class:`PlotError` (one line, with the fix) when matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotError(MISSING_MATPLOTLIB) from None


def write_png(timeline: Timeline, path: str, title: str) -> None:
    """Draw Jobs created, pods running and GPUs held over time, restarts and failures marked, to ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotError(MISSING_MATPLOTLIB) from None
    ts = [p.t for p in timeline.points]
    series: list[tuple[str, list[float], str]] = [
        ("Jobs created", [float(p.jobs) for p in timeline.points], "tab:blue"),
        ("pods running", [float(p.pods_running) for p in timeline.points], "tab:green"),
        ("GPUs held", [p.gpus_held for p in timeline.points], "tab:orange"),
    ]
    fig, axes = plt.subplots(len(series), 1, sharex=True, figsize=(9, 7))
    try:
        for ax, (label, values, color) in zip(axes, series, strict=True):
            ax.step(ts, values, where="post", color=color, label=label)
            if label == "GPUs held":
                alloc = [p.gpus_allocatable for p in timeline.points]
                ax.step(ts, alloc, where="post", color="grey", linestyle="--", label="GPUs allocatable")
            _marks(ax, timeline)
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            ax.legend(loc="upper right", fontsize="small")
        axes[-1].set_xlabel("seconds since the JobSets were created")
        axes[0].set_title(title)
        fig.tight_layout()
        try:
            fig.savefig(path, format="png", dpi=100)
        except OSError as exc:
            raise PlotError(f"--plot {path}: cannot write the picture: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)


def _marks(ax: Any, timeline: Timeline) -> None:
    for i, t in enumerate(timeline.failures_at):
        ax.axvline(t, color="black", linestyle=":", label="node failed" if i == 0 else None)
    for i, t in enumerate(timeline.restarts_at):
        ax.axvline(t, color="red", linestyle="--", alpha=0.7, label="restart" if i == 0 else None)


def ensure_writable(path: str) -> None:
    """Fail early (before the run) when the picture's directory does not exist."""
    parent = Path(path).expanduser().resolve().parent
    if not parent.is_dir():
        raise PlotError(f"--plot {path}: directory {parent} does not exist; create it or pass another path")
