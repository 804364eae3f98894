"""In-memory companions of the recorded state while jobs run: never written to disk.

Everything here can be rebuilt from the state directory (that is what a restart does): the
ready queue of an execution, which targets have a request out, which devices are busy, which
operation is whose. `Runtime` is what the engine's parts (dispatch, outcomes, recovery, the
loop) share; only the engine's thread touches it.
"""

from __future__ import annotations

import os
import secrets
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jobrunner.engine.core.devices import Devices
from jobrunner.engine.core.perdevice import PerDevice, step_operations
from jobrunner.engine.core.timers import Deadlines
from jobrunner.engine.link.observers import Observer
from jobrunner.engine.link.operations import OperationFactory
from jobrunner.engine.link.ports import DeviceClaims, DeviceLink, StepOperation
from jobrunner.engine.rollout.gate import Gate, gate_settings
from jobrunner.manifests import StepBase
from jobrunner.state.history import DEFAULT as DEFAULT_HISTORY
from jobrunner.state.history import History
from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import JobKey
from jobrunner.state.records import ExecutionSummary
from jobrunner.state.targets import TargetState

DeviceKey = tuple[str, str]  # (scope, client id)


@dataclass(frozen=True)
class EngineSettings:
    max_in_flight: int = 200
    """Requests out at once, across all executions (stock mosquitto drops messages for a
    client more than 1,000 behind: keep well under)."""
    durable: bool = True
    """fsync recorded dispatches before publishing them (survives power loss, not only a kill)."""
    reconnect_retry: float = 1.0
    """Seconds before a target whose request could not be published is tried again."""
    query_timeout: float = 30.0
    """Seconds a status query, a cancel or a rollback's request waits for its reply."""
    apply_seconds: float = 2.0
    """Seconds after Kura's 200 to a rollback before what it restored is read back (Kura
    applies it a second after replying)."""
    history: History = DEFAULT_HISTORY
    """How many ended executions each job keeps, and for how long (a Scope may say)."""


def new_request_id() -> str:
    # Random 63-bit decimal, as the device cloud does: unique without coordination. From the
    # system's CSPRNG: in Kura's topics the id is all that ties a reply to its request, so a
    # device must not be able to predict the ids of requests sent to other devices. Drawn
    # 512 at a time: one `os.urandom` call per request cost more than the rest of the id.
    try:
        return str(_random_ids.popleft())  # deque.popleft is atomic: any thread may take one
    except IndexError:
        block = os.urandom(8 * _DRAWN)
        _random_ids.extend(value >> 1 for (value,) in struct.iter_unpack(">Q", block))
        return str(_random_ids.popleft())


_DRAWN = 512
_random_ids: deque[int] = deque()
"""Random 63-bit ids drawn from the OS and not used yet."""
os.register_at_fork(after_in_child=_random_ids.clear)  # a child never reuses its parent's


def new_operation_id() -> int:
    return secrets.randbits(62) + 1


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
    gate: Gate | None = None
    """The rollout's gate: which of its targets may start now (None: all start at once)."""
    gate_wake: float = 0.0  # when the engine is woken for the gate next (0: not armed)
    roll_back_all: str | None = None
    """Aborted with `abort: {rollback: true}`: why. Every target whose Configuration Put
    went out is rolled back, once no reply of it is awaited."""

    @property
    def id(self) -> int:
        return self.summary.id

    @property
    def stopping(self) -> bool:
        return self.summary.stop_requested


