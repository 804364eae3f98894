"""contrib/prometheus: the alert rules pass `promtool check rules`, their unit tests pass
`promtool test rules`, and every metric they read is one a running daemon exports."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.web.conftest import Served

from .conftest import CONTRIB, exported_names, named_metrics

RULES = CONTRIB / "prometheus" / "jobrunner-alerts.yml"
RULE_TESTS = CONTRIB / "prometheus" / "jobrunner-alerts.test.yml"


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return subprocess.run(
        [found, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_promtool_runs_their_unit_tests() -> None:
    result = promtool("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    tested = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tested
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert fired == {str(rule["alert"]) for rule in alerts()}


def test_a_wrong_expectation_fails_the_unit_tests(tmp_path: Path) -> None:
    (tmp_path / RULES.name).write_text(RULES.read_text().replace("> 300", "> 3000"))
    broken = tmp_path / RULE_TESTS.name
    broken.write_text(RULE_TESTS.read_text())
    result = promtool("test", "rules", broken)
    assert result.returncode != 0
    assert "JobrunnerScheduleNotFiring" in result.stdout + result.stderr


def test_the_rules_read_only_metrics_the_runner_exports(served: Served) -> None:
    exported = exported_names(served) | {"up"}
    for rule in alerts():
        read = named_metrics(str(rule["expr"]))
        assert read, rule["alert"]
        assert read <= exported, (rule["alert"], read - exported)
