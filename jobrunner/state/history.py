"""How much history a job keeps: its ended executions, within `keepExecutions` and `keepFor`.

An ended execution is removed, its whole folder (summary and log), once it is not among the
newest `keep_executions` of its job, or once it ended more than `keep_for` ago: either bound
prunes. The RUNNING execution and the newest ended one are always kept, whatever the bounds
say, so that `status` always tells how the job last ended; ids keep counting (the job
record's `last_execution`), and the record counts what was pruned, by status, so that the
executions' counter of `/metrics` never goes down.

Pruning costs a look at the executions already loaded (at most `keep_executions` + 1 of
them once pruned): the engine prunes a job when it takes it up and when one of its
executions ends, the daemon every `SWEEP` for the bound in time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from jobrunner.state.records import ExecutionStatus, ExecutionSummary, HistoryBounds

DEFAULT_KEEP_EXECUTIONS = 100
DEFAULT_KEEP_FOR = timedelta(days=90)
SWEEP = 3600.0
"""Seconds between the daemon's passes for executions past `keep_for` (an hour: the bound
is in days; the executions that end are pruned as they end)."""


@dataclass(frozen=True)
class History:
    """The retention of one job's executions (the runner's `history`, or its Scope's)."""

    keep_executions: int = DEFAULT_KEEP_EXECUTIONS
    keep_for: timedelta = DEFAULT_KEEP_FOR

    def __post_init__(self) -> None:
        if self.keep_executions < 1:
            raise ValueError(
                f"history keepExecutions is {self.keep_executions}; it keeps at least 1"
                " (the newest ended execution is always kept)"
            )
        if self.keep_for <= timedelta(0):
            raise ValueError("history keepFor must be a positive duration, e.g. 90d")

    def within(self, bounds: HistoryBounds | None) -> History:
        """These bounds, with what a Scope's `spec.history` sets instead."""
        if bounds is None:
            return self
        return History(
            bounds.keep_executions or self.keep_executions,
            timedelta(seconds=bounds.keep_for) if bounds.keep_for else self.keep_for,
        )

    def over(self, executions: Mapping[int, ExecutionSummary], now: datetime) -> list[int]:
        """The ids of the executions beyond the bounds at `now`, oldest first.

        Reads few summaries (the job's older ones are read from the storage): only one
        execution of a job runs at a time, so the newest id is the only one that may be
        RUNNING, and executions end in the order of their ids: the bound in time is looked
        for from the oldest kept one, up to the first that ended within it."""
        ids = sorted(executions)
        if len(ids) <= 1:
            return []
        done = ids[:-1] if executions[ids[-1]].status is ExecutionStatus.RUNNING else ids
        ended = done[:-1]  # the newest ended one tells how the job last ended: kept
        beyond = ended[: max(0, len(ids) - self.keep_executions)]  # a prefix of the ids
        expired = now - self.keep_for
        for i in ended[len(beyond) :]:
            if not _ended_before(executions[i], expired):
                break
            beyond.append(i)
        return beyond


def _ended_before(summary: ExecutionSummary, moment: datetime) -> bool:
    return summary.ended_on is not None and summary.ended_on < moment


DEFAULT = History()
