"""Everything recorded about one job, loaded together: record, targets, executions.

`JobState` is the state layer's unit of work for the engine: it knows the files of one job
(see `layout`), loads them (refusing damaged or newer ones with a clear message), and writes
each change the cheapest safe way: target transitions are journal appends, the job record
and execution summaries are atomic replacements.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from jobrunner.errors import StateError
from jobrunner.state.layout import JobPaths, StateDir
from jobrunner.state.logs import ExecutionLog
from jobrunner.state.records import (
    ExecutionStatus,
    ExecutionSummary,
    JobRecord,
    Trigger,
    utc_now,
)
from jobrunner.state.targets import TargetState, TargetTable


@dataclass
class JobState:
    """One job's recorded state; the engine mutates it through these methods only."""

    paths: JobPaths
    record: JobRecord
    targets: TargetTable
    executions: dict[int, ExecutionSummary] = field(default_factory=dict)
    logs: dict[int, ExecutionLog] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return self.record.scope, self.record.name

    @property
    def label(self) -> str:
        return f"{self.record.scope}/{self.record.name}"

    # -- loading ---------------------------------------------------------------------------

    @staticmethod
    def exists(state: StateDir, scope: str, name: str) -> bool:
        return state.job(scope, name).record.exists()

    @staticmethod
    def load(state: StateDir, scope: str, name: str) -> JobState:
        """The job as recorded; StateError when a file is damaged or from a newer version."""
        paths = state.job(scope, name)
        record = JobRecord.load(paths.record)
        if (record.scope, record.name) != (scope, name):
            raise StateError(
                f"{paths.record}: records job {record.scope}/{record.name}, expected"
                f" {scope}/{name}; was the folder copied or renamed by hand?"
            )
        targets = TargetTable(paths.targets).load()
        job = JobState(paths, record, targets)
        for execution_id in paths.execution_ids():
            summary_path = paths.summary(execution_id)
            if summary_path.exists():
                job.executions[execution_id] = ExecutionSummary.load(summary_path)
        return job

    @staticmethod
    def create(state: StateDir, record: JobRecord) -> JobState:
        paths = state.job(record.scope, record.name)
        job = JobState(paths, record, TargetTable(paths.targets))
        job.save_record()
        return job

    # -- record ----------------------------------------------------------------------------

    def save_record(self) -> None:
        self.record.save(self.paths.record)

    # -- executions ------------------------------------------------------------------------

    @property
    def running(self) -> ExecutionSummary | None:
        """The execution that has not ended, if any (at most one)."""
        for summary in self.executions.values():
            if summary.status is ExecutionStatus.RUNNING:
                return summary
        return None

    @property
    def last_execution(self) -> ExecutionSummary | None:
        return self.executions[max(self.executions)] if self.executions else None

    def begin_execution(
        self, trigger: Trigger, targets: Iterable[str], revision: str | None
    ) -> ExecutionSummary:
        """Record a new RUNNING execution (id = last + 1) over `targets`."""
        self.record.last_execution += 1
        summary = ExecutionSummary(
            id=self.record.last_execution,
            trigger=trigger,
            revision=revision,
            targets=list(targets),
        )
        self.executions[summary.id] = summary
        self.save_record()
        self.save_summary(summary)
        return summary

    def end_execution(self, summary: ExecutionSummary, status: ExecutionStatus) -> None:
        """Close an execution with the counts of its targets' statuses."""
        summary.status = status
        summary.ended_on = utc_now()
        summary.counts = self.counts(summary.targets)
        self.save_summary(summary)
        log = self.logs.pop(summary.id, None)
        if log is not None:
            log.close()

    def save_summary(self, summary: ExecutionSummary) -> None:
        summary.save(self.paths.summary(summary.id))

    def log(self, execution_id: int) -> ExecutionLog:
        log = self.logs.get(execution_id)
        if log is None:
            log = self.logs[execution_id] = ExecutionLog(self.paths.log(execution_id))
        return log

    # -- targets ---------------------------------------------------------------------------

    def counts(self, client_ids: Iterable[str] | None = None) -> dict[str, int]:
        """Targets per status (of `client_ids`, or of all targets)."""
        if client_ids is None:
            return dict(Counter(t.status.value for t in self.targets))
        return dict(
            Counter(self.targets.get(c).status.value for c in client_ids if c in self.targets)
        )

    def add_targets(self, client_ids: Iterable[str], now: float) -> None:
        for client_id in client_ids:
            if client_id not in self.targets:
                self.targets.put(TargetState(client_id, updated=now))

    def flush(self, durable: bool = False) -> None:
        """Write queued target transitions and log lines."""
        self.targets.flush(durable)
        for log in self.logs.values():
            log.flush()

    def close(self) -> None:
        self.targets.close()
        for log in self.logs.values():
            log.close()
        self.logs.clear()
