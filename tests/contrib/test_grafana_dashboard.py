"""contrib/grafana/jobrunner-dashboard.json: a Grafana dashboard whose every panel reads
metrics a running daemon exports, in PromQL that Prometheus parses."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.web.conftest import Served

from .conftest import CONTRIB, exported_names, named_metrics

DASHBOARD = CONTRIB / "grafana" / "jobrunner-dashboard.json"
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$instance": ".*",
    "$scope": ".*",
}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def expressions() -> list[tuple[str, str]]:
    """(panel title, expr) of every query: the panels' and the variables'."""
    found = [(p["title"], t["expr"]) for p in panels() for t in p["targets"]]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = re.fullmatch(r"label_values\((.*), *\w+\)", variable["query"]["query"])
            assert query, variable
            found.append((f"${variable['name']}", query.group(1)))
    return found


def test_it_is_a_dashboard_with_a_query_in_every_panel() -> None:
    loaded = dashboard()
    assert loaded["uid"] == "jobrunner" and loaded["title"] == "jobrunner"
    assert len(panels()) >= 15
    ids = [p["id"] for p in loaded["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel


def test_every_panel_reads_metrics_the_runner_exports(served: Served) -> None:
    exported = exported_names(served) | {"up"}
    shown: set[str] = set()
    for title, expression in expressions():
        read = named_metrics(expression)
        assert read, title
        assert read <= exported, (title, read - exported)
        shown |= read
    ours = {n for n in exported if n.startswith("jobrunner_") and not n.endswith("_created")}
    histogram_parts = {n for n in ours if n.endswith(("_sum", "_count"))}
    assert ours - histogram_parts - shown == set()  # every metric has a panel


def test_the_queries_are_promql(tmp_path: Path) -> None:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    rules = []
    for n, (_title, expression) in enumerate(expressions()):
        query = expression
        for variable, value in GRAFANA_VARIABLES.items():
            query = query.replace(variable, value)
        assert "$" not in query, query
        rules.append({"record": f"panel:query:{n}", "expr": query})
    file = tmp_path / "queries.yml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [found, "check", "rules", str(file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