@dataclass
class RunningJob:
    """A job loaded by the engine: its state, its frozen steps ready to send, its execution.

    `operations` holds each step's operation, the same for every target, made by `build`
    when first asked for; a step that reads per-device values (a `StepTemplate`) has None
    there, and `operation(target)` makes the target's own from the values frozen with it
    (`engine.core.perdevice`)."""

    state: JobState
    steps: list[StepBase]
    build: OperationFactory
    run: ExecutionRun | None = None
    per_device: PerDevice | None = None
    """Builds the operations of steps that read per-device values (None: no step does)."""
    out: set[str] = field(default_factory=set)
    """Targets whose reply is awaited by this process (also after their execution ended: a
    stopped execution does not wait for every reply, a reply that comes is still recorded)."""
    on_end: list[Callable[[ExecutionSummary], None]] = field(default_factory=list)
    described: set[tuple[int, int]] = field(default_factory=set)  # (execution, step) logged
    verifying: list[bool] = field(default_factory=list)
    """Per step: `verify: true` (its success is followed by read-backs); empty: none does."""
    puts: list[bool] = field(default_factory=list)
    """Per step: a Configuration Put (empty: the job has none)."""
    snapshotting: list[bool] = field(default_factory=list)
    """Per step: a Configuration Put with `rollback: onFailure` (a rollout that rolls back
    when aborted has every put take a snapshot too)."""
    _said: tuple[list[StepBase], list[str]] = field(
        default=([], []), init=False, repr=False, compare=False
    )
    """`subject`'s text of each step, and the list of steps it was made of."""
    _operations: tuple[list[StepBase], list[StepOperation | None]] = field(
        default=([], []), init=False, repr=False, compare=False
    )
    """`operations`, and the list of steps they were made of."""
    _timeouts: tuple[list[StepBase], list[float]] = field(
        default=([], []), init=False, repr=False, compare=False
    )
    """Each step's reply timeout in seconds, and the list of steps they were read from."""
    key: JobKey = field(init=False, repr=False, compare=False)
    """(scope, name): asked for several times a request, so taken once (the record's
    `key` makes a new tuple at every look; a job's scope and name never change)."""
    scope: str = field(init=False, repr=False, compare=False)
    """The job's scope (the Kura account of its devices)."""

    def __post_init__(self) -> None:
        self.key = self.state.key
        self.scope = self.key[0]

    @property
    def operations(self) -> list[StepOperation | None]:
        """The operation of each step, the same for every target (None: the step reads
        per-device values). Made at the first look, not when the job is taken in: a daemon
        holds many jobs, and most send nothing for a while."""
        made = self._operations
        if made[0] is not self.steps:
            made = self._operations = (self.steps, step_operations(self.steps, self.build))
        return made[1]

    def operation(self, target: TargetState) -> StepOperation:
        """The operation of the target's step, with the target's own values in it."""
        made = self._operations  # `operations`, without its call when made already
        found = (made[1] if made[0] is self.steps else self.operations)[target.step_index]
        if found is not None:
            return found
        assert self.per_device is not None, "a step without an operation reads no values"
        client_id, index = target.client_id, target.step_index
        return self.per_device.operation(
            self.steps[index], lambda: self.frozen_values(client_id), client_id, index
        )

    def frozen_values(self, client_id: str) -> dict[str, Any]:
        """The values the steps read for a target, as frozen with it (empty: none)."""
        frozen = self.state.record.frozen
        values = frozen.values if frozen is not None else None
        return values.of(client_id) if values is not None else {}

    def timeout(self, step_index: int) -> float:
        """Seconds the reply to a request of the step is awaited (read once per step)."""
        made = self._timeouts
        if made[0] is not self.steps:
            made = self._timeouts = (self.steps, [s.timeout.total_seconds() for s in self.steps])
        return made[1][step_index]

    @property
    def label(self) -> str:
        return self.state.label

    def subject(self, client_id: str, step_index: int) -> str:
        """`target gw-0007 step 2 'install'`: the subject of a log line."""
        said = self._said
        if said[0] is not self.steps:  # the steps' part is made once (two lines a request)
            said = self._said = (
                self.steps,
                [f" step {i} '{s.name}'" for i, s in enumerate(self.steps)],
            )
        if 0 <= step_index < len(said[1]):
            return "target " + client_id + said[1][step_index]
        return f"target {client_id} step {step_index} '?'"

    def say(self, target: TargetState, text: str, now: float | None = None) -> None:
        """A line about `target` in the log of its execution."""
        said, index = self._said, target.step_index
        if said[0] is self.steps and 0 <= index < len(said[1]):  # `subject`, without a call
            subject = "target " + target.client_id + said[1][index]
        else:
            subject = self.subject(target.client_id, index)
        self.state.log(target.execution or 0).write(subject, text, now)


