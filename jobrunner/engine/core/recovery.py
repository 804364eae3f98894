"""Taking up what a previous process left, and asking devices where they stand.

A restarted runner resumes every RUNNING execution it finds on disk: a request whose reply was
never recorded is re-armed until its deadline (its reply still counts), never sent again; an
asynchronous operation goes on being awaited, and the device is asked where it stands, since
the notifications it published while the runner was away are lost (Kura sends them at QoS 0).
The same questions are asked when a device that was running an operation for us reconnects.
"""

from __future__ import annotations

from collections import deque

from jobrunner.device.payload import KuraPayload
from jobrunner.engine.core.progression import RESTARTED, UNANSWERED
from jobrunner.engine.core.runtime import ExecutionRun, RunningJob, Runtime, new_request_id
from jobrunner.engine.core.timers import CompletionDue, ProceedDue, ReplyDue
from jobrunner.engine.link.checks import verify_stage
from jobrunner.engine.link.ports import Accepted, Outcome, Tag
from jobrunner.errors import NotSentError
from jobrunner.state.layout import JobKey
from jobrunner.state.targets import TargetState, TargetStatus

_NO_REPLY = KuraPayload()  # marks a status query that got no reply


class StatusQueries:
    """The status queries of asynchronous operations: asked, sent as the window allows, and
    their replies collected until all of a target's are in."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.waiting: deque[tuple[JobKey, str]] = deque()  # asked, not sent yet
        self.replies: dict[tuple[JobKey, str], dict[str, KuraPayload | None]] = {}
        self.unsent: dict[tuple[JobKey, str], list[str]] = {}
        """The queries of a target not sent yet, when its window could not hold them all."""

    def ask(self, job: RunningJob, client_id: str) -> None:
        """Ask a device where its asynchronous operation stands; the queries wait for room in
        the in-flight window like any request."""
        if (job.key, client_id) not in self.replies:
            self.replies[(job.key, client_id)] = {}
            self.waiting.append((job.key, client_id))

    def forget(self, job: RunningJob, client_id: str) -> None:
        self.replies.pop((job.key, client_id), None)
        self.unsent.pop((job.key, client_id), None)

    def send(self, capacity: int) -> int:
        """Send the queries asked, within `capacity`; how many requests that took."""
        used = 0
        while self.waiting and used < capacity:
            key, client_id = self.waiting[0]
            job = self.rt.jobs.get(key)
            target = job.state.targets.get(client_id) if job else None
            if (
                job is None
                or target is None
                or target.operation_id is None
                or target.status is not TargetStatus.AWAITING_COMPLETION
            ):
                self.waiting.popleft()
                self.replies.pop((key, client_id), None)
                self.unsent.pop((key, client_id), None)
                continue
            requests = job.operation(target).status_requests(target.operation_id, target.phase)
            unsent = self.unsent.pop((key, client_id), None)
            todo = list(requests) if unsent is None else unsent
            room = capacity - used
            if len(todo) > room and room < self.rt.settings.max_in_flight:
                if unsent is not None:
                    self.unsent[(key, client_id)] = unsent
                break  # all of a target's queries go out together, when there is room
            self.waiting.popleft()
            if unsent is None:
                self.replies[(key, client_id)] = dict.fromkeys(requests)
            answers = self.replies[(key, client_id)]
            # A window smaller than a target's queries (--max-in-flight 1 or 2): as many as
            # it holds now, the others as soon as there is room again.
            now, later = todo[:room], todo[room:]
            due = self.rt.clock() + self.rt.settings.query_timeout
            for name in now:
                tag = Tag(key, client_id, target.step_index, new_request_id(), "status", name)
                try:
                    if name not in requests:  # the phase moved on meanwhile: not asked
                        raise NotSentError(name)
                    self.rt.link.send(tag, requests[name])
                except NotSentError:
                    answers[name] = _NO_REPLY
                    continue
                self.rt.deadlines.add(due, ReplyDue(tag))
                used += 1
            if unsent is None:
                job.say(
                    target,
                    f"asked the device where the operation stands ({', '.join(requests)}):"
                    " notifications sent while the runner was away are lost",
                )
            if later:
                self.unsent[(key, client_id)] = later
                self.waiting.appendleft((key, client_id))
                break
        return used

    def answer(
        self, job: RunningJob, target: TargetState, tag: Tag, payload: KuraPayload | None
    ) -> Outcome | None:
        """Record one query's reply (None: none came); when all of the target's are in, what
        they tell together (None: nothing settled, the notification is awaited further)."""
        replies = self.replies.get((job.key, target.client_id))
        if replies is None or tag.query not in replies or replies[tag.query] is not None:
            return None
        replies[tag.query] = payload if payload is not None else _NO_REPLY
        if any(value is None for value in replies.values()):
            return None
        del self.replies[(job.key, target.client_id)]
        if target.status is not TargetStatus.AWAITING_COMPLETION or target.operation_id is None:
            return None
        answers = {name: (None if value is _NO_REPLY else value) for name, value in replies.items()}
        outcome = job.operation(target).recover(target.operation_id, target.phase, answers)
        return None if outcome is None or isinstance(outcome, Accepted) else outcome


# --- resuming after a restart ----------------------------------------------------------------


def resume(rt: Runtime, queries: StatusQueries, job: RunningJob) -> None:
    """Take up the job's RUNNING execution, and the asynchronous operations still awaited."""
    state = job.state
    running = state.running
    if running is not None:
        run = ExecutionRun(running, set(running.targets))
        job.run = run
        state.log(run.id).write(
            "execution",
            f"{run.id} resumed after a runner restart"
            + ("; stop was requested: nothing more is sent" if running.stop_requested else ""),
        )
        run.gate = rt.gate(job, run)
        for client_id in sorted(run.covered):
            if client_id in state.targets:
                take_up(rt, queries, job, run, client_id, resumed=True)
        if run.gate is not None:
            run.gate.sort_held()
            if running.aborted:
                run.gate.aborted = running.message or "aborted"
        if running.stop_requested:
            run.ready.clear()
            if run.gate is not None:
                run.gate.release_all_held()
    for target in state.targets:
        covered = job.run is not None and target.client_id in job.run.covered
        if not covered and target.status is TargetStatus.AWAITING_COMPLETION:
            await_completion(rt, queries, job, target.client_id)


