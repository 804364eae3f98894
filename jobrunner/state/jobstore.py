"""Everything recorded about one job, loaded together: record, targets, executions.

`JobState` is the state layer's unit of work for the engine: it knows the files of one job
(see `layout`), loads them (refusing damaged or newer ones with a clear message), and writes
each change the cheapest safe way: target transitions are journal appends, the job record
and execution summaries are atomic replacements.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime

from jobrunner.errors import StateError
from jobrunner.manifests.steps import StepBase
from jobrunner.state.frozensteps import frozen_steps
from jobrunner.state.history import DEFAULT, History
from jobrunner.state.layout import JobPaths, StateDir
from jobrunner.state.logs import ExecutionLog
from jobrunner.state.records import (
    ExecutionStatus,
    ExecutionSummary,
    FrozenJob,
    JobRecord,
    Trigger,
    utc_now,
)
from jobrunner.state.stores.base import Stamp
from jobrunner.state.targets import TargetState, TargetTable

KEPT_SUMMARIES = 10
"""Summaries of a job's newest executions held in memory (and the running one, always): a
daemon that runs a job every ten seconds for a year holds these, not the 3 million it ran.
Older ones are read from the storage when asked for (`status`, the dashboard)."""


class Executions(MutableMapping[int, ExecutionSummary]):
    """A job's execution summaries by id: the newest `KEPT_SUMMARIES` (and any RUNNING one)
    in memory, the older ones read from the storage when asked for; how many ended with
    each status is counted as they end (metrics ask for it at every scrape).

    Deleting an id forgets it in memory only (its files are removed by whoever deletes)."""

    def __init__(self, paths: JobPaths) -> None:
        self.paths = paths
        self.recent: dict[int, ExecutionSummary] = {}
        """The newest summaries, and the running one: what the engine reads and changes."""
        self.known: set[int] | None = None
        """The ids with a summary, as listed when loaded and kept by the owner as it begins
        and prunes executions (None: listed from the storage at each look, as a reader
        must)."""
        self.ended: Counter[str] = Counter()
        """Executions ended, by status: those loaded, those the retention removed (the
        record counts them), those ended since. Pruning changes nothing here."""

    def copy(self) -> Executions:
        """The same summaries as of now (for a reader on another thread)."""
        other = Executions(self.paths)
        other.recent = dict(self.recent)
        other.ended = Counter(self.ended)
        return other

    def __getitem__(self, execution_id: int) -> ExecutionSummary:
        summary = self.recent.get(execution_id)
        if summary is not None:
            return summary
        try:
            return ExecutionSummary.load(self.paths.storage, self.paths.summary(execution_id))
        except FileNotFoundError:
            raise KeyError(execution_id) from None

    def __contains__(self, execution_id: object) -> bool:
        if execution_id in self.recent:
            return True
        if not isinstance(execution_id, int):
            return False
        return self.paths.storage.exists(self.paths.summary(execution_id))

    def __setitem__(self, execution_id: int, summary: ExecutionSummary) -> None:
        self.recent[execution_id] = summary
        if self.known is not None:
            self.known.add(execution_id)
        if len(self.recent) > KEPT_SUMMARIES:
            self._keep_newest()

    def __delitem__(self, execution_id: int) -> None:
        self.recent.pop(execution_id, None)
        if self.known is not None:
            self.known.discard(execution_id)

    def __iter__(self) -> Iterator[int]:
        """Every execution recorded, oldest first (listed from the storage)."""
        return iter(self._ids())

    def __len__(self) -> int:
        return len(self._ids())

    def __bool__(self) -> bool:
        return bool(self.recent) or bool(self._ids())

    def _ids(self) -> list[int]:
        """The ids with a summary: a folder without one is what a crash left between the
        two (the execution never started), and is no execution."""
        if self.known is not None:
            return sorted(self.known)
        storage = self.paths.storage
        listed = (
            i
            for i in self.paths.execution_ids()
            if i in self.recent or storage.exists(self.paths.summary(i))
        )
        return sorted({*listed, *self.recent})

    @property
    def newest(self) -> int | None:
        """The id of the newest execution recorded (None: it never ran)."""
        return max(self.recent) if self.recent else None

    def ended_now(self, summary: ExecutionSummary) -> None:
        """Count an execution that has just ended (it was counted as running)."""
        self.ended[summary.status.value] += 1
        self._keep_newest()

    def _keep_newest(self) -> None:
        """Forget all but the newest summaries in memory; a running one stays."""
        if len(self.recent) <= KEPT_SUMMARIES:
            return
        newest = sorted(self.recent)[-KEPT_SUMMARIES:]
        kept = {i: self.recent[i] for i in newest}
        for execution_id, summary in self.recent.items():
            if summary.status is ExecutionStatus.RUNNING:
                kept[execution_id] = summary
        self.recent = kept


@dataclass
class JobState:
    """One job's recorded state; the engine mutates it through these methods only."""

    paths: JobPaths
    record: JobRecord
    targets: TargetTable
    executions: Executions = field(init=False)
    logs: dict[int, ExecutionLog] = field(default_factory=dict)
    steps: list[StepBase] = field(default_factory=list)
    """The frozen steps, validated (empty before the first execution)."""
    retention: History = DEFAULT
    """The runner's `history`; the record's (its Scope's) bounds come first (`history`)."""
    _on_pending: Callable[[], object] | None = None
    _record_stamp: Stamp | None = None
    """The record's stamp when it was loaded: `refresh` reloads it when
    it was replaced since."""

    def __post_init__(self) -> None:
        self.executions = Executions(self.paths)

    @property
    def key(self) -> tuple[str, str]:
        return self.record.scope, self.record.name

    @property
    def label(self) -> str:
        return f"{self.record.scope}/{self.record.name}"

    # -- loading ---------------------------------------------------------------------------

    @staticmethod
    def exists(state: StateDir, scope: str, name: str) -> bool:
        return state.storage.exists(state.job(scope, name).record)

    @staticmethod
    def load(state: StateDir, scope: str, name: str) -> JobState:
        """The job as recorded; StateError when a file is damaged or from a newer version."""
        paths = state.job(scope, name)
        storage = paths.storage
        record = JobRecord.load(storage, paths.record)
        if (record.scope, record.name) != (scope, name):
            raise StateError(
                f"{paths.record}: records job {record.scope}/{record.name}, expected"
                f" {scope}/{name}; was the folder copied or renamed by hand?"
            )
        stamp = storage.stamp(paths.record)
        targets = TargetTable(storage, paths.targets).load()
        job = JobState(paths, record, targets, steps=_frozen_steps(paths, record))
        job._record_stamp = stamp
        loaded: set[int] = set()
        for execution_id in paths.execution_ids():
            try:
                summary = ExecutionSummary.load(storage, paths.summary(execution_id))
            except FileNotFoundError:
                continue  # a crash between the folder and its summary: nothing started
            if summary.status is not ExecutionStatus.RUNNING:
                job.executions.ended[summary.status.value] += 1
            job.executions[execution_id] = summary  # the oldest are let go as it goes
            loaded.add(execution_id)
        job.executions.ended.update(record.pruned)  # removed by the retention, still counted
        job.executions.known = loaded  # listed once: this copy's owner keeps it up to date
        return job

    def snapshot(self) -> JobState:
        """The job as it is at this instant, for a reader on another thread while the owner
        goes on (the dashboard, in the daemon): the targets' values and the executions are
        copied, which is cheap (values are immutable); never to be written or closed."""
        copy = JobState(
            self.paths,
            self.record.model_copy(),
            self.targets.copy(),
            steps=self.steps,
            retention=self.retention,
        )
        copy.executions = self.executions.copy()
        return copy

    def refresh(self) -> bool:
        """Bring a reader's copy up to date with what the owner wrote since it was loaded:
        the record when it was replaced, the targets' new journal lines, new executions and
        those that were still running. True when anything changed."""
        changed = False
        storage = self.paths.storage
        stamp = storage.stamp(self.paths.record)
        if stamp != self._record_stamp:
            record = JobRecord.load(storage, self.paths.record)
            self.steps = _frozen_steps(self.paths, record)
            self.record, self._record_stamp, changed = record, stamp, True
        changed = self.targets.follow() or changed
        executions = self.executions
        executions.known = None  # a reader's copy: the owner begins and prunes executions
        recorded = self.paths.execution_ids()
        for gone in executions.recent.keys() - set(recorded):
            del executions.recent[gone]  # pruned by the owner (`history`): still counted
            changed = True
        oldest_kept = min(executions.recent, default=0)
        for execution_id in recorded:
            known = executions.recent.get(execution_id)
            if known is None and execution_id < oldest_kept:
                continue  # older than those kept: ended, and never written again
            if known is not None and known.status is not ExecutionStatus.RUNNING:
                continue  # an ended execution's summary is never written again
            try:
                summary = ExecutionSummary.load(storage, self.paths.summary(execution_id))
            except FileNotFoundError:
                continue
            if known is None or summary != known:
                if summary.status is not ExecutionStatus.RUNNING:
                    executions.ended[summary.status.value] += 1
                executions[execution_id] = summary
                changed = True
        return changed

    @staticmethod
    def create(state: StateDir, record: JobRecord) -> JobState:
        paths = state.job(record.scope, record.name)
        job = JobState(paths, record, TargetTable(paths.storage, paths.targets))
        job.executions.known = set()  # a new job: its executions are those it begins
        job.save_record()
        return job

    # -- record ----------------------------------------------------------------------------

    def save_record(self) -> None:
        """Replace the record, after the target transitions queued so far: what the record
        says (a rollout's wave soaking, say) is never ahead of the targets it follows from,
        whenever the process is killed."""
        self.targets.flush(durable=True)
        self.record.save(self.paths.storage, self.paths.record)

    def freeze(self, frozen: FrozenJob) -> None:
        """Record the first execution's targets and steps: unmodifiable from now on."""
        steps = _frozen_steps(self.paths, self.record.model_copy(update={"frozen": frozen}))
        self.record.frozen = frozen
        self.record.resolved_targets = None  # the frozen targets say it from now on
        self.steps = steps
        self.save_record()

    # -- executions ------------------------------------------------------------------------

    @property
    def running(self) -> ExecutionSummary | None:
        """The execution that has not ended, if any (at most one)."""
        for summary in self.executions.recent.values():
            if summary.status is ExecutionStatus.RUNNING:
                return summary
        return None

    @property
    def last_execution(self) -> ExecutionSummary | None:
        newest = self.executions.newest
        return None if newest is None else self.executions.recent[newest]

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
        self.targets.settle()  # written before the summary that counts them
        summary.status = status
        summary.ended_on = utc_now()
        summary.counts = self.counts(summary.targets)
        self.save_summary(summary)
        self.executions.ended_now(summary)
        log = self.logs.pop(summary.id, None)
        if log is not None:
            log.close()
        self.prune(summary.ended_on)

    @property
    def history(self) -> History:
        """The retention of this job: its Scope's bounds, else the runner's."""
        return self.retention.within(self.record.history)

    @property
    def pruned(self) -> int:
        """How many of its executions the retention removed."""
        return sum(self.record.pruned.values())

    def prune(self, now: datetime | None = None) -> list[int]:
        """Remove the ended executions beyond the retention (`history`): each whole folder,
        summary and log. The ids removed (none, mostly: it looks at what is loaded)."""
        over = self.history.over(self.executions, now or utc_now())
        if not over:
            return over
        storage = self.paths.storage
        with storage.batch():  # one transaction on a state database, with the count
            for execution_id in over:
                summary = self.executions.pop(execution_id)
                log = self.logs.pop(execution_id, None)
                if log is not None:
                    log.close()
                storage.remove_tree(self.paths.execution(execution_id))
                status = summary.status.value
                self.record.pruned[status] = self.record.pruned.get(status, 0) + 1
            self.save_record()
        return over

    def save_summary(self, summary: ExecutionSummary) -> None:
        summary.save(self.paths.storage, self.paths.summary(summary.id))

    def log(self, execution_id: int) -> ExecutionLog:
        log = self.logs.get(execution_id)
        if log is None:
            log = self.logs[execution_id] = ExecutionLog(
                self.paths.storage, self.paths.log(execution_id)
            )
            if self._on_pending is not None:
                log.on_pending = self._on_pending
        return log

    def on_pending(self, callback: Callable[[], object]) -> None:
        """Call `callback` whenever a transition or log line is queued and nothing was: the
        engine then flushes the jobs that have something to write, not all of them."""
        self._on_pending = callback
        self.targets.journal.on_pending = callback
        for log in self.logs.values():
            log.on_pending = callback

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


def _frozen_steps(paths: JobPaths, record: JobRecord) -> list[StepBase]:
    """The record's frozen steps, validated (see `frozensteps`); none before it froze."""
    if record.frozen is None:
        return []
    return frozen_steps(record.frozen.steps, paths.record)
