"""suspend: true stops a running execution; a simple-json scope works end to end; `logs
--follow` prints an execution's lines until it ends."""

from __future__ import annotations

import subprocess
import sys

from jobrunner.simulator.config import DeviceProfile
from jobrunner.simulator.faults import DelayFault, FaultPlan, Selector
from jobrunner.state.records import ExecutionStatus

from ..conftest import Scenario

STEPS = """
- {name: stop, definition: Bundle Stop, properties: {bundleId: 42}}
- {name: start, definition: Bundle Start, properties: {bundleId: 42}}
"""


def test_suspend_true_stops_the_running_execution_and_starts_nothing(scenario: Scenario) -> None:
    scenario.registry(6)
    fleet = scenario.fleet(6, FaultPlan(slow=(DelayFault(Selector("*", "bundle-stop"), 0.3),)))
    scenario.job("rollout", STEPS)
    with scenario.runner(max_in_flight=1) as runner:
        applied = runner.apply(runner.plan(runner.load()))
        ((scope, name, execution),) = applied.started
        job = runner.engine.jobs[(scope, name)]
        runner.engine.run_until(lambda: any(t.step_index == 1 for t in job.state.targets), 0.05)

        scenario.job("rollout", STEPS, run="2", extra="suspend: true\n")
        again = runner.apply(runner.plan(runner.load()))
        (ended,) = runner.wait([(scope, name, execution)])

    assert again.stopped == [(scope, name, execution)] and again.started == []
    assert ended.status is ExecutionStatus.STOPPED
    assert ended.message == "suspend: true (execution 1 is running)"
    untouched = [c for c, s in scenario.statuses("rollout").items() if s == (0, "PROCESS_AWAITING")]
    assert untouched and all(fleet.count(c) == 0 for c in untouched)


def test_a_scope_of_simple_json_devices_runs_end_to_end(scenario: Scenario) -> None:
    scenario.write(
        "scope.yaml",
        f"apiVersion: jobrunner/v1\nkind: Scope\nmetadata: {{name: {scenario.scope}}}\n"
        "spec: {payloadEncoding: simple-json}\n",
    )
    scenario.registry(3)
    fleet = scenario.fleet(3, profile=DeviceProfile(encoding="simple-json"))
    scenario.job("rollout", STEPS)

    scenario.reconcile()

    assert set(scenario.statuses("rollout").values()) == {(1, "PROCESS_OK")}
    request = fleet.requests("gw-0001", "bundle-stop")[0]
    assert request.request_id is not None, "the device read the JSON request's request.id"


def test_logs_follow_prints_lines_until_the_execution_ends(scenario: Scenario) -> None:
    scenario.registry(2)
    scenario.fleet(2, FaultPlan(slow=(DelayFault(Selector("*", "bundle-start"), 0.5),)))
    scenario.job("rollout", STEPS)
    with scenario.runner() as runner:
        ((scope, name, execution),) = runner.apply(runner.plan(runner.load())).started
        runner.engine.step(0.1)  # the first lines are written
        follower = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jobrunner",
                "logs",
                f"{scope}/{name}",
                "--follow",
                "--state-dir",
                str(scenario.state_dir),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        runner.wait([(scope, name, execution)])
        output, _ = follower.communicate(timeout=30)

    assert follower.returncode == 0
    lines = output.splitlines()
    assert lines[0].endswith("execution: 1 started by run (1); 2 target(s)")
    assert lines[-1].endswith("execution: TERMINATED (2 PROCESS_OK)")
