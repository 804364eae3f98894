"""A label selector chooses a job's targets by DeviceList labels and by what the devices say in
their BIRTH, through the real broker and the simulated fleet; the choice is frozen."""

from __future__ import annotations

import json

from jobrunner.engine.planning.spec import spec_essence
from jobrunner.engine.service.runner import Runner
from jobrunner.manifests import Job
from jobrunner.simulator.config import LEGACY_PROFILE

from .conftest import Scenario

DEVICES = [f"gw-000{n}" for n in range(1, 7)]
FIRST = {"gw-0001": "KURA_5.5.0", "gw-0002": "KURA_5.5.0", "gw-0005": "KURA_5.4.1"}
STEP = "- {name: check, definition: Command Execution, properties: {command: uname}}"


def _registry(scenario: Scenario) -> None:
    sites = {1: "turin", 2: "turin", 3: "turin", 4: "turin", 5: "milan", 6: "milan"}
    devices = "\n".join(
        f"  - {{clientId: gw-000{n}, labels: {{site: {site}}}}}" for n, site in sites.items()
    )
    scenario.write(
        "registry.yaml",
        "apiVersion: jobrunner/v1\nkind: DeviceList\n"
        f"metadata: {{scope: {scenario.scope}}}\ndevices:\n{devices}\n",
    )


def _births(scenario: Scenario, runner: Runner, versions: dict[str, str]) -> None:
    """Until every device's BIRTH, with its Kura version, is in the registry."""
    registry = runner.registry.scope(scenario.scope)

    def heard() -> bool:
        records = {c: registry.get(c) for c in DEVICES}
        return all(
            r is not None and r.framework_version == versions.get(c, "KURA_4.1.0")
            for c, r in records.items()
        )

    runner.plan(runner.load())  # the declared devices are registered
    runner.engine.run_until(heard, 0.05)
    runner.registry.flush()


def test_a_selector_over_labels_and_birth_facts_chooses_the_targets_and_freezes_them(
    scenario: Scenario,
) -> None:
    _registry(scenario)
    scenario.job("new-kura", STEP, targets="selector: 'site=turin,kura.version>=5.4'")
    scenario.job("keys", STEP, targets="selector: 'kura.app=KEYS-V1,site=milan'")
    scenario.job("pis", STEP, targets="devices: [gw-0001], selector: 'kura.model=RPI-3B'")
    # gw-0001, gw-0002 run Kura 5.5.0; gw-0005 the default 5.4.1 with every app; the others
    # are Raspberry Pis with Kura 4.1.0 and no KEYS-V1.
    with scenario.runner() as runner:  # listening before the devices connect
        fleet = scenario.fleet(
            6,
            versions=(("gw-000[1-2]", "KURA_5.5.0"),),
            profiles=(("gw-000[3-4],gw-0006", LEGACY_PROFILE),),
        )
        _births(scenario, runner, FIRST)

    code, output = scenario.invoke("plan", "-v", "--jobs-dir", str(scenario.jobs_dir))
    assert code == 2, output
    assert (
        "selector 'site=turin,kura.version>=5.4' matches 2 of 6 known device(s): gw-0001, gw-0002"
    ) in output
    assert "not matched (4):\n        gw-0003: kura.version 4.1.0 < 5.4\n" in output
    assert "        gw-0005: site is milan, not turin\n" in output
    assert "no device of scope" not in output, "every fact the selectors read is reported"

    code, output = scenario.invoke(
        "devices", "--jobs-dir", str(scenario.jobs_dir), "-l", "kura.model=RPI-3B", "-o", "json"
    )
    assert code == 0, output
    rows = json.loads(output)
    assert [r["clientId"] for r in rows] == ["gw-0003", "gw-0004", "gw-0006"]
    assert rows[0]["labels"] == {"site": "turin"} and rows[0]["modelId"] == "RPI-3B"

    started = scenario.reconcile()

    assert len(started) == 3
    chosen = {
        "new-kura": ["gw-0001", "gw-0002"],
        "keys": ["gw-0005"],
        "pis": ["gw-0001", "gw-0003", "gw-0004", "gw-0006"],
    }
    for name, targets in chosen.items():
        frozen = scenario.state(name).record.frozen
        assert frozen is not None and frozen.targets == targets, name
        assert set(scenario.statuses(name)) == set(targets)
    received: dict[str, int] = {}
    for request in fleet.requests(operation="command"):
        received[request.device] = received.get(request.device, 0) + 1
    assert received == {"gw-0001": 2, "gw-0002": 1, "gw-0003": 1, "gw-0004": 1,
                        "gw-0005": 1, "gw-0006": 1}  # fmt: skip

    # Every gateway is upgraded to Kura 5.5.0: the selector would choose gw-0003 and gw-0004
    # now, but the targets were frozen by the first execution.
    fleet.stop()
    with scenario.runner() as runner:
        scenario.fleet(6, versions=(("gw-*", "KURA_5.5.0"),))
        _births(scenario, runner, dict.fromkeys(DEVICES, "KURA_5.5.0"))

    code, output = scenario.invoke("plan", "-o", "json", "--jobs-dir", str(scenario.jobs_dir))
    jobs = {j["name"]: j for j in json.loads(output)["jobs"]}
    assert jobs["new-kura"]["targets"] == ["gw-0001", "gw-0002"]
    assert jobs["new-kura"]["action"] == "unchanged" and jobs["new-kura"]["frozen"] is True
    assert jobs["pis"]["targets"] == chosen["pis"]
    code, output = scenario.invoke(
        "devices", "--jobs-dir", str(scenario.jobs_dir),
        "-l", "site=turin,kura.version>=5.4", "-o", "json",
    )  # fmt: skip
    assert [r["clientId"] for r in json.loads(output)] == DEVICES[:4]


