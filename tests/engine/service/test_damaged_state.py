"""Damaged or truncated state files are reported clearly and never cost the other jobs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..conftest import Scenario

ONE_STEP = "- {name: stop, definition: Bundle Stop, properties: {bundleId: 42}}"


def _two_jobs(scenario: Scenario) -> tuple[Path, Path]:
    scenario.registry(3)
    scenario.fleet(3)
    scenario.job("alpha", ONE_STEP)
    scenario.job("beta", ONE_STEP)
    scenario.reconcile()
    jobs = scenario.state_dir / "scopes" / scenario.scope / "jobs"
    return jobs / "alpha", jobs / "beta"


def _damage_middle_line(journal: Path) -> int:
    lines = journal.read_text().splitlines(keepends=True)
    lines[2] = lines[2][: len(lines[2]) // 2] + "\n"
    journal.write_text("".join(lines))
    return 3


def test_a_damaged_journal_is_reported_with_file_and_line(scenario: Scenario) -> None:
    alpha, _ = _two_jobs(scenario)
    line = _damage_middle_line(alpha / "targets.journal")

    code, output = scenario.invoke("status", "alpha")

    assert code == 1
    assert f"targets.journal:{line}: damaged journal line" in output
    assert "restore the file from a backup" in output
    assert "Traceback" not in output


def test_the_other_jobs_are_listed_and_keep_running(scenario: Scenario) -> None:
    alpha, _ = _two_jobs(scenario)
    _damage_middle_line(alpha / "targets.journal")
    damaged = (alpha / "targets.journal").read_bytes()

    code, output = scenario.invoke("status")
    assert code == 0
    assert f"{scenario.scope}/alpha" in output and "UNREADABLE" in output
    assert f"{scenario.scope}/beta" in output and "3 ok" in output

    scenario.job("beta", ONE_STEP, run="2")
    scenario.job("alpha", ONE_STEP, run="2")
    started = scenario.reconcile()

    assert started == []  # every target of beta is done: nothing to start, token applied
    assert scenario.state("beta").record.run_token == "2"
    assert (alpha / "targets.journal").read_bytes() == damaged, "never rewritten on a guess"


def test_plan_names_the_unusable_job_and_fails(scenario: Scenario) -> None:
    alpha, _ = _two_jobs(scenario)
    (alpha / "job.json").write_text("{ not json")

    code, output = scenario.invoke("plan", "--jobs-dir", str(scenario.jobs_dir))

    assert code == 1
    assert "invalid" in output and "recorded state unusable" in output
    assert "job.json: unreadable" in output


def test_a_torn_last_line_loses_only_that_transition(scenario: Scenario) -> None:
    alpha, _ = _two_jobs(scenario)
    journal = alpha / "targets.journal"
    # A transition being appended when the process was killed: half a line, no newline.
    with journal.open("ab") as file:
        file.write(b'{"t":"gw-0001","i":0,"s":"PROCESS_FAI')

    code, output = scenario.invoke("status", "alpha", "-o", "json")

    assert code == 0
    targets = {t["clientId"]: t["status"] for t in json.loads(output)["targets"]}
    assert targets == dict.fromkeys(["gw-0001", "gw-0002", "gw-0003"], "PROCESS_OK")


def test_a_record_from_a_newer_jobrunner_is_refused_saying_so(scenario: Scenario) -> None:
    alpha, _ = _two_jobs(scenario)
    record = json.loads((alpha / "job.json").read_text())
    record["version"] = 99
    (alpha / "job.json").write_text(json.dumps(record))

    code, output = scenario.invoke("status", "alpha")

    assert code == 1
    assert "written by a newer jobrunner" in output
    assert "upgrade jobrunner" in output


def test_a_frozen_step_that_no_longer_validates_sets_only_its_job_aside(
    scenario: Scenario,
) -> None:
    alpha, _ = _two_jobs(scenario)
    record = json.loads((alpha / "job.json").read_text())
    record["frozen"]["steps"][0]["properties"] = {"bundleId": "forty-two"}
    (alpha / "job.json").write_text(json.dumps(record))
    scenario.job("beta", ONE_STEP, run="2")
    scenario.job("alpha", ONE_STEP, run="2")

    code, output = scenario.invoke(
        "reconcile", "--jobs-dir", str(scenario.jobs_dir), "--broker", scenario.broker.url, "--wait"
    )

    assert code == 1, output  # an error is reported: the run is not clean
    assert f"{alpha / 'job.json'}: frozen step 0 does not validate" in output
    assert "internal error" not in output
    assert f"nothing to do: every target of job {scenario.scope}/beta is done" in output
    assert scenario.statuses("beta") == {f"gw-000{n}": (0, "PROCESS_OK") for n in (1, 2, 3)}

    code, output = scenario.invoke("status")
    assert code == 0 and "UNREADABLE" in output

    (scenario.jobs_dir / "alpha.yaml").unlink()
    code, output = scenario.invoke(
        "reconcile", "--jobs-dir", str(scenario.jobs_dir), "--broker", scenario.broker.url
    )
    assert "internal error" not in output and "frozen step 0 does not validate" in output


def test_a_garbled_device_registry_line_stops_no_job_of_the_scope(
    scenario: Scenario, caplog: pytest.LogCaptureFixture
) -> None:
    alpha, _ = _two_jobs(scenario)
    registry = alpha.parent.parent / "devices.journal"
    line = _damage_middle_line(registry)
    scenario.job("gamma", ONE_STEP)  # a new job of the same scope, after the damage

    code, output = scenario.invoke(
        "reconcile", "--wait", "--jobs-dir", str(scenario.jobs_dir), "--broker",
        scenario.broker.url, "--client-id", f"runner-{scenario.scope}",
    )  # fmt: skip

    assert code == 0, output
    assert set(scenario.statuses("gamma").values()) == {(0, "PROCESS_OK")}
    assert f"devices.journal:{line}: damaged journal line" in caplog.text
    assert "skipped; the device is learned again when it speaks" in caplog.text
