"""Executions against a real broker and the simulated fleet: DESIGN §1's rules, one by one."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from jobrunner.cli.main import cli
from jobrunner.errors import JobError
from jobrunner.simulator.config import DeviceProfile
from jobrunner.simulator.faults import FailFault, FaultPlan, Selector

from ..conftest import Scenario

THREE_SYNC_STEPS = """
- {name: check, definition: Command Execution, properties: {command: echo, arguments: [hi]}}
- {name: stop-driver, definition: Bundle Stop, properties: {bundleId: 42}}
- {name: start-driver, definition: Bundle Start, properties: {bundleId: 42}}
"""


def test_every_target_runs_every_step_in_order(scenario: Scenario) -> None:
    scenario.registry(6)
    fleet = scenario.fleet(6)
    scenario.job("rollout", THREE_SYNC_STEPS)

    started = scenario.reconcile()

    assert started == [(scenario.scope, "rollout", 1)]
    assert set(scenario.statuses("rollout").values()) == {(2, "PROCESS_OK")}
    for device in fleet.devices:
        operations = [r.operation for r in fleet.requests(device)]
        assert operations == ["command", "bundle-stop", "bundle-start"]


def test_a_rerun_contacts_only_the_failed_targets_from_the_failed_step(
    scenario: Scenario,
) -> None:
    failing = FaultPlan(fail=(FailFault(Selector("gw-000[1-5]", "bundle-stop"), 400),))
    scenario.registry(20)
    first_fleet = scenario.fleet(20, failing)
    scenario.job("rollout", THREE_SYNC_STEPS)

    scenario.reconcile()

    statuses = scenario.statuses("rollout")
    failed = {c for c, (_, status) in statuses.items() if status == "PROCESS_FAILED"}
    assert failed == {f"gw-000{n}" for n in range(1, 6)}
    assert {statuses[c] for c in failed} == {(1, "PROCESS_FAILED")}
    assert all(statuses[c] == (2, "PROCESS_OK") for c in statuses if c not in failed)
    assert "device replied 400" in (scenario.messages("rollout")["gw-0001"] or "")
    first_fleet.stop()

    healthy = scenario.fleet(20)  # the same devices, the fault gone
    with scenario.runner() as runner:
        summary = runner.start_job(scenario.scope, "rollout", runner.load())
        runner.wait([(scenario.scope, "rollout", summary.id)])

    assert summary.id == 2
    assert sorted(summary.targets) == sorted(failed)
    assert healthy.contacted() == failed
    assert healthy.contacted("command") == set()
    for device in failed:
        assert [r.operation for r in healthy.requests(device)] == ["bundle-stop", "bundle-start"]
    assert set(scenario.statuses("rollout").values()) == {(2, "PROCESS_OK")}


def test_a_second_start_while_running_is_refused_naming_the_running_execution(
    scenario: Scenario,
) -> None:
    scenario.registry(2)
    scenario.fleet(2)
    scenario.job("rollout", THREE_SYNC_STEPS, run=None)
    with scenario.runner() as runner:
        first = runner.start_job(scenario.scope, "rollout", runner.load())
        with pytest.raises(JobError, match=r"already running execution 1 \(started .* by manual\)"):
            runner.start_job(scenario.scope, "rollout", runner.load())
        runner.wait([(scenario.scope, "rollout", first.id)])


def test_a_device_known_to_be_disconnected_fails_at_once(scenario: Scenario) -> None:
    scenario.registry(3)
    fleet = scenario.fleet(3)
    scenario.job("rollout", THREE_SYNC_STEPS, run=None)
    with scenario.runner() as runner:
        runner.plan(runner.load())  # the DeviceList makes the devices known (a DC makes none)
        fleet.disconnect("gw-0002", clean=True)
        runner.engine.run_until(
            lambda: (
                runner.engine.devices.absence(
                    scenario.scope, "gw-0002", runner.engine.connection.listening_since
                )
                is not None
            ),
            0.1,
        )
        summary = runner.start_job(scenario.scope, "rollout", runner.load())
        runner.wait([(scenario.scope, "rollout", summary.id)])

    statuses = scenario.statuses("rollout")
    assert statuses["gw-0002"] == (0, "PROCESS_FAILED")
    assert "device disconnected" in (scenario.messages("rollout")["gw-0002"] or "")
    assert fleet.count("gw-0002") == 0
    assert statuses["gw-0001"] == (2, "PROCESS_OK")


def test_a_device_without_the_application_fails_the_step_with_the_reason(
    scenario: Scenario,
) -> None:
    old = DeviceProfile(apps=("CMD-V1", "DEPLOY-V2", "CONF-V1"))
    scenario.registry(2)
    scenario.job(
        "keys",
        """
        - {name: drop-ca, definition: Keystore Item Delete,
           properties: {keystoreId: SSLKeystore, alias: old-ca}}
        """,
    )
    with scenario.runner() as runner:
        fleet = scenario.fleet(2, profiles=(("gw-0002", old),))  # the runner sees the BIRTHs
        runner.engine.run_until(
            lambda: runner.engine.devices.applications(scenario.scope, "gw-0002") is not None,
            0.1,
        )
        applied = runner.apply(runner.plan(runner.load()))
        runner.wait(applied.started)

    assert scenario.statuses("keys") == {
        "gw-0001": (0, "PROCESS_OK"),
        "gw-0002": (0, "PROCESS_FAILED"),
    }
    assert scenario.messages("keys")["gw-0002"] == (
        "the device does not support Keystore Item Delete: its BIRTH lists application ids"
        " CMD-V1, CONF-V1, DEPLOY-V2, not KEYS-V1"
    )
    assert fleet.count("gw-0002") == 0


def test_status_json_follows_the_fixed_contract(scenario: Scenario) -> None:
    scenario.registry(2)
    scenario.fleet(2)
    scenario.job("rollout", THREE_SYNC_STEPS)
    scenario.reconcile()

    result = CliRunner().invoke(
        cli,
        [
            "status",
            f"{scenario.scope}/rollout",
            "-o",
            "json",
            "--state-dir",
            str(scenario.state_dir),
        ],
    )

    assert result.exit_code == 0, result.output
    view = json.loads(result.output)
    assert (view["scope"], view["name"]) == (scenario.scope, "rollout")
    assert view["targets"][0] | {"step": None, "message": None} == {
        "clientId": "gw-0001",
        "stepIndex": 2,
        "status": "PROCESS_OK",
        "step": None,
        "message": None,
        "attempts": 1,  # executions that started it
    }
    (execution,) = view["executions"]
    assert execution["id"] == 1 and execution["status"] == "TERMINATED"
    assert execution["trigger"] == "run (1)"
    assert execution["startedOn"].endswith("Z") and execution["endedOn"].endswith("Z")


def test_a_device_without_the_application_and_no_birth_heard_times_out_naming_it(
    scenario: Scenario,
) -> None:
    old = DeviceProfile(apps=("CMD-V1", "DEPLOY-V2", "CONF-V1"))
    scenario.registry(1)
    fleet = scenario.fleet(1, profiles=(("gw-0001", old),))  # BIRTH before the runner listens
    scenario.job(
        "keys",
        """
        - {name: stop, definition: Bundle Stop, properties: {bundleId: 1}}
        - {name: drop-ca, definition: Keystore Item Delete, timeout: 1s,
           properties: {keystoreId: SSLKeystore, alias: old-ca}}
        """,
    )

    scenario.reconcile()

    assert fleet.count("gw-0001", "keystore-delete") == 1  # received, and never answered
    assert scenario.statuses("keys")["gw-0001"] == (1, "PROCESS_FAILED")
    message = scenario.messages("keys")["gw-0001"] or ""
    assert message.startswith("no reply in 1s: the device is online (last seen ")
    assert "did not answer this KEYS-V1 request in time" in message
    assert message.endswith(
        "no BIRTH of it is known, so it may not run KEYS-V1 (a Kura gateway does not answer a"
        " request for an application it does not run)"
    )


def test_a_device_never_seen_fails_at_its_timeout_saying_it_was_never_seen(
    scenario: Scenario,
) -> None:
    scenario.registry(2)
    scenario.fleet(1)  # gw-0002 is declared, and does not exist
    scenario.job(
        "rollout", "- {name: stop, definition: Bundle Stop, timeout: 1s, properties: {bundleId: 1}}"
    )

    scenario.reconcile()

    message = scenario.messages("rollout")["gw-0002"] or ""
    assert message.startswith("no reply in 1s; no message was ever heard from this device")
    assert "is it online, and is its client id right?" in message
    assert scenario.statuses("rollout")["gw-0001"] == (0, "PROCESS_OK")
