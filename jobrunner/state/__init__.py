"""Recorded state: the only memory of the runner, crash-safe files in one directory.

    state = StateDir(path)                        # the layout (see `layout`)
    job = JobState.load(state, scope, name)       # record, targets, executions of one job
    with DeviceRegistry(path) as registry: ...    # what the devices said of themselves

Files are replaced atomically or appended line by line (`files`); every record carries a
format version, and one written by a newer jobrunner is refused (StateVersionError).
"""

from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import JobPaths, StateDir
from jobrunner.state.lock import OwnerLock, current_owner
from jobrunner.state.records import (
    ExecutionStatus,
    ExecutionSummary,
    FrozenJob,
    JobRecord,
    Trigger,
    TriggerKind,
)
from jobrunner.state.registry import DeviceRecord, DeviceRegistry, DeviceStatus
from jobrunner.state.targets import TargetState, TargetStatus

__all__ = [
    "DeviceRecord",
    "DeviceRegistry",
    "DeviceStatus",
    "ExecutionStatus",
    "ExecutionSummary",
    "FrozenJob",
    "JobPaths",
    "JobRecord",
    "JobState",
    "OwnerLock",
    "StateDir",
    "TargetState",
    "TargetStatus",
    "Trigger",
    "TriggerKind",
    "current_owner",
]
