"""SIGKILL the runner again and again during one execution of mixed synchronous and
asynchronous steps: the execution finishes, the state is consistent, no target is lost or
duplicated, and no device receives any operation twice.

The default run kills 4 times on 40 targets; `make soak` kills 20 times on 200 targets.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from jobrunner.simulator.config import Timing
from jobrunner.simulator.faults import DelayFault, FaultPlan, Selector
from jobrunner.state.records import ExecutionStatus

from .conftest import Scenario

pytestmark = pytest.mark.integration

MIXED = """
- {name: check, definition: Command Execution, timeout: 3s, properties: {command: echo}}
- name: install
  definition: Package Download / Install
  timeout: 3s
  completionTimeout: 30s
  properties: {uri: "http://repo.example.com/a-1.0.dp", name: a, version: 1.0.0}
- {name: start, definition: Bundle Start, timeout: 3s, properties: {bundleId: 42}}
"""
ALLOWED_FAILURE = "runner restarted before the reply"


def _size(executions: Path) -> int:
    """Bytes of the execution's log so far."""
    log = executions / "000001" / "log.txt"
    return log.stat().st_size if log.exists() else 0


def _soak(scenario: Scenario, targets: int, kills: int) -> None:
    scenario.registry(targets)
    # Slow enough that the execution outlives every kill: each runner gets about half a
    # second of work between its start-up and its death.
    timing = Timing(download_seconds=3.0, install_seconds=0.2, progress_steps=2)
    slow = FaultPlan(
        slow=(
            DelayFault(Selector("*", "command"), 0.2),
            DelayFault(Selector("*", "bundle-start"), 0.2),
        )
    )
    fleet = scenario.fleet(targets, slow, timing=timing)
    scenario.job("mixed", MIXED)
    chance = random.Random(20261127)
    # The execution's log only grows (the targets journal is compacted now and then).
    log_file = scenario.state_dir / "scopes" / scenario.scope / "jobs" / "mixed" / "executions"
    output = scenario.root / "runner.log"
    killed = 0
    for _ in range(kills):
        before = _size(log_file)
        with output.open("ab") as log:
            process = subprocess.Popen(scenario.reconcile_command(), stdout=log, stderr=log)
        # Kill at a random point once this runner has recorded some progress of its own.
        wanted = before + chance.randint(200, 800)
        while _size(log_file) < wanted and process.poll() is None:
            time.sleep(0.005)
        if process.poll() is not None:
            break  # it finished before this kill
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        killed += 1
    assert killed == kills, "the execution ended before every kill: make the fleet slower"
    finished = subprocess.run(
        scenario.reconcile_command(), capture_output=True, text=True, timeout=180, check=False
    )
    assert finished.returncode in (0, 3), finished.stdout + finished.stderr

    job = scenario.state("mixed")
    job.close()
    (execution,) = job.executions.values()
    assert execution.status is ExecutionStatus.TERMINATED
    assert sorted(execution.targets) == sorted(fleet.devices), "no target lost or duplicated"
    assert len(job.targets) == targets
    for target in job.targets:
        done = target.status.value == "PROCESS_OK" and target.step_index == 2
        failed = target.status.value == "PROCESS_FAILED" and target.message == ALLOWED_FAILURE
        assert done or failed, (target.client_id, target.step_index, target.status, target.message)
    sent = Counter((r.device, r.operation) for r in fleet.requests())
    assert [
        k
        for k, n in sent.items()
        if n > 1 and k[1] != "download-status" and k[1] != "install-status" and k[1] != "packages"
    ] == []


def test_repeated_sigkill_during_one_execution(scenario: Scenario) -> None:
    _soak(scenario, targets=40, kills=4)


@pytest.mark.slow
def test_twenty_sigkills_on_two_hundred_targets(scenario: Scenario) -> None:
    _soak(scenario, targets=200, kills=20)
