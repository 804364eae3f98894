"""In-memory companions of the recorded state while jobs run: never written to disk.

Everything here can be rebuilt from the state directory (that is what a restart does): the
ready queue of an execution, which targets have a request out, which devices are busy.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from jobrunner.engine.ports import StepOperation
from jobrunner.manifests import StepBase
from jobrunner.state.jobstore import JobState
from jobrunner.state.records import ExecutionSummary

DeviceKey = tuple[str, str]  # (scope, client id)
JobKey = tuple[str, str]  # (scope, name)


@dataclass
class ExecutionRun:
    """A RUNNING execution: which of its targets wait for dispatch, and how many are open."""

    summary: ExecutionSummary
    covered: set[str]
    ready: deque[str] = field(default_factory=deque)
    open: int = 0  # covered targets not yet PROCESS_OK at the last step nor PROCESS_FAILED
    cancelling: set[str] = field(default_factory=set)  # targets whose cancel is under way
    drain_over: bool = False  # stopping, and the wait for replies in flight is over
    ending_logged: bool = False  # its last log line is queued (the summary may still wait)

    @property
    def id(self) -> int:
        return self.summary.id

    @property
    def stopping(self) -> bool:
        return self.summary.stop_requested


@dataclass
class RunningJob:
    """A job loaded by the engine: its state, its frozen steps ready to send, its execution."""

    state: JobState
    steps: list[StepBase]
    operations: list[StepOperation]
    run: ExecutionRun | None = None
    out: set[str] = field(default_factory=set)
    """Targets whose reply is awaited by this process (also after their execution ended: a
    stopped execution does not wait for every reply, a reply that comes is still recorded)."""
    on_end: list[Callable[[ExecutionSummary], None]] = field(default_factory=list)
    described: set[tuple[int, int]] = field(default_factory=set)  # (execution, step) logged

    @property
    def key(self) -> JobKey:
        return self.state.key

    @property
    def scope(self) -> str:
        return self.state.record.scope

    @property
    def label(self) -> str:
        return self.state.label

    def subject(self, client_id: str, step_index: int) -> str:
        """`target gw-0007 step 2 'install'`: the subject of a log line."""
        name = self.steps[step_index].name if step_index < len(self.steps) else "?"
        return f"target {client_id} step {step_index} '{name}'"


@dataclass
class DeviceQueue:
    """One operation at a time per device, whatever the job; waiting jobs are served in order.

    A device is busy from the dispatch of a step until that step's outcome (for an
    asynchronous step: until its completion). Targets of other jobs wait in arrival order.
    """

    busy: dict[DeviceKey, JobKey] = field(default_factory=dict)
    waiting: dict[DeviceKey, deque[tuple[JobKey, str]]] = field(default_factory=dict)

    def try_take(self, device: DeviceKey, job: JobKey) -> bool:
        if device in self.busy:
            return False
        self.busy[device] = job
        return True

    def park(self, device: DeviceKey, job: JobKey, client_id: str) -> None:
        self.waiting.setdefault(device, deque()).append((job, client_id))

    def release(self, device: DeviceKey, job: JobKey) -> tuple[JobKey, str] | None:
        """Free the device; the next waiting (job, client id), if any, to make ready again."""
        if self.busy.get(device) == job:
            del self.busy[device]
        queue = self.waiting.get(device)
        if not queue:
            return None
        following = queue.popleft()
        if not queue:
            del self.waiting[device]
        return following
