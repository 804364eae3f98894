"""Asynchronous steps, timeouts, stop, and devices that vanish mid-step."""

from __future__ import annotations

from jobrunner.simulator.config import Timing
from jobrunner.simulator.faults import (
    DelayFault,
    DisconnectFault,
    DropFault,
    FaultPlan,
    Selector,
)
from jobrunner.state.records import ExecutionStatus

from ..conftest import FAST, Scenario

DOWNLOAD = """
- name: install
  definition: Package Download / Install
  completionTimeout: {completion}
  properties: {{uri: "http://repo.example.com/a-1.0.dp", name: a, version: 1.0.0}}
- {{name: start, definition: Bundle Start, properties: {{bundleId: 42}}}}
"""


def test_an_asynchronous_step_completes_through_its_notifications(scenario: Scenario) -> None:
    scenario.registry(4)
    fleet = scenario.fleet(4)
    scenario.job("package", DOWNLOAD.format(completion="1m"))

    scenario.reconcile()

    assert set(scenario.statuses("package").values()) == {(1, "PROCESS_OK")}
    log = scenario.log("package", 1)
    assert "accepted; AWAITING_COMPLETION" in log
    assert "notified OK: installed a 1.0.0; next: step 1 'start'" in log
    assert fleet.contacted("download") == set(fleet.devices)


def test_an_asynchronous_step_that_never_completes_fails_at_its_completion_timeout(
    scenario: Scenario,
) -> None:
    scenario.registry(2)
    fleet = scenario.fleet(2, timing=Timing(download_seconds=30.0))
    scenario.job("package", DOWNLOAD.format(completion="1s"))

    scenario.reconcile()

    assert set(scenario.statuses("package").values()) == {(0, "PROCESS_FAILED")}
    message = scenario.messages("package")["gw-0001"] or ""
    assert message.startswith("no completion notification in 1s")
    assert fleet.count(operation="bundle-start") == 0


def test_a_reply_that_never_comes_fails_the_target_at_the_step_timeout(
    scenario: Scenario,
) -> None:
    scenario.registry(3)
    scenario.fleet(3, FaultPlan(drop=(DropFault(Selector("gw-0002", "bundle-stop")),)))
    scenario.job(
        "rollout",
        "- {name: stop, definition: Bundle Stop, timeout: 1s, properties: {bundleId: 42}}",
    )

    scenario.reconcile()

    assert scenario.statuses("rollout")["gw-0002"] == (0, "PROCESS_FAILED")
    assert (scenario.messages("rollout")["gw-0002"] or "").startswith("no reply in 1s")
    assert scenario.statuses("rollout")["gw-0001"] == (0, "PROCESS_OK")


def test_a_device_lost_mid_step_fails_at_once_not_at_the_timeout(scenario: Scenario) -> None:
    scenario.registry(2)
    lost = FaultPlan(disconnect=(DisconnectFault(Selector("gw-0001", "bundle-stop"), after=0.0),))
    scenario.fleet(2, lost, mode="per-device")
    scenario.job(
        "rollout",
        "- {name: stop, definition: Bundle Stop, timeout: 1m, properties: {bundleId: 42}}",
    )

    scenario.reconcile()

    assert scenario.statuses("rollout")["gw-0001"] == (0, "PROCESS_FAILED")
    assert "lost its connection (LWT) before replying" in (
        scenario.messages("rollout")["gw-0001"] or ""
    )


def test_stop_sends_nothing_more_and_keeps_truthful_statuses(scenario: Scenario) -> None:
    scenario.registry(10)
    slow = FaultPlan(slow=(DelayFault(Selector("*", "bundle-stop"), 0.3),))
    fleet = scenario.fleet(10, slow, timing=FAST)
    scenario.job(
        "rollout",
        """
        - {name: stop, definition: Bundle Stop, properties: {bundleId: 42}}
        - {name: start, definition: Bundle Start, properties: {bundleId: 42}}
        """,
        run=None,
    )
    with scenario.runner(max_in_flight=2) as runner:
        summary = runner.start_job(scenario.scope, "rollout", runner.load())
        job = runner.engine.jobs[(scenario.scope, "rollout")]
        runner.engine.run_until(
            lambda: sum(t.step_index == 1 for t in job.state.targets) >= 3, 0.05
        )
        runner.stop_job(scenario.scope, "rollout", "stopped by the test")
        (ended,) = runner.wait([(scenario.scope, "rollout", summary.id)])

    assert ended.status is ExecutionStatus.STOPPED
    statuses = scenario.statuses("rollout")
    assert "PROCESS_FAILED" not in {status for _, status in statuses.values()}
    untouched = [c for c, (i, s) in statuses.items() if (i, s) == (0, "PROCESS_AWAITING")]
    assert untouched, "a stop in the middle leaves targets that were never contacted"
    for client_id in untouched:
        assert fleet.count(client_id) == 0
    log = scenario.log("rollout", 1)
    after_stop = log.split("stop requested")[1]
    assert " sent " not in after_stop
    sent_lines = log.count(": sent ")
    assert fleet.count() == sent_lines, "every request recorded as sent reached a device"