@dataclass
class DeviceQueue:
    """One operation at a time per device, whatever the job; waiting jobs are served in order.

    A device is busy from the dispatch of a step until that step's outcome (for an
    asynchronous step: until its completion). Targets of other jobs wait in arrival order.
    """

    busy: dict[DeviceKey, JobKey] = field(default_factory=dict)
    waiting: dict[DeviceKey, deque[tuple[JobKey, str]]] = field(default_factory=dict)

    def try_take(self, device: DeviceKey, job: JobKey) -> bool:
        """Take the device for `job`; True also when the job holds it already (the next
        request of a step of several: a snapshot, a read-back)."""
        holder = self.busy.get(device)
        if holder is not None:
            return holder == job
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


@dataclass
class Connection:
    """What the engine knows of its broker connection."""

    connected: bool = True
    draining: bool = False
    """The runner is about to exit: nothing new is sent, replies in flight are taken."""
    listening_since: float = 0.0
    """Since when the runner has heard every lifecycle message (its last (re)connect)."""
    lost_at: float | None = None
    """When the broker connection was last lost (None: never, since the start)."""
    leases_valid_until: float | None = None
    """With several runners: the `time.monotonic()` up to which this runner's leases are
    surely still its own (renewed before). Past it nothing is sent until they are renewed:
    a runner paused or cut off past its lease sends nothing, even before the database
    refuses its writes."""

    @property
    def leases_hold(self) -> bool:
        """The leases are surely still this runner's (always, for a runner alone)."""
        return self.leases_valid_until is None or time.monotonic() < self.leases_valid_until

    @property
    def sending(self) -> bool:
        return self.leases_hold and self.connected and not self.draining


@dataclass
class Runtime:
    """What the engine's parts share: the jobs held, the devices busy, the operations whose
    notifications are awaited, the deadlines, the link and the clock."""

    link: DeviceLink
    devices: Devices
    settings: EngineSettings
    clock: Callable[[], float]
    deadlines: Deadlines
    jobs: dict[JobKey, RunningJob] = field(default_factory=dict)
    device_queue: DeviceQueue = field(default_factory=DeviceQueue)
    operations: dict[int, tuple[JobKey, str]] = field(default_factory=dict)
    """Operation id (`job.id`) of each asynchronous operation awaited -> its target."""
    connection: Connection = field(default_factory=Connection)
    observer: Observer = field(default_factory=Observer)
    """Who hears of requests, anomalies and the events of executions (metrics, notifications)."""
    claims: DeviceClaims | None = None
    """The devices claimed across runners (several runners on one state database)."""

    def gate(self, job: RunningJob, run: ExecutionRun) -> Gate | None:
        """The gate of the execution, when the job is a rollout and the operator did not
        choose the targets (`start --target`)."""
        settings = gate_settings(job.state.record)
        if settings is None or run.summary.chosen:
            return None

        def absent(client_id: str) -> str | None:
            since = self.connection.listening_since
            return self.devices.absence(job.scope, client_id, since)

        return Gate(job.state, run.id, settings, absent)

    def release(self, job: RunningJob, client_id: str) -> None:
        """Free the target's device; the next job waiting for it gets its turn."""
        following = self.device_queue.release((job.scope, client_id), job.key)
        if self.claims is not None and (job.run is None or _done(job, client_id)):
            self.claims.release(job.key, client_id)
        if following is not None:
            other = self.jobs.get(following[0])
            if other is not None and other.run is not None and not other.run.stopping:
                other.run.ready.append(following[1])


def _done(job: RunningJob, client_id: str) -> bool:
    """Nothing more is sent to the target in this execution (its device is free for others)."""
    if client_id not in job.state.targets:
        return True
    return job.state.targets.get(client_id).is_final or (job.run is not None and job.run.stopping)
