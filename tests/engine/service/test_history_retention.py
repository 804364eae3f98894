"""The retention of executions as the runner applies it: a command or a daemon that opens the
state prunes what grew past the bounds while nobody held it; a new run token on a job whose
every target is done starts no empty execution."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from jobrunner.cli.main import cli
from jobrunner.device import BrokerSettings
from jobrunner.engine.core.runtime import EngineSettings
from jobrunner.engine.link.memory import MemoryLink, ok
from jobrunner.engine.service.runner import Runner, RunnerConfig
from jobrunner.state.history import History
from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import StateDir
from jobrunner.state.records import ExecutionStatus, JobRecord, Trigger, TriggerKind

from ..conftest import FakeClock, memory_runner

STOP = "- {name: stop, definition: Bundle Stop, timeout: 30s, properties: {bundleId: 42}}"


def ran(state: StateDir, count: int) -> None:
    """Job acme/nightly, recorded with `count` ended executions (by a runner keeping all)."""
    job = JobState.create(state, JobRecord(scope="acme", name="nightly"))
    job.retention = History(keep_executions=1000)
    job.add_targets(["gw-1"], 1.0)
    for _ in range(count):
        summary = job.begin_execution(Trigger(kind=TriggerKind.SCHEDULE), ["gw-1"], None)
        job.log(summary.id).write("target gw-1", "failed")
        job.end_execution(summary, ExecutionStatus.TERMINATED)
    job.close()


def runner_keeping(root: Path, clock: FakeClock, history: History) -> Runner:
    config = RunnerConfig(
        jobs_dir=root / "jobs.d",
        state_dir=root / "state",
        scope="acme",
        broker=BrokerSettings.from_url("mqtt://127.0.0.1:1", client_id="memory"),
        engine=EngineSettings(durable=False, history=history),
    )
    return Runner(config, link=lambda inbox: MemoryLink(inbox, lambda sent: ok()), clock=clock)


def status(root: Path, job: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        cli, ["status", job, "-o", "json", "--state-dir", str(root / "state")]
    )
    assert result.exit_code == 0, result.output
    view = json.loads(result.output)
    assert isinstance(view, dict)
    return view


def test_a_runner_that_opens_the_state_again_prunes_what_is_over_the_bounds(
    tmp_path: Path, clock: FakeClock
) -> None:
    state = StateDir(tmp_path / "state")
    ran(state, 6)
    assert status(tmp_path, "acme/nightly")["executionsPruned"] == 0

    with runner_keeping(tmp_path, clock, History(keep_executions=2)):
        pass  # opening the state (a restarted daemon, a command) is enough

    folder = state.job("acme", "nightly").executions
    assert sorted(p.name for p in folder.iterdir()) == ["000005", "000006"]
    view = status(tmp_path, "acme/nightly")
    assert [e["id"] for e in view["executions"]] == [5, 6]
    assert view["executionsPruned"] == 4
    result = CliRunner().invoke(
        cli, ["logs", "acme/nightly", "--execution", "2", "--state-dir", str(state.root)]
    )
    assert result.exit_code == 1 and "4 older one(s) were pruned" in result.output


def test_a_new_run_token_on_a_job_whose_every_target_is_done_starts_nothing(
    tmp_path: Path, clock: FakeClock
) -> None:
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    manifest = jobs / "upgrade.yaml"

    def declare(token: str) -> None:
        manifest.write_text(
            "apiVersion: jobrunner/v1\nkind: Job\nmetadata: {name: upgrade, scope: acme}\n"
            f"spec:\n  targets: {{devices: [gw-1, gw-2]}}\n  steps:\n    {STOP}\n"
            f'  run: "{token}"\n'
        )

    declare("1")
    runner, _ = memory_runner(tmp_path, clock, lambda sent: ok())
    with runner:
        (started,) = runner.apply(runner.plan(runner.load())).started
        runner.wait([started])
        declare("2")

        applied = runner.apply(runner.plan(runner.load()))

        assert applied.started == []
        assert applied.idle == [
            "nothing to do: every target of job acme/upgrade is done (2 PROCESS_OK at its"
            " last step); no execution was started"
        ]
        job = runner.job_state("acme", "upgrade")
        assert sorted(job.executions) == [1] and job.record.run_token == "2"
        again = runner.apply(runner.plan(runner.load()))
        assert again.started == [] and again.idle == []  # the token was taken: asked once


def test_history_comes_from_the_environment_then_the_configuration_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "jobrunner.yaml"
    config.write_text("history: {keepExecutions: 20, keepFor: 7d}\n")

    def shown() -> Any:
        result = CliRunner().invoke(cli, ["config", "-o", "json", "--config", str(config)])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)["history"]["value"]

    assert shown() == "keepExecutions 20, keepFor 7d"
    monkeypatch.setenv("JOBRUNNER_HISTORY_KEEP_FOR", "12h")
    assert shown() == "keepExecutions 20, keepFor 12h"
    monkeypatch.setenv("JOBRUNNER_HISTORY_KEEP_EXECUTIONS", "none")
    result = CliRunner().invoke(cli, ["config", "--config", str(config)])
    assert result.exit_code == 2  # a bad value
    assert "JOBRUNNER_HISTORY_KEEP_EXECUTIONS='none': write a whole number" in result.output
    monkeypatch.delenv("JOBRUNNER_HISTORY_KEEP_EXECUTIONS")
    config.write_text("history: {keepFor: 90 days}\n")
    result = CliRunner().invoke(cli, ["config", "--config", str(config)])
    assert result.exit_code == 2 and "history.keepFor" in result.output, result.output


def test_a_scope_s_history_beats_the_runner_s_for_its_jobs(
    tmp_path: Path, clock: FakeClock
) -> None:
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    (jobs / "scope.yaml").write_text(
        "apiVersion: jobrunner/v1\nkind: Scope\nmetadata: {name: acme}\n"
        "spec: {history: {keepExecutions: 2}}\n"
    )
    (jobs / "upgrade.yaml").write_text(
        "apiVersion: jobrunner/v1\nkind: Job\nmetadata: {name: upgrade, scope: acme}\n"
        f"spec:\n  targets: {{devices: [gw-1]}}\n  steps:\n    {STOP}\n"
    )
    with runner_keeping(tmp_path, clock, History(keep_executions=50)) as runner:
        runner.apply(runner.plan(runner.load()))
        job = runner.job_state("acme", "upgrade")
        assert job.history.keep_executions == 2
        for _ in range(4):
            summary = job.begin_execution(Trigger(kind=TriggerKind.MANUAL), [], None)
            job.end_execution(summary, ExecutionStatus.STOPPED)

        assert sorted(job.executions) == [3, 4]
        assert job.record.pruned == {"STOPPED": 2}
