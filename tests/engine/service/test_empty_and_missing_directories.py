"""Empty and missing directories are reported, never taken for 'nothing recorded' or for the
removal of every job."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from jobrunner.cli.main import cli
from jobrunner.engine.service.daemon import CATCH_UP

from ..conftest import Scenario, Watch, ended, executions

pytestmark = pytest.mark.integration

STEP = "- {name: stop, definition: Bundle Stop, timeout: 5s, properties: {bundleId: 42}}"


def test_an_empty_jobs_directory_removes_nothing_and_warns(scenario: Scenario) -> None:
    scenario.registry(2)
    scenario.fleet(2)
    scenario.job("rollout", STEP)
    scenario.reconcile()
    for file in scenario.jobs_dir.iterdir():
        file.unlink()

    code, output = scenario.invoke("plan", "--jobs-dir", str(scenario.jobs_dir))
    assert code == 0, output
    assert f"{scenario.jobs_dir}: warning: no manifest (*.yaml, *.yml) in this directory" in output
    assert "remove" not in output.replace("0 remove", "")

    code, output = scenario.invoke(
        "reconcile", "--jobs-dir", str(scenario.jobs_dir), "--broker", scenario.broker.url
    )
    assert code == 0, output
    record = scenario.state("rollout").record
    assert not record.orphaned


def test_a_missing_jobs_directory_is_an_error_and_removes_nothing(scenario: Scenario) -> None:
    scenario.registry(1)
    scenario.fleet(1)
    scenario.job("rollout", STEP)
    scenario.reconcile()
    typo = scenario.root / "jobs.dd"

    code, output = scenario.invoke("plan", "--jobs-dir", str(typo))

    assert code == 1
    assert f"{typo}: no such file or directory; is --jobs-dir (jobsDir) right?" in output
    assert not scenario.state("rollout").record.orphaned


@pytest.mark.parametrize(
    "command",
    [
        ("status",), ("plan",), ("logs", "rollout"), ("stop", "x"), ("devices",),
        # those that would dispatch: a mistyped path would run every job again on every device
        ("reconcile",), ("reconcile", "--wait"), ("start", "x"), ("watch",),
    ],
)  # fmt: skip
def test_a_missing_state_directory_is_never_taken_for_nothing_recorded(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    typo = tmp_path / "stat"
    (tmp_path / "jobs.d").mkdir()

    result = CliRunner().invoke(
        cli, [*command, "--state-dir", str(typo), "--jobs-dir", str(tmp_path / "jobs.d")]
    )

    assert result.exit_code == 1, result.output
    assert f"the state directory {typo} does not exist" in result.output
    assert "is --state-dir (JOBRUNNER_STATE_DIR, stateDir) right?" in result.output
    assert f"To begin a new state there: jobrunner init --state-dir {typo}" in result.output
    assert not typo.exists(), "no command but init makes a state"


def test_init_makes_a_new_state_directory_once(tmp_path: Path) -> None:
    new = tmp_path / "var" / "state"

    made = CliRunner().invoke(cli, ["init", "--state-dir", str(new)])
    (new / "keep").write_text("recorded")
    again = CliRunner().invoke(cli, ["init", "--state-dir", str(new)])
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    refused = CliRunner().invoke(cli, ["init", "--state-dir", str(a_file)])

    assert made.exit_code == 0 and f"state directory {new} made" in made.output, made.output
    assert again.exit_code == 0 and "exists already; left as it is" in again.output
    assert (new / "keep").read_text() == "recorded"
    assert refused.exit_code == 2 and "is a file" in refused.output, refused.output


def test_watch_waits_for_a_missing_jobs_directory_and_keeps_watching(
    scenario: Scenario, tmp_path: Path
) -> None:
    scenario.registry(1)
    scenario.fleet(1)
    scenario.job("rollout", STEP)
    kept = tmp_path / "kept"
    shutil.move(scenario.jobs_dir, kept)
    watch = Watch(scenario)
    try:
        watch.start()
        watch.wait_for(lambda: "does not exist; no job is removed" in watch.text(), "a warning")

        shutil.move(kept, scenario.jobs_dir)  # the clone arrives
        watch.wait_for(ended(scenario, "rollout", 1), "the job, once its manifest is there")

        scenario.job("rollout", STEP, run="2")  # and changes are still seen afterwards
        watch.wait_for(lambda: "new run token: nothing to do" in watch.text(), "the new token")
        assert [s for _, s, _ in executions(scenario, "rollout")] == ["TERMINATED"]
        assert watch.terminate() == 0
    finally:
        if watch.process is not None and watch.process.poll() is None:
            watch.process.kill()


def test_watch_sees_changes_of_a_jobs_directory_inside_a_hidden_folder(
    scenario: Scenario, tmp_path: Path
) -> None:
    scenario.registry(1)
    scenario.fleet(1)
    hidden = scenario.root / ".config" / "jobs.d"
    hidden.parent.mkdir()
    shutil.move(scenario.jobs_dir, hidden)
    scenario.root.joinpath("jobs.d").symlink_to(hidden)  # the scenario writes through it
    watch = Watch(scenario, jobs_dir=hidden)
    try:
        watch.start()
        time.sleep(CATCH_UP + 0.5)  # past the catch-up reconcile: only the watcher sees it now
        scenario.job("rollout", STEP)
        watch.wait_for(ended(scenario, "rollout", 1), "the execution of the new manifest", 10)
        assert watch.terminate() == 0
    finally:
        if watch.process is not None and watch.process.poll() is None:
            watch.process.kill()


def test_demo_outside_the_repository_says_what_is_missing(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--jobs-dir", str(tmp_path / "jobs.d")])

    assert result.exit_code == 1
    assert f"the example manifests are not in {tmp_path / 'jobs.d'}" in result.output
    assert "internal error" not in result.output
