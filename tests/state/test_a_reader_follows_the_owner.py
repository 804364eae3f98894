"""A reader's copy of a job (the dashboard's) follows what the owner writes, cheaply."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobrunner.errors import StateError
from jobrunner.state.jobstore import JobState
from jobrunner.state.journal import Journal
from jobrunner.state.layout import StateDir
from jobrunner.state.records import ExecutionStatus, JobRecord, Trigger, TriggerKind
from jobrunner.state.stores.files import FileStorage
from jobrunner.state.targets import TargetStatus, TargetTable
from jobrunner.web.reader import FleetReader


@pytest.fixture
def jobs(tmp_path: Path) -> Iterator[tuple[JobState, JobState]]:
    """The owner's copy of a job with two targets, and a reader's."""
    state = StateDir(tmp_path)
    owner = JobState.create(state, JobRecord(scope="acme", name="job"))
    owner.add_targets(["gw-1", "gw-2"], now=1.0)
    owner.flush()
    reader = JobState.load(state, "acme", "job")
    yield owner, reader
    owner.close()
    reader.close()


def test_appended_transitions_are_taken_up_without_a_reload(
    jobs: tuple[JobState, JobState],
) -> None:
    owner, reader = jobs
    assert not reader.refresh()  # nothing new
    before = reader.targets.journal.read_to
    owner.targets.put(owner.targets.get("gw-1").start(1, 2.0))
    owner.targets.put(owner.targets.get("gw-2").start(1, 2.0))
    owner.flush()
    assert reader.refresh()
    assert reader.targets.journal.read_to[1] > before[1]  # it read on from where it was
    assert reader.targets.journal.read_to[0] == before[0]
    assert reader.counts() == owner.counts()
    assert {t.started_in for t in reader.targets} == {1}


def test_a_line_being_written_waits_for_its_end(jobs: tuple[JobState, JobState]) -> None:
    owner, reader = jobs
    path = owner.paths.targets
    with path.open("ab") as handle:
        handle.write(b'{"t":"gw-1","i":0,"s":"PROCESS_')  # the owner is mid-write
    assert not reader.refresh()
    assert reader.targets.get("gw-1").status is TargetStatus.PROCESS_AWAITING
    with path.open("ab") as handle:
        handle.write(b'OK"}\n')
    assert reader.refresh()
    assert reader.targets.get("gw-1").status is TargetStatus.PROCESS_OK


def test_a_compacted_journal_is_read_whole_again(jobs: tuple[JobState, JobState]) -> None:
    owner, reader = jobs
    owner.targets.put(owner.targets.get("gw-2").start(1, 2.0))
    owner.targets.journal.compact(t.to_record() for t in owner.targets)  # a new file
    assert reader.refresh()
    assert reader.targets.get("gw-2").started_in == 1
    assert len(reader.targets) == 2


def test_a_damaged_appended_line_names_its_file_and_line(jobs: tuple[JobState, JobState]) -> None:
    owner, reader = jobs
    with owner.paths.targets.open("ab") as handle:
        handle.write(b"not json\n")
    with pytest.raises(StateError, match=r"targets\.journal:4: damaged journal line"):
        reader.refresh()


def test_record_and_executions_follow_too(jobs: tuple[JobState, JobState]) -> None:
    owner, reader = jobs
    summary = owner.begin_execution(Trigger(kind=TriggerKind.RUN, detail="1"), ["gw-1"], None)
    assert reader.refresh()
    assert reader.record.last_execution == 1
    assert reader.executions[1].status is ExecutionStatus.RUNNING
    owner.end_execution(summary, ExecutionStatus.TERMINATED)
    assert reader.refresh()
    assert reader.executions[1].status.value == "TERMINATED"
    assert not reader.refresh()


def test_journal_read_appended_needs_a_read_first(tmp_path: Path) -> None:
    journal = Journal(FileStorage(tmp_path), tmp_path / "j", "x", 1)
    assert journal.read_appended() is None  # nothing read yet: read it whole
    table = TargetTable(FileStorage(tmp_path), tmp_path / "none.journal").load()
    assert table.follow() is True  # a journal that does not exist yet: loaded (empty)
    assert len(table) == 0


def test_the_fleet_reader_reuses_what_it_read_until_it_changes(
    tmp_path: Path, jobs: tuple[JobState, JobState]
) -> None:
    owner, _ = jobs
    now = [0.0]
    reader = FleetReader(StateDir(tmp_path), clock=lambda: now[0])
    loaded = reader.job("acme", "job")
    assert loaded is not None
    job, generation = loaded
    owner.targets.put(owner.targets.get("gw-1").start(1, 2.0))
    owner.flush()
    again = reader.job("acme", "job")
    assert again is not None and again[1] == generation  # looked at within FRESH
    now[0] += 1.0
    later = reader.job("acme", "job")
    assert later is not None and later[1] != generation and later[0] is job
    assert job.targets.get("gw-1").started_in == 1
    assert reader.job("acme", "nope") is None
    assert [j.key for j in reader.jobs()] == [("acme", "job")]


def test_the_fleet_reader_reports_a_job_it_cannot_read(
    tmp_path: Path, jobs: tuple[JobState, JobState]
) -> None:
    owner, _ = jobs
    owner.paths.record.write_text("{ damaged")
    reader = FleetReader(StateDir(tmp_path))
    assert reader.job("acme", "job") is None
    assert "job.json" in reader.problems[("acme", "job")]
    assert reader.jobs() == []


def test_a_job_the_engine_holds_is_shown_from_a_snapshot_not_the_disk(
    tmp_path: Path, jobs: tuple[JobState, JobState]
) -> None:
    owner, _ = jobs
    now = [0.0]
    reader = FleetReader(StateDir(tmp_path), held=lambda: {owner.key: owner}, clock=lambda: now[0])
    first = reader.job("acme", "job")
    assert first is not None
    now[0] += 1.0
    same = reader.job("acme", "job")
    assert same is not None and same[1] == first[1]  # nothing changed: the same generation
    owner.targets.put(owner.targets.get("gw-1").start(1, 2.0))  # queued, not yet written
    now[0] += 1.0
    moved = reader.job("acme", "job")
    assert moved is not None and moved[1] != first[1]
    assert moved[0].targets.get("gw-1").started_in == 1
    assert first[0].targets.get("gw-1").started_in is None  # an earlier copy stays as it was
    owner.targets.put(owner.targets.get("gw-2").start(1, 2.0))
    assert moved[0].targets.get("gw-2").started_in is None
