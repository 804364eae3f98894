"""A job written in the device cloud's XML forms reconciles, runs and reconciles again."""

from __future__ import annotations

from ..conftest import Scenario

ESF_CONFIGURATION = """\
- name: clock
  definition: Configuration Put
  properties:
    xml: |
      <esf:configurations xmlns:esf="http://eurotech.com/esf/2.0">
        <esf:configuration pid="org.eclipse.kura.clock.ClockService">
          <esf:properties>
            <esf:property name="enabled" array="false" encrypted="false" type="Boolean">
              <esf:value>true</esf:value>
            </esf:property>
          </esf:properties>
        </esf:configuration>
      </esf:configurations>
- name: threshold
  definition: Asset Write
  properties:
    xml: |
      <deviceAssets>
        <deviceAsset>
          <name>cold-room-controller</name>
          <channels>
            <channel><valueType>double</valueType><value>-18.0</value>
              <name>alarm-threshold</name></channel>
          </channels>
        </deviceAsset>
      </deviceAssets>
"""


def test_xml_steps_freeze_run_and_reload(scenario: Scenario) -> None:
    scenario.registry(2)
    scenario.fleet(2)
    scenario.job("ported", ESF_CONFIGURATION)
    common = ("--jobs-dir", str(scenario.jobs_dir), "--broker", scenario.broker.url)

    code, output = scenario.invoke("reconcile", *common, "--wait")
    assert code == 0, output
    assert scenario.statuses("ported") == {
        "gw-0001": (1, "PROCESS_OK"),
        "gw-0002": (1, "PROCESS_OK"),
    }

    for command in (("plan",), ("reconcile", "--wait"), ("status", "ported")):
        flags = common if command[0] != "status" else ()
        code, output = scenario.invoke(*command, *flags)
        assert code == 0, (command, output)
        assert "internal error" not in output

    scenario.job("ported", ESF_CONFIGURATION, run="2")  # everything is done: nothing to send
    code, output = scenario.invoke("reconcile", *common, "--wait")
    assert code == 0, output
    assert "nothing to do: every target of job" in output  # and no empty execution recorded
    assert sorted(scenario.state("ported").executions) == [1]
