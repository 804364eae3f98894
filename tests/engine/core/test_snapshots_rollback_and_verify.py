"""Safe changes on Kura, end to end (DESIGN §11): a Configuration Put takes a snapshot
first, the device is rolled back to it when the target fails at that step or a later one,
an aborted rollout rolls its targets back, and `verify` reads back what was written. Each
through the real broker and the simulated fleet, checked on the device side."""

from __future__ import annotations

import json

from jobrunner.simulator.faults import FailFault, FaultPlan, NoStickFault, Selector
from jobrunner.simulator.fleet import Fleet

from ..conftest import Scenario

CLOCK = "org.eclipse.kura.clock.ClockService"
FIRST = "0.pool.ntp.org"
NEW = "10.9.9.9"

PUT_THEN_COMMAND = f"""\
- name: ntp
  definition: Configuration Put
  rollback: onFailure
  properties:
    configurations:
      - pid: {CLOCK}
        properties: {{clock.ntp.host: {NEW}, clock.ntp.refresh-interval: 600}}
- name: check
  definition: Command Execution
  properties: {{command: echo}}
"""


def host(fleet: Fleet, client_id: str) -> str | None:
    return fleet.device(client_id).state.setting(CLOCK, "clock.ntp.host")


def applied(fleet: Fleet, client_id: str) -> bool:
    """The device applied the new value (Kura applies a put a moment after its reply)."""
    return fleet.wait_for(lambda: host(fleet, client_id) == NEW)


def operations(fleet: Fleet, client_id: str) -> list[str]:
    return [
        f"{r.method} {'/'.join(r.resources)}".rstrip("0123456789")
        for r in fleet.requests(client_id)
        if r.app_id == "CONF-V1" or r.method == "EXEC"
    ]


def failing_command(
    *devices: str, snapshot_gone: bool = False, rollback_fails: bool = False
) -> FaultPlan:
    """The command step fails (500) on `devices`; their snapshots gone, or their rollbacks
    failing, as asked."""
    return FaultPlan(
        fail=tuple(FailFault(Selector(d, "command"), 500) for d in devices),
        snapshot_gone=devices if snapshot_gone else (),
        rollback_fails=devices if rollback_fails else (),
    )


def test_a_later_step_that_fails_rolls_the_device_back_to_its_snapshot(
    scenario: Scenario,
) -> None:
    scenario.registry(2)
    fleet = scenario.fleet(2, failing_command("gw-0001"))
    scenario.job("guarded", PUT_THEN_COMMAND)

    scenario.reconcile()

    statuses = scenario.statuses("guarded")
    assert statuses == {"gw-0001": (1, "PROCESS_FAILED"), "gw-0002": (1, "PROCESS_OK")}
    assert host(fleet, "gw-0001") == FIRST  # rolled back, on the device
    assert applied(fleet, "gw-0002")  # the target that succeeded keeps its change
    message = scenario.messages("guarded")["gw-0001"] or ""
    assert "device replied 500" in message and "rolled back to snapshot" in message, message
    assert operations(fleet, "gw-0001") == [
        "EXEC snapshot",
        "PUT configurations",
        "EXEC command",
        "GET snapshots/",
        "EXEC rollback/",
        f"GET configurations/{CLOCK}",
    ]
    assert operations(fleet, "gw-0002") == ["EXEC snapshot", "PUT configurations", "EXEC command"]
    target = next(t for t in scenario.state("guarded").targets if t.client_id == "gw-0001")
    assert target.snapshot is not None and target.snapshot.rolled_back
    log = scenario.log("guarded", 1)
    assert f"snapshot {target.snapshot.id} taken" in log
    code, shown = scenario.invoke("status", "guarded", "-o", "json")
    assert code != 1, shown
    views = {t["clientId"]: t for t in json.loads(shown)["targets"]}
    assert views["gw-0001"]["snapshot"] == {"id": target.snapshot.id, "step": 0, "rollback": "done"}
    assert views["gw-0002"]["snapshot"]["rollback"] is None
    assert f"rolled back to snapshot {target.snapshot.id}" in log


def test_a_retry_after_a_rollback_does_the_undone_steps_again(scenario: Scenario) -> None:
    scenario.registry(1)
    fleet = scenario.fleet(1, failing_command("gw-0001"))
    scenario.job("guarded", PUT_THEN_COMMAND)
    scenario.reconcile()
    assert host(fleet, "gw-0001") == FIRST
    fleet.device("gw-0001").faults = None  # the cause is mended

    scenario.job("guarded", PUT_THEN_COMMAND, run="2")
    scenario.reconcile()

    assert scenario.statuses("guarded") == {"gw-0001": (1, "PROCESS_OK")}
    assert applied(fleet, "gw-0001")  # the put was done again, not only the command


