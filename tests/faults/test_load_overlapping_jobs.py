"""Load: 50 jobs at once over the same devices: one operation at a time per device, in a
deterministic order (the order the jobs are declared, by name)."""

from __future__ import annotations

import itertools

import pytest

from jobrunner.simulator.faults import DelayFault, FaultPlan, Selector

from .conftest import Scenario

pytestmark = pytest.mark.integration

JOBS = [f"job-{n:02d}" for n in range(1, 51)]
HANDLING = 0.05  # each command takes the device this long before it replies


def test_fifty_jobs_over_overlapping_devices(scenario: Scenario) -> None:
    scenario.registry(5)
    fleet = scenario.fleet(5, FaultPlan(slow=(DelayFault(Selector("*", "command"), HANDLING),)))
    for name in JOBS:
        scenario.job(
            name,
            f"- {{name: tag, definition: Command Execution,"
            f" properties: {{command: echo, arguments: [{name}]}}}}",
        )

    started = scenario.reconcile(max_in_flight=50)

    assert len(started) == 50
    for name in JOBS:
        assert set(scenario.statuses(name).values()) == {(0, "PROCESS_OK")}, name
    for device in fleet.devices:
        received = fleet.requests(device, "command")
        order = [r.payload.metrics["command.argument0"].value for r in received]
        assert order == JOBS, f"{device} served the jobs in another order"
        arrivals = [r.at for r in received]
        gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
        # A second operation reaches a device only after the first one's reply.
        assert min(gaps) >= HANDLING * 0.9, f"{device} had two operations at once"
