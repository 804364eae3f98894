"""`jobrunner plan --live`: per target and step, what a job would change on the devices,
read with GETs only, through a real broker from the simulated fleet; nothing written."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from types import MappingProxyType

import pytest

from jobrunner.device import BrokerSettings
from jobrunner.engine.planning.asking import ClientAsker
from jobrunner.engine.planning.live import Read
from jobrunner.simulator.catalog import Component, Package, Property
from jobrunner.simulator.config import DeviceProfile
from jobrunner.simulator.faults import FaultPlan, OfflineFault
from jobrunner.simulator.fleet import Fleet
from jobrunner.state.lock import OwnerLock
from tests.engine.conftest import Scenario

PID = "org.eclipse.kura.cloud.publisher.CloudPublisher-warehouse"
MODBUS = "org.eclipse.kura.driver.modbus"
STEPS = f"""
- name: tune
  definition: Configuration Put
  properties:
    configurations:
      - pid: {PID}
        properties:
          publish.interval: 300
          app.topic: warehouse/data
          broker.password: {{type: Password, value: {{valueFrom: {{env: LIVE_TEST_SECRET}}}}}}
- name: driver
  definition: Package Download / Install
  properties: {{uri: "https://repo.example.com/modbus-1.2.0.dp", name: {MODBUS}, version: 1.2.0}}
