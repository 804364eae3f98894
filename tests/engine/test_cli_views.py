"""What an operator reads: reconcile's line-per-event output, status tables, JSON and YAML."""

from __future__ import annotations

import json

import yaml
from click.testing import CliRunner

from jobrunner.cli.main import cli
from jobrunner.simulator.faults import FailFault, FaultPlan, Selector

from .conftest import Scenario

STEPS = """
- {name: stop, definition: Bundle Stop, properties: {bundleId: 42}}
- {name: start, definition: Bundle Start, properties: {bundleId: 42}}
"""


def separate_streams() -> CliRunner:
    """stdout and stderr apart: click 8.1 needs asking, 8.2 always does it."""
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg, unused-ignore]
    except TypeError:
        return CliRunner()


def run(scenario: Scenario, *args: str) -> tuple[int, str, str]:
    result = separate_streams().invoke(
        cli,
        [*args, "--state-dir", str(scenario.state_dir), "--scope", scenario.scope],
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def reconcile(scenario: Scenario) -> tuple[int, str, str]:
    return run(
        scenario,
        "reconcile",
        "--wait",
        "--jobs-dir",
        str(scenario.jobs_dir),
        "--broker",
        scenario.broker.url,
        "--client-id",
        f"cli-{scenario.scope}",
    )


def test_reconcile_wait_prints_one_line_per_event_off_a_terminal_and_exits_3_on_failures(
    scenario: Scenario,
) -> None:
    scenario.registry(3)
    scenario.fleet(3, FaultPlan(fail=(FailFault(Selector("gw-0003", "bundle-start"), 500),)))
    scenario.job("rollout", STEPS)

    code, out, err = reconcile(scenario)

    assert code == 3
    label = f"{scenario.scope}/rollout"
    assert f"started {label} execution 1" in out
    assert f"{label} execution 1: TERMINATED (2 PROCESS_FAILED" not in out
    assert f"{label} execution 1: TERMINATED (1 PROCESS_FAILED, 2 PROCESS_OK)" in out
    event_lines = [line for line in err.splitlines() if line.startswith(f"{label} ")]
    sent = "target gw-0001 step 0 'stop': sent DEPLOY-V2 EXEC/stop/42"
    assert any(sent in line for line in event_lines)
    failed = "target gw-0003 step 1 'start': device replied 500"
    assert any(failed in line for line in event_lines)


def test_status_lists_jobs_with_counts_next_fire_and_last_execution(scenario: Scenario) -> None:
    scenario.registry(2)
    scenario.fleet(2)
    scenario.job(
        "rollout", STEPS, extra='schedules:\n  - {name: nightly, type: cron, cron: "0 0 2 * * ?"}\n'
    )
    assert reconcile(scenario)[0] == 0

    code, out, _ = run(scenario, "status")

    assert code == 0
    (row,) = [line for line in out.splitlines() if "/rollout" in line]
    assert "2 ok" in row and "#1 TERMINATED (run (1)" in row
    assert "T02:00:00Z" in row


def test_status_of_a_job_filters_targets_and_speaks_yaml(scenario: Scenario) -> None:
    scenario.registry(3)
    scenario.fleet(3, FaultPlan(fail=(FailFault(Selector("gw-0002", "bundle-stop"), 400),)))
    scenario.job("rollout", STEPS)
    reconcile(scenario)

    code, out, _ = run(scenario, "status", "rollout", "--status", "PROCESS_FAILED")
    assert code == 0
    target_lines = [line for line in out.splitlines() if line.startswith("gw-")]
    assert len(target_lines) == 1 and target_lines[0].startswith("gw-0002")
    assert "device replied 400" in target_lines[0]

    code, out, _ = run(scenario, "status", "rollout", "-o", "yaml", "--step", "1")
    view = yaml.safe_load(out)
    assert [t["clientId"] for t in view["targets"]] == ["gw-0001", "gw-0003"]
    assert view["schedules"] == [] and view["revisionApplied"] is None


def test_logs_prints_the_execution_log(scenario: Scenario) -> None:
    scenario.registry(1)
    scenario.fleet(1)
    scenario.job("rollout", STEPS)
    reconcile(scenario)

    code, out, _ = run(scenario, "logs", "rollout")

    assert code == 0
    lines = out.splitlines()
    assert lines[0].endswith("execution: 1 started by run (1); 1 target(s)")
    assert lines[-1].endswith("execution: TERMINATED (1 PROCESS_OK)")
    code, _, err = run(scenario, "logs", "rollout", "--execution", "7")
    assert code == 1 and "has no execution 7; it has 1..1" in err


def test_status_shows_resolved_targets_before_the_first_run_and_who_owns_the_state(
    scenario: Scenario,
) -> None:
    scenario.registry(3)
    scenario.job("later", STEPS, run=None)
    scenario.job("rollout", STEPS)
    scenario.fleet(3)
    assert reconcile(scenario)[0] == 0

    code, out, _ = run(scenario, "status")
    assert code == 0
    assert f"state {scenario.state_dir}: no daemon owns it" in out
    (row,) = [line for line in out.splitlines() if "/later" in line]
    assert "3 resolved, not run yet" in row

    code, out, _ = run(scenario, "status", "-o", "json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["later"]["targetCount"] == 3 and rows["later"]["frozen"] is False
    assert rows["rollout"]["targetCount"] == 3 and rows["rollout"]["frozen"] is True
    assert "targets" not in rows["later"], "targets is the list of the detail view only"

    code, out, _ = run(scenario, "status", "later", "-o", "json")
    view = json.loads(out)
    assert view["targetCount"] == 3 and view["targets"] == []
    assert view["resolvedTargets"] == ["gw-0001", "gw-0002", "gw-0003"]
    assert view["owner"] is None
