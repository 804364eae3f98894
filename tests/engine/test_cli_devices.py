"""`jobrunner devices`: the registry as an operator reads it."""

from __future__ import annotations

import json

from .conftest import Scenario


def test_devices_lists_status_last_seen_apps_firmware_and_tags(scenario: Scenario) -> None:
    scenario.registry(2, tags="[line-3, modbus]")  # gw-0001, gw-0002 declared
    scenario.job("rollout", "- {name: stop, definition: Bundle Stop, properties: {bundleId: 1}}")
    with scenario.runner() as runner:
        runner.plan(runner.load())  # the declared devices are registered
        fleet = scenario.fleet(3)  # gw-0003 connects undeclared: discovered
        runner.engine.run_until(
            lambda: all(runner.engine.devices.applications(scenario.scope, f"gw-000{n}")
                        for n in (1, 2, 3)),
            0.05,
        )  # fmt: skip
        fleet.stop()
        runner.engine.run_until(
            lambda: (
                runner.registry.scope(scenario.scope).get("gw-0001").status.value  # type: ignore[union-attr]
                == "DISCONNECTED"
            ),
            0.05,
        )

    code, output = scenario.invoke("devices", "--jobs-dir", str(scenario.jobs_dir), "-o", "json")

    assert code == 0, output
    rows = {row["clientId"]: row for row in json.loads(output)}
    assert set(rows) == {"gw-0001", "gw-0002", "gw-0003"}
    first = rows["gw-0001"]
    assert first["declared"] is True and first["tags"] == ["line-3", "modbus"]
    assert first["status"] == "DISCONNECTED" and first["lastSeen"].endswith("Z")
    assert "DEPLOY-V2" in first["applicationIds"] and first["firmware"]
    assert rows["gw-0003"]["declared"] is False and rows["gw-0003"]["tags"] == []

    code, output = scenario.invoke(
        "devices", "--jobs-dir", str(scenario.jobs_dir), "--tag", "modbus"
    )
    assert code == 0
    lines = [line for line in output.splitlines() if line.startswith(scenario.scope)]
    assert [line.split()[0] for line in lines] == [
        f"{scenario.scope}/gw-0001",
        f"{scenario.scope}/gw-0002",
    ]
    assert "DISCONNECTED" in lines[0] and "line-3,modbus" in lines[0] and "ago)" in lines[0]
