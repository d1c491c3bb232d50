"""Prometheus text exposition (format 0.0.4) that can be rendered in slices on the event loop.

Role: a 65k-series scrape costs the better part of a second of CPU. Rendered in one go on the event loop it
stalls every informer and worker for that long; rendered in a worker thread it fights the loop for the GIL.
Here the work is a generator that pauses every few hundred lines, and ``render_sliced`` runs it in slices of a
small time budget, yielding to the loop between slices — so an event waits at most about one slice.

Two kinds of sources:
* ``RowCollector`` — our scrape-time collectors. ``items()`` yields a ``FamilySpec`` to open a family, then
  ``(label values, value)`` rows of it, and ``None`` at pause points inside long computations. The same items
  back prometheus_client's ``collect()`` (so ``registry.get_sample_value`` and ``generate_latest`` agree with
  our renderer);
* prometheus_client metrics (``Counter``, ``Gauge``, ``Histogram``), rendered from their ``collect()``.

Invariants: output is valid text format 0.0.4 (HELP/TYPE once per family, families contiguous, label values
escaped); ``*_created`` samples are not exported (they would double the series of every counter and histogram
and no dashboard reads them); a family's rows are never interleaved with another's.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from metrics.registry import FamilySpec

Row = tuple[Sequence[str], float]
Item = FamilySpec | Row | None
PAUSE_EVERY = 256
"""Lines between pause points (a few hundred µs of work)."""


class RowCollector(Collector):
    """A scrape-time collector written once as ``items()``, exported both ways (see the module docstring)."""

    def items(self) -> Iterator[Item]:
        raise NotImplementedError

    def describe(self) -> Iterator[Metric]:
        return iter(())  # families are declared in metrics.registry; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        family = None
        for item in self.items():
            if item is None:
                continue
            if isinstance(item, FamilySpec):
                if family is not None:
                    yield family
                family = item.new()
            elif family is not None:
                family.add_metric(list(item[0]), item[1])
        if family is not None:
            yield family


def format_value(v: float) -> str:
    if v == math.inf:
        return "+Inf"
    if v == -math.inf:
        return "-Inf"
    if math.isnan(v):
        return "NaN"
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v)}"
    return repr(float(v))


def escape_value(v: str) -> str:
    if "\\" in v or '"' in v or "\n" in v:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return v


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    return "{" + ",".join(f'{n}="{escape_value(v)}"' for n, v in zip(names, values, strict=True)) + "}"


def lines_of_rows(collector: RowCollector, out: list[str]) -> Iterator[None]:
    """Append the collector's exposition to ``out``; yields at pause points."""
    spec: FamilySpec | None = None
    name = ""
    n = 0
    for item in collector.items():
        if item is None:
            yield None
            continue
        if isinstance(item, FamilySpec):
            spec = item
            name = spec.name + ("_total" if spec.type == "counter" else "")
            out.append(f"# HELP {name} {_help(spec.help)}\n# TYPE {name} {spec.type}\n")
            continue
        if spec is None:
            continue
        out.append(f"{name}{_labels(spec.labels, item[0])} {format_value(item[1])}\n")
        n += 1
        if n % PAUSE_EVERY == 0:
            yield None


def lines_of_metric(metric: Collector, out: list[str]) -> Iterator[None]:
    """Append a prometheus_client metric's exposition (without ``*_created``) to ``out``."""
    n = 0
    for family in metric.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        out.append(f"# HELP {name} {_help(family.documentation)}\n# TYPE {name} {family.type}\n")
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            labels = s.labels
            text = _labels(tuple(labels), tuple(labels.values())) if labels else ""
            out.append(f"{s.name}{text} {format_value(s.value)}\n")
            n += 1
            if n % PAUSE_EVERY == 0:
                yield None


def exposition(sources: Iterable[Collector], out: list[str]) -> Iterator[None]:
    """The whole exposition of ``sources`` appended to ``out``, pausing every few hundred lines."""
    for source in sources:
        if isinstance(source, RowCollector):
            yield from lines_of_rows(source, out)
        else:
            yield from lines_of_metric(source, out)
        yield None


def render_now(sources: Iterable[Collector]) -> bytes:
    out: list[str] = []
    for _ in exposition(sources, out):
        pass
    return "".join(out).encode()


async def render_sliced(
    sources: Iterable[Collector],
    *,
    budget: float = 0.002,
    clock: Callable[[], float] = time.perf_counter,
    on_slice: Callable[[float, float], None] | None = None,
) -> bytes:
    """Render on the event loop in slices of about ``budget`` seconds, yielding to the loop between slices.

    ``on_slice`` (benchmarks) is told each slice's wall and CPU seconds: how long the loop was held, and how
    much of that was our own work (the rest is the process being descheduled).
    """
    out: list[str] = []
    chunks: list[bytes] = []
    start, cpu = clock(), time.thread_time()
    until = start + budget
    for _ in exposition(sources, out):
        now = clock()
        if now >= until:
            # Encode what this slice produced now: one join of the whole body at the end would be its own
            # ~10 ms stall at 65k series.
            chunks.append("".join(out).encode())
            out.clear()
            if on_slice is not None:
                on_slice(clock() - start, time.thread_time() - cpu)
            await asyncio.sleep(0)
            start, cpu = clock(), time.thread_time()
            until = start + budget
    chunks.append("".join(out).encode())
    body = b"".join(chunks)
    if on_slice is not None:
        on_slice(clock() - start, time.thread_time() - cpu)
    return body