def test_a_snapshot_that_is_gone_is_said_so_and_nothing_is_rolled_back(
    scenario: Scenario,
) -> None:
    scenario.registry(1)
    fleet = scenario.fleet(1, failing_command("gw-0001", snapshot_gone=True))
    scenario.job("guarded", PUT_THEN_COMMAND)

    scenario.reconcile()

    message = scenario.messages("guarded")["gw-0001"] or ""
    assert "is gone" in message and "not rolled back" in message, message
    assert applied(fleet, "gw-0001")
    assert "EXEC rollback/" not in operations(fleet, "gw-0001")


def test_a_rollback_that_restores_nothing_is_caught_by_reading_back(scenario: Scenario) -> None:
    scenario.registry(1)
    fleet = scenario.fleet(1, failing_command("gw-0001", rollback_fails=True))
    scenario.job("guarded", PUT_THEN_COMMAND)

    scenario.reconcile()

    message = scenario.messages("guarded")["gw-0001"] or ""
    assert "did not restore" in message and f"clock.ntp.host: wanted {FIRST}" in message, message
    assert applied(fleet, "gw-0001")


def test_verify_catches_a_value_that_did_not_stick(scenario: Scenario) -> None:
    scenario.registry(2)
    fleet = scenario.fleet(2, FaultPlan(no_stick=(NoStickFault("gw-0001", "clock.ntp.host"),)))
    scenario.job(
        "verified",
        f"""\
        - name: ntp
          definition: Configuration Put
          verify: true
          properties:
            configurations:
              - pid: {CLOCK}
                properties: {{clock.ntp.host: {NEW}, clock.ntp.refresh-interval: 600}}
        """,
    )

    scenario.reconcile()

    assert scenario.statuses("verified") == {
        "gw-0001": (0, "PROCESS_FAILED"),
        "gw-0002": (0, "PROCESS_OK"),
    }
    failed = next(t for t in scenario.state("verified").targets if t.client_id == "gw-0001")
    assert failed.failure == "not-verified"
    assert failed.message is not None
    assert f"{CLOCK}.clock.ntp.host: wanted {NEW}, the device holds {FIRST}" in failed.message
    assert "refresh-interval" not in failed.message  # the property that stuck is not named
    assert operations(fleet, "gw-0002") == ["PUT configurations", f"GET configurations/{CLOCK}"]


def test_an_aborted_rollout_rolls_back_every_target_whose_put_went_out(
    scenario: Scenario,
) -> None:
    """The canary's put succeeded; a device of the next wave fails its later step, so that
    wave cannot pass and the rollout is aborted: every device that got the put is rolled
    back (the canary too, which had ended PROCESS_OK), and says so."""
    scenario.registry(4)
    fleet = scenario.fleet(4, failing_command("gw-0003"))
    steps = PUT_THEN_COMMAND.replace("  rollback: onFailure\n", "")
    rollout = (
        "rollout:\n"
        "  waves:\n"
        "    - {name: canary, devices: [gw-0001]}\n"
        "    - {name: rest}\n"
        "  abort: {rollback: true}\n"
    )
    scenario.job("rollout", steps, extra=rollout)

    scenario.reconcile()

    job = scenario.state("rollout")
    job.close()
    targets = {t.client_id: t for t in job.targets}
    canary = targets["gw-0001"]
    assert canary.status.value == "PROCESS_FAILED" and canary.failure == "rolled-back"
    assert canary.message is not None and "the rollout was aborted" in canary.message
    assert canary.snapshot is not None and canary.snapshot.rolled_back
    failed = targets["gw-0003"]
    assert failed.snapshot is not None and failed.snapshot.rolled_back
    assert "device replied 500" in (failed.message or "")
    for client_id, target in targets.items():
        put = [r for r in fleet.requests(client_id) if r.operation == "configuration"]
        # Whatever got the put was rolled back to its own snapshot; the others never changed.
        assert host(fleet, client_id) == FIRST, (client_id, target)
        assert (target.snapshot is not None and target.snapshot.rolled_back) == bool(put)
    summary = job.executions[1]
    assert summary.status.value == "ABORTED"
    assert "rolling back to snapshot" in scenario.log("rollout", 1)


def test_verify_checks_that_the_installed_package_is_listed_with_its_version(
    scenario: Scenario,
) -> None:
    scenario.registry(1)
    fleet = scenario.fleet(1)
    scenario.job(
        "install",
        """\
        - name: install
          definition: Package Download / Install
          verify: true
          properties: {uri: "http://repo.example.com/a-1.0.dp", name: a, version: 1.0.0}
        """,
    )

    scenario.reconcile()

    assert scenario.statuses("install") == {"gw-0001": (0, "PROCESS_OK")}
    assert scenario.messages("install")["gw-0001"] == "GET packages lists a 1.0.0"
    operations = [r.operation for r in fleet.requests("gw-0001")]
    assert operations[0] == "download" and operations[-1] == "packages"
