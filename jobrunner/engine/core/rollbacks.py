"""Rolling a target's device back to the configuration snapshot taken for it (DESIGN §11).

A rollback is asked for when a target fails at a guarded Configuration Put (`rollback:
onFailure`) or at a later step, and for every target whose put went out when its rollout is
aborted with `abort: {rollback: true}`. It is recorded with the target (`due`) before
anything is sent, then takes three requests, in the in-flight window beside the steps':

1. `GET snapshots/{id}`: the device still keeps the snapshot (Kura keeps 10; one that is
   gone is said so, and nothing is rolled back), and what it holds of each property the
   job's puts wrote;
2. `EXEC rollback/{id}`, recorded `sent` first and never sent twice: Kura answers 200 before
   it rolls back, and only logs a rollback that fails;
3. after Kura's apply delay, `GET configurations/{pid}` of each pid written: the device
   holds the snapshot's values again, or the rollback failed, naming what differs.

A runner that restarts takes a rollback up where it was recorded: `due` from the start, `sent`
at the read-back (having read the snapshot again). The target's device stays the target's
until its rollback ends, and the execution does not end before.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from jobrunner.device.model import FailureKind, Request
from jobrunner.device.operations import snapshots
from jobrunner.device.operations.base import device_reason, response_code
from jobrunner.device.payload import KuraPayload
from jobrunner.engine.core.runtime import RunningJob, Runtime, new_request_id
from jobrunner.engine.core.timers import ReplyDue, RollbackDue
from jobrunner.engine.link.ports import Tag
from jobrunner.errors import NotSentError
from jobrunner.state.layout import JobKey
from jobrunner.state.targets import RollbackState, TargetState, TargetStatus

Key = tuple[JobKey, str]
KEPT = 10
"""Kura's `kura.snapshots.count` default, named when a snapshot is gone."""


@dataclass
class _Rollback:
    """One rollback under way (in memory: a restart takes it up from what was recorded)."""

    app_id: str
    written: dict[str, set[str]]
    """pid -> the names of the properties the job's puts wrote since the snapshot."""
    stage: str = "read"  # read, exec, wait, check
    wanted: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = field(default_factory=dict)
    checked: int = 0  # pids read back
    differences: list[str] = field(default_factory=list)
    out: str | None = None  # the request id awaited


Outgoing = tuple[RunningJob, TargetState, Tag, Request]


def put_went_out(target: TargetState) -> bool:
    """Whether the Configuration Put its snapshot guards may have reached the device."""
    snapshot = target.snapshot
    if snapshot is None:
        return False
    if target.step_index > snapshot.step or target.is_final:
        return True
    return target.request_id is not None or (target.stage or "").startswith("verify")


def roll_back_all(rollbacks: Rollbacks, job: RunningJob, why: str) -> None:
    """An execution aborted with a rollback: every target whose put went out and whose reply
    is not awaited is rolled back now (the others once their reply is in)."""
    run = job.run
    assert run is not None
    run.roll_back_all = why
    for client_id in sorted(run.covered):
        target = job.state.targets.get(client_id)
        if (
            target.snapshot is not None
            and target.snapshot.rollback is None
            and target.request_id is None
            and client_id not in job.out
            and put_went_out(target)
        ):
            rollbacks.due(job, target, f"the execution was aborted ({why})")


