"""Starting, stopping and resuming executions on the engine's thread.

Only one execution of a job runs at a time. The first execution freezes the resolved target
list and the steps. A re-run covers the targets that are not done, each from the step where
it stopped. A restarted runner resumes every RUNNING execution it finds on disk: requests
whose reply was never recorded are re-armed until their deadline (or failed with "runner
restarted before the reply"), never sent again; asynchronous operations go on being awaited,
and the device is asked where they stand, since notifications sent while the runner was down
are lost (Kura publishes them at QoS 0).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from jobrunner.engine.executor import Engine
from jobrunner.engine.ports import StepOperation, Tag
from jobrunner.engine.runtime import ExecutionRun, RunningJob
from jobrunner.errors import JobError
from jobrunner.manifests import StepBase
from jobrunner.state.jobstore import JobState
from jobrunner.state.records import FrozenJob, Trigger, utc_now
from jobrunner.state.targets import TargetStatus

OperationFactory = Callable[[StepBase], StepOperation]


def attach(engine: Engine, state: JobState, operations: OperationFactory) -> RunningJob:
    """Load a job into the engine (once); resume its RUNNING execution if it has one."""
    running = engine.jobs.get(state.key)
    if running is not None:
        return running
    steps = state.steps
    job = RunningJob(state, steps, [operations(step) for step in steps])
    engine.jobs[state.key] = job
    if steps:
        _resume(engine, job)
    return job


def freeze(
    state: JobState,
    targets: list[str],
    steps: list[dict[str, Any]],
    digest: str,
    revision: str | None,
) -> None:
    """Record the first execution's targets and steps: unmodifiable from now on."""
    state.freeze(
        FrozenJob(at=utc_now(), revision=revision, targets=targets, steps=steps, digest=digest)
    )


def start(
    engine: Engine,
    job: RunningJob,
    trigger: Trigger,
    *,
    operations: OperationFactory,
    revision: str | None,
    only: Iterable[str] | None = None,
) -> ExecutionRun:
    """Begin an execution over the targets that are not done (or `only` those among them)."""
    state = job.state
    running = state.running
    if running is not None:
        raise JobError(
            f"job {job.label} is already running execution {running.id}"
            f" (started {running.started_on:%Y-%m-%d %H:%M:%S} UTC by {running.trigger});"
            f" wait for it to end, or stop it with `jobrunner stop {job.label}`"
        )
    frozen = state.record.frozen
    if frozen is None:
        raise JobError(f"job {job.label} has no frozen targets and steps; reconcile it first")
    if not job.steps:
        job.steps = state.steps
        job.operations = [operations(step) for step in job.steps]
    now = engine.clock()
    state.add_targets(frozen.targets, now)
    wanted = set(frozen.targets) if only is None else set(only) & set(frozen.targets)
    covered = sorted(c for c in wanted if not state.targets.get(c).is_done(len(job.steps)))
    summary = state.begin_execution(trigger, covered, revision)
    run = ExecutionRun(summary, set(covered))
    job.run = run
    skipped = len(wanted) - len(covered)
    state.log(run.id).write(
        "execution",
        f"{run.id} started by {trigger}; {len(covered)} target(s)"
        + (f", {skipped} done already and skipped" if skipped else "")
        + (f"; manifests at {revision}" if revision else ""),
        now,
    )
    for client_id in covered:
        target = state.targets.get(client_id).enter(run.id, now)
        state.targets.put(target)
        _take_up(engine, job, run, client_id)
    return run


STOP_DRAIN = 10.0
"""Seconds a stopped execution waits for the replies of requests in flight before it ends."""


