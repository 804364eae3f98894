"""The files of contrib/ (systemd unit, Prometheus rules, Grafana dashboard, container build),
checked with the tools that read them, against what a real daemon serves."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.engine import conftest as engine
from tests.web.conftest import Served, served

scenario = engine.scenario  # the engine tests' world: a scope, folders, the broker
__all__ = ["CONTRIB", "exported_names", "named_metrics", "scenario", "served"]

CONTRIB = Path(__file__).resolve().parents[2] / "contrib"
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
}
PROMETHEUS_OWN = {"up"}  # what Prometheus adds to every target


def exported_names(served: Served) -> set[str]:
    """Every series name a running daemon's /metrics gives (or would, once counted)."""
    response = served.get("/metrics")
    assert response.status_code == 200
    names = set()
    for family in text_string_to_metric_families(response.text):
        suffixes = SUFFIXES.get(family.type)
        names |= {family.name + s for s in suffixes} if suffixes else {family.name}
    return names


def named_metrics(expression: str) -> set[str]:
    """The metric names a PromQL expression reads (ours start with jobrunner_; `up`)."""
    without_strings = re.sub(r'"[^"]*"', '""', expression)
    names = set(re.findall(r"\bjobrunner_[a-z0-9_]+", without_strings))
    names |= {n for n in PROMETHEUS_OWN if re.search(rf"\b{n}\s*{{", without_strings)}
    return names