def test_a_selector_over_facts_no_device_reported_is_a_warning_of_plan(
    scenario: Scenario,
) -> None:
    _registry(scenario)
    scenario.job("new-kura", STEP, targets="selector: 'site=turin,kura.version>=5.4'")

    code, output = scenario.invoke("plan", "-v", "--jobs-dir", str(scenario.jobs_dir))

    assert code == 2, output
    assert (
        "new-kura.yaml:5: warning: selector 'site=turin,kura.version>=5.4': no device of"
        f" scope '{scenario.scope}' has reported kura.version yet"
    ) in output
    assert "matches 0 of 6 known device(s): none" in output
    assert "gw-0001: no kura.version reported" in output
    code, output = scenario.invoke("plan", "-o", "json", "--jobs-dir", str(scenario.jobs_dir))
    found = json.loads(output)
    assert found["jobs"][0]["selection"]["matched"] == []
    assert found["jobs"][0]["selection"]["missed"] == 6
    assert [d["severity"] for d in found["diagnostics"]] == ["warning"]


def test_a_bad_selector_for_devices_exits_2_with_the_message(scenario: Scenario) -> None:
    code, output = scenario.invoke("devices", "-l", "site in (turin")

    assert code == 2
    assert "the list opened at character 9 is not closed; write site in (turin)" in output


def test_a_changed_selector_after_the_first_execution_is_a_conflict_never_applied(
    scenario: Scenario,
) -> None:
    _registry(scenario)
    manifest = scenario.job("turin", STEP, targets="selector: site=turin")
    with scenario.runner() as runner:
        fleet = scenario.fleet(6)
        _births(scenario, runner, dict.fromkeys(DEVICES, "KURA_5.4.1"))
        runner.wait(runner.apply(runner.plan(runner.load())).started)
    assert scenario.state("turin").record.frozen.targets == DEVICES[:4]  # type: ignore[union-attr]

    scenario.job("turin", STEP, targets="selector: 'site in (turin,milan)'", run="2")
    code, output = scenario.invoke("plan", "--jobs-dir", str(scenario.jobs_dir))

    assert code == 1, output
    assert f"{manifest}:5: targets changed after execution 1 froze them" in output
    assert 'targets selector: "site=turin" -> "site in (turin,milan)"' in output
    fleet.reset_observations()
    assert scenario.reconcile() == [], "nothing of a conflicting change is applied"
    assert fleet.count() == 0
    assert scenario.state("turin").record.frozen.targets == DEVICES[:4]  # type: ignore[union-attr]


def test_a_job_without_a_selector_digests_as_before_selectors_existed() -> None:
    """Its essence has no `selector` key: jobs frozen by an older release are no conflict."""
    job = Job.model_validate(
        {
            "apiVersion": "jobrunner/v1",
            "kind": "Job",
            "metadata": {"name": "j"},
            "spec": {"targets": {"tags": ["a"]}, "steps": [json.loads(STEP_JSON)]},
        }
    )

    assert spec_essence(job)["targets"] == {"devices": [], "tags": ["a"], "all": False}


STEP_JSON = '{"name": "s", "definition": "Bundle Stop", "properties": {"bundleId": 1}}'
