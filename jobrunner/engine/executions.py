"""Starting and stopping executions, on the engine's thread.

Only one execution of a job runs at a time. The first execution freezes the resolved target
list and the steps. A re-run covers the targets that are not done, each from the step where
it stopped. A job taken into the engine (`attach`) resumes the RUNNING execution it has on
disk (see `recovery`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jobrunner.engine.executor import Engine
from jobrunner.engine.runtime import ExecutionRun, RunningJob
from jobrunner.engine.steps import OperationFactory
from jobrunner.errors import JobError
from jobrunner.state.jobstore import JobState
from jobrunner.state.records import FrozenJob, Trigger, utc_now

STOP_DRAIN = 10.0
"""Seconds a stopped execution waits for the replies of requests in flight before it ends."""

__all__ = ["STOP_DRAIN", "OperationFactory", "attach", "freeze", "start", "stop"]


def attach(engine: Engine, state: JobState, operations: OperationFactory) -> RunningJob:
    """Load a job into the engine (once); resume its RUNNING execution if it has one."""
    running = engine.jobs.get(state.key)
    if running is not None:
        return running
    job = RunningJob(state, state.steps, [operations(step) for step in state.steps])
    engine.hold(job)
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
    if not job.steps:  # frozen since the engine took the job in
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
        state.targets.put(state.targets.get(client_id).enter(run.id, now))
        engine.take_up(job, client_id)
    return run


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
    engine.wait_no_longer_than(job, drain)
    return True
