"""Dispatch: which targets get a request this turn, recorded before anything is published.

At most `max_in_flight` requests are out at once, across all executions (status queries
first, then one target per execution in turn), and one operation at a time per device,
whatever the job: a target whose device is busy waits for it. A request is recorded with its
id (and fsync'ed) before it is published, so that a restarted runner never sends it twice;
the log says "sent" only of what left.
"""

from __future__ import annotations

from jobrunner.engine.core import progression
from jobrunner.engine.core.devices import away
from jobrunner.engine.core.outcomes import Outcomes
from jobrunner.engine.core.recovery import StatusQueries
from jobrunner.engine.core.rollbacks import Rollbacks
from jobrunner.engine.core.runtime import (
    RunningJob,
    Runtime,
    new_operation_id,
    new_request_id,
)
from jobrunner.engine.core.timers import ReplyDue, RetryPublish
from jobrunner.engine.link.checks import SNAPSHOT
from jobrunner.engine.link.ports import FailureKind, StepOperation, Tag
from jobrunner.errors import NotSentError, OperationError, SecretError
from jobrunner.state.targets import TargetState, TargetStatus

Outgoing = tuple[RunningJob, TargetState, StepOperation, str]
"""A target whose request is recorded, to publish: with its step's operation, and what the
log says once it left."""


