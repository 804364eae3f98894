"""Per-device values, end to end: each simulated gateway receives its own values over the
real broker, the values are frozen with the targets, and a later change of a frozen value in
the DeviceList is a conflict, never applied."""

from __future__ import annotations

import json

import pytest

from jobrunner.errors import StateVersionError
from jobrunner.simulator.fleet import Fleet
from jobrunner.state.journal import check_header

from ..conftest import Scenario

CLOCK = "org.eclipse.kura.clock.ClockService"
MODBUS = "modbus-driver"

STEPS = f"""\
- name: site-settings
  definition: Configuration Put
  properties:
    configurations:
      - pid: {CLOCK}
        properties:
          clock.ntp.host: ${{device.vars.ntpServer}}
          clock.ntp.refresh-interval: ${{params.refresh}}
      - pid: {MODBUS}
        properties:
          modbus.tcp-udp.ip: ${{device.vars.modbusAddress}}
          modbus.tcp-udp.port: {{type: Integer, value: "${{device.vars.modbusPort}}"}}
          access.type: "${{device.displayName}} at ${{device.labels.site}} ($${{literal}})"
"""


def registry(scenario: Scenario, third_ntp: str = "10.3.0.1") -> None:
    scenario.write(
        "registry.yaml",
        f"""\
        apiVersion: jobrunner/v1
        kind: DeviceList
        metadata: {{scope: {scenario.scope}}}
        devices:
          - clientId: gw-0001
            displayName: Line 1
            labels: {{site: turin}}
            vars: {{ntpServer: 10.1.0.1, modbusAddress: 192.168.1.10, modbusPort: 501}}
          - clientId: gw-0002
            displayName: Line 2
            labels: {{site: turin}}
            vars: {{ntpServer: 10.2.0.1, modbusAddress: 192.168.2.10, modbusPort: 502}}
          - clientId: gw-0003
            displayName: Line 3
            labels: {{site: milan}}
            vars: {{ntpServer: {third_ntp}, modbusAddress: 192.168.3.10, modbusPort: 503}}
        """,
    )


def applied(fleet: Fleet, devices: int) -> bool:
    return all(
        fleet.device(f"gw-000{n}").state.setting(MODBUS, "modbus.tcp-udp.port") != "502" or n == 2
        for n in range(1, devices + 1)
    ) and all(
        fleet.device(f"gw-000{n}").state.setting(CLOCK, "clock.ntp.host") != "0.pool.ntp.org"
        for n in range(1, devices + 1)
    )


def test_each_device_receives_its_own_values_and_keeps_them_frozen(scenario: Scenario) -> None:
    registry(scenario)
    fleet = scenario.fleet(3)
    scenario.job("site", STEPS, extra="parameters: {refresh: 3600}\n")
    common = ("--jobs-dir", str(scenario.jobs_dir), "--broker", scenario.broker.url)

    code, output = scenario.invoke("reconcile", *common, "--wait")

    assert code == 0, output
    assert set(scenario.statuses("site").values()) == {(0, "PROCESS_OK")}
    # Kura replies to a PUT before it applies it (a moment later): wait for the last one.
    assert fleet.wait_for(lambda: applied(fleet, 3), 60)
    for number, site in ((1, "turin"), (2, "turin"), (3, "milan")):
        state = fleet.device(f"gw-000{number}").state
        assert state.setting(CLOCK, "clock.ntp.host") == f"10.{number}.0.1"
        assert state.setting(CLOCK, "clock.ntp.refresh-interval") == "3600"
        assert state.setting(MODBUS, "modbus.tcp-udp.ip") == f"192.168.{number}.10"
        assert state.setting(MODBUS, "modbus.tcp-udp.port") == f"50{number}"
        assert state.setting(MODBUS, "access.type") == f"Line {number} at {site} (${{literal}})"

    # A release that knows nothing of values would send the ${...} as written: it refuses.
    record = scenario.state_dir / "scopes" / scenario.scope / "jobs" / "site" / "job.json"
    with pytest.raises(StateVersionError, match="upgrade jobrunner"):
        check_header(record, json.loads(record.read_text()), "jobrunner.job", 1)

    code, output = scenario.invoke("status", "site", "-o", "json")
    assert code == 0, output
    targets = {t["clientId"]: t for t in json.loads(output)["targets"]}
    assert targets["gw-0003"]["values"] == {
        "device.displayName": "Line 3",
        "device.labels.site": "milan",
        "device.vars.modbusAddress": "192.168.3.10",
        "device.vars.modbusPort": 503,
        "device.vars.ntpServer": "10.3.0.1",
    }

    code, output = scenario.invoke("plan", "-v", *common)
    assert code == 0, output
    assert "values gw-0002: device.displayName=Line 2, device.labels.site=turin," in output
    assert "device.vars.modbusPort=502, device.vars.ntpServer=10.2.0.1" in output

    # The DeviceList changes a frozen target's value: a conflict at that value's line.
    registry(scenario, third_ntp="10.9.9.9")
    code, output = scenario.invoke("plan", *common)

    assert code == 1, output
    assert "registry.yaml:16: target gw-0003" in output, output
    assert 'target gw-0003 ${device.vars.ntpServer}: "10.3.0.1" -> "10.9.9.9"' in output
    scenario.job("site", STEPS, run="2", extra="parameters: {refresh: 3600}\n")
    code, output = scenario.invoke("reconcile", *common, "--wait")
    assert code == 1, output
    assert fleet.device("gw-0003").state.setting(CLOCK, "clock.ntp.host") == "10.3.0.1"
    assert scenario.state("site").record.frozen.values.of("gw-0003")["device.vars.ntpServer"] == (  # type: ignore[union-attr]
        "10.3.0.1"
    )
