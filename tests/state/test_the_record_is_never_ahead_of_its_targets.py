"""A record replaced after target transitions were queued is written after them: a process
killed right after the record (a rollout's wave marked soaking) still has the transitions
that led to it."""

from __future__ import annotations

from pathlib import Path

from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import StateDir
from jobrunner.state.records import JobRecord


def test_saving_the_record_writes_the_queued_transitions_first(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    owner = JobState.create(state, JobRecord(scope="acme", name="job"))
    owner.add_targets(["gw-1"], now=1.0)
    owner.flush()
    owner.targets.put(owner.targets.get("gw-1").start(1, 2.0))  # queued, as in a turn
    owner.record.last_execution = 1
    owner.save_record()

    # what a process started now (after a SIGKILL) reads
    after = JobState.load(state, "acme", "job")
    assert after.record.last_execution == 1
    assert after.targets.get("gw-1").started_in == 1
    after.close()
    owner.close()