def stop(
    engine: Engine, job: RunningJob, reason: str, *, cancel: bool = False, drain: float = STOP_DRAIN
) -> bool:
    """Send nothing more; the execution ends STOPPED once no reply is awaited, or `drain`
    seconds after the stop. With `cancel`, operations running on the devices that can be
    cancelled (a package download) are asked to stop, and their end awaited the same way."""
    run = job.run
    if run is None or run.stopping:
        return False
    run.summary.stop_requested = True
    run.summary.message = reason
    job.state.save_summary(run.summary)
    out = len(job.out & run.covered)
    job.state.log(run.id).write(
        "execution",
        f"stop requested ({reason}); nothing more is sent"
        + (f"; {out} reply(ies) in flight awaited, at most {drain:g}s" if out else ""),
    )
    run.ready.clear()
    if cancel:
        for client_id in sorted(run.covered):
            if engine.cancel(job, client_id):
                run.cancelling.add(client_id)
    engine.deadlines.add(engine.clock() + drain, job.key, str(run.id), "drain")
    return True


def _take_up(engine: Engine, job: RunningJob, run: ExecutionRun, client_id: str) -> None:
    """Put one covered target where it belongs in the running execution."""
    state = job.state
    target = state.targets.get(client_id)
    now = engine.clock()
    if target.is_final:
        return  # settled during this execution, before a restart
    run.open += 1
    if target.status is TargetStatus.NOTIFIED_COMPLETION:
        # Completed on the device; the move to the next step was not recorded before a crash.
        done = target.succeeded(len(job.steps), target.message, now)
        state.targets.put(done)
        if done.is_final:
            run.open -= 1
        else:
            run.ready.append(client_id)
    elif target.status is TargetStatus.AWAITING_COMPLETION:
        _await_completion(engine, job, client_id)
    elif target.request_id is not None:
        _rearm(engine, job, client_id)
    else:
        run.ready.append(client_id)


def _rearm(engine: Engine, job: RunningJob, client_id: str) -> None:
    """A request recorded by a previous process: accept its reply until its deadline."""
    if client_id in job.out:
        return  # this process still awaits it (an execution stopped before its reply came)
    target = job.state.targets.get(client_id)
    assert target.request_id is not None
    marked = replace(target, phase="restarted")
    job.state.targets.put(marked)
    operation = job.operations[target.step_index]
    tag = Tag(job.key, client_id, target.step_index, target.request_id)
    engine.device_queue.try_take((job.scope, client_id), job.key)
    if target.operation_id is not None:
        engine.operations[target.operation_id] = (job.key, client_id)
        engine.link.track(tag, operation.app_id, target.operation_id)
    job.out.add(client_id)
    deadline = max(target.deadline or 0.0, engine.clock() + 1.0)
    engine.link.expect(tag, operation.app_id, deadline)
    job.state.log(target.execution or 0).write(
        job.subject(client_id, target.step_index),
        "runner restarted while this request awaited its reply; the reply is still accepted"
        " until its deadline, the request is not sent again",
    )


def _await_completion(engine: Engine, job: RunningJob, client_id: str) -> None:
    """Keep awaiting an asynchronous operation, and ask the device where it stands."""
    target = job.state.targets.get(client_id)
    if target.operation_id is None:
        return
    engine.operations[target.operation_id] = (job.key, client_id)
    engine.device_queue.try_take((job.scope, client_id), job.key)
    engine.deadlines.add(target.deadline or engine.clock(), job.key, client_id, "completion")
    operation = job.operations[target.step_index]
    tag = Tag(job.key, client_id, target.step_index, target.request_id or "")
    engine.link.track(tag, operation.app_id, target.operation_id)
    engine.ask_status(job, client_id)


def _resume(engine: Engine, job: RunningJob) -> None:
    """After a restart: take up the RUNNING execution, and async operations still awaited."""
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
        for client_id in sorted(run.covered):
            if client_id in state.targets:
                _take_up(engine, job, run, client_id)
        if running.stop_requested:
            run.ready.clear()
    for target in state.targets:
        covered = job.run is not None and target.client_id in job.run.covered
        if not covered and target.status is TargetStatus.AWAITING_COMPLETION:
            _await_completion(engine, job, target.client_id)
