"""What the devices say, and what the runner sees for itself, applied to the targets.

Replies, notifications and the deadlines that pass (a reply not in time, a completion not
notified, a settling progress left alone) become outcomes; `progression` decides what each
does to its target, and `Outcomes.apply` carries it out: records the new values, writes the
log line, frees the device, counts the target or queues its next step.
"""

from __future__ import annotations

import logging

from jobrunner.device.operations.base import response_code
from jobrunner.device.payload import KuraPayload
from jobrunner.engine.core import progression
from jobrunner.engine.core.recovery import StatusQueries, proceed_later
from jobrunner.engine.core.rollbacks import Rollbacks, put_went_out
from jobrunner.engine.core.runtime import RunningJob, Runtime
from jobrunner.engine.core.timers import CompletionDue, ProceedDue, SettleDue
from jobrunner.engine.link.events import NotificationArrived, ReplyArrived
from jobrunner.engine.link.ports import (
    Accepted,
    Failed,
    FailureKind,
    Ignored,
    Outcome,
    Succeeded,
    Tag,
)
from jobrunner.state.targets import TargetState, TargetStatus

log = logging.getLogger(__name__)


class Outcomes:
    def __init__(self, runtime: Runtime, queries: StatusQueries, rollbacks: Rollbacks) -> None:
        self.rt = runtime
        self.queries = queries
        self.rollbacks = rollbacks
        self.early: dict[int, list[NotificationArrived]] = {}
        """Notifications that came before the reply that accepted their operation."""

    # -- applying ---------------------------------------------------------------------------

    def apply(self, job: RunningJob, target: TargetState, outcome: Outcome, how: str) -> None:
        """Move a target on according to `outcome`."""
        now = self.rt.clock()
        if job.verifying and outcome.__class__ is Succeeded and target.stage is None:
            outcome = self._verification(job, target, outcome)
        change = progression.progress(target, outcome, job.steps, how, now)
        records = change.records
        table = job.state.targets
        for value in records:
            table.put(value)
        after = records[-1]  # `change.target`
        if (
            after.status is TargetStatus.PROCESS_FAILED
            and target.status is not TargetStatus.PROCESS_FAILED
        ):
            self.rt.observer.target_failed(job.key, after.execution or 0, after)
        if change.line:
            job.say(target, change.line, now)
        # A rollback under way (or started now) holds the target's device until it ends.
        rolling = after.snapshot is not None and (
            after.snapshot.rolling_back or self._roll_back_if_due(job, after, outcome)
        )
        if change.proceed_after is not None:
            self._proceed(job, target, after, change.proceed_after, rolling)
            return
        if change.awaiting_until is not None:  # the reply is in; the device stays busy
            job.out.discard(target.client_id)
            completion = CompletionDue(job.key, target.client_id, change.awaiting_until)
            self.rt.deadlines.add(change.awaiting_until, completion)
        if change.settle_at is not None:
            due = SettleDue(job.key, target.client_id, after.phase, change.settled)
            self.rt.deadlines.add(change.settle_at, due)
        if change.step_over:
            self._step_over(job, target, after, rolling)

    def _verification(self, job: RunningJob, target: TargetState, done: Succeeded) -> Outcome:
        """A step with `verify: true` succeeded: its read-back goes next."""
        if not job.verifying[target.step_index]:
            return done
        checks = job.operation(target).checks
        proceed = None if checks is None else checks.verification(done.summary)
        return done if proceed is None else proceed

    def _roll_back_if_due(self, job: RunningJob, target: TargetState, outcome: Outcome) -> bool:
        """A target with a snapshot moved: when it failed at or after a step that rolls back
        on failure, or its execution was aborted with a rollback, its device is rolled back
        (once no request of it is out). Whether a rollback started."""
        snapshot = target.snapshot
        assert snapshot is not None
        if snapshot.rollback is not None or target.request_id is not None:
            return False
        failed = target.status is TargetStatus.PROCESS_FAILED
        if failed and job.snapshotting[snapshot.step]:
            sent = not (
                target.step_index == snapshot.step
                and isinstance(outcome, Failed)
                and outcome.kind in (FailureKind.NOT_SENT, FailureKind.UNSUPPORTED)
            )
            if sent:
                self.rollbacks.due(job, target, f"step {target.step_index} failed")
            return sent
        run = job.run
        if run is not None and run.roll_back_all is not None and put_went_out(target):
            self.rollbacks.due(job, target, f"the execution was aborted ({run.roll_back_all})")
            return True
        return False

    def _proceed(
        self,
        job: RunningJob,
        before: TargetState,
        after: TargetState,
        seconds: float,
        rolling: bool,
    ) -> None:
        """The next request of the target's step goes `seconds` from now; its device stays
        the target's meanwhile (`rolling`: its rollback holds it)."""
        job.out.discard(after.client_id)
        self._untrack(job, before, after)
        run = job.run
        if run is None or after.client_id not in run.covered or run.stopping:
            if not rolling:
                self.rt.release(job, after.client_id)  # the next execution takes it up
            return
        if seconds <= 0:
            run.ready.append(after.client_id)
        else:
            proceed_later(self.rt, job, after.client_id, after.stage, self.rt.clock() + seconds)

    def on_proceed_due(self, due: ProceedDue) -> None:
        job = self.rt.jobs.get(due.job)
        if job is None or due.client_id not in job.state.targets:
            return
        target = job.state.targets.get(due.client_id)
        run = job.run
        if (
            target.status is TargetStatus.PROCESS_AWAITING
            and target.stage == due.stage
            and target.request_id is None
            and run is not None
            and due.client_id in run.covered
            and not run.stopping
        ):
            run.ready.append(due.client_id)
        elif target.request_id is None and not target.being_rolled_back:
            self.rt.release(job, due.client_id)

    def _untrack(self, job: RunningJob, before: TargetState, after: TargetState) -> None:
        if before.operation_id is not None:
            self.rt.operations.pop(before.operation_id, None)
            self.queries.forget(job, after.client_id)
            tag = Tag(job.key, after.client_id, before.step_index, before.request_id or "")
            self.rt.link.untrack(tag, before.operation_id)

    def _step_over(
        self, job: RunningJob, before: TargetState, after: TargetState, rolling: bool
    ) -> None:
        """A step ended for a target: free its device (unless its rollback holds it:
        `rolling`), count it, queue its next step."""
        job.out.discard(after.client_id)
        if before.operation_id is not None:
            self._untrack(job, before, after)
        if not rolling:
            self.rt.release(job, after.client_id)  # else its rollback frees it
        run = job.run
        if run is None or after.client_id not in run.covered:
            return
        run.cancelling.discard(after.client_id)
        if after.is_final:
            run.open -= 1
            if run.gate is not None:
                run.gate.outcome(after)
        elif not run.stopping:
            run.ready.append(after.client_id)

    # -- replies ----------------------------------------------------------------------------

    def on_reply(self, event: ReplyArrived) -> None:
        tag = event.tag
        job = self.rt.jobs.get(tag.job)
        if job is None or tag.client_id not in job.state.targets:
            return
        target = job.state.targets.get(tag.client_id)
        if tag.purpose == "status":
            self.on_status_answer(job, target, tag, event.payload)
        elif tag.purpose == "rollback":
            self.rollbacks.on_reply(job, tag, event.payload)
        elif tag.purpose == "cancel":
            self.on_cancel_answer(job, target, event.payload)
        elif target.request_id != tag.request_id:
            job.say(target, "anomaly: reply to a request that is no longer awaited; ignored")
        elif target.stage is not None:
            checks = job.operation(target).checks
            assert checks is not None, "only a step with checks has stages"
            self.apply(job, target, checks.on_reply(target.stage, event.payload), "replied")
        else:
            outcome = job.operation(target).on_reply(event.payload, target.operation_id)
            self.apply(job, target, outcome, "replied")
            if isinstance(outcome, Accepted) and target.operation_id in self.early:
                for early in self.early.pop(target.operation_id):
                    self.on_notification(early)

    def on_reply_due(self, tag: Tag) -> None:
        """A request's time ran out. Only if the link still awaited it: when it did not, its
        reply is in the inbox and is taken next turn."""
        if not self.rt.link.expire(tag):
            return
        job = self.rt.jobs.get(tag.job)
        if job is None or tag.client_id not in job.state.targets:
            return
        target = job.state.targets.get(tag.client_id)
        if tag.purpose == "status":
            self.on_status_answer(job, target, tag, None)
            return
        if tag.purpose == "cancel":
            self.on_cancel_answer(job, target, None)
            return
        if tag.purpose == "rollback":
            self.rollbacks.on_reply(job, tag, None)
            return
        if target.request_id != tag.request_id:
            return
        earlier = target.phase in (progression.RESTARTED, progression.UNANSWERED)
        if earlier and target.stage is not None:
            # A snapshot or a read-back changes no configuration: asked again, not guessed.
            self._send_again(
                job,
                target,
                f"no reply by its deadline to the {target.stage.partition(':')[0]} request sent"
                " before the restart; it changes no configuration, so it is sent again",
            )
            return
        if earlier and target.operation_id is not None:
            # An asynchronous request recorded before a restart, its reply lost: the device
            # may have accepted it. Ask the device rather than guess.
            self.apply(job, target, Accepted(None), "restarted")
            self.queries.ask(job, target.client_id)
            return
        if target.phase == progression.UNANSWERED:
            self._send_again(job, target)
            return
        lost = self.rt.connection.lost_at
        failure = progression.no_reply(
            target,
            job.steps[target.step_index],
            job.operation(target).app_id,
            connection_lost=lost is not None
            and target.updated is not None
            and lost >= target.updated,
            device=self.rt.devices.record(job.scope, target.client_id),
        )
        self.apply(job, target, failure, "timeout")

    def _send_again(
        self,
        job: RunningJob,
        target: TargetState,
        why: str = "no reply by its deadline to the earlier execution's request; the step is"
        " sent again",
    ) -> None:
        """An ended execution's request, unanswered by its deadline: the new execution sends
        the step again (the operator who started it asked for the step to be done)."""
        now = self.rt.clock()
        job.state.targets.put(target.unanswered(now))
        job.say(target, why, now)
        job.out.discard(target.client_id)
        self.rt.release(job, target.client_id)
        run = job.run
        if run is not None and target.client_id in run.covered and not run.stopping:
            run.ready.append(target.client_id)

    # -- notifications ----------------------------------------------------------------------

    def on_notification(self, event: NotificationArrived) -> None:
        found = self.rt.operations.get(event.operation_id or -1)
        job = self.rt.jobs.get(found[0]) if found else None
        if found is None or job is None:
            log.warning(
                "anomaly: notification for an operation the runner did not start (%s/%s from"
                " %s, job.id %s); ignored",
                event.app_id,
                "/".join(event.resources),
                event.client_id,
                event.operation_id,
                extra={"scope": event.account, "clientId": event.client_id},
            )
            return
        target = job.state.targets.get(found[1])
        resources = "/".join(event.resources) or "-"
        if (event.account, event.client_id) != (job.scope, target.client_id):
            job.say(
                target,
                f"anomaly: notification for this target's operation from"
                f" {event.account}/{event.client_id}; ignored",
            )
            return
        if target.status is TargetStatus.PROCESS_AWAITING and target.request_id:
            self.early.setdefault(event.operation_id or -1, []).append(event)
            return
        if target.status is not TargetStatus.AWAITING_COMPLETION:
            job.say(
                target,
                f"notification {resources} after the operation ended ({target.status.value});"
                " ignored",
            )
            return
        assert target.operation_id is not None
        outcome = job.operation(target).on_notification(
            target.operation_id, target.phase, event.resources, event.payload
        )
        if isinstance(outcome, Ignored):
            job.say(target, f"notification {resources}: {outcome.reason}; ignored")
            return
        self.apply(job, target, outcome, "notified")

    def on_completion_due(self, due: CompletionDue) -> None:
        job = self.rt.jobs.get(due.job)
        if job is None:
            return
        target = job.state.targets.get(due.client_id)
        if target.status is not TargetStatus.AWAITING_COMPLETION or target.deadline is None:
            return
        if target.deadline != due.deadline:
            return  # re-armed for another deadline: its own entry comes then
        failure = progression.no_completion(target, job.steps[target.step_index])
        self.apply(job, target, failure, "completion")

    def on_settle_due(self, due: SettleDue) -> None:
        job = self.rt.jobs.get(due.job)
        if job is None:
            return
        target = job.state.targets.get(due.client_id)
        if target.status is TargetStatus.AWAITING_COMPLETION and target.phase == due.phase:
            self.apply(job, target, Succeeded(due.summary), "settled")

    # -- status queries and cancels ---------------------------------------------------------

    def on_status_answer(
        self, job: RunningJob, target: TargetState, tag: Tag, payload: KuraPayload | None
    ) -> None:
        outcome = self.queries.answer(job, target, tag, payload)
        if outcome is not None:
            self.apply(job, target, outcome, "status query")

    def on_cancel_answer(
        self, job: RunningJob, target: TargetState, payload: KuraPayload | None
    ) -> None:
        code = None if payload is None else response_code(payload)
        if code == 200:
            text = "the device accepted the cancel; its notification is awaited"
        else:
            text = "no reply to the cancel" if payload is None else f"cancel refused ({code})"
            if job.run is not None:
                job.run.cancelling.discard(target.client_id)
        job.say(target, text)
