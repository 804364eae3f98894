"""What a runner does per job it holds: a reconcile that changes nothing writes no record, one
that changes something writes what the manifest says; a job taken up makes its steps'
operations only when they are first asked for."""

from __future__ import annotations

from pathlib import Path

from jobrunner.engine.core import executions
from jobrunner.engine.link import ports
from jobrunner.engine.link.memory import ok
from jobrunner.engine.link.operations import operations_factory
from jobrunner.engine.planning.spec import schedule_digest, spec_digest
from jobrunner.manifests import StepBase
from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import StateDir

from ..conftest import FakeClock, memory_runner

JOB = (
    "apiVersion: jobrunner/v1\nkind: Job\n"
    "metadata: {name: check, scope: acme, description: first}\n"
    "spec:\n  targets: {devices: [gw-1, gw-2]}\n  steps:\n"
    "    - {name: stop, definition: Bundle Stop, timeout: 30s, properties: {bundleId: 42}}\n"
    "    - {name: start, definition: Bundle Start, timeout: 1m30s, properties: {bundleId: 42}}\n"
    '  run: "1"\n'
    "  schedules:\n"
    "    - {name: nightly, type: cron, cron: '0 0 2 ? * *', timezone: UTC}\n"
    "    - {name: daily, type: interval, interval: 1d, startsOn: '2026-01-01T00:00:00Z'}\n"
)


def _reconcile(root: Path) -> None:
    runner, _ = memory_runner(root, FakeClock(), lambda sent: ok())
    with runner:
        runner.wait(runner.apply(runner.plan(runner.load())).started)


def test_a_reconcile_writes_the_record_only_when_the_manifest_changed_it(tmp_path: Path) -> None:
    (tmp_path / "jobs.d").mkdir()
    manifest = tmp_path / "jobs.d" / "check.yaml"
    manifest.write_text(JOB)
    _reconcile(tmp_path)
    record = tmp_path / "state" / "scopes" / "acme" / "jobs" / "check" / "job.json"
    written = record.read_bytes()

    _reconcile(tmp_path)
    assert record.read_bytes() == written, "nothing changed: the record is not written again"

    manifest.write_text(JOB.replace("description: first", "description: second"))
    _reconcile(tmp_path)
    assert record.read_bytes() != written
    runner, _ = memory_runner(tmp_path, FakeClock(), lambda sent: ok())
    with runner:
        manifests = runner.load()
        declared = manifests.jobs[("acme", "check")].manifest
    job = JobState.load(StateDir(tmp_path / "state"), "acme", "check")
    job.close()
    assert job.record.description == "second"
    assert job.record.spec_digest == spec_digest(declared)
    assert job.record.schedule_digest == schedule_digest(declared)
    assert job.record.spec["steps"][1]["timeout"] == "1m30s"


def test_a_job_taken_up_makes_its_operations_when_first_asked(tmp_path: Path) -> None:
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "check.yaml").write_text(JOB)
    _reconcile(tmp_path)
    built: list[str] = []
    build = operations_factory()

    def counted(step: StepBase) -> ports.StepOperation:
        built.append(step.name)
        return build(step)

    runner, _ = memory_runner(tmp_path, FakeClock(), lambda sent: ok())
    with runner:
        state = JobState.load(runner.state, "acme", "check")
        runner.engine.forget(("acme", "check"), "the test takes it up itself")
        job = executions.attach(runner.engine, state, counted)
        assert built == [], "held, not sent: no operation made yet"
        first = job.operations
        assert built == ["stop", "start"]
        assert job.operations is first, "made once"
        assert len(first) == 2 and None not in first


def test_a_runner_keeps_the_manifests_read_in_its_state_directory_by_their_text(
    tmp_path: Path,
) -> None:
    (tmp_path / "jobs.d").mkdir()
    manifest = tmp_path / "jobs.d" / "check.yaml"
    manifest.write_text(JOB)
    kept = tmp_path / "state" / "manifests.parsed"

    def load() -> str | None:
        runner, _ = memory_runner(tmp_path, FakeClock(), lambda sent: ok())
        with runner:
            return runner.load().jobs[("acme", "check")].manifest.metadata.description

    assert load() == "first"
    written = kept.read_bytes()
    assert load() == "first"
    assert kept.read_bytes() == written, "nothing read anew: not written again"

    manifest.write_text(JOB.replace("description: first", "description: second"))
    assert load() == "second", "a text changed is read again, whatever its time and size"
    assert kept.read_bytes() != written
    kept.write_bytes(b"damaged")
    assert load() == "second"
    assert kept.read_bytes().startswith(b'{"format": "jobrunner.parsed-manifests"')


def test_a_job_folder_without_a_record_is_no_job_at_the_start(tmp_path: Path) -> None:
    """The start reads each job's record without looking for it first: a folder that has
    none (left by hand, or by a crash before its first record) is still no job."""
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "check.yaml").write_text(JOB)
    _reconcile(tmp_path)
    (tmp_path / "state" / "scopes" / "acme" / "jobs" / "empty" / "executions").mkdir(parents=True)
    runner, _ = memory_runner(tmp_path, FakeClock(), lambda sent: ok())
    with runner:
        assert set(runner.engine.jobs) == {("acme", "check")}
        assert runner.unreadable == []
        plan = runner.plan(runner.load())
    assert [(j.scope, j.name) for j in plan.jobs] == [("acme", "check")]