class Dispatcher:
    def __init__(
        self, runtime: Runtime, outcomes: Outcomes, queries: StatusQueries, rollbacks: Rollbacks
    ) -> None:
        self.rt = runtime
        self.outcomes = outcomes
        self.queries = queries
        self.rollbacks = rollbacks

    def has_ready(self) -> bool:
        """Whether a request could go out now (the loop then does not wait for events)."""
        if not self.rt.connection.sending:
            return False
        if self.rt.link.in_flight() >= self.rt.settings.max_in_flight:
            return False
        if self.queries.waiting or self.rollbacks.waiting:
            return True
        return any(j.run and j.run.ready and not j.run.stopping for j in self.rt.jobs.values())

    def collect(self) -> list[Outgoing]:
        """Record a request for each ready target the window allows (status queries are sent
        first, at once); the requests are published after the state is written."""
        if not self.rt.connection.sending:
            return []
        self._take_granted()
        capacity = self.rt.settings.max_in_flight - self.rt.link.in_flight()
        capacity -= self.queries.send(capacity)
        capacity -= self.rollbacks.collect(capacity)
        outgoing: list[Outgoing] = []
        self._round_robin(outgoing, capacity)
        if self.rt.claims is not None and self._take_granted():
            # The devices asked for in this turn's pass: their first requests go out now.
            self._round_robin(outgoing, capacity - len(outgoing))
        return outgoing

    def _round_robin(self, outgoing: list[Outgoing], capacity: int) -> None:
        runs = [j for j in self.rt.jobs.values() if j.run and j.run.ready and not j.run.stopping]
        while capacity > 0 and runs:
            for job in list(runs):  # round robin: one target per execution per turn
                run = job.run
                assert run is not None
                if not run.ready or run.stopping:
                    runs.remove(job)
                    continue
                recorded = self._record(job, run.ready.popleft())
                if recorded is not None:
                    outgoing.append(recorded)
                    capacity -= 1
                    if capacity == 0:
                        break

    def _take_granted(self) -> bool:
        """The targets whose job now has their device (asked for across runners): ready
        again. True when any is."""
        if self.rt.claims is None:
            return False
        granted = False
        for key, client_id in self.rt.claims.granted():
            job = self.rt.jobs.get(key)
            if job is not None and job.run is not None and not job.run.stopping:
                job.run.ready.append(client_id)
                granted = True
        return granted

    def _record(self, job: RunningJob, client_id: str) -> Outgoing | None:
        """The target with its request recorded, and what the log says once it is sent."""
        target = job.state.targets.get(client_id)
        if target.status is not TargetStatus.PROCESS_AWAITING:  # a final one is not either
            return None
        now = self.rt.clock()
        operation = job.operation(target)
        record = self.rt.devices.record(job.scope, client_id)  # looked up once for both
        absent = away(record, self.rt.connection.listening_since)
        if absent is not None:
            self.outcomes.apply(job, target, progression.not_sent(f"{absent}; not sent"), "failed")
            return None
        apps = None if record is None else record.application_ids
        unsupported = operation.unsupported_reason(apps) if apps is not None else None
        if unsupported is not None:
            kind = FailureKind.NOT_SENT if unsupported.startswith("not sent") else None
            failure = progression.not_sent(unsupported, kind or FailureKind.UNSUPPORTED)
            self.outcomes.apply(job, target, failure, "failed")
            return None
        claims = self.rt.claims
        if claims is not None and not claims.holds(job.key, client_id):
            claims.want(job.key, client_id)  # ready again once granted (`_take_granted`)
            return None
        if not self.rt.device_queue.try_take((job.scope, client_id), job.key):
            self.rt.device_queue.park((job.scope, client_id), job.key, client_id)
            return None
        stage = target.stage
        if stage is None and job.puts and self._takes_snapshot(job, target):
            stage = SNAPSHOT
            target = target.proceeded(stage, None, now, None)
        operation_id = new_operation_id() if operation.asynchronous and stage is None else None
        sent = target.dispatched(
            new_request_id(), now + job.timeout(target.step_index), now, operation_id
        )
        job.state.targets.put(sent)
        job.out.add(client_id)
        if operation_id is not None:
            self.rt.operations[operation_id] = (job.key, client_id)
        described = (sent.execution or 0, sent.step_index)
        if stage is not None:
            checks = operation.checks
            assert checks is not None, "only a step with checks has stages"
            text = checks.request(stage).name + f" ({stage.partition(':')[0]})"
        elif described in job.described:
            text = operation.name() + (f" (job.id {operation_id})" if operation_id else "")
        else:  # the whole request once per step and execution: the log stays small
            job.described.add(described)
            text = operation.describe(operation_id)
        return job, sent, operation, text

    def publish(self, outgoing: list[Outgoing]) -> None:
        """Publish what was recorded, and await each reply until its deadline. The turn's
        requests leave together (`DeviceLink.sending`)."""
        if not outgoing:
            return
        with self.rt.link.sending():
            self._publish(outgoing)

    def _publish(self, outgoing: list[Outgoing]) -> None:
        for job, target, operation, text in outgoing:
            assert target.request_id is not None and target.deadline is not None
            tag = Tag(job.key, target.client_id, target.step_index, target.request_id)
            try:
                if target.stage is None:
                    request = operation.request(target.operation_id)
                else:
                    checks = operation.checks
                    assert checks is not None, "only a step with checks has stages"
                    request = checks.request(target.stage)
            except (SecretError, OperationError) as error:
                failure = progression.not_sent(operation.redact(f"not sent: {error}"))
                self.outcomes.apply(job, target, failure, "not sent")
                continue
            try:
                self.rt.link.send(tag, request)  # an asynchronous one is tracked from now on
            except NotSentError:
                self.unsend(job, target, "the broker connection is down")
                continue
            # Keyed: taken out when the reply comes (`Loop._handle`).
            self.rt.deadlines.add(target.deadline, ReplyDue(tag), key=tag.request_id)
            job.say(target, f"sent {text}")

    def unsend(self, job: RunningJob, target: TargetState, why: str) -> None:
        """A request that did not leave (the broker connection, or the state directory, was
        unavailable): record that it was not sent, and queue the target again."""
        now = self.rt.clock()
        back = TargetState(
            target.client_id,
            target.step_index,
            TargetStatus.PROCESS_AWAITING,
            f"not sent: {why}; will retry",
            target.execution,
            updated=now,
            attempts=target.attempts,
            started_in=target.started_in,
            stage=target.stage,
            snapshot=target.snapshot,
        )
        job.state.targets.put(back)
        if target.operation_id is not None:
            self.rt.operations.pop(target.operation_id, None)
        self.rt.release(job, target.client_id)
        job.out.discard(target.client_id)
        if job.run is not None:
            job.run.ready.append(target.client_id)
        if why.startswith("the broker"):
            # The link's own connection events say when it is back; until then (or a second
            # later, whichever first) nothing more is tried.
            self.rt.connection.connected = False
            self.rt.deadlines.add(now + self.rt.settings.reconnect_retry, RetryPublish())

    def _takes_snapshot(self, job: RunningJob, target: TargetState) -> bool:
        """Whether the target's step is a Configuration Put that takes a snapshot before its
        put (none was taken in this round): it says `rollback: onFailure`, or its rollout
        rolls back when aborted."""
        step_index = target.step_index
        if target.snapshot is not None or not job.puts[step_index]:
            return False
        if job.snapshotting[step_index]:
            return True
        run = job.run
        if run is None or run.gate is None:
            return False
        abort = run.gate.settings.abort
        return abort is not None and abort.rollback

    def cancel(self, job: RunningJob, client_id: str) -> bool:
        """Ask the device to cancel the target's operation where it stands (a download in
        progress); False when there is nothing that can be cancelled, or it was not sent."""
        if client_id not in job.state.targets:
            return False
        target = job.state.targets.get(client_id)
        if target.status is not TargetStatus.AWAITING_COMPLETION or target.operation_id is None:
            return False
        operation = job.operation(target)
        request = operation.cancel_request(target.operation_id, target.phase)
        if request is None:
            return False
        tag = Tag(job.key, client_id, target.step_index, new_request_id(), "cancel")
        try:
            self.rt.link.send(tag, request)
        except NotSentError as error:
            job.say(target, f"cancel not sent ({request.name}): {error}")
            return False
        self.rt.deadlines.add(self.rt.clock() + self.rt.settings.query_timeout, ReplyDue(tag))
        job.say(target, f"sent {request.name} (cancel)")
        return True
