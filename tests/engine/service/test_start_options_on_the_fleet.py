"""The start options end to end: the real broker, the simulated fleet, the command line and
the `watch` daemon (`start --reset / --from-step / --enqueue`, a schedule's `reset: true`)."""

from __future__ import annotations

import json

import pytest

from jobrunner.simulator.faults import DelayFault, FaultPlan, Selector

from ..conftest import Scenario, Watch, ended, executions

pytestmark = pytest.mark.integration

TWO_STEPS = """
- {name: stop, definition: Bundle Stop, timeout: 10s, properties: {bundleId: 42}}
- {name: start, definition: Bundle Start, timeout: 10s, properties: {bundleId: 42}}
"""


def _flags(scenario: Scenario) -> tuple[str, ...]:
    return ("--jobs-dir", str(scenario.jobs_dir), "--broker", scenario.broker.url)


def _sent(scenario: Scenario, operation: str) -> dict[str, int]:
    """How many requests of `operation` each device received."""
    counts: dict[str, int] = {}
    for fleet in scenario.fleets:
        for request in fleet.requests(operation=operation):
            counts[request.device] = counts.get(request.device, 0) + 1
    return counts


def test_start_reset_and_from_step_run_the_done_targets_again_from_that_step(
    scenario: Scenario,
) -> None:
    scenario.registry(3)
    fleet = scenario.fleet(3)
    scenario.job("check", TWO_STEPS)
    code, output = scenario.invoke("reconcile", *_flags(scenario))
    assert code == 0, output
    code, output = scenario.invoke("start", "check", *_flags(scenario))
    assert (code, output.strip()) == (
        0,
        f"nothing to do: every target of job {scenario.scope}/check is done (3 PROCESS_OK at"
        " its last step); no execution was started",
    )

    code, output = scenario.invoke("start", "check", "--reset", *_flags(scenario))
    assert code == 0, output
    assert f"{scenario.scope}/check execution 2: TERMINATED (3 PROCESS_OK)" in output
    code, output = scenario.invoke(
        "start", "check", "--from-step", "1", "--target", "gw-0002", *_flags(scenario)
    )
    assert code == 0, output

    assert _sent(scenario, "bundle-stop") == {"gw-0001": 2, "gw-0002": 2, "gw-0003": 2}
    assert _sent(scenario, "bundle-start") == {"gw-0001": 2, "gw-0002": 3, "gw-0003": 2}
    assert [(e, s, t) for e, s, t in executions(scenario, "check")] == [
        (1, "TERMINATED", "run (1)"),
        (2, "TERMINATED", "manual, reset"),
        (3, "TERMINATED", "manual (targets: gw-0002), from step 1"),
    ]
    assert (
        "3 started by manual (targets: gw-0002), from step 1; 1 target(s), every one from step 1"
    ) in scenario.log("check", 3)
    code, output = scenario.invoke("status", "check")
    assert "manual, reset" in output and "from step 1" in output
    code, output = scenario.invoke("status", "check", "-o", "json")
    view = json.loads(output)
    assert [e["options"] for e in view["executions"]] == [
        None,
        {"reset": True, "fromStep": None, "enqueued": False},
        {"reset": False, "fromStep": 1, "enqueued": False},
    ]
    code, output = scenario.invoke("start", "check", "--from-step", "2", *_flags(scenario))
    assert code == 1
    assert f"job {scenario.scope}/check has 2 step(s), counted from 0: there is no step 2" in (
        output
    )
    assert len(fleet.requests()) == 13, "a refused start sends nothing"


def test_a_schedule_with_reset_runs_every_target_at_every_fire(
    scenario: Scenario, watch: Watch
) -> None:
    scenario.registry(2)
    scenario.fleet(2)
    scenario.job(
        "nightly",
        TWO_STEPS,
        run=None,
        extra='schedules:\n  - {name: tick, type: cron, cron: "*/2 * * * * ?", reset: true}\n',
    )
    watch.start()

    watch.wait_for(ended(scenario, "nightly", 2), "two scheduled executions", timeout=30)
    watch.terminate()

    first, second = executions(scenario, "nightly")[:2]
    assert (first[2], second[2]) == ("schedule (tick), reset", "schedule (tick), reset")
    assert scenario.state("nightly").executions[2].targets == ["gw-0001", "gw-0002"]
    assert min(_sent(scenario, "bundle-stop").values()) >= 2, "every device, every fire"
    assert "every one from step 0" in scenario.log("nightly", 2)


def test_start_enqueue_through_the_daemon_runs_after_the_running_execution(
    scenario: Scenario, watch: Watch
) -> None:
    scenario.registry(2)
    scenario.fleet(2, FaultPlan(slow=(DelayFault(Selector("*", "bundle-stop"), 1.5),)))
    scenario.job("check", TWO_STEPS)
    watch.start()
    watch.wait_for(lambda: bool(executions(scenario, "check")), "execution 1")

    code, output = scenario.invoke("start", "check", *_flags(scenario))
    assert code == 1 and "is already running execution 1" in output
    code, output = scenario.invoke(
        "start", "check", "--enqueue", "--from-step", "1", "--wait", *_flags(scenario)
    )

    assert code == 0, output
    assert f"queued a start of {scenario.scope}/check (" in output
    assert "it runs when execution 1 ends (by the watch daemon)" in output
    assert f"started {scenario.scope}/check execution 2 (by the watch daemon)" in output
    assert [(e, s, t) for e, s, t in executions(scenario, "check")] == [
        (1, "TERMINATED", "run (1)"),
        (2, "TERMINATED", "manual, from step 1, enqueued"),
    ]
    assert _sent(scenario, "bundle-stop") == {"gw-0001": 1, "gw-0002": 1}
    assert _sent(scenario, "bundle-start") == {"gw-0001": 2, "gw-0002": 2}
    assert "queued (" in scenario.log("check", 1)
    assert watch.terminate() == 0
