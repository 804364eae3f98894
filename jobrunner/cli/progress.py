"""Live progress of executions: a rich table on a terminal, log lines elsewhere (CI logs).

Both views are fed the same way: every few hundred milliseconds, `show()` gets the current
jobs. On a terminal it redraws one table (targets by status, per step, rate, time elapsed);
otherwise it prints the new lines of the executions' logs, one event a line.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from jobrunner.engine.status import rollout_stand
from jobrunner.state.jobstore import JobState
from jobrunner.state.stores.base import Storage
from jobrunner.state.targets import TargetStatus

COLOURS = {
    "PROCESS_OK": "green",
    "PROCESS_FAILED": "red",
    "PROCESS_AWAITING": "yellow",
    "AWAITING_COMPLETION": "cyan",
    "NOTIFIED_COMPLETION": "blue",
}
SHORT = {
    "PROCESS_OK": "ok",
    "PROCESS_FAILED": "failed",
    "PROCESS_AWAITING": "awaiting",
    "AWAITING_COMPLETION": "completing",
    "NOTIFIED_COMPLETION": "notified",
}


@dataclass(frozen=True)
class JobProgress:
    """Where one execution of one job stands."""

    label: str
    execution: int
    status: str
    trigger: str
    started: datetime
    ended: datetime | None
    steps: list[str]
    counts: Counter[str]
    per_step: list[Counter[str]]
    storage: Storage
    log: Path
    rollout: str | None = None
    """Where the job's rollout stands (`awaiting-approval at wave 'rest'`), if it has one."""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def settled(self) -> int:
        return self.counts["PROCESS_OK"] + self.counts["PROCESS_FAILED"]

    def elapsed(self) -> float:
        end = self.ended or datetime.now(UTC)
        return max((end - self.started).total_seconds(), 0.001)


def progress_of(job: JobState, execution_id: int) -> JobProgress:
    """The progress of one execution, from the job's state (in memory or just loaded)."""
    summary = job.executions[execution_id]
    frozen = job.record.frozen
    steps = [str(s.get("name")) for s in frozen.steps] if frozen else []
    counts: Counter[str] = Counter()
    per_step: list[Counter[str]] = [Counter() for _ in steps]
    for client_id in summary.targets:
        if client_id not in job.targets:
            continue
        target = job.targets.get(client_id)
        counts[target.status.value] += 1
        if 0 <= target.step_index < len(per_step):
            per_step[target.step_index][target.status.value] += 1
    rollout = None
    if job.record.rollout is not None:
        stand = rollout_stand(job.record, job.last_execution)
        rollout = stand.state + (f" at wave '{stand.wave}'" if stand.wave else "")
    return JobProgress(
        rollout=rollout,
        label=job.label,
        execution=execution_id,
        status=summary.status.value,
        trigger=str(summary.trigger),
        started=summary.started_on,
        ended=summary.ended_on,
        steps=steps,
        counts=counts,
        per_step=per_step,
        storage=job.paths.storage,
        log=job.paths.log(execution_id),
    )


def _counts_text(counts: Counter[str]) -> Text:
    text = Text()
    for status in TargetStatus:
        count = counts.get(status.value, 0)
        if count:
            if text:
                text.append(", ")
            text.append(f"{count} {SHORT[status.value]}", style=COLOURS[status.value])
    return text if text else Text("no targets", style="dim")


def render(progress: Iterable[JobProgress]) -> Table:
    """The table a terminal shows."""
    table = Table(title="jobrunner: executions", expand=False)
    # 80 columns hold it: long words (a client id, `awaiting-approval`) fold, never overflow
    # (no min_width: rich then lets the table grow past the console).
    for column in ("job", "execution", "targets", "per step", "elapsed"):
        table.add_column(column, overflow="fold")
    for item in progress:
        steps = Text()
        for index, (name, counts) in enumerate(zip(item.steps, item.per_step, strict=False)):
            waiting = sum(n for s, n in counts.items() if s != "PROCESS_OK")
            if waiting or counts:
                steps.append(f"{index} {name}: ", style="bold")
                steps.append(_counts_text(counts))
                steps.append("\n")
        status_style = "green" if item.status == "TERMINATED" else "yellow"
        execution = Text(f"#{item.execution} {item.status}\n{item.trigger}", style=status_style)
        if item.rollout is not None:
            execution.append(f"\nrollout {item.rollout}", style="cyan")
        table.add_row(
            item.label,
            execution,
            _counts_text(item.counts),
            steps,
            f"{item.elapsed():.1f}s\n{item.settled / item.elapsed():.1f}/s",
        )
    return table


@dataclass
class ProgressView:
    """Shows progress live on a terminal, or prints new log lines (one per event)."""

    live: bool
    console: Console = field(default_factory=lambda: Console(stderr=True))
    _live: Live | None = None
    _positions: dict[Path, int] = field(default_factory=dict)
    _last: float = 0.0

    @staticmethod
    def for_output(force_plain: bool = False) -> ProgressView:
        console = Console(stderr=True)
        return ProgressView(live=console.is_terminal and not force_plain, console=console)

    def __enter__(self) -> ProgressView:
        if self.live:
            self._live = Live(console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(kind, error, tb)
            self._live = None

    def due(self, every: float = 0.25) -> bool:
        """Whether it is time to show progress again (callers poll cheaply)."""
        now = time.monotonic()
        if now - self._last < every:
            return False
        self._last = now
        return True

    def show(self, progress: list[JobProgress]) -> None:
        if self._live is not None:
            self._live.update(render(progress))
            return
        for item in progress:
            self.print_new_lines(item.storage, item.log, item.label)

    def print_new_lines(self, storage: Storage, log: Path, label: str) -> None:
        """Print the log's lines written since the last call (plain view), in one write."""
        position = self._positions.get(log, 0)
        chunk = storage.read_from(log, position)
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits
        self._positions[log] = position + len(complete)
        if complete:  # one write for the batch, each line prefixed in one pass, not one by one
            prefix = f"{label} "
            text = complete.decode("utf-8", errors="replace")
            click.echo(prefix + text[:-1].replace("\n", "\n" + prefix) + "\n", err=True, nl=False)
