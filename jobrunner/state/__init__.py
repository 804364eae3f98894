"""Recorded state: the only memory of the runner, in a state directory or a state database.

    state = open_state(state_dir, state_db)       # once per command (`opening`)
    job = JobState.load(state, scope, name)       # record, targets, executions of one job
    with DeviceRegistry(state) as registry: ...   # what the devices said of themselves
    state.owners.daemon_runs()                    # alone or shared? (`ownership`)

Its modules, from the top: `opening` (where the state is); `jobstore` (one job's state),
`registry` (the devices), `policies` (the scopes' accepted Policy), `outbox` (notification
events); `records` (job records, execution summaries), `targets` (each target's journal),
`devices` (a device's record in the registry), `frozensteps` (a job's frozen steps,
validated once per distinct list), `shared` (the equal parts of job records read, held
once);
`layout` (the names of the records); `ownership` (who owns the state and where requests go);
`lock` (the directory's owner lock); `journal` (documents and journals over any storage),
`logs` (execution logs); `stores` (the storages: files, PostgreSQL). Records are replaced
atomically or appended line by line; every record carries a format version, and one written
by a newer jobrunner is refused (StateVersionError).
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
