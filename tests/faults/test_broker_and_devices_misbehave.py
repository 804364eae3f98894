"""Faults to survive: a broker restart mid-execution, devices that vanish, answer late or
twice, or notify about operations nobody asked for."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from jobrunner.simulator.broker import RunningBroker, start_broker
from jobrunner.simulator.faults import (
    DelayFault,
    DuplicateFault,
    FaultPlan,
    Selector,
    StrayFault,
)
from jobrunner.state.records import ExecutionStatus

from .conftest import Scenario

pytestmark = pytest.mark.integration

TWO_STEPS = """
- {name: stop, definition: Bundle Stop, timeout: 4s, properties: {bundleId: 42}}
- {name: start, definition: Bundle Start, timeout: 4s, properties: {bundleId: 42}}
"""


@pytest.fixture
def restartable(scenario: Scenario) -> Iterator[Scenario]:
    """The scenario on a broker of its own, which the test may restart."""
    with start_broker() as broker:
        scenario.broker = broker
        yield scenario
        for fleet in scenario.fleets:
            fleet.stop()
        scenario.fleets.clear()


def _never_twice(requests: list[tuple[str, str | None]]) -> None:
    repeated = [key for key, n in Counter(requests).items() if n > 1]
    assert repeated == [], f"sent twice by the runner: {repeated}"


def test_a_broker_restart_mid_execution_ends_every_target_truthfully(
    restartable: Scenario,
) -> None:
    scenario = restartable
    broker: RunningBroker = scenario.broker
    scenario.registry(12)
    fleet = scenario.fleet(12, FaultPlan(slow=(DelayFault(Selector("*", "*"), 0.3),)))
    scenario.job("rollout", TWO_STEPS, run=None)

    with scenario.runner(max_in_flight=3) as runner:
        summary = runner.start_job(scenario.scope, "rollout", runner.load())
        job = runner.engine.jobs[(scenario.scope, "rollout")]
        runner.engine.run_until(lambda: sum(t.step_index > 0 for t in job.state.targets) >= 3, 0.05)
        broker.restart(downtime=1.0)
        (ended,) = runner.wait([(scenario.scope, "rollout", summary.id)])

    assert ended.status is ExecutionStatus.TERMINATED
    statuses = scenario.statuses("rollout")
    messages = scenario.messages("rollout")
    # What the broker's restart did to a target is said as it happened: the reply never
    # came because the broker went away. The wills the dying broker publishes for every
    # device it held are not taken for the devices' own failures.
    for client_id, (step, status) in statuses.items():
        message = messages[client_id] or ""
        truthful = (step, status) == (1, "PROCESS_OK") or (
            status == "PROCESS_FAILED"
            and message.startswith("no reply in")
            and "the broker connection was lost meanwhile" in message
        )
        assert truthful, (client_id, step, status, message)
        assert "LWT" not in message and "disconnected" not in message
    assert any(s == (1, "PROCESS_OK") for s in statuses.values())
    log = scenario.log("rollout", summary.id)
    assert "broker: connection to" in log and "nothing is sent until it is back" in log
    assert "broker: reconnected to" in log and "dispatching resumes" in log
    _never_twice([(r.device, r.operation) for r in fleet.requests()])


def test_late_and_duplicate_replies_and_stray_notifications_change_nothing(
    scenario: Scenario,
) -> None:
    scenario.registry(3)
    faults = FaultPlan(
        late=(DelayFault(Selector("gw-0001", "bundle-stop"), 5.0),),
        duplicate=(DuplicateFault(Selector("gw-0002", "bundle-stop"), copies=2),),
        stray=(StrayFault("gw-0003", "download", delay=0.1),),
    )
    fleet = scenario.fleet(3, faults)
    scenario.job("rollout", TWO_STEPS, run=None)

    with scenario.runner() as runner:
        summary = runner.start_job(scenario.scope, "rollout", runner.load())
        runner.wait([(scenario.scope, "rollout", summary.id)])
        # The late reply comes a second after its timeout was recorded: keep listening
        # until it has come, to prove that it changes nothing.
        until = time.monotonic() + 2.5
        runner.engine.run_until(lambda: time.monotonic() > until, 0.2)

    statuses = scenario.statuses("rollout")
    assert statuses["gw-0001"] == (0, "PROCESS_FAILED")
    assert (scenario.messages("rollout")["gw-0001"] or "").startswith("no reply in 4s")
    assert statuses["gw-0002"] == (1, "PROCESS_OK"), "a duplicate reply is not a second outcome"
    assert statuses["gw-0003"] == (1, "PROCESS_OK"), "a stray notification moves nothing"
    assert fleet.count("gw-0002", "bundle-start") == 1
    # Each anomaly is written where the operator reads about the target: its execution log.
    log = scenario.log("rollout", summary.id)
    assert "target gw-0001 step 0 'stop': anomaly: " in log
    assert "late: it arrived 1." in log and "s after the request timed out; ignored" in log
    assert "target gw-0002 step 0 'stop': anomaly: " in log
    assert "a second reply: the first one was taken; ignored" in log
