"""Our text exposition agrees with prometheus_client's for every family, escapes, and drops ``*_created``."""

from __future__ import annotations

import math
import re

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from metrics.exposition import escape_value, format_value, render_now
from metrics.hub import MetricsHub
from tools import synthetic as syn


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def populated() -> MetricsHub:
    t = syn.FakeTime()
    hub = MetricsHub(clock=t.clock)
    await syn.populate(hub, t)
    return hub


async def test_same_samples_as_prometheus_client() -> None:
    hub = await populated()
    ours = render_now(hub.sources).decode()
    theirs = generate_latest(hub.registry).decode()
    assert re.search(r"^\w+_created[{ ]", ours, re.MULTILINE) is None
    mine, reference = samples(ours), samples(theirs)
    assert len(mine) > 150
    assert mine.keys() == reference.keys()
    for key, value in reference.items():
        assert mine[key] == pytest.approx(value, nan_ok=True), key


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (0.25, "0.25"),
        (-3.0, "-3"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
        (1e20, "1e+20"),
    ],
)
def test_format_value(value: float, text: str) -> None:
    assert format_value(value) == text


def test_label_values_are_escaped() -> None:
    assert escape_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    hub = MetricsHub()
    hub.metrics.terminal.labels(namespace="ns", state="Failed", reason='weird "reason"\n').inc()
    text = hub.render_sync().decode()
    parsed = samples(text)
    key = ("jobset_terminal_outcomes_total", (("namespace", "ns"), ("reason", 'weird "reason"\n'), ("state", "Failed")))
    assert parsed[key] == 1
