"""An approval gate held by `jobrunner watch` as a real process, through the real broker and
the simulated fleet: the wave waits across a restart, `jobrunner approve` is handed to the
daemon, and nothing of the wave is sent before it."""

from __future__ import annotations

import json

import pytest

from ..conftest import Scenario, Watch, ended

pytestmark = pytest.mark.integration

STEP = "- {name: stop, definition: Bundle Stop, timeout: 5s, properties: {bundleId: 42}}"
ROLLOUT = """\
rollout:
  waves:
    - {name: canary, devices: [gw-0001]}
    - {name: rest, approval: required}
"""


def _rollout(scenario: Scenario) -> dict[str, object]:
    code, output = scenario.invoke("status", "rollout", "-o", "json")
    assert code == 0, output
    rollout: dict[str, object] = json.loads(output)["rollout"]
    return rollout


def test_an_approval_gate_holds_the_next_wave_until_approved_through_a_daemon_restart(
    scenario: Scenario, watch: Watch
) -> None:
    scenario.registry(4)
    fleet = scenario.fleet(4)
    scenario.job("rollout", STEP, extra=ROLLOUT)
    watch.start()
    watch.wait_for(
        lambda: _rollout(scenario)["state"] == "awaiting-approval", "the wave awaiting approval"
    )
    assert fleet.contacted() == {"gw-0001"}
    assert watch.terminate() == 0

    watch.start()  # the running execution is taken up, and its wave still waits
    watch.wait_for(lambda: "resumed" in watch.text(), "the execution taken up")
    code, output = scenario.invoke("approve", "rollout", "--by", "alice")
    assert code == 0, output
    assert f"wave 'rest' of {scenario.scope}/rollout approved by alice" in output
    watch.wait_for(ended(scenario, "rollout", 1), "the execution")

    assert fleet.contacted() == {"gw-0001", "gw-0002", "gw-0003", "gw-0004"}
    log = scenario.log("rollout", 1)
    approved = log.index("wave 'rest' approved by alice")
    assert "awaits an approval" in log[:approved]
    assert "gw-0002" not in log[:approved], "nothing of the wave before its approval"
    rollout = _rollout(scenario)
    waves = rollout["waves"]
    assert isinstance(waves, list)
    assert (rollout["state"], waves[1]["approvedBy"]) == ("passed", "alice")
    assert "approved by alice (from the command line)" in watch.text()
    assert watch.terminate() == 0