class Rollbacks:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.under_way: dict[Key, _Rollback] = {}
        self.waiting: deque[Key] = deque()  # with a request to send
        self.parked: list[Key] = []  # waiting for their device (another job's step on it)
        self.outgoing: list[Outgoing] = []  # recorded this turn, published after the write

    # -- asking ------------------------------------------------------------------------------

    def due(self, job: RunningJob, target: TargetState, why: str) -> TargetState:
        """Record that the target's device is to be rolled back (`why`, for the log), and
        start it; the value recorded."""
        now = self.rt.clock()
        assert target.snapshot is not None
        recorded = target.rolling_back(RollbackState.DUE, now)
        job.state.targets.put(recorded)
        job.say(recorded, f"{why}: rolling back to snapshot {target.snapshot.id}", now)
        self.take_up(job, recorded)
        return recorded

    def take_up(self, job: RunningJob, target: TargetState) -> None:
        """Go on with a rollback recorded `due` or `sent` (this process's, or a previous's)."""
        key = (job.key, target.client_id)
        snapshot = target.snapshot
        if key in self.under_way or snapshot is None or not snapshot.rolling_back:
            return
        written: dict[str, set[str]] = {}
        app_id = "CONF-V1"
        for index in range(snapshot.step, min(target.step_index, len(job.steps) - 1) + 1):
            operation = job.operation(TargetState(target.client_id, index))
            checks = operation.checks
            if checks is None:
                continue
            if index == snapshot.step:
                app_id = operation.app_id
            for pid, properties in checks.written().items():
                written.setdefault(pid, set()).update(properties)
        self.under_way[key] = _Rollback(app_id, written)
        if self._take_device(job, target.client_id):
            self.waiting.append(key)
        else:  # one operation at a time per device: it goes once the other job's is over
            self.parked.append(key)

    def _take_device(self, job: RunningJob, client_id: str) -> bool:
        """Take the target's device for its rollback (across runners too); False while
        another job has it (a target that ended before its rollout was aborted gave its
        device up)."""
        claims = self.rt.claims
        if claims is not None and not claims.holds(job.key, client_id):
            claims.want(job.key, client_id)  # held once granted: tried again next turn
            return False
        return self.rt.device_queue.try_take((job.scope, client_id), job.key)

    def _unpark(self) -> None:
        """The parked rollbacks whose device is free now go on."""
        parked, self.parked = self.parked, []
        for key in parked:
            job = self.rt.jobs.get(key[0])
            if job is None or key not in self.under_way:
                continue
            if self._take_device(job, key[1]):
                self.waiting.append(key)
            else:
                self.parked.append(key)

    def busy(self, job: JobKey) -> bool:
        """Whether a rollback of the job's is under way (its execution waits for it)."""
        return any(key[0] == job for key in self.under_way)

    def forget(self, job: JobKey) -> None:
        """The job was let go: its rollbacks are another runner's to take up."""
        for key in [k for k in self.under_way if k[0] == job]:
            del self.under_way[key]
        self.waiting = deque(k for k in self.waiting if k[0] != job)
        self.parked = [k for k in self.parked if k[0] != job]

    # -- sending -----------------------------------------------------------------------------

    def collect(self, capacity: int) -> int:
        """Record the next request of each rollback waiting, within `capacity`; they are
        published after the state is written (`publish`). How many that took."""
        if self.parked:
            self._unpark()
        used = 0
        while self.waiting and used < capacity:
            key = self.waiting.popleft()
            rollback = self.under_way.get(key)
            job = self.rt.jobs.get(key[0])
            if rollback is None or job is None:
                self.under_way.pop(key, None)
                continue
            target = job.state.targets.get(key[1])
            assert target.snapshot is not None
            snapshot_id = target.snapshot.id
            if rollback.stage == "read":
                request = snapshots.read(rollback.app_id, snapshot_id)
            elif rollback.stage == "exec":
                target = target.rolling_back(RollbackState.SENT, self.rt.clock())
                job.state.targets.put(target)  # before it leaves: never sent twice
                request = snapshots.roll_back(rollback.app_id, snapshot_id)
            else:
                pid = sorted(rollback.wanted)[rollback.checked]
                request = snapshots.read_configuration(rollback.app_id, pid)
            tag = Tag(key[0], key[1], target.step_index, new_request_id(), "rollback")
            rollback.out = tag.request_id
            self.outgoing.append((job, target, tag, request))
            used += 1
        return used

    def publish(self) -> None:
        """Publish what `collect` recorded, and await each reply."""
        outgoing, self.outgoing = self.outgoing, []
        for job, target, tag, request in outgoing:
            if self.rt.jobs.get(job.key) is not job:
                continue  # let go meanwhile
            try:
                self.rt.link.send(tag, request)
            except NotSentError:
                self.waiting.append((job.key, target.client_id))  # tried again next turn
                continue
            self.rt.deadlines.add(
                self.rt.clock() + self.rt.settings.query_timeout, ReplyDue(tag), key=tag.request_id
            )
            job.say(target, f"sent {request.name} (rollback)")

    def put_back(self) -> None:
        """What `collect` recorded could not be written: nothing leaves, all is tried again."""
        for job, target, _, _ in self.outgoing:
            self.waiting.append((job.key, target.client_id))
        self.outgoing = []

    # -- what the device says ----------------------------------------------------------------

    def on_reply(self, job: RunningJob, tag: Tag, payload: KuraPayload | None) -> None:
        """A rollback request's reply (None: none came in time)."""
        key = (job.key, tag.client_id)
        rollback = self.under_way.get(key)
        if rollback is None or rollback.out != tag.request_id:
            return
        rollback.out = None
        target = job.state.targets.get(tag.client_id)
        assert target.snapshot is not None
        if rollback.stage == "read":
            self._on_read(job, key, rollback, target, payload)
        elif rollback.stage == "exec":
            code = None if payload is None else response_code(payload)
            if payload is not None and code != 200:
                reason = f"device replied {code}: {device_reason(payload)}"
                self._end(job, key, RollbackState.FAILED, f"the rollback was refused ({reason})")
                return
            # Without a reply it may have run all the same: what the device holds tells.
            self._wait(job, key, rollback, self.rt.settings.apply_seconds)
        else:
            self._on_check(job, key, rollback, target.snapshot.id, payload)

    def _on_read(
        self,
        job: RunningJob,
        key: Key,
        rollback: _Rollback,
        target: TargetState,
        payload: KuraPayload | None,
    ) -> None:
        """`GET snapshots/{id}`: the snapshot is kept (and holds these values), or gone."""
        assert target.snapshot is not None
        snapshot_id = target.snapshot.id
        found = None if payload is None else snapshots.read_snapshot(payload)
        if found is None:
            self._end(job, key, RollbackState.FAILED, f"no reply to GET snapshots/{snapshot_id}")
        elif found == snapshots.GONE:
            self._end(
                job,
                key,
                RollbackState.GONE,
                f"snapshot {snapshot_id} is gone (the device keeps its newest"
                f" kura.snapshots.count, {KEPT} by default): not rolled back",
            )
        elif isinstance(found, str):
            self._end(job, key, RollbackState.FAILED, f"GET snapshots/{snapshot_id}: {found}")
        else:
            rollback.wanted = snapshots.held_values(found, rollback.written)
            if target.snapshot.rollback is RollbackState.SENT:
                # Sent before a restart: read back once Kura's apply delay after it is over.
                # When its reply came is lost with the process; when it left is recorded.
                sent = target.updated if target.updated is not None else self.rt.clock()
                apply = self.rt.settings.apply_seconds
                self._wait(job, key, rollback, max(0.0, sent + apply - self.rt.clock()))
            else:
                rollback.stage = "exec"
                self.waiting.append(key)

    def _on_check(
        self,
        job: RunningJob,
        key: Key,
        rollback: _Rollback,
        snapshot_id: int,
        payload: KuraPayload | None,
    ) -> None:
        """`GET configurations/{pid}` after the rollback: the snapshot's values again?"""
        pid = sorted(rollback.wanted)[rollback.checked]
        if payload is None:
            rollback.differences.append(f"{pid}: no reply to GET configurations/{pid}")
        else:
            different = snapshots.differences(pid, rollback.wanted, payload)
            rollback.differences.extend([different] if isinstance(different, str) else different)
        rollback.checked += 1
        if rollback.checked < len(rollback.wanted):
            self.waiting.append(key)
        elif rollback.differences:
            self._end(
                job,
                key,
                RollbackState.FAILED,
                f"the rollback to snapshot {snapshot_id} did not restore"
                f" {'; '.join(rollback.differences)}",
            )
        else:
            compared = ", ".join(sorted(rollback.wanted))
            self._end(
                job,
                key,
                RollbackState.DONE,
                f"rolled back to snapshot {snapshot_id} ({compared} read back as the snapshot"
                " holds them)",
            )

    def on_due(self, due: RollbackDue) -> None:
        """Kura's apply delay after the rollback is over: read back what it restored."""
        key = (due.job, due.client_id)
        rollback = self.under_way.get(key)
        job = self.rt.jobs.get(due.job)
        if rollback is None or job is None or rollback.stage != "wait":
            return
        if not rollback.wanted:
            snapshot = job.state.targets.get(due.client_id).snapshot
            assert snapshot is not None
            self._end(
                job,
                key,
                RollbackState.DONE,
                f"rolled back to snapshot {snapshot.id} (nothing the steps wrote could be read"
                " back: the snapshot does not hold it, or it is a password)",
            )
            return
        rollback.stage = "check"
        self.waiting.append(key)

    def _wait(self, job: RunningJob, key: Key, rollback: _Rollback, seconds: float) -> None:
        rollback.stage = "wait"
        self.rt.deadlines.add(self.rt.clock() + seconds, RollbackDue(job.key, key[1]))

    def _end(self, job: RunningJob, key: Key, how: RollbackState, text: str) -> None:
        """The rollback ended (`how`): the target says so, its device is free."""
        del self.under_way[key]
        now = self.rt.clock()
        target = job.state.targets.get(key[1])
        was_ok = target.status is not TargetStatus.PROCESS_FAILED
        if was_ok and how is not RollbackState.DONE:
            # Its change stands: it stays what it was, saying the rollback did not happen.
            message = f"{target.message or 'PROCESS_OK'}; {text}"
            ended = target.rolled_back(how, message, now, target.failure, target.status)
        elif was_ok:
            ended = target.rolled_back(how, f"{text}: the rollout was aborted", now,
                                       FailureKind.ROLLED_BACK.value)  # fmt: skip
        else:
            ended = target.rolled_back(how, f"{target.message}; {text}", now, target.failure)
        job.state.targets.put(ended)
        job.say(ended, text, now)
        self.rt.release(job, key[1])
        self.rt.observer.rollback_ended(job.key, key[1], how.value)
