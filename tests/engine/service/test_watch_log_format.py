"""`watch --log-format json --log-level`: a real daemon's standard error, one object a line."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

import pytest
from click.testing import CliRunner

from jobrunner.cli.main import cli
from jobrunner.simulator.faults import FailFault, FaultPlan, Selector

from ..conftest import Scenario, Watch, ended

pytestmark = pytest.mark.integration

STEP = "- {name: stop, definition: Bundle Stop, timeout: 5s, properties: {bundleId: 42}}"


def test_every_line_is_a_json_object_with_what_it_is_about(
    scenario: Scenario, watch: Watch
) -> None:
    scenario.registry(2)
    scenario.fleet(2, FaultPlan(fail=(FailFault(Selector("gw-0002", "bundle-stop"), 500),)))
    scenario.job("rollout", STEP, run="1")
    # With the dashboard: its server's records are in the same format.
    watch.start("--log-format", "json", "--log-level", "debug", "--http", "127.0.0.1:0")
    watch.wait_for(ended(scenario, "rollout", 1), "execution 1")
    scenario.job("rollout", STEP, run="2")  # a conflict-free change: started on a new token
    watch.wait_for(ended(scenario, "rollout", 2), "execution 2")
    assert watch.terminate() == 0

    lines = watch.text().splitlines()
    records = [json.loads(line) for line in lines]  # each line alone is one JSON document
    assert len(records) == len(lines) > 3
    for record in records:
        assert isinstance(record, dict)
        assert {"time", "level", "logger", "message"} <= record.keys(), record
        assert record["time"].endswith("Z")
        datetime.fromisoformat(record["time"])
        assert record["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
    started = [r for r in records if r["message"].startswith("started ")]
    assert [(r["scope"], r["job"], r["execution"]) for r in started] == [
        (scenario.scope, "rollout", 1),
        (scenario.scope, "rollout", 2),
    ]
    assert "clientId" not in started[0]  # only what applies
    assert any(r["message"].startswith("reconciled revision") for r in records)
    assert any(r["level"] == "DEBUG" for r in records)  # --log-level debug lets them through
    assert any(r["message"].startswith("dashboard: http://127.0.0.1:") for r in records)


def test_text_stays_the_default(scenario: Scenario, watch: Watch) -> None:
    scenario.registry(1)
    scenario.fleet(1)
    scenario.job("rollout", STEP, run="1")
    watch.start()
    watch.wait_for(ended(scenario, "rollout", 1), "execution 1")
    assert watch.terminate() == 0
    first = watch.text().splitlines()[0]
    assert first[:4].isdigit() and "Z INFO " in first and not first.startswith("{")


def test_an_unknown_level_is_refused_before_anything_starts(scenario: Scenario) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jobrunner", "watch", "--jobs-dir", str(scenario.jobs_dir),
         "--state-dir", str(scenario.state_dir), "--broker", scenario.broker.url,
         "--scope", scenario.scope, "--log-level", "verbose"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "'verbose' is not one of 'debug', 'info', 'warning', 'error'" in result.stderr
    assert not (scenario.state_dir / "owner.lock").exists()  # nothing started


def test_the_options_are_in_the_help() -> None:
    result = CliRunner().invoke(cli, ["watch", "--help"])
    assert result.exit_code == 0
    assert "--log-format [text|json]" in result.output
    assert "--log-level [debug|info|warning|error]" in result.output