def take_up(
    rt: Runtime,
    queries: StatusQueries,
    job: RunningJob,
    run: ExecutionRun,
    client_id: str,
    *,
    resumed: bool,
) -> None:
    """Put one covered target where it belongs in the running execution (`resumed`: the
    execution that sent its requests, taken up after a restart; else a new execution)."""
    state = job.state
    target = state.targets.get(client_id)
    if target.is_final:
        return  # settled during this execution, before a restart
    run.open += 1
    if target.status is TargetStatus.NOTIFIED_COMPLETION:
        # Completed on the device; the move to the next step was not recorded before a crash.
        done = target.succeeded(len(job.steps), target.message, rt.clock())
        state.targets.put(done)
        if done.is_final:
            run.open -= 1
            if run.gate is not None:
                run.gate.outcome(done)
        else:
            run.ready.append(client_id)
    elif target.status is TargetStatus.AWAITING_COMPLETION:
        await_completion(rt, queries, job, client_id)
    elif target.request_id is not None:
        rearm(rt, job, client_id, resumed=resumed)
    elif run.gate is not None and not run.gate.started(target):
        run.gate.hold(client_id)  # its wave, its window and its turn decide when it starts
    elif target.stage is not None:  # between two requests of its step (rare)
        at = read_back_at(job, target)
        if at is not None and at > rt.clock():
            # Its put was answered less than Kura's apply delay ago (a quick restart, a
            # start right after a stop): the read-back still waits for it.
            rt.device_queue.try_take((job.scope, client_id), job.key)
            proceed_later(rt, job, client_id, target.stage, at)
        else:
            rt.deadlines.cancel(_proceed_key(job.key, client_id))  # an earlier one: void
            run.ready.append(client_id)
    else:
        run.ready.append(client_id)


def read_back_at(job: RunningJob, target: TargetState) -> float | None:
    """When the target's first read-back may go (its step's success plus Kura's apply
    delay), or None: it is not waiting for one."""
    if target.stage != verify_stage(0) or target.updated is None:
        return None
    checks = job.operation(target).checks
    proceed = None if checks is None else checks.verification(None)
    if proceed is None or proceed.after <= 0:
        return None
    return target.updated + proceed.after


def proceed_later(
    rt: Runtime, job: RunningJob, client_id: str, stage: str | None, at: float
) -> None:
    """The target's next request (`stage`) goes at `at`: one such deadline per target, an
    earlier one (armed by a stopped execution) is void."""
    key = _proceed_key(job.key, client_id)
    rt.deadlines.cancel(key)
    rt.deadlines.add(at, ProceedDue(job.key, client_id, stage), key=key)


def _proceed_key(job: JobKey, client_id: str) -> str:
    return f"proceed\0{job[0]}\0{job[1]}\0{client_id}"


def rearm(rt: Runtime, job: RunningJob, client_id: str, *, resumed: bool) -> None:
    """A request recorded by a previous process: accept its reply until its deadline. Then
    a resumed execution fails the target (`RESTARTED`), a new one sends it again
    (`UNANSWERED`)."""
    if client_id in job.out:
        return  # this process still awaits it (an execution stopped before its reply came)
    target = job.state.targets.get(client_id)
    assert target.request_id is not None
    job.state.targets.put(target.replace(phase=RESTARTED if resumed else UNANSWERED))
    operation = job.operation(target)
    tag = Tag(job.key, client_id, target.step_index, target.request_id)
    rt.device_queue.try_take((job.scope, client_id), job.key)
    if target.operation_id is not None:
        rt.operations[target.operation_id] = (job.key, client_id)
        rt.link.track(tag, operation.app_id, target.operation_id)
    job.out.add(client_id)
    rt.link.expect(tag, operation.app_id, target.deadline)
    rt.deadlines.add(max(target.deadline or 0.0, rt.clock() + 1.0), ReplyDue(tag))
    if resumed:
        job.say(
            target,
            "runner restarted while this request awaited its reply; the reply is still"
            " accepted until its deadline, the request is not sent again",
        )
    elif target.operation_id is None:
        job.say(
            target,
            "an earlier execution's request still awaits its reply: the reply is accepted"
            " until its deadline; without it, the step is sent again",
        )
    else:
        job.say(
            target,
            "an earlier execution's request still awaits its reply: the reply is accepted"
            " until its deadline; without it, the device is asked where the operation stands",
        )


def await_completion(rt: Runtime, queries: StatusQueries, job: RunningJob, client_id: str) -> None:
    """Keep awaiting an asynchronous operation, and ask the device where it stands."""
    target = job.state.targets.get(client_id)
    if target.operation_id is None:
        return
    rt.operations[target.operation_id] = (job.key, client_id)
    rt.device_queue.try_take((job.scope, client_id), job.key)
    deadline = target.deadline if target.deadline is not None else rt.clock()
    rt.deadlines.add(deadline, CompletionDue(job.key, client_id, deadline))
    operation = job.operation(target)
    tag = Tag(job.key, client_id, target.step_index, target.request_id or "")
    rt.link.track(tag, operation.app_id, target.operation_id)
    queries.ask(job, client_id)