- {{name: start-driver, definition: Bundle Start, properties: {{bundleId: 42}}}}
- {{name: stop-agent, definition: Bundle Stop, properties: {{bundleId: 57}}}}
- {{name: hello, definition: Command Execution, properties: {{command: echo}}}}
"""


def digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` and a hash of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def in_sync_already(fleet: Fleet, client_id: str) -> None:
    """Give a device what the job would set."""
    device = fleet.device(client_id)
    with device.lock:
        state = device.state
        current = state.components[PID]
        properties = dict(current.properties)
        properties["publish.interval"] = Property("publish.interval", "Integer", ("300",))
        properties["broker.password"] = Property("broker.password", "Password", ("xyz",))
        state.set_component(Component(PID, MappingProxyType(properties)))
        state.set_package(Package(MODBUS, "1.2.0", (42,)))
        state.set_bundle(dataclasses.replace(state.bundles[57], state="RESOLVED"))


@pytest.fixture
def world(scenario: Scenario, dots_in_topics: None) -> tuple[Scenario, Fleet]:
    """Four gateways: gw-0001 as it came, gw-0002 in sync, gw-0003 without CONF-V1, and
    gw-0004 never connected; a runner recorded their BIRTHs, then went."""
    scenario.registry(4)
    scenario.job("tune", STEPS, run="1")  # a start is due: plan --live must not freeze it
    with scenario.runner() as runner:
        runner.plan(runner.load())
        fleet = scenario.fleet(
            4,
            faults=FaultPlan(offline=(OfflineFault("gw-0004"),)),
            profiles=(("gw-0003", DeviceProfile(apps=("CMD-V1", "DEPLOY-V2"))),),
        )
        runner.engine.run_until(
            lambda: all(
                runner.engine.devices.applications(scenario.scope, f"gw-000{n}") for n in (1, 2, 3)
            ),
            0.05,
        )
    in_sync_already(fleet, "gw-0002")
    fleet.reset_observations()
    return scenario, fleet


def live(scenario: Scenario, *args: str) -> tuple[int, str]:
    return scenario.invoke(
        "plan", "--live", *args, "--jobs-dir", str(scenario.jobs_dir),
        "--broker", scenario.broker.url, "--timeout", "3",
    )  # fmt: skip


def test_plan_live_shows_each_devices_diff_and_sends_only_gets(
    world: tuple[Scenario, Fleet],
) -> None:
    scenario, fleet = world
    before = digest(scenario.state_dir)

    code, output = live(scenario, "tune", "-o", "json")

    assert code == 2, output
    report = json.loads(output)
    (job,) = report["jobs"]
    assert job["name"] == "tune" and job["frozen"] is False
    targets = {t["clientId"]: t for t in job["targets"]}

    first = targets["gw-0001"]
    assert first["connected"] is True and first["inSync"] is False
    states = [s["state"] for s in first["steps"]]
    assert states == ["would change", "would change", "in sync", "would change", "not read"]
    tune = {c["what"]: c for c in first["steps"][0]["changes"]}
    assert (tune[f"{PID} publish.interval"]["old"], tune[f"{PID} publish.interval"]["new"]) == (
        "60",
        "300",
    )
    assert tune[f"{PID} app.topic"]["inSync"] is True
    secret = tune[f"{PID} broker.password"]  # not on the device yet: said, never shown
    assert (secret["old"], secret["new"], secret["note"]) == (None, "***", "a secret: not compared")
    (driver,) = first["steps"][1]["changes"]
    assert (driver["old"], driver["new"], driver["inSync"]) == ("1.1.0", "1.2.0", False)
    (agent,) = first["steps"][3]["changes"]
    assert (agent["old"], agent["new"]) == ("ACTIVE", "RESOLVED")

    second = targets["gw-0002"]
    assert second["inSync"] is True and second["connected"] is True
    held = {c["what"]: c for c in second["steps"][0]["changes"]}[f"{PID} broker.password"]
    assert (held["old"], held["new"], held["inSync"]) == ("***", "***", True)
    assert "xyz" not in output

    third = targets["gw-0003"]
    assert third["missingApplications"] == ["CONF-V1"]
    assert third["steps"][0]["state"] == "unknown"
    assert third["steps"][0]["reason"] == "CONF-V1 not advertised"
    assert third["steps"][1]["state"] == "would change"  # DEPLOY-V2 was read

    fourth = targets["gw-0004"]
    assert fourth["connected"] is False
    assert fourth["problem"] == "not connected: no reply in 3s"
    assert {s["state"] for s in fourth["steps"]} == {"unknown", "not read"}

    # Each device was asked each read once, and nothing but GETs (counted on the devices).
    received = fleet.requests()
    assert {(r.method, r.app_id) for r in received} == {
        ("GET", "CONF-V1"),
        ("GET", "DEPLOY-V2"),
    }
    per_device = {cid: sorted(r.resources for r in received if r.device == cid) for cid in
                  ("gw-0001", "gw-0002", "gw-0003", "gw-0004")}  # fmt: skip
    assert per_device["gw-0001"] == [("bundles",), ("configurations", PID), ("packages",)]
    assert per_device["gw-0003"] == [("bundles",), ("packages",)]  # not asked for CONF-V1
    assert per_device["gw-0004"] == []
    assert report["requests"] == 3 + 3 + 2 + 3
    # Nothing written, nothing frozen: the state directory's bytes are as they were.
    assert digest(scenario.state_dir) == before


def test_plan_live_text_and_markdown(world: tuple[Scenario, Fleet]) -> None:
    scenario, _ = world

    code, output = live(scenario)

    assert code == 2
    lines = output.splitlines()
    assert f"{scenario.scope}/tune (4 target(s), targets as the first execution would resolve)" in (
        lines
    )
    assert f"      {PID} publish.interval: 60 → 300" in lines
    assert f"      {MODBUS}: 1.1.0 → 1.2.0" in lines
    assert "      bundle 57 (com.acme.monitoring.agent 2.3.1): ACTIVE → RESOLVED" in lines
    assert "  gw-0002: in sync [connected]" in lines
    assert "  gw-0001: 3 step(s) not in sync [connected]" in lines
    assert (
        "  gw-0003: CONF-V1 not advertised in its BIRTH (application_ids) [connected;"
        " apps CMD-V1,DEPLOY-V2]"
    ) in lines
    assert "    step 4 'hello' (Command Execution): not read: nothing to read back" in lines
    assert "  gw-0004: not connected: no reply in 3s [recorded UNKNOWN]" in lines
    assert lines[-2].startswith("  gw-0004")  # its steps unread: listed with -v only
    assert "plan --live: 4 target(s) of 1 job(s): 1 in sync, 2 to change, 1 not connected" in (
        output
    )

    code, output = live(scenario, "-o", "markdown")
    assert code == 2
    assert output.startswith("### jobrunner plan --live\n")
    assert f"#### `{scenario.scope}/tune`" in output
    assert (
        f"| `gw-0001` | 0 `tune` (Configuration Put) | would change |"
        f" {PID} publish.interval: 60 → 300<br>{PID} broker.password: (absent) → ***"
    ) in output
    assert "| `gw-0004` | | gw-0004: not connected: no reply in 3s" in output
    assert "| `gw-0002` | | gw-0002: in sync [connected] | |" in output


def test_plan_live_reads_beside_the_owner_of_the_state(world: tuple[Scenario, Fleet]) -> None:
    """A `watch` daemon owns the state directory: `plan --live` reads beside it, no lock."""
    scenario, _ = world
    owner = OwnerLock(scenario.state_dir / "owner.lock", "watch", f"watch-{scenario.scope}")
    assert owner.try_acquire()
    try:
        before = digest(scenario.state_dir)
        code, output = live(scenario, f"{scenario.scope}/tune", "-o", "json")
        assert code == 2 and json.loads(output)["jobs"][0]["name"] == "tune"
        assert digest(scenario.state_dir) == before
    finally:
        owner.release()


def test_plan_markdown_and_job_names_without_live(world: tuple[Scenario, Fleet]) -> None:
    scenario, fleet = world
    code, output = scenario.invoke("plan", "--jobs-dir", str(scenario.jobs_dir), "-o", "markdown")
    assert code == 2 and output.startswith("### jobrunner plan")
    assert f"+ create    {scenario.scope}/tune" in output and output.count("```") == 2
    code, output = scenario.invoke("plan", "tune", "--jobs-dir", str(scenario.jobs_dir))
    assert code == 2 and "JOB names are for --live" in output
    assert fleet.requests() == []


def test_plan_live_of_a_job_that_is_not_declared_says_which_are(
    world: tuple[Scenario, Fleet],
) -> None:
    scenario, fleet = world
    code, output = live(scenario, "tuned")
    assert code == 2 and f"no job 'tuned' to read live; jobs: {scenario.scope}/tune" in output
    assert fleet.requests() == []


def test_devices_that_never_answer_do_not_fill_the_window(scenario: Scenario) -> None:
    """Reads to silent devices end at their deadline while the sending goes on: with a
    window of 2, a live device and six silent ones are all answered."""
    fleet = scenario.fleet(1)
    settings = BrokerSettings.resolve(scenario.broker.url, client_id=f"reader-{scenario.scope}")
    silent = [Read(f"gone-{n}", "DEPLOY-V2", ("bundles",)) for n in range(6)]
    alive = Read("gw-0001", "DEPLOY-V2", ("packages",))
    with ClientAsker(settings, rate=1000, timeout=2, max_in_flight=2) as asker:
        answers = asker.ask(scenario.scope, "kura-protobuf", [alive, *silent])
    assert asker.sent == 7
    assert {answers[r].problem for r in silent} == {"no reply in 2s"}
    assert answers[alive].payload is not None and answers[alive].problem is None
    assert [(r.method, r.resources) for r in fleet.requests()] == [("GET", ("packages",))]


def test_plan_live_compares_each_device_with_its_own_values(
    world: tuple[Scenario, Fleet],
) -> None:
    scenario, fleet = world
    devices = "\n".join(
        f"  - {{clientId: gw-000{n}, tags: [fleet], vars: {{site: site-{n}}}}}" for n in range(1, 5)
    )
    scenario.write(
        "registry.yaml",
        "apiVersion: jobrunner/v1\nkind: DeviceList\n"
        f"metadata: {{scope: {scenario.scope}}}\ndevices:\n{devices}\n",
    )
    scenario.job(
        "sited",
        f"""
        - name: topic
          definition: Configuration Put
          properties:
            configurations:
              - pid: {PID}
                properties: {{app.topic: "${{device.vars.site}}/data"}}
        """,
        targets="devices: [gw-0001, gw-0002]",
    )

    code, output = live(scenario, "sited", "-o", "json")

    assert code == 2, output
    (job,) = json.loads(output)["jobs"]
    changes = {
        t["clientId"]: {c["what"]: c for c in t["steps"][0]["changes"]} for t in job["targets"]
    }
    for n in (1, 2):
        change = changes[f"gw-000{n}"][f"{PID} app.topic"]
        assert change["new"] == f"site-{n}/data" and change["inSync"] is False
    assert {(r.method, r.device) for r in fleet.requests()} == {
        ("GET", "gw-0001"),
        ("GET", "gw-0002"),
    }
