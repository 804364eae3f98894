"""Carrying out what the gates of running rollouts decide, and stopping an execution.

A stop (the operator's) and an abort (a rollout's gate) end an execution the same way:
nothing more is sent, the replies in flight are awaited and recorded (for at most the drain),
the downloads under way may be cancelled; the abort also says, on every target it never
started, why.
"""

from __future__ import annotations

from collections.abc import Callable

from jobrunner.engine.core.rollbacks import Rollbacks, roll_back_all
from jobrunner.engine.core.runtime import ExecutionRun, RunningJob, Runtime
from jobrunner.engine.core.timers import DrainOver, GateDue
from jobrunner.manifests.rollout import Rollout

Cancel = Callable[[RunningJob, str], bool]
ABORT_GRACE = 5.0
"""Seconds past the longest step timeout an aborted execution waits for its replies."""


def turn_gates(rt: Runtime, cancel: Cancel, rollbacks: Rollbacks) -> None:
    """One turn of every running rollout: start what may start, decide, abort, re-arm."""
    now = rt.clock()
    for job in rt.jobs.values():
        run = job.run
        if run is None or run.gate is None or run.stopping:
            continue
        decision = run.gate.turn(now)
        log = job.state.log(run.id)
        for line in decision.lines:
            log.write("rollout", line, now)
        for wave, text in decision.passed:
            rt.observer.wave_passed(job.key, run.id, wave, text)
        for wave, by in decision.approved:
            rt.observer.wave_approved(job.key, run.id, wave, by)
        if decision.abort is not None:
            abort(rt, cancel, job, decision.abort)
            if run.gate.settings.abort is not None and run.gate.settings.abort.rollback:
                roll_back_all(rollbacks, job, decision.abort)
            rt.observer.rollout_aborted(job.key, run.id, decision.abort)
            continue
        targets = job.state.targets
        for client_id in decision.start:
            targets.put(targets.get(client_id).start(run.id, now))
            run.ready.append(client_id)
        wake = decision.wake_at
        if wake is not None and (run.gate_wake <= now or wake < run.gate_wake):
            run.gate_wake = wake
            rt.deadlines.add(wake, GateDue(job.key))


def abort(rt: Runtime, cancel: Cancel, job: RunningJob, reason: str) -> None:
    """End the execution ABORTED: nothing new starts, what is in flight is recorded."""
    run = job.run
    assert run is not None and run.gate is not None
    settings: Rollout = run.gate.settings
    now = rt.clock()
    for client_id in run.gate.release_all_held():
        target = job.state.targets.get(client_id)
        why = f"not started: the execution was aborted ({reason})"
        job.state.targets.put(target.waiting(why, now))
    longest = max((s.timeout.total_seconds() for s in job.steps), default=0.0)
    stop_run(
        rt,
        cancel,
        job,
        f"aborted: {reason}",
        cancel_operations=settings.abort is not None and settings.abort.cancel,
        drain=longest + ABORT_GRACE,
        aborted=True,
    )


def stop_run(
    rt: Runtime,
    cancel: Cancel,
    job: RunningJob,
    reason: str,
    *,
    cancel_operations: bool,
    drain: float,
    aborted: bool = False,
) -> bool:
    """Send nothing more; the execution ends (STOPPED, or ABORTED) once no reply is awaited,
    or `drain` seconds from now. With `cancel_operations`, the operations running on the
    devices that can be cancelled (a package download) are asked to stop."""
    run = job.run
    if run is None or run.stopping:
        return False
    run.summary.stop_requested = True
    run.summary.aborted = aborted
    run.summary.message = reason
    job.state.save_summary(run.summary)
    out = len(job.out & run.covered)
    job.state.log(run.id).write(
        "execution",
        (reason if aborted else f"stop requested ({reason})")
        + "; nothing more is sent"
        + (f"; {out} reply(ies) in flight awaited, at most {drain:g}s" if out else ""),
    )
    _free_ready(rt, job, run)
    run.ready.clear()
    if cancel_operations:
        for client_id in sorted(run.covered):
            if cancel(job, client_id):
                run.cancelling.add(client_id)
    rt.deadlines.add(rt.clock() + drain, DrainOver(job.key, run.id))
    return True


def _free_ready(rt: Runtime, job: RunningJob, run: ExecutionRun) -> None:
    """The ready targets that hold their device (between two requests of a step: a
    snapshot taken, its put not sent yet) free it: nothing more is sent to them."""
    busy = rt.device_queue.busy
    for client_id in set(run.ready):
        if busy.get((job.scope, client_id)) != job.key:
            continue
        target = job.state.targets.get(client_id)
        if target.request_id is None and not target.being_rolled_back:
            rt.release(job, client_id)
