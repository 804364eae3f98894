"""Per-device values and parameters in the plan: frozen means frozen, and a target that
cannot resolve a value keeps the job from starting, said at the reference's line."""

from __future__ import annotations

from jobrunner.state.registry import DeviceRegistry

from ..conftest import Scenario
from .test_plan_and_reconcile import plan, status

STEP = """\
- name: stop
  definition: Bundle Stop
  properties: {bundleId: "${params.bundle}"}
- name: hello
  definition: Command Execution
  properties: {command: "echo ${device.clientId}"}
"""


def test_a_changed_parameter_of_a_frozen_job_is_a_conflict_never_applied(
    scenario: Scenario,
) -> None:
    scenario.registry(2)
    fleet = scenario.fleet(2)
    manifest = scenario.job("rollout", STEP, extra="parameters: {bundle: 42}\n")
    scenario.reconcile()
    assert set(scenario.statuses("rollout").values()) == {(1, "PROCESS_OK")}
    assert [r.resources for r in fleet.requests("gw-0001") if r.app_id == "DEPLOY-V2"] == [
        ("stop", "42")
    ]

    scenario.job("rollout", STEP, run="2", extra="parameters: {bundle: 43}\n")
    code, output = plan(scenario)

    assert code == 1, output
    assert f"{manifest}:9: step 0 'stop' changed after execution 1 froze them" in output
    assert f"{manifest}:9: step 0 'stop' properties.bundleId: 42 -> 43" in output
    fleet.reset_observations()
    assert scenario.reconcile() == []
    assert fleet.count() == 0
    assert status(scenario, "rollout")["conflict"]["line"] == 9


def test_a_device_that_only_connected_cannot_resolve_a_var_and_the_job_waits(
    scenario: Scenario,
) -> None:
    fleet = scenario.fleet(2)
    scenario.reconcile()  # creates the state directory
    with DeviceRegistry(scenario.state_dir) as registry:  # as a BIRTH of gw-0002 would
        registry.scope(scenario.scope).connected("gw-0002")
    manifest = scenario.job(
        "rollout",
        '- {name: hello, definition: Command Execution, properties: {command: "echo'
        ' ${device.displayName}"}}',
        targets="all: true",
    )
    scenario.write(
        "registry.yaml",
        f"apiVersion: jobrunner/v1\nkind: DeviceList\nmetadata: {{scope: {scenario.scope}}}\n"
        "devices:\n  - {clientId: gw-0001, displayName: Line 1}\n",
    )

    code, output = plan(scenario)

    assert code == 1, output
    assert "invalid" in output
    assert f"{manifest}:7: job 'rollout': step 'hello' properties.command:" in output
    assert "${device.displayName}: device gw-0002 has no displayName (it is in no DeviceList)" in (
        output
    )
    fleet.reset_observations()
    scenario.reconcile()
    assert fleet.count() == 0, "nothing is sent, not even to the device that resolves it"
