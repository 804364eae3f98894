"""The retention of executions (`history: {keepExecutions, keepFor}`), over both storages:
an ended execution beyond the bounds is removed whole, the RUNNING one and the newest ended
one stay, ids keep counting, and the record counts what went."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobrunner.state.history import History
from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import StateDir
from jobrunner.state.records import (
    ExecutionStatus,
    HistoryBounds,
    JobRecord,
    Trigger,
    TriggerKind,
    utc_now,
)
from jobrunner.state.stores.base import Storage


def job_with(storage: Storage, ended: int, retention: History) -> JobState:
    """A job of two targets that ran `ended` executions, each ended, under `retention`."""
    job = JobState.create(StateDir(storage.root, storage), JobRecord(scope="acme", name="nightly"))
    job.retention = retention
    job.add_targets(["gw-1", "gw-2"], 1.0)
    for _ in range(ended):
        run(job)
    return job


def run(job: JobState, status: ExecutionStatus = ExecutionStatus.TERMINATED) -> int:
    summary = job.begin_execution(Trigger(kind=TriggerKind.SCHEDULE), ["gw-1", "gw-2"], None)
    job.log(summary.id).write("target gw-1", "failed")
    job.flush()
    if status is not ExecutionStatus.RUNNING:
        job.end_execution(summary, status)
    return summary.id


def recorded(storage: Storage, job: JobState) -> list[str]:
    return storage.children(job.paths.executions)


def test_an_execution_beyond_keep_executions_is_removed_whole_as_the_next_ends(
    storage: Storage,
) -> None:
    job = job_with(storage, 5, History(keep_executions=3))

    assert sorted(job.executions) == [3, 4, 5]
    assert recorded(storage, job) == ["000003", "000004", "000005"]
    for gone in (1, 2):
        assert not storage.exists(job.paths.summary(gone))
        assert not storage.exists(job.paths.log(gone))
    assert job.record.pruned == {"TERMINATED": 2} and job.pruned == 2
    assert run(job, ExecutionStatus.STOPPED) == 6  # ids keep counting
    job.close()
    again = JobState.load(StateDir(storage.root, storage), "acme", "nightly")
    assert sorted(again.executions) == [4, 5, 6]
    assert again.record.pruned == {"TERMINATED": 3} and again.record.last_execution == 6


def test_keep_for_removes_what_ended_long_ago_but_the_running_and_the_newest_ended(
    storage: Storage,
) -> None:
    job = job_with(storage, 3, History(keep_executions=100, keep_for=timedelta(hours=1)))
    running = run(job, ExecutionStatus.RUNNING)
    assert job.prune(utc_now() + timedelta(minutes=30)) == []

    assert job.prune(utc_now() + timedelta(hours=2)) == [1, 2]

    assert sorted(job.executions) == [3, running]
    assert job.executions[running].status is ExecutionStatus.RUNNING
    assert recorded(storage, job) == ["000003", "000004"]
    job.close()


def test_a_scope_s_bounds_come_before_the_runner_s(storage: Storage) -> None:
    job = job_with(storage, 0, History(keep_executions=50))
    job.record.history = HistoryBounds(keep_executions=2)  # the Scope's spec.history
    for _ in range(4):
        run(job)
    assert sorted(job.executions) == [3, 4]
    assert job.history.keep_for == History().keep_for  # what the scope leaves: the runner's
    job.close()


def test_a_reader_forgets_what_the_owner_pruned(storage: Storage) -> None:
    job = job_with(storage, 2, History(keep_executions=2))
    reader = JobState.load(StateDir(storage.root, storage), "acme", "nightly")
    assert sorted(reader.executions) == [1, 2]

    run(job)

    assert reader.refresh()
    assert sorted(reader.executions) == [2, 3] and reader.pruned == 1
    job.close()


@pytest.mark.parametrize("keep", [0, -1])
def test_bounds_that_would_keep_nothing_are_refused(keep: int) -> None:
    with pytest.raises(ValueError, match="keeps at least 1"):
        History(keep_executions=keep)


def test_a_folder_a_crash_left_without_its_summary_is_no_execution(storage: Storage) -> None:
    job = job_with(storage, 0, History(keep_executions=100, keep_for=timedelta(hours=1)))
    job.record.last_execution = 1  # recorded, then killed before the summary was written
    job.save_record()
    storage.append(job.paths.log(1), b"2026-12-07T10:00:00.000Z execution: 1 started\n")
    job.close()

    again = JobState.load(StateDir(storage.root, storage), "acme", "nightly")
    assert list(again.executions) == [] and not again.executions
    assert run(again) == 2
    assert list(again.executions) == [2]
    assert again.prune(utc_now() + timedelta(hours=2)) == []  # the newest ended one stays
    again.close()
